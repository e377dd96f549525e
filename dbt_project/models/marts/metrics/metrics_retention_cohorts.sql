{{ config(meta={'owner': 'DA'}) }}

{#-
    Weekly first-purchase cohorts (Monday-start weeks) against every later week that has
    sessions in the data, including weeks in which nobody of the cohort bought (share 0).
    A customer "purchases in week N" when one of their sessions starting in that week contains
    a purchase; week 0 is the cohort week itself, so its share is 1 by construction.
-#}

with

customers as (

    select * from {{ ref('metrics_visitors') }}
    where is_customer

),

sessions as (

    select * from {{ ref('fct_sessions') }}

),

data_end as (

    select max(session_date) as data_end_date
    from sessions

),

weeks as (

    select distinct cast({{ dbt.date_trunc('week', 'session_date') }} as date) as activity_week
    from sessions

),

cohorts as (

    select
        cohort_week,
        count(*) as cohort_size
    from customers
    group by 1

),

purchase_weeks as (

    select distinct
        visitor_id,
        cast({{ dbt.date_trunc('week', 'session_date') }} as date) as activity_week
    from sessions
    where is_converted

),

cohort_purchases as (

    select
        customers.cohort_week,
        purchase_weeks.activity_week,
        count(distinct customers.visitor_id) as n_purchasing_customers
    from customers
    inner join purchase_weeks
        on customers.visitor_id = purchase_weeks.visitor_id
    group by 1, 2

),

grid as (

    select
        cohorts.cohort_week,
        cohorts.cohort_size,
        weeks.activity_week
    from cohorts
    inner join weeks
        on cohorts.cohort_week <= weeks.activity_week

),

final as (

    select
        grid.cohort_week,
        cast(
            {{ dbt.datediff('grid.cohort_week', 'grid.activity_week', 'day') }} / 7
            as {{ dbt.type_int() }}
        ) as weeks_since_first_purchase,
        grid.activity_week,
        grid.cohort_size,
        coalesce(cohort_purchases.n_purchasing_customers, 0) as n_purchasing_customers,
        cast(coalesce(cohort_purchases.n_purchasing_customers, 0) as {{ type_double() }})
        / grid.cohort_size as purchasing_share,
        cast({{ dbt.dateadd('day', 6, 'grid.activity_week') }} as date)
        <= data_end.data_end_date as is_complete_week
    from grid
    cross join data_end
    left join cohort_purchases
        on
            grid.cohort_week = cohort_purchases.cohort_week
            and grid.activity_week = cohort_purchases.activity_week

)

select * from final
