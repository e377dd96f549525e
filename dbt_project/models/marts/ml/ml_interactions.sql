{#-
    Implicit feedback for the recommender. user_id is the stitched visitor (a customer id, or
    the device id of a visitor who never logged in). weight = sum of the event_weights seed over
    the pair's events; decayed_score weighs each event by 0.5 ^ (age / half-life), age measured
    from the newest event in the data (not the wall clock, so a rebuild gives the same values).
    Only events with a positive weight on items of the catalogue count.
-#}
{%- set half_life_days = var('interactions__half_life_days') -%}

with

events as (

    select
        visitor_id,
        item_id,
        event_type,
        event_at
    from {{ ref('fct_events') }}

),

event_weights as (

    select * from {{ ref('event_weights') }}

),

items as (

    select item_id from {{ ref('dim_items') }}

),

reference_time as (

    select max(event_at) as reference_at
    from events

),

weighted_events as (

    select
        events.visitor_id as user_id,
        events.item_id,
        events.event_type,
        events.event_at,
        event_weights.interaction_weight,
        event_weights.interaction_weight * power(
            0.5,
            {{ dbt.datediff('events.event_at', 'reference_time.reference_at', 'second') }}
            / {{ 86400.0 * half_life_days }}
        ) as decayed_weight
    from events
    inner join event_weights
        on events.event_type = event_weights.event_type
    inner join items
        on events.item_id = items.item_id
    cross join reference_time
    where event_weights.interaction_weight > 0

),

final as (

    select
        user_id,
        item_id,
        sum(interaction_weight) as weight,
        sum(decayed_weight) as decayed_score,
        count(case when event_type = 'product_view' then 1 end) as n_views,
        count(case when event_type = 'add_to_cart' then 1 end) as n_carts,
        count(case when event_type = 'add_to_wishlist' then 1 end) as n_wishlist_adds,
        count(case when event_type = 'purchase' then 1 end) as n_purchases,
        min(event_at) as first_interaction_at,
        max(event_at) as last_interaction_at
    from weighted_events
    group by 1, 2

)

select * from final
