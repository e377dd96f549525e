{{ config(meta={'owner': 'DA'}) }}

{#-
    Every session (and every order) of a visitor that follows an earlier one, with the calendar
    days since that earlier one. return_type 'session': consecutive sessions; 'purchase':
    consecutive orders (an order is one order_id; a purchase event without one is its own order).
-#}

with

sessions as (

    select * from {{ ref('fct_sessions') }}

),

purchase_events as (

    select * from {{ ref('fct_events') }}
    where event_type = 'purchase'

),

visitors as (

    select * from {{ ref('metrics_visitors') }}

),

orders as (

    select
        visitor_id,
        coalesce(order_id, event_id) as order_key,
        min(event_at) as ordered_at
    from purchase_events
    group by 1, 2

),

visits as (

    select
        visitor_id,
        'session' as return_type,
        session_id as visit_id,
        started_at as visit_at
    from sessions

    union all

    select
        visitor_id,
        'purchase' as return_type,
        order_key as visit_id,
        ordered_at as visit_at
    from orders

),

sequenced as (

    select
        visitor_id,
        return_type,
        visit_id,
        visit_at,
        row_number() over (
            partition by visitor_id, return_type
            order by visit_at, visit_id
        ) as visit_number,
        lag(visit_at) over (
            partition by visitor_id, return_type
            order by visit_at, visit_id
        ) as previous_at
    from visits

),

final as (

    select
        sequenced.visitor_id,
        visitors.user_id,
        sequenced.return_type,
        sequenced.visit_id,
        sequenced.visit_number,
        sequenced.previous_at,
        sequenced.visit_at as returned_at,
        cast(sequenced.previous_at as date) as previous_date,
        cast(sequenced.visit_at as date) as returned_date,
        {{ dbt.datediff(
            'cast(sequenced.previous_at as date)', 'cast(sequenced.visit_at as date)', 'day'
        ) }} as days_to_return,
        coalesce(visitors.first_purchase_at <= sequenced.previous_at, false) as is_customer
    from sequenced
    inner join visitors
        on sequenced.visitor_id = visitors.visitor_id
    where sequenced.previous_at is not null

)

select * from final
