{#-
    Sessionisation per stitched visitor. Events are ordered by event_at, ties broken by
    event_id, never by arrival (received_at), so late or out-of-order files give the same
    sessions. A new session starts at a visitor's first event and after a gap of MORE than
    var('sessions__inactivity_minutes') (30 min exactly stays in the session, 30 min + 1 s
    does not). session_id = hash(visitor_id | session start), stable across rebuilds.

    Deliberately narrow (keys and times only): a window sorts every column it carries; on 10M
    events the lag window over the full payload took 4.6x as long as over these columns, so
    fct_events joins the payload back once (see dbt_project/README.md).
-#}
{#-
    Incremental, with a session lifecycle (Snowplow's idea; measured in dbt_project/README.md).
    A run reads only the events that arrived since the last run (macros/incremental_events.sql:
    the window of received_at after this table's newest minus var('incremental__lookback_hours'),
    capped at var('incremental__backfill_limit_hours'), in the event_date partitions ingestion's
    manifest says were written), never the whole lake. The history it needs comes from this
    table itself: the rows of every visitor the new events' devices belong to now or belonged
    to before (a login re-attributes a device's anonymous history).

    lifecycle: those visitors' sessions (start, end, index) as this table holds them. A session
    that ended more than var('sessions__inactivity_minutes') before the visitor's first new
    event is closed: no new event can join it or change its number, so it stays as it is
    (frozen). The visitor's open sessions and new events are sessionised again, numbered after
    the closed ones. A visitor whose events moved (a device stitched to another visitor) is
    recomputed whole, and so is the visitor who lost them. Rows are replaced by event_id.
    `dbt build --full-refresh` rebuilds everything.
-#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='event_id',
    on_schema_change='fail',
) }}
{%- set inactivity_minutes = var('sessions__inactivity_minutes') -%}
{%- set session_key = dbt.concat([
    'visitor_id', "'|'", 'cast(session_started_at as ' ~ dbt.type_string() ~ ')'
]) -%}
{%- set previous_event_at = 'lag(event_at) over (partition by visitor_id order by event_at, event_id)' -%}
{%- if is_incremental() -%}
    {%- set window = incremental_window(this) -%}
    {#- a visitor's first recomputed event follows their last closed session -#}
    {%- set previous_event_at = 'coalesce(' ~ previous_event_at ~ ', last_closed_event_at)' -%}
{%- endif %}

with

events as (

    select
        event_id,
        event_at,
        anonymous_id,
        user_id,
        received_at
    from {{ ref('stg_lake__events') }}
    {% if is_incremental() %}
        -- only the new arrivals (partition-pruned through ingestion's manifest)
        where {{ new_events_filter(window) }}
    {% endif %}

),

identities as (

    -- only devices with a known customer: the others keep their anonymous_id (coalesce below)
    select
        anonymous_id,
        user_id as device_user_id
    from {{ ref('int_identities_stitched') }}
    where user_id is not null

),

{% if is_incremental() %}

affected_devices as (

    select distinct anonymous_id from events

),

affected_visitors as (

    -- who the affected devices' events belonged to before this run ...
    select previous_run.visitor_id
    from {{ this }} as previous_run
    where previous_run.anonymous_id in (select affected_devices.anonymous_id from affected_devices)

    union

    -- ... and who they belong to now
    select coalesce(events.user_id, identities.device_user_id, events.anonymous_id)
    from events
    left join identities
        on events.anonymous_id = identities.anonymous_id

    union

    select identities.device_user_id
    from identities
    inner join affected_devices
        on identities.anonymous_id = affected_devices.anonymous_id

),

previous_rows as (

    select
        event_id,
        event_at,
        anonymous_id,
        user_id,
        received_at,
        visitor_id as previous_visitor_id,
        session_started_at as previous_session_started_at
    from {{ this }}
    where visitor_id in (select affected_visitors.visitor_id from affected_visitors)

),

candidates as (

    select * from previous_rows

    union all

    -- new events (the lookback re-reads some known ones: those keep their previous row)
    select
        events.event_id,
        events.event_at,
        events.anonymous_id,
        events.user_id,
        events.received_at,
        cast(null as {{ dbt.type_string() }}) as previous_visitor_id,
        cast(null as {{ dbt.type_timestamp() }}) as previous_session_started_at
    from events
    where events.event_id not in (select previous_rows.event_id from previous_rows)

),

{% endif %}

stitched_events as (

    select
        candidates.event_id,
        candidates.event_at,
        candidates.received_at,
        candidates.anonymous_id,
        candidates.user_id,
        {% if is_incremental() -%}
        candidates.previous_visitor_id,
        candidates.previous_session_started_at,
        {% endif -%}
        coalesce(candidates.user_id, identities.device_user_id) as stitched_user_id,
        coalesce(
            candidates.user_id, identities.device_user_id, candidates.anonymous_id
        ) as visitor_id
    from {{ 'candidates' if is_incremental() else 'events' }} as candidates
    left join identities
        on candidates.anonymous_id = identities.anonymous_id

),

{% if is_incremental() %}

-- visitors who gain or lose events of a re-attributed device: recomputed whole
moved_visitors as (

    select previous_visitor_id as visitor_id
    from stitched_events
    where previous_visitor_id <> visitor_id

    union

    select visitor_id
    from stitched_events
    where previous_visitor_id <> visitor_id

),

-- the session lifecycle of the affected visitors, as this table holds it
lifecycle as (

    select
        previous_visitor_id as visitor_id,
        previous_session_started_at as session_started_at,
        max(event_at) as session_ended_at
    from stitched_events
    where previous_visitor_id is not null
    group by 1, 2

),

first_new_events as (

    select
        visitor_id,
        min(event_at) as first_new_at
    from stitched_events
    where previous_visitor_id is null
    group by 1

),

-- per visitor: sessions closed before the first new event stay; the rest is recomputed
reprocess as (

    select
        first_new_events.visitor_id,
        least(
            first_new_events.first_new_at,
            coalesce(min(case when open_session then lifecycle.session_started_at end),
                first_new_events.first_new_at)
        ) as reprocess_from,
        count(case when not open_session then 1 end) as closed_sessions,
        max(case when not open_session then lifecycle.session_ended_at end)
            as last_closed_event_at
    from first_new_events
    left join (
        select
            lifecycle.*,
            lifecycle.session_ended_at >= {{ dbt.dateadd(
                'minute', -inactivity_minutes, 'first_new_events.first_new_at'
            ) }} as open_session
        from lifecycle
        inner join first_new_events
            on lifecycle.visitor_id = first_new_events.visitor_id
    ) as lifecycle
        on first_new_events.visitor_id = lifecycle.visitor_id
    where first_new_events.visitor_id not in (select moved_visitors.visitor_id from moved_visitors)
    group by first_new_events.visitor_id, first_new_events.first_new_at

),

stitched as (

    select
        stitched_events.event_id,
        stitched_events.event_at,
        stitched_events.received_at,
        stitched_events.anonymous_id,
        stitched_events.user_id,
        stitched_events.stitched_user_id,
        stitched_events.visitor_id,
        coalesce(reprocess.closed_sessions, 0) as closed_sessions,
        reprocess.last_closed_event_at
    from stitched_events
    left join reprocess
        on stitched_events.visitor_id = reprocess.visitor_id
    where
        stitched_events.visitor_id in (select moved_visitors.visitor_id from moved_visitors)
        or stitched_events.event_at >= reprocess.reprocess_from

),

{% endif %}

gaps as (

    select
        *,
        {{ previous_event_at }} as previous_event_at
    from {{ 'stitched' if is_incremental() else 'stitched_events' }}

),

flagged as (

    select
        *,
        previous_event_at is null
        or event_at > {{ dbt.dateadd('minute', inactivity_minutes, 'previous_event_at') }}
            as is_session_start
    from gaps

),

-- One row per session: its start, its number and the next session's start. A second window
-- over all events (running count of starts) would sort them again; numbering the ~5 % start
-- rows and joining each event to the session whose [start, next start) holds it is 1.8x
-- faster on 10M events (README). No event of an earlier session can share a start's
-- timestamp (that gap would be 0), so plain timestamps bound the sessions.
sessions as (

    select
        visitor_id,
        event_at as session_started_at,
        {% if is_incremental() %}closed_sessions + {% endif %}row_number() over (
            partition by visitor_id
            order by event_at
        ) as session_index,
        lead(event_at) over (
            partition by visitor_id
            order by event_at
        ) as next_session_started_at
    from flagged
    where is_session_start

),

-- the key is hashed once per session (~5 % of the rows), not once per event
keyed_sessions as (

    select
        {{ dbt.hash(session_key) }} as session_id,
        visitor_id,
        session_started_at,
        session_index,
        next_session_started_at
    from sessions

),

final as (

    select
        flagged.event_id,
        keyed_sessions.session_id,
        flagged.visitor_id,
        cast(keyed_sessions.session_index as {{ dbt.type_bigint() }}) as session_index,
        keyed_sessions.session_started_at,
        flagged.is_session_start,
        flagged.event_at,
        flagged.previous_event_at,
        cast(
            {{ dbt.datediff('flagged.previous_event_at', 'flagged.event_at', 'second') }}  -- noqa: LT05
            as {{ dbt.type_bigint() }}
        ) as seconds_since_previous_event,
        flagged.anonymous_id,
        flagged.user_id,
        flagged.stitched_user_id,
        flagged.received_at,
        cast(
            '{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as {{ dbt.type_timestamp() }}
        ) as sessionized_at
    from flagged
    inner join keyed_sessions
        on
            flagged.visitor_id = keyed_sessions.visitor_id
            and flagged.event_at >= keyed_sessions.session_started_at
            and (
                keyed_sessions.next_session_started_at is null
                or flagged.event_at < keyed_sessions.next_session_started_at
            )

)

select * from final
