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

devices as (

    select
        anonymous_id,
        min(event_at) as first_seen_at,
        max(event_at) as last_seen_at,
        count(*) as n_events,
        count(distinct user_id) as n_users
    from events
    group by 1

),

identified_events as (

    select
        anonymous_id,
        user_id,
        event_at,
        row_number() over (
            partition by anonymous_id
            order by event_at desc, event_id desc
        ) as recency_rank,
        min(event_at) over (partition by anonymous_id) as first_identified_at
    from events
    where user_id is not null

),

last_known_users as (

    select
        anonymous_id,
        user_id,
        first_identified_at,
        event_at as last_identified_at
    from identified_events
    where recency_rank = 1

),

final as (

    select
        devices.anonymous_id,
        last_known_users.user_id,
        coalesce(last_known_users.user_id, devices.anonymous_id) as visitor_id,
        last_known_users.user_id is not null as is_identified,
        devices.n_users,
        devices.n_events,
        devices.first_seen_at,
        devices.last_seen_at,
        last_known_users.first_identified_at,
        last_known_users.last_identified_at
    from devices
    left join last_known_users
        on devices.anonymous_id = last_known_users.anonymous_id

)

select * from final
