{#-
    Implicit feedback for the recommender. user_id is the stitched visitor (a customer id, or
    the device id of a visitor who never logged in). weight = sum of the event_weights seed over
    the pair's events; decayed_score weighs each event by 0.5 ^ (age / half-life), age measured
    from the newest event in the data (not the wall clock, so a rebuild gives the same values).
    Only events with a positive weight on items of the catalogue count. The sums come from the
    incremental int_interactions_aggregated; only the rescaling to the newest event is redone.
-#}
{%- set half_life_days = var('interactions__half_life_days') -%}

with

pairs as (

    select * from {{ ref('int_interactions_aggregated') }}

),

reference_time as (

    select max(event_at) as reference_at
    from {{ ref('fct_events') }}

),

final as (

    select
        pairs.user_id,
        pairs.item_id,
        pairs.weight,
        pairs.decay_sum_at_last * power(
            0.5,
            {{ dbt.datediff('pairs.last_interaction_at', 'reference_time.reference_at', 'second') }}
            / cast({{ 86400.0 * half_life_days }} as double)
        ) as decayed_score,
        pairs.n_views,
        pairs.n_carts,
        pairs.n_wishlist_adds,
        pairs.n_purchases,
        pairs.first_interaction_at,
        pairs.last_interaction_at
    from pairs
    cross join reference_time

)

select * from final
