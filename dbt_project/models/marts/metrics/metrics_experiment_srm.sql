{{ config(meta={'owner': 'DA'}) }}

{#-
    Sample-ratio mismatch, one row per experiment: the observed split of exposed visitors
    against the configured control share (seed experiments), by Pearson's chi-square test with
    one degree of freedom. srm_flagged when chi_square > 10.828 (p < 0.001, the usual SRM
    threshold: a flagged experiment's results are not to be trusted, its assignment or logging
    is broken). An experiment missing from the seed has no configured share and is flagged.
-#}

with

variants as (

    select * from {{ ref('metrics_experiment_variants') }}

),

observed as (

    select
        experiment_id,
        coalesce(sum(n_visitors) filter (where variant = 'control'), 0) as n_control,
        coalesce(sum(n_visitors) filter (where variant = 'treatment'), 0) as n_treatment,
        coalesce(sum(n_visitors), 0) as n_total
    from variants
    group by 1

),

experiment_config as (

    {{ experiment_config() }}

),

expected as (

    select
        observed.experiment_id,
        observed.n_control,
        observed.n_treatment,
        observed.n_total,
        experiment_config.control_share as configured_control_share,
        observed.n_total * experiment_config.control_share as expected_control,
        observed.n_total * (1 - experiment_config.control_share) as expected_treatment
    from observed
    left join experiment_config
        on observed.experiment_id = experiment_config.experiment_id

),

final as (

    select
        experiment_id,
        configured_control_share,
        n_control,
        n_treatment,
        round(n_control / nullif(n_total, 0), 6) as observed_control_share,
        round(
            power(n_control - expected_control, 2) / nullif(expected_control, 0)
            + power(n_treatment - expected_treatment, 2) / nullif(expected_treatment, 0),
            6
        ) as chi_square,
        coalesce(
            power(n_control - expected_control, 2) / nullif(expected_control, 0)
            + power(n_treatment - expected_treatment, 2) / nullif(expected_treatment, 0)
            > 10.828,
            true
        ) as srm_flagged
    from expected

)

select * from final
