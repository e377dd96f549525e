{#-
    Incremental by visitor (macros/incremental_visitors.sql): a run rebuilds all sessions of the
    visitors whose events int_events_sessionized rewrote, and drops the sessions of device ids
    that now belong to a customer.
    Bounce: at most one view (page_view, product_view) and no engagement event (click,
    search, cart, wishlist, purchase, login); scrolls do not count.
-#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='visitor_id',
    on_schema_change='fail',
    pre_hook="{{ delete_touched_visitors('visitor_id') }}",
    post_hook="{{ delete_stitched_devices('visitor_id') }}",
) }}
{#- the post-hook reads int_identities_stitched: declare the dependency -#}
{%- do ref('int_identities_stitched') -%}

with

events as (

    select * from {{ ref('fct_events') }}
    {% if is_incremental() %}
        where visitor_id in ({{ touched_visitors_sql() }})
    {% endif %}

),

sessions as (

    select
        session_id,
        visitor_id,
        max(stitched_user_id) as user_id,
        min(session_index) as session_index,
        min(event_at) as started_at,
        max(event_at) as ended_at,
        count(*) as n_events,
        count(case when event_type = 'page_view' then 1 end) as n_page_views,
        count(case when event_type = 'scroll' then 1 end) as n_scrolls,
        count(case when event_type = 'click' then 1 end) as n_clicks,
        count(case when event_type = 'search' then 1 end) as n_searches,
        count(case when event_type = 'product_view' then 1 end) as n_product_views,
        count(case when event_type = 'add_to_cart' then 1 end) as n_add_to_carts,
        count(case when event_type = 'remove_from_cart' then 1 end) as n_remove_from_carts,
        count(case when event_type = 'add_to_wishlist' then 1 end) as n_wishlist_adds,
        count(case when event_type = 'purchase' then 1 end) as n_purchases,
        count(case when event_type = 'login' then 1 end) as n_logins,
        count(case when event_type in ('page_view', 'product_view') then 1 end) as n_views,
        count(
            case
                when event_type in (
                    'click', 'search', 'add_to_cart', 'remove_from_cart', 'add_to_wishlist',
                    'purchase', 'login'
                ) then 1
            end
        ) as n_engagement_events,
        count(
            distinct case when event_type = 'product_view' then item_id end
        ) as n_products_viewed,
        max(scroll_depth_pct) as max_scroll_depth_pct,
        sum(
            case
                when event_type = 'purchase' then coalesce(price, 0) * coalesce(quantity, 1)
                else 0
            end
        ) as purchase_revenue,
        count(recommendation_id) as n_recommendation_events,
        count(distinct anonymous_id) as n_devices,
        -- one start event per session: max() picks its value
        max(case when is_session_start then page end) as landing_page,
        max(case when is_session_start then page_type end) as landing_page_type,
        max(case when is_session_start then platform end) as platform,
        max(case when is_session_start then country end) as country,
        max(sessionized_at) as sessionized_at
    from events
    group by 1, 2

),

final as (

    select
        sessions.session_id,
        sessions.visitor_id,
        sessions.user_id,
        sessions.session_index,
        sessions.session_index > 1 as is_returning_visitor,
        sessions.started_at,
        sessions.ended_at,
        cast(sessions.started_at as date) as session_date,
        cast(
            {{ dbt.datediff('sessions.started_at', 'sessions.ended_at', 'second') }}
            as {{ dbt.type_bigint() }}
        ) as duration_s,
        sessions.n_events,
        sessions.n_page_views,
        sessions.n_scrolls,
        sessions.n_clicks,
        sessions.n_searches,
        sessions.n_product_views,
        sessions.n_add_to_carts,
        sessions.n_remove_from_carts,
        sessions.n_wishlist_adds,
        sessions.n_purchases,
        sessions.n_logins,
        sessions.n_products_viewed,
        sessions.max_scroll_depth_pct,
        sessions.purchase_revenue,
        sessions.n_recommendation_events,
        sessions.n_views <= 1 and sessions.n_engagement_events = 0 as is_bounce,
        sessions.n_purchases > 0 as is_converted,
        sessions.n_recommendation_events > 0 as has_recommendation_click,
        sessions.landing_page,
        sessions.landing_page_type,
        sessions.platform,
        sessions.country,
        sessions.n_devices,
        sessions.sessionized_at
    from sessions

)

select * from final
