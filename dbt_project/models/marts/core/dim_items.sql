with

items as (

    select * from {{ ref('stg_lake__items') }}

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
        collection,
        price,
        {{ price_band('price', var('items__price_band_edges')) }} as price_band,
        launch_date,
        first_snapshot_date,
        last_snapshot_date,
        is_in_latest_snapshot as is_active
    from items

)

select * from final
