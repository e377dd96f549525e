{{ config(meta={'owner': 'DA'}) }}

{#-
    metrics_conversion_daily summed over the whole data range, per platform. The counts are
    visitor-days (a visitor on three days counts three times), as in the daily mart.
-#}

with

conversion as (

    select * from {{ ref('metrics_conversion_daily') }}

),

totals as (

    select
        platform,
        sum(n_visitors) as n_visitors,
        sum(n_non_customer_visitors) as n_non_customer_visitors,
        sum(n_first_time_buyers) as n_first_time_buyers
    from conversion
    group by 1

),

final as (

    select
        platform,
        n_visitors,
        n_non_customer_visitors,
        n_first_time_buyers,
        cast(n_first_time_buyers as {{ type_double() }})
        / nullif(n_non_customer_visitors, 0) as non_customer_conversion_rate
    from totals

)

select * from final
