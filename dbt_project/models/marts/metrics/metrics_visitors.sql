{{ config(meta={'owner': 'DA'}) }}

{#-
    One row per visitor (the stitched visitor_id of fct_sessions): the firsts every other
    metrics_ model needs. A visitor becomes a customer with their first session that contains
    a purchase; everything is session based, so a purchase is dated by its session's start.
-#}

with

sessions as (

    select * from {{ ref('fct_sessions') }}

),

purchase_events as (

    select
        visitor_id,
        coalesce(order_id, event_id) as order_key
    from {{ ref('fct_events') }}
    where event_type = 'purchase'

),

ranked_purchase_sessions as (

    select
        visitor_id,
        started_at,
        session_date,
        session_index,
        row_number() over (
            partition by visitor_id
            order by started_at, session_id
        ) as purchase_session_rank
    from sessions
    where is_converted

),

first_purchases as (

    select
        visitor_id,
        started_at as first_purchase_at,
        session_date as first_purchase_date,
        session_index as sessions_to_first_purchase
    from ranked_purchase_sessions
    where purchase_session_rank = 1

),

last_purchases as (

    select
        visitor_id,
        max(session_date) as last_purchase_date
    from sessions
    where is_converted
    group by 1

),

visitor_orders as (

    select
        visitor_id,
        count(distinct order_key) as n_orders
    from purchase_events
    group by 1

),

visitor_sessions as (

    select
        visitor_id,
        max(user_id) as user_id,
        min(started_at) as first_seen_at,
        max(ended_at) as last_seen_at,
        min(session_date) as first_session_date,
        max(session_date) as last_session_date,
        count(*) as n_sessions,
        count(case when is_converted then 1 end) as n_purchase_sessions
    from sessions
    group by 1

),

final as (

    select
        visitor_sessions.visitor_id,
        visitor_sessions.user_id,
        visitor_sessions.user_id is not null as is_identified,
        first_purchases.visitor_id is not null as is_customer,
        visitor_sessions.first_seen_at,
        visitor_sessions.last_seen_at,
        visitor_sessions.first_session_date,
        visitor_sessions.last_session_date,
        cast(
            {{ dbt.date_trunc('week', 'visitor_sessions.first_session_date') }} as date
        ) as first_visit_week,
        first_purchases.first_purchase_at,
        first_purchases.first_purchase_date,
        cast(
            {{ dbt.date_trunc('week', 'first_purchases.first_purchase_date') }} as date
        ) as cohort_week,
        first_purchases.sessions_to_first_purchase,
        {{ dbt.datediff(
            'visitor_sessions.first_session_date', 'first_purchases.first_purchase_date', 'day'
        ) }} as days_to_first_purchase,
        last_purchases.last_purchase_date,
        visitor_sessions.n_sessions,
        visitor_sessions.n_purchase_sessions,
        coalesce(visitor_orders.n_orders, 0) as n_orders
    from visitor_sessions
    left join first_purchases
        on visitor_sessions.visitor_id = first_purchases.visitor_id
    left join last_purchases
        on visitor_sessions.visitor_id = last_purchases.visitor_id
    left join visitor_orders
        on visitor_sessions.visitor_id = visitor_orders.visitor_id

)

select * from final
