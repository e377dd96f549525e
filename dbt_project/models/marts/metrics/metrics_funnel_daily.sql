{{ config(meta={'owner': 'DA'}) }}

{#-
    A closed session funnel: a session reaches a step when it contains that step's event and
    the events of every earlier step (the order inside the session is not checked). Dated by
    the session's start.
-#}

with

sessions as (

    select * from {{ ref('fct_sessions') }}

),

steps as (

    select
        session_date,
        n_product_views > 0 as has_product_view,
        n_product_views > 0 and n_add_to_carts > 0 as has_add_to_cart,
        n_product_views > 0 and n_add_to_carts > 0 and n_purchases > 0 as has_purchase,
        n_purchases > 0 as has_any_purchase
    from sessions

),

aggregated as (

    select
        session_date,
        count(*) as n_sessions,
        count(case when has_product_view then 1 end) as n_product_view_sessions,
        count(case when has_add_to_cart then 1 end) as n_add_to_cart_sessions,
        count(case when has_purchase then 1 end) as n_purchase_sessions,
        count(case when has_any_purchase then 1 end) as n_sessions_with_any_purchase
    from steps
    group by 1

),

final as (

    select
        session_date,
        n_sessions,
        n_product_view_sessions,
        n_add_to_cart_sessions,
        n_purchase_sessions,
        n_sessions_with_any_purchase,
        cast(n_product_view_sessions as {{ type_double() }})
        / n_sessions as session_to_view_rate,
        cast(n_add_to_cart_sessions as {{ type_double() }})
        / nullif(n_product_view_sessions, 0) as view_to_cart_rate,
        cast(n_purchase_sessions as {{ type_double() }})
        / nullif(n_add_to_cart_sessions, 0) as cart_to_purchase_rate,
        cast(n_purchase_sessions as {{ type_double() }})
        / nullif(n_product_view_sessions, 0) as view_to_purchase_rate
    from aggregated

)

select * from final
