{{ config(meta={'owner': 'DA'}) }}

{#-
    The conversion chart's series: metrics_conversion_daily summed per day (all platforms and
    countries), the day's rate and the rate over a trailing window of `rolling_days` calendar
    days ending that day (a ratio of the window's sums). Days without any visitor have no row
    and add nothing to a window.
-#}
{%- set rolling_days = var('metrics__rolling_days', 7) -%}

with

conversion as (

    select * from {{ ref('metrics_conversion_daily') }}

),

daily as (

    select
        activity_date,
        sum(n_visitors) as n_visitors,
        sum(n_new_visitors) as n_new_visitors,
        sum(n_non_customer_visitors) as n_non_customer_visitors,
        sum(n_first_time_buyers) as n_first_time_buyers
    from conversion
    group by 1

),

window_bounds as (

    select
        activity_date,
        cast({{ dbt.dateadd('day', 1 - rolling_days, 'activity_date') }} as date)
            as window_start_date
    from daily

),

window_totals as (

    select
        window_bounds.activity_date,
        sum(daily.n_non_customer_visitors) as n_non_customer_visitors_window,
        sum(daily.n_first_time_buyers) as n_first_time_buyers_window
    from window_bounds
    inner join daily
        on
            window_bounds.window_start_date <= daily.activity_date
            and window_bounds.activity_date >= daily.activity_date
    group by 1

),

final as (

    select
        daily.activity_date,
        daily.n_visitors,
        daily.n_new_visitors,
        daily.n_non_customer_visitors,
        daily.n_first_time_buyers,
        cast(daily.n_first_time_buyers as {{ type_double() }})
        / nullif(daily.n_non_customer_visitors, 0) as non_customer_conversion_rate,
        {{ rolling_days }} as rolling_window_days,
        window_totals.n_non_customer_visitors_window,
        window_totals.n_first_time_buyers_window,
        cast(window_totals.n_first_time_buyers_window as {{ type_double() }})
        / nullif(window_totals.n_non_customer_visitors_window, 0)
            as rolling_non_customer_conversion_rate
    from daily
    inner join window_totals
        on daily.activity_date = window_totals.activity_date

)

select * from final
