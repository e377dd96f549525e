{%- set edges = var('items__price_band_edges') -%}

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
        case
            when price is null then 'unknown'
            {%- for edge in edges %}
            when price < {{ edge }} then '{{ "lt_" ~ edge if loop.first else edges[loop.index0 - 1] ~ "_" ~ edge }}'
            {%- endfor %}
            else 'gte_{{ edges[-1] }}'
        end as price_band,
        launch_date,
        first_snapshot_date,
        last_snapshot_date,
        is_in_latest_snapshot as is_active
    from items

)

select * from final
