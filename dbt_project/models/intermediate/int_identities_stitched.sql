{#-
    Identity stitching rule (the one Snowplow and Segment use): a device (anonymous_id) belongs
    to the LAST customer known on it, i.e. the user_id of its latest identified event by
    event_at, ties broken by the highest event_id. Every anonymous event of the device, before
    or after that login, is attributed to that customer. Events that carry a user_id keep it
    (int_events_sessionized), so on a shared device each customer keeps their own logged-in
    events and only the anonymous ones go to the last customer.
-#}
with

events as (

    select
        event_id,
        event_at,
        anonymous_id,
        user_id
    from {{ ref('stg_lake__events') }}

),

-- one pass over the events: counts, bounds and the last known customer together
devices as (

    select
        anonymous_id,
        {{ last_by('user_id', ['event_at', 'event_id']) }} as user_id,
        min(event_at) as first_seen_at,
        max(event_at) as last_seen_at,
        count(*) as n_events,
        count(distinct user_id) as n_users,
        min(case when user_id is not null then event_at end) as first_identified_at,
        max(case when user_id is not null then event_at end) as last_identified_at
    from events
    group by 1

),

final as (

    select
        anonymous_id,
        user_id,
        coalesce(user_id, anonymous_id) as visitor_id,
        user_id is not null as is_identified,
        n_users,
        n_events,
        first_seen_at,
        last_seen_at,
        first_identified_at,
        last_identified_at
    from devices

)

select * from final
