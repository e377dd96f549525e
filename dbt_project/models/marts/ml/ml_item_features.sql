with

items as (

    select * from {{ ref('dim_items') }}

),

final as (

    select
        item_id,
        department,
        category,
        product_type,
        colour,
        brand,
        price_band,
        launch_date,
        is_active
    from items

)

select * from final
