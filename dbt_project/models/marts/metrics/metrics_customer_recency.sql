{{ config(meta={'owner': 'DA'}) }}

{#-
    Contactable customers (a customer account, i.e. a user_id, with at least one purchase) and
    how long ago they were last seen, measured from the last day of data (not the wall clock,
    so a rebuild gives the same numbers). The lapsed-customer export filters this on N days.
-#}

with

visitors as (

    select * from {{ ref('metrics_visitors') }}
    where
        is_customer
        and user_id is not null

),

customers as (

    select * from {{ ref('dim_customers') }}

),

data_end as (

    select max(session_date) as data_end_date
    from {{ ref('fct_sessions') }}

),

final as (

    select
        visitors.user_id,
        customers.country,
        customers.is_newsletter_subscriber,
        customers.signup_date,
        visitors.first_purchase_date,
        visitors.last_purchase_date,
        visitors.last_session_date,
        visitors.n_sessions,
        visitors.n_orders,
        {{ dbt.datediff('visitors.last_session_date', 'data_end.data_end_date', 'day') }}
            as days_since_last_session,
        {{ dbt.datediff('visitors.last_purchase_date', 'data_end.data_end_date', 'day') }}
            as days_since_last_purchase,
        data_end.data_end_date
    from visitors
    cross join data_end
    left join customers
        on visitors.user_id = customers.user_id

)

select * from final
