{{ config(meta={'owner': 'DA'}) }}

{#-
    One row per experiment and metric: control and treatment values, sample sizes, the
    absolute uplift (treatment - control) and the relative one (treatment / control - 1), each
    with a 95 % confidence interval, and whether the interval excludes zero.

    Method (z = 1.96, large-sample normal approximations, no pooling):
      - shares (conversion of new visitors, customers returning within N days):
        se = sqrt(p (1 - p) / n) per variant;
      - the median days to return: McKean-Schrader se per variant (metrics_experiment_variants);
      - absolute: diff +- z sqrt(se_t^2 + se_c^2);
      - relative (delta method on the log ratio): exp(ln(t / c) +- z sqrt((se_t / t)^2 +
        (se_c / c)^2)) - 1; empty when either value is 0.
-#}

with

variants as (

    select * from {{ ref('metrics_experiment_variants') }}

),

by_variant as (

    select
        experiment_id,
        variant,
        1 as metric_order,
        'new_visitor_conversion' as metric,
        n_new_visitors as n,
        conversion_rate as metric_value,
        sqrt(conversion_rate * (1 - conversion_rate) / nullif(n_new_visitors, 0)) as se
    from variants

    union all

    select
        experiment_id,
        variant,
        2 as metric_order,
        'customer_return_within_n_days' as metric,
        n_customers_followed as n,
        return_rate as metric_value,
        sqrt(return_rate * (1 - return_rate) / nullif(n_customers_followed, 0)) as se
    from variants

    union all

    select
        experiment_id,
        variant,
        3 as metric_order,
        'median_days_to_return' as metric,
        n_returners as n,
        median_days_to_return as metric_value,
        median_days_to_return_se as se
    from variants

),

paired as (

    select
        experiment_id,
        metric_order,
        metric,
        max(case when variant = 'control' then n end) as n_control,
        max(case when variant = 'treatment' then n end) as n_treatment,
        max(case when variant = 'control' then metric_value end) as control_value,
        max(case when variant = 'treatment' then metric_value end) as treatment_value,
        max(case when variant = 'control' then se end) as control_se,
        max(case when variant = 'treatment' then se end) as treatment_se
    from by_variant
    group by 1, 2, 3

),

estimates as (

    select
        *,
        treatment_value - control_value as uplift_abs,
        sqrt(power(treatment_se, 2) + power(control_se, 2)) as uplift_abs_se,
        case
            when control_value > 0 and treatment_value > 0
                then ln(treatment_value / control_value)
        end as log_ratio,
        case
            when control_value > 0 and treatment_value > 0
                then sqrt(
                    power(treatment_se / treatment_value, 2)
                    + power(control_se / control_value, 2)
                )
        end as log_ratio_se
    from paired

),

final as (

    select
        experiment_id,
        metric_order,
        metric,
        n_control,
        n_treatment,
        round(control_value, 6) as control_value,
        round(treatment_value, 6) as treatment_value,
        round(uplift_abs, 6) as uplift_abs,
        round(uplift_abs - 1.96 * uplift_abs_se, 6) as uplift_abs_ci_low,
        round(uplift_abs + 1.96 * uplift_abs_se, 6) as uplift_abs_ci_high,
        round(exp(log_ratio) - 1, 6) as uplift_rel,
        round(exp(log_ratio - 1.96 * log_ratio_se) - 1, 6) as uplift_rel_ci_low,
        round(exp(log_ratio + 1.96 * log_ratio_se) - 1, 6) as uplift_rel_ci_high,
        (uplift_abs - 1.96 * uplift_abs_se > 0)
        or (uplift_abs + 1.96 * uplift_abs_se < 0) as is_significant
    from estimates

)

select * from final
