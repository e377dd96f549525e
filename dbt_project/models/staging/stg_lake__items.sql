with

source as (

    {#- a dataset without a catalog snapshot (views-only logs) has no item attributes -#}
    select * from {{ read_lake(source('lake', 'catalog'), empty_columns={
        'item_id': 'varchar', 'name': 'varchar', 'department': 'varchar',
        'category': 'varchar', 'product_type': 'varchar', 'colour': 'varchar',
        'brand': 'varchar', 'price': 'double', 'collection': 'varchar',
        'launch_date': 'date', 'snapshot_date': 'date',
    }) }}

),

renamed as (

    select
        cast(item_id as {{ dbt.type_string() }}) as item_id,
        name as item_name,
        department,
        category,
        product_type,
        colour,
        brand,
        cast(price as {{ dbt.type_float() }}) as price,
        collection,
        cast(launch_date as date) as launch_date,
        cast(snapshot_date as date) as snapshot_date
    from source

),

ranked as (

    select
        *,
        min(snapshot_date) over (partition by item_id) as first_snapshot_date,
        max(snapshot_date) over () as latest_snapshot_date,
        row_number() over (partition by item_id order by snapshot_date desc) as snapshot_rank
    from renamed

),

final as (

    select
        item_id,
        item_name,
        department,
        category,
        product_type,
        colour,
        brand,
        price,
        collection,
        launch_date,
        first_snapshot_date,
        snapshot_date as last_snapshot_date,
        snapshot_date = latest_snapshot_date as is_in_latest_snapshot
    from ranked
    where snapshot_rank = 1

)

select * from final
