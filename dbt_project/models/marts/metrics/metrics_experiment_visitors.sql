{{ config(meta={'owner': 'DA'}) }}

{#-
    One row per experiment and stitched visitor exposed to it (an event carrying its
    experiment_id). The variant is the one of the visitor's FIRST exposure (by event_at, then
    event_id): a device that logs in later keeps the variant it was shown first;
    n_variants > 1 flags a visitor seen in both (counted in the first one, never twice).

    Segments, fixed at the first exposure:
      - new visitor: anonymous at the first exposure and never seen before the experiment's
        first event (converted = a purchase at or after the first exposure);
      - customer: logged in (user_id) at the first exposure. A customer is followed for the
        return if first exposed at least return_window_days before the experiment's last
        event; returned_within_n = the visitor's next session started within
        return_window_days of the first exposure. days_to_return = days from the end of the
        exposure session to the start of the next session (null if none in the data).
-#}

with

exposure_events as (

    select
        stg.event_id,
        stg.experiment_id,
        stg.variant,
        stg.user_id,
        events.visitor_id,
        events.session_id,
        events.event_at
    from {{ ref('stg_lake__events') }} as stg
    inner join {{ ref('fct_events') }} as events
        on stg.event_id = events.event_id
    where stg.experiment_id is not null

),

experiment_config as (

    {{ experiment_config() }}

),

experiments as (

    select
        exposure_events.experiment_id,
        min(exposure_events.event_at) as experiment_started_at,
        max(exposure_events.event_at) as experiment_ended_at,
        coalesce(max(experiment_config.return_window_days), 3) as return_window_days
    from exposure_events
    left join experiment_config
        on exposure_events.experiment_id = experiment_config.experiment_id
    group by 1

),

ranked_exposures as (

    select
        *,
        row_number() over (
            partition by experiment_id, visitor_id order by event_at, event_id
        ) as exposure_rank
    from exposure_events

),

-- a grouped count, not count(distinct) over a window: Spark has no distinct window functions
variants_seen as (

    select
        experiment_id,
        visitor_id,
        count(distinct variant) as n_variants
    from exposure_events
    group by 1, 2

),

first_exposure as (

    select
        ranked_exposures.experiment_id,
        ranked_exposures.visitor_id,
        ranked_exposures.variant,
        ranked_exposures.session_id as exposure_session_id,
        ranked_exposures.user_id as exposure_user_id,
        ranked_exposures.event_at as first_exposed_at,
        variants_seen.n_variants,
        exposure_session.ended_at as exposure_ended_at
    from ranked_exposures
    inner join variants_seen
        on
            ranked_exposures.experiment_id = variants_seen.experiment_id
            and ranked_exposures.visitor_id = variants_seen.visitor_id
    left join {{ ref('fct_sessions') }} as exposure_session
        on ranked_exposures.session_id = exposure_session.session_id
    where ranked_exposures.exposure_rank = 1

),

visitor_history as (

    select
        visitor_id,
        min(event_at) as first_seen_at
    from {{ ref('fct_events') }}
    group by 1

),

next_sessions as (

    select
        first_exposure.experiment_id,
        first_exposure.visitor_id,
        min(sessions.started_at) as next_session_at
    from first_exposure
    inner join {{ ref('fct_sessions') }} as sessions
        on
            first_exposure.visitor_id = sessions.visitor_id
            and first_exposure.exposure_ended_at < sessions.started_at
    group by 1, 2

),

purchases_after as (

    select distinct
        first_exposure.experiment_id,
        first_exposure.visitor_id
    from first_exposure
    inner join {{ ref('fct_events') }} as purchases
        on
            first_exposure.visitor_id = purchases.visitor_id
            and purchases.event_type = 'purchase'
            and first_exposure.first_exposed_at <= purchases.event_at

),

joined as (

    select
        fe.experiment_id,
        fe.visitor_id,
        fe.variant,
        fe.n_variants,
        fe.first_exposed_at,
        fe.exposure_session_id,
        fe.exposure_ended_at,
        exps.return_window_days,
        ns.next_session_at,
        fe.exposure_user_id is not null as is_customer,
        fe.exposure_user_id is null
        and vh.first_seen_at >= exps.experiment_started_at as is_new_visitor,
        fe.first_exposed_at
        <= {{ dbt.dateadd('day', '-1 * exps.return_window_days', 'exps.experiment_ended_at') }}
            as is_followed_for_return,
        pa.visitor_id is not null as has_purchase_after_exposure
    from first_exposure as fe
    inner join experiments as exps
        on fe.experiment_id = exps.experiment_id
    inner join visitor_history as vh
        on fe.visitor_id = vh.visitor_id
    left join next_sessions as ns
        on fe.experiment_id = ns.experiment_id and fe.visitor_id = ns.visitor_id
    left join purchases_after as pa
        on fe.experiment_id = pa.experiment_id and fe.visitor_id = pa.visitor_id

),

final as (

    select
        experiment_id,
        visitor_id,
        variant,
        n_variants,
        first_exposed_at,
        exposure_session_id,
        is_new_visitor,
        is_customer,
        is_new_visitor and has_purchase_after_exposure as is_converted,
        is_customer and is_followed_for_return as is_followed_for_return,
        coalesce(
            is_customer
            and is_followed_for_return
            and next_session_at
            <= {{ dbt.dateadd('day', 'return_window_days', 'first_exposed_at') }},
            false
        ) as is_returned_within_n,
        return_window_days,
        round(
            {{ dbt.datediff('exposure_ended_at', 'next_session_at', 'second') }}
            / 86400.0,
            6
        ) as days_to_return
    from joined

)

select * from final
