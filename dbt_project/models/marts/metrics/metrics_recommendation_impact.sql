{{ config(meta={'owner': 'DA'}) }}

{#-
    Sessions with at least one event reached through a recommendation (the event carries a
    recommendation_id) against all other sessions. An association, not an effect: visitors
    who click recommendations may be more engaged to begin with.
-#}
{%- set window_days = var('metrics__return_window_days', 14) -%}

with

sessions as (

    select * from {{ ref('fct_sessions') }}

),

data_end as (

    select max(session_date) as data_end_date
    from sessions

),

next_sessions as (

    select
        session_id,
        has_recommendation_click,
        is_converted,
        purchase_revenue,
        session_date,
        lead(session_date) over (
            partition by visitor_id
            order by started_at, session_id
        ) as next_session_date
    from sessions

),

measured as (

    select
        next_sessions.*,
        {{ dbt.datediff('session_date', 'next_session_date', 'day') }} as days_to_return,
        cast({{ dbt.dateadd('day', window_days, 'session_date') }} as date)
        <= data_end.data_end_date as is_window_observed
    from next_sessions
    cross join data_end

),

aggregated as (

    select
        has_recommendation_click,
        count(*) as n_sessions,
        count(case when is_converted then 1 end) as n_converted_sessions,
        sum(purchase_revenue) as purchase_revenue,
        count(days_to_return) as n_returned_sessions,
        percentile_cont(0.5) within group (order by days_to_return) as median_days_to_return,
        count(case when is_window_observed then 1 end) as n_sessions_window_observed,
        count(
            case when is_window_observed and days_to_return <= {{ window_days }} then 1 end
        ) as n_returned_within_window,
        min(session_date) as first_session_date,
        max(session_date) as last_session_date
    from measured
    group by 1

),

final as (

    select
        has_recommendation_click,
        case
            when has_recommendation_click then 'with recommendation click'
            else 'without recommendation click'
        end as session_group,
        n_sessions,
        n_converted_sessions,
        cast(n_converted_sessions as {{ type_double() }}) / n_sessions as conversion_rate,
        purchase_revenue / n_sessions as revenue_per_session,
        n_returned_sessions,
        cast(n_returned_sessions as {{ type_double() }}) / n_sessions as return_rate,
        median_days_to_return,
        {{ window_days }} as return_window_days,
        n_sessions_window_observed,
        n_returned_within_window,
        cast(n_returned_within_window as {{ type_double() }})
        / nullif(n_sessions_window_observed, 0) as return_rate_within_window,
        first_session_date,
        last_session_date
    from aggregated

)

select * from final
