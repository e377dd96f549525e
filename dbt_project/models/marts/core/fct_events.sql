{#-
    Incremental: merge by event_id. Rows int_events_sessionized (re)computed since this model's
    last run are taken; known events get their new session columns (a late login or late event
    can change them), new events are inserted with their payload, read from the lake only for
    the run's window of arrivals, in the partitions ingestion's manifest names
    (macros/incremental_events.sql).
-#}
{%- set session_columns = [
    'session_id', 'visitor_id', 'stitched_user_id', 'session_index', 'is_session_start',
    'seconds_since_previous_event', 'sessionized_at',
] -%}
{{ config(
    materialized='incremental',
    incremental_strategy='merge',
    unique_key='event_id',
    merge_update_columns=session_columns,
    on_schema_change='fail',
) }}

with

sessionized as (

    select * from {{ ref('int_events_sessionized') }}
    {% if is_incremental() %}
        where sessionized_at > (select max(sessionized_at) from {{ this }})
    {% endif %}

),

events as (

    select * from {{ ref('stg_lake__events') }}
    {% if is_incremental() %}
        -- the new arrivals only, partition-pruned (macros/incremental_events.sql)
        where {{ new_events_filter(incremental_window(this)) }}
    {% endif %}

),

pages as (

    select * from {{ ref('int_pages_classified') }}

),

final as (

    select
        sessionized.event_id,
        sessionized.session_id,
        sessionized.visitor_id,
        sessionized.anonymous_id,
        sessionized.user_id,
        sessionized.stitched_user_id,
        sessionized.event_at,
        events.event_date,
        events.event_type,
        events.item_id,
        events.page,
        coalesce(pages.page_type, 'other') as page_type,
        events.scroll_depth_pct,
        events.list_position,
        events.price,
        events.quantity,
        events.order_id,
        events.search_query,
        events.recommendation_id,
        events.recommendation_id is not null as is_from_recommendation,
        events.platform,
        events.country,
        sessionized.session_index,
        sessionized.is_session_start,
        sessionized.seconds_since_previous_event,
        sessionized.received_at,
        sessionized.sessionized_at
    from sessionized
    -- left: on incremental runs, events already in this table are not re-read from the lake
    -- (the merge only updates their session columns)
    left join events
        on sessionized.event_id = events.event_id
    left join pages
        on events.page = pages.page

)

select * from final
