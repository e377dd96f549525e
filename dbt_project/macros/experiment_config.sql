{#-
    The experiments' configuration as a table expression (experiment_id, control_share,
    return_window_days): the seed `experiments` (the one home, parsed by common/experiment.py),
    plus the rows of var('experiments__extra') (a list of {experiment_id, control_share,
    return_window_days}), which bench/uplift.py passes for its replicas; empty by default.
-#}
{% macro experiment_config() -%}
    select experiment_id, control_share, return_window_days from {{ ref('experiments') }}
    {%- for e in var('experiments__extra', []) %}
    union all
    select
        cast('{{ e["experiment_id"] | replace("'", "''") }}' as {{ dbt.type_string() }}),
        cast({{ e["control_share"] | float }} as double),
        cast({{ e.get("return_window_days", 3) | int }} as integer)
    {%- endfor %}
{%- endmacro %}
