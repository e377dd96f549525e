with

source as (

    {#- most real datasets ship no customer snapshot: then there are no customers -#}
    select * from {{ read_lake(source('lake', 'customers'), empty_columns={
        'user_id': 'varchar', 'signup_date': 'date', 'country': 'varchar',
        'age_band': 'varchar', 'is_newsletter_subscriber': 'boolean', 'snapshot_date': 'date',
    }) }}

),

renamed as (

    select
        cast(user_id as {{ dbt.type_string() }}) as user_id,
        cast(signup_date as date) as signup_date,
        upper(country) as country,
        age_band,
        cast(is_newsletter_subscriber as {{ dbt.type_boolean() }}) as is_newsletter_subscriber,
        cast(snapshot_date as date) as snapshot_date
    from source

),

ranked as (

    select
        *,
        row_number() over (partition by user_id order by snapshot_date desc) as snapshot_rank
    from renamed

),

final as (

    select
        user_id,
        signup_date,
        country,
        age_band,
        is_newsletter_subscriber,
        snapshot_date as last_snapshot_date
    from ranked
    where snapshot_rank = 1

)

select * from final
