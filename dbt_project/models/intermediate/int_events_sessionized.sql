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
    Incremental (snowplow-style, measured in dbt_project/README.md): a run takes the events
    received since the last run (minus var('incremental__lookback_hours')), the devices they
    come from, and every visitor those devices' events belonged to before or belong to now
    (a login re-attributes a device's anonymous history). It recomputes those visitors' whole
    history and replaces their rows by event_id. Other visitors' sessions cannot change.
    `dbt build --full-refresh` rebuilds everything.
-#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='event_id',
    on_schema_change='fail',
) }}
{%- set inactivity_minutes = var('sessions__inactivity_minutes') -%}
{%- set lookback_hours = var('incremental__lookback_hours') -%}
{%- set session_key = dbt.concat([
    'visitor_id', "'|'", 'cast(session_started_at as ' ~ dbt.type_string() ~ ')'
]) -%}

with

events as (

    select
        event_id,
        event_at,
        anonymous_id,
        user_id,
        received_at
    from {{ ref('stg_lake__events') }}

),

identities as (

    -- only devices with a known customer: the others keep their anonymous_id (coalesce below)
    select
        anonymous_id,
        user_id as device_user_id
    from {{ ref('int_identities_stitched') }}
    where user_id is not null

),

stitched_events as (

    select
        events.event_id,
        events.event_at,
        events.received_at,
        events.anonymous_id,
        events.user_id,
        coalesce(events.user_id, identities.device_user_id) as stitched_user_id,
        coalesce(events.user_id, identities.device_user_id, events.anonymous_id) as visitor_id
    from events
    left join identities
        on events.anonymous_id = identities.anonymous_id

),

{% if is_incremental() %}

watermark as (

    select
        {{ dbt.dateadd(
            'hour',
            -lookback_hours,
            "coalesce(max(received_at), cast('1900-01-01' as " ~ dbt.type_timestamp() ~ "))"
        ) }} as reprocess_from
    from {{ this }}

),

affected_devices as (

    select distinct events.anonymous_id
    from events
    cross join watermark
    where events.received_at > watermark.reprocess_from

),

affected_visitors as (

    -- who the affected devices' events belong to now ...
    select stitched_events.visitor_id
    from stitched_events
    inner join affected_devices
        on stitched_events.anonymous_id = affected_devices.anonymous_id

    union

    -- ... and who they belonged to before this run
    select previous_run.visitor_id
    from {{ this }} as previous_run
    inner join affected_devices
        on previous_run.anonymous_id = affected_devices.anonymous_id

),

{% endif %}

stitched as (

    select stitched_events.*
    from stitched_events
    {% if is_incremental() %}
        inner join affected_visitors
            on stitched_events.visitor_id = affected_visitors.visitor_id
    {% endif %}

),

gaps as (

    select
        *,
        lag(event_at) over (
            partition by visitor_id
            order by event_at, event_id
        ) as previous_event_at
    from stitched

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
        row_number() over (
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
