{{ config(meta={'owner': 'DA'}) }}

{#-
    The headline figures of the business report over the whole data range, one row. Rates are
    ratios of sums (not averages of daily rates), so a quiet day weighs as little as it counts.
-#}

with

conversion as (

    select * from {{ ref('metrics_conversion_daily') }}

),

returns as (

    select * from {{ ref('metrics_time_to_return') }}

),

funnel as (

    select * from {{ ref('metrics_funnel_daily') }}

),

impact as (

    select * from {{ ref('metrics_recommendation_impact') }}

),

conversion_totals as (

    select
        coalesce(sum(n_non_customer_visitors), 0) as n_non_customer_visitors,
        coalesce(sum(n_first_time_buyers), 0) as n_first_time_buyers
    from conversion

),

customer_returns as (

    select
        count(*) as n_customer_returns,
        percentile_cont(0.5) within group (
            order by days_to_return
        ) as median_days_to_next_visit_customers
    from returns
    where is_customer and return_type = 'session'

),

customer_orders as (

    select
        count(*) as n_customer_repeat_orders,
        percentile_cont(0.5) within group (
            order by days_to_return
        ) as median_days_to_next_order_customers
    from returns
    where is_customer and return_type = 'purchase'

),

funnel_totals as (

    select
        min(session_date) as data_start_date,
        max(session_date) as data_end_date,
        coalesce(sum(n_sessions), 0) as n_sessions,
        coalesce(sum(n_product_view_sessions), 0) as n_product_view_sessions,
        coalesce(sum(n_add_to_cart_sessions), 0) as n_add_to_cart_sessions,
        coalesce(sum(n_purchase_sessions), 0) as n_purchase_sessions,
        coalesce(sum(n_sessions_with_any_purchase), 0) as n_sessions_with_any_purchase
    from funnel

),

impact_pivoted as (

    select
        max(
            case when has_recommendation_click then conversion_rate end
        ) as conversion_rate_with_recommendation_click,
        max(
            case when not has_recommendation_click then conversion_rate end
        ) as conversion_rate_without_recommendation_click
    from impact

),

final as (

    select
        funnel_totals.data_start_date,
        funnel_totals.data_end_date,
        conversion_totals.n_non_customer_visitors,
        conversion_totals.n_first_time_buyers,
        cast(conversion_totals.n_first_time_buyers as {{ type_double() }})
        / nullif(conversion_totals.n_non_customer_visitors, 0) as non_customer_conversion_rate,
        customer_returns.n_customer_returns,
        customer_returns.median_days_to_next_visit_customers,
        customer_orders.n_customer_repeat_orders,
        customer_orders.median_days_to_next_order_customers,
        funnel_totals.n_sessions,
        funnel_totals.n_product_view_sessions,
        funnel_totals.n_add_to_cart_sessions,
        funnel_totals.n_purchase_sessions,
        funnel_totals.n_sessions_with_any_purchase,
        cast(funnel_totals.n_purchase_sessions as {{ type_double() }})
        / nullif(funnel_totals.n_product_view_sessions, 0) as view_to_purchase_rate,
        impact_pivoted.conversion_rate_with_recommendation_click,
        impact_pivoted.conversion_rate_without_recommendation_click
    from funnel_totals
    cross join conversion_totals
    cross join customer_returns
    cross join customer_orders
    cross join impact_pivoted

)

select * from final
