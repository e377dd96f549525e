{#-
    Implicit feedback per stitched visitor and catalogue item, without the decay's reference
    time, so it can be incremental (by visitor, macros/incremental_visitors.sql): weights from
    the event_weights seed, counts, first/last time, and decay_sum_at_last = sum of weight x
    0.5 ^ ((last_interaction_at - event_at) / half-life). ml_interactions rescales that sum to
    the newest event: 0.5 ^ ((reference - last) / h) x sum(w x 0.5 ^ ((last - t) / h)) =
    sum(w x 0.5 ^ ((reference - t) / h)), exactly.
-#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='user_id',
    on_schema_change='fail',
    pre_hook="{{ delete_touched_visitors('user_id') }}",
    post_hook="{{ delete_stitched_devices('user_id') }}",
) }}
{#- the post-hook reads int_identities_stitched: declare the dependency -#}
{%- do ref('int_identities_stitched') -%}
{%- set half_life_days = var('interactions__half_life_days') -%}

with

events as (

    select
        visitor_id as user_id,
        item_id,
        event_type,
        event_at,
        sessionized_at
    from {{ ref('fct_events') }}
    where item_id is not null
    {% if is_incremental() %}
        and visitor_id in ({{ touched_visitors_sql() }})
    {% endif %}

),

event_weights as (

    select * from {{ ref('event_weights') }}

),

items as (

    select item_id from {{ ref('dim_items') }}

),

weighted_events as (

    select
        events.user_id,
        events.item_id,
        events.event_type,
        events.event_at,
        events.sessionized_at,
        event_weights.interaction_weight
    from events
    inner join event_weights
        on events.event_type = event_weights.event_type
    inner join items
        on events.item_id = items.item_id
    where event_weights.interaction_weight > 0

),

pairs as (

    select
        user_id,
        item_id,
        sum(interaction_weight) as weight,
        count(case when event_type = 'product_view' then 1 end) as n_views,
        count(case when event_type = 'add_to_cart' then 1 end) as n_carts,
        count(case when event_type = 'add_to_wishlist' then 1 end) as n_wishlist_adds,
        count(case when event_type = 'purchase' then 1 end) as n_purchases,
        min(event_at) as first_interaction_at,
        max(event_at) as last_interaction_at,
        max(sessionized_at) as sessionized_at
    from weighted_events
    group by 1, 2

),

decay_sums as (

    select
        weighted_events.user_id,
        weighted_events.item_id,
        sum(
            weighted_events.interaction_weight * power(
                0.5,
                {{ dbt.datediff(
                    'weighted_events.event_at', 'pairs.last_interaction_at', 'second'
                ) }}
                / cast({{ 86400.0 * half_life_days }} as double)
            )
        ) as decay_sum_at_last
    from weighted_events
    inner join pairs
        on
            weighted_events.user_id = pairs.user_id
            and weighted_events.item_id = pairs.item_id
    group by 1, 2

),

final as (

    select
        pairs.user_id,
        pairs.item_id,
        pairs.weight,
        decay_sums.decay_sum_at_last,
        pairs.n_views,
        pairs.n_carts,
        pairs.n_wishlist_adds,
        pairs.n_purchases,
        pairs.first_interaction_at,
        pairs.last_interaction_at,
        pairs.sessionized_at
    from pairs
    inner join decay_sums
        on
            pairs.user_id = decay_sums.user_id
            and pairs.item_id = decay_sums.item_id

)

select * from final
