{{ config(meta={'owner': 'DA'}) }}

{#-
    Cohort = the Monday-start week of a customer's first purchase (metrics_visitors.cohort_week).
    Return = the customer's next session after their first-purchase session. Recent cohorts have
    had less time to come back, so the window columns only count customers whose whole window
    (var metrics__return_window_days, default 14) lies inside the data.
-#}
{%- set window_days = var('metrics__return_window_days', 14) -%}

with

customers as (

    select * from {{ ref('metrics_visitors') }}
    where is_customer

),

returns as (

    select * from {{ ref('metrics_time_to_return') }}

),

data_end as (

    select max(session_date) as data_end_date
    from {{ ref('fct_sessions') }}

),

first_returns as (

    select
        returns.visitor_id,
        returns.days_to_return
    from returns
    inner join customers
        on
            returns.visitor_id = customers.visitor_id
            and returns.previous_at = customers.first_purchase_at
    where returns.return_type = 'session'

),

second_orders as (

    select
        visitor_id,
        days_to_return as days_to_second_order
    from returns
    where
        return_type = 'purchase'
        and visit_number = 2

),

per_customer as (

    select
        customers.visitor_id,
        customers.cohort_week,
        first_returns.days_to_return,
        second_orders.days_to_second_order,
        data_end.data_end_date,
        cast(
            {{ dbt.dateadd('day', window_days, 'customers.first_purchase_date') }} as date
        ) <= data_end.data_end_date as is_window_observed
    from customers
    cross join data_end
    left join first_returns
        on customers.visitor_id = first_returns.visitor_id
    left join second_orders
        on customers.visitor_id = second_orders.visitor_id

),

aggregated as (

    select
        cohort_week,
        count(*) as n_customers,
        count(days_to_return) as n_returned,
        percentile_cont(0.5) within group (order by days_to_return) as median_days_to_return,
        count(days_to_second_order) as n_second_orders,
        percentile_cont(0.5) within group (
            order by days_to_second_order
        ) as median_days_to_second_order,
        count(case when is_window_observed then 1 end) as n_customers_window_observed,
        count(
            case when is_window_observed and days_to_return <= {{ window_days }} then 1 end
        ) as n_returned_within_window,
        max(data_end_date) as data_end_date
    from per_customer
    group by 1

),

final as (

    select
        cohort_week,
        n_customers,
        n_returned,
        cast(n_returned as {{ type_double() }}) / n_customers as return_rate,
        median_days_to_return,
        n_second_orders,
        median_days_to_second_order,
        {{ window_days }} as return_window_days,
        n_customers_window_observed,
        n_returned_within_window,
        cast(n_returned_within_window as {{ type_double() }})
        / nullif(n_customers_window_observed, 0) as return_rate_within_window,
        data_end_date
    from aggregated

)

select * from final
