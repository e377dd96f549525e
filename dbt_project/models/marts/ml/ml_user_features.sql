{#-
    Features of every stitched visitor with at least one session (so cold-start visitors without
    interactions have features too). country: the customer's from the customer snapshot, else
    the visitor's most frequent session country; platform: most frequent session platform;
    preferred_category: category with the highest interaction weight. Ties go to the
    alphabetically first value, so rebuilds are deterministic.
-#}
with

sessions as (

    select * from {{ ref('fct_sessions') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

interactions as (

    select * from {{ ref('ml_interactions') }}

),

items as (

    select * from {{ ref('dim_items') }}

),

visitors as (

    select
        visitor_id as user_id,
        max(user_id) is not null as is_customer,
        count(*) as n_sessions,
        min(started_at) as first_seen_at,
        max(ended_at) as last_seen_at
    from sessions
    group by 1

),

country_counts as (

    select
        visitor_id as user_id,
        country,
        row_number() over (
            partition by visitor_id
            order by count(*) desc, country
        ) as country_rank
    from sessions
    where country is not null
    group by 1, 2

),

platform_counts as (

    select
        visitor_id as user_id,
        platform,
        row_number() over (
            partition by visitor_id
            order by count(*) desc, platform
        ) as platform_rank
    from sessions
    where platform is not null
    group by 1, 2

),

category_weights as (

    select
        interactions.user_id,
        items.category,
        row_number() over (
            partition by interactions.user_id
            order by sum(interactions.weight) desc, items.category
        ) as category_rank
    from interactions
    inner join items
        on interactions.item_id = items.item_id
    where items.category is not null
    group by 1, 2

),

final as (

    select
        visitors.user_id,
        visitors.is_customer,
        coalesce(customers.country, country_counts.country) as country,
        platform_counts.platform,
        category_weights.category as preferred_category,
        visitors.n_sessions,
        visitors.first_seen_at,
        visitors.last_seen_at
    from visitors
    left join customers
        on visitors.user_id = customers.user_id
    left join country_counts
        on
            visitors.user_id = country_counts.user_id
            and country_counts.country_rank = 1
    left join platform_counts
        on
            visitors.user_id = platform_counts.user_id
            and platform_counts.platform_rank = 1
    left join category_weights
        on
            visitors.user_id = category_weights.user_id
            and category_weights.category_rank = 1

)

select * from final
