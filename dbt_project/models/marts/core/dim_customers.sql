{#-
    Customers from the latest customer snapshot, plus customers seen in events but not (yet)
    in a snapshot, so every stitched user_id of fct_events has a row here. Activity columns
    count stitched events: a customer's anonymous events before the first login are included.
-#}
with

customers as (

    select * from {{ ref('stg_lake__customers') }}

),

sessions as (

    select * from {{ ref('fct_sessions') }}

),

purchases as (

    select
        stitched_user_id as user_id,
        event_at,
        coalesce(order_id, event_id) as order_key
    from {{ ref('fct_events') }}
    where
        event_type = 'purchase'
        and stitched_user_id is not null

),

customer_sessions as (

    select
        user_id,
        min(started_at) as first_seen_at,
        max(ended_at) as last_seen_at,
        count(*) as n_sessions,
        sum(purchase_revenue) as purchase_revenue
    from sessions
    where user_id is not null
    group by 1

),

customer_orders as (

    select
        user_id,
        min(event_at) as first_purchase_at,
        max(event_at) as last_purchase_at,
        count(distinct order_key) as n_orders
    from purchases
    group by 1

),

customer_ids as (

    select user_id from customers
    union
    select user_id from customer_sessions

),

final as (

    select
        customer_ids.user_id,
        customers.signup_date,
        customers.country,
        customers.age_band,
        customers.is_newsletter_subscriber,
        customers.user_id is not null as is_in_customer_snapshot,
        customer_sessions.first_seen_at,
        customer_sessions.last_seen_at,
        customer_orders.first_purchase_at,
        customer_orders.last_purchase_at,
        coalesce(customer_orders.n_orders, 0) as n_orders,
        coalesce(customer_sessions.n_sessions, 0) as n_sessions,
        coalesce(customer_sessions.purchase_revenue, 0) as purchase_revenue
    from customer_ids
    left join customers
        on customer_ids.user_id = customers.user_id
    left join customer_sessions
        on customer_ids.user_id = customer_sessions.user_id
    left join customer_orders
        on customer_ids.user_id = customer_orders.user_id

)

select * from final
