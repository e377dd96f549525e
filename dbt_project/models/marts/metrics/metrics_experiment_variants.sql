{{ config(meta={'owner': 'DA'}) }}

{#-
    One row per experiment and variant: sample sizes and the three outcomes.
    The median's standard error is McKean & Schrader's (1984) distribution-free one from two
    order statistics: with c = round((n + 1) / 2 - 1.96 * sqrt(n / 4)) (at least 1),
    se = (y[n - c + 1] - y[c]) / (2 * 1.96), y sorted ascending.
-#}

with

visitors as (

    select * from {{ ref('metrics_experiment_visitors') }}

),

counts as (

    select
        experiment_id,
        variant,
        count(*) as n_visitors,
        count(*) filter (where is_new_visitor) as n_new_visitors,
        count(*) filter (where is_converted) as n_converted,
        count(*) filter (where is_customer) as n_customers,
        count(*) filter (where is_followed_for_return) as n_customers_followed,
        count(*) filter (where is_returned_within_n) as n_returned_within_n,
        count(*) filter (where n_variants > 1) as n_seen_in_both_variants,
        max(return_window_days) as return_window_days
    from visitors
    group by 1, 2

),

returns as (

    select
        experiment_id,
        variant,
        days_to_return,
        row_number() over (
            partition by experiment_id, variant order by days_to_return
        ) as return_rank,
        count(*) over (partition by experiment_id, variant) as n
    from visitors
    where is_returned_within_n and days_to_return is not null

),

median_bounds as (

    select
        experiment_id,
        variant,
        max(n) as n_returners,
        median(days_to_return) as median_days_to_return,
        greatest(1, round((max(n) + 1) / 2.0 - 1.96 * sqrt(max(n) / 4.0))) as c
    from returns
    group by 1, 2

),

median_se as (

    select
        b.experiment_id,
        b.variant,
        b.n_returners,
        b.median_days_to_return,
        (
            max(case when r.return_rank = b.n_returners - b.c + 1 then r.days_to_return end)
            - max(case when r.return_rank = b.c then r.days_to_return end)
        ) / (2 * 1.96) as median_days_to_return_se
    from median_bounds as b
    inner join returns as r
        on b.experiment_id = r.experiment_id and b.variant = r.variant
    group by 1, 2, 3, 4

),

final as (

    select
        counts.experiment_id,
        counts.variant,
        counts.n_visitors,
        counts.n_new_visitors,
        counts.n_converted,
        round(counts.n_converted / nullif(counts.n_new_visitors, 0), 6) as conversion_rate,
        counts.n_customers,
        counts.n_customers_followed,
        counts.n_returned_within_n,
        round(
            counts.n_returned_within_n / nullif(counts.n_customers_followed, 0), 6
        ) as return_rate,
        counts.return_window_days,
        coalesce(median_se.n_returners, 0) as n_returners,
        round(median_se.median_days_to_return, 6) as median_days_to_return,
        round(median_se.median_days_to_return_se, 6) as median_days_to_return_se,
        counts.n_seen_in_both_variants
    from counts
    left join median_se
        on counts.experiment_id = median_se.experiment_id and counts.variant = median_se.variant

)

select * from final
