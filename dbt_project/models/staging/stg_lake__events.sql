with

source as (

    select * from {{ read_lake(source('lake', 'events')) }}

),

humans as (

    select *
    from source
    where not coalesce(is_bot, false)

),

renamed as (

    select
        cast(event_id as {{ dbt.type_string() }}) as event_id,
        cast(event_time as {{ dbt.type_timestamp() }}) as event_at,
        cast(event_date as date) as event_date,
        lower(event_type) as event_type,
        cast(anonymous_id as {{ dbt.type_string() }}) as anonymous_id,
        cast(user_id as {{ dbt.type_string() }}) as user_id,
        cast(item_id as {{ dbt.type_string() }}) as item_id,
        page,
        cast(scroll_depth_pct as {{ dbt.type_float() }}) as scroll_depth_pct,
        cast(list_position as {{ dbt.type_int() }}) as list_position,
        cast(price as {{ dbt.type_float() }}) as price,
        cast(quantity as {{ dbt.type_int() }}) as quantity,
        order_id,
        search_query,
        recommendation_id,
        lower(platform) as platform,
        upper(country) as country,
        user_agent,
        experiment_id,
        variant,
        properties as properties_json,
        cast(received_at as {{ dbt.type_timestamp() }}) as received_at,
        source_file,
        source_line
    from humans

),

final as (

    select * from renamed

)

select * from final
