{{ config(meta={'owner': 'DA'}) }}

{#-
    Each visitor-day is counted once, in the platform and country of the visitor's first session
    that day, so rows add up to daily totals. A visitor is "not yet a customer" on a day when
    their first purchase session is on that day or later (or never).
-#}

with

sessions as (

    select * from {{ ref('fct_sessions') }}

),

visitors as (

    select * from {{ ref('metrics_visitors') }}

),

ranked_sessions as (

    select
        visitor_id,
        session_date as activity_date,
        coalesce(platform, 'unknown') as platform,
        coalesce(country, 'unknown') as country,
        row_number() over (
            partition by visitor_id, session_date
            order by started_at, session_id
        ) as session_of_day_rank
    from sessions

),

visitor_days as (

    select
        visitor_id,
        activity_date,
        platform,
        country
    from ranked_sessions
    where session_of_day_rank = 1

),

buyer_days as (

    select distinct
        visitor_id,
        session_date as activity_date
    from sessions
    where is_converted

),

classified as (

    select
        visitor_days.activity_date,
        visitor_days.platform,
        visitor_days.country,
        visitor_days.visitor_id,
        visitors.first_session_date = visitor_days.activity_date as is_new_visitor,
        coalesce(
            visitors.first_purchase_date >= visitor_days.activity_date, true
        ) as is_non_customer,
        coalesce(
            visitors.first_purchase_date = visitor_days.activity_date, false
        ) as is_first_time_buyer,
        buyer_days.visitor_id is not null as is_buyer
    from visitor_days
    inner join visitors
        on visitor_days.visitor_id = visitors.visitor_id
    left join buyer_days
        on
            visitor_days.visitor_id = buyer_days.visitor_id
            and visitor_days.activity_date = buyer_days.activity_date

),

aggregated as (

    select
        activity_date,
        platform,
        country,
        count(*) as n_visitors,
        count(case when is_new_visitor then 1 end) as n_new_visitors,
        count(case when is_non_customer then 1 end) as n_non_customer_visitors,
        count(case when is_first_time_buyer then 1 end) as n_first_time_buyers,
        count(case when is_buyer then 1 end) as n_buyers
    from classified
    group by 1, 2, 3

),

final as (

    select
        activity_date,
        platform,
        country,
        n_visitors,
        n_new_visitors,
        n_visitors - n_new_visitors as n_returning_visitors,
        n_non_customer_visitors,
        n_first_time_buyers,
        n_buyers,
        n_buyers - n_first_time_buyers as n_repeat_buyers,
        cast(n_first_time_buyers as {{ type_double() }})
        / nullif(n_non_customer_visitors, 0) as non_customer_conversion_rate
    from aggregated

)

select * from final
