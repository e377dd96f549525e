{#-
    dbt's hook for the `where` config of data tests (the documented way to add placeholders).

    `where: __latest_run__` (set for the DE folders in dbt_project.yml) limits a test to the
    rows the latest sessionisation run wrote, when the tested model has a `sessionized_at`
    column: `sessionized_at = max(sessionized_at)`. A full build or `--full-refresh` stamps
    every row with that run's time, so it tests the whole table; an hourly incremental run
    tests what it rewrote (the touched visitors) instead of re-reading 10M untouched rows.
    Keys stay unique across runs by construction: the incremental models replace rows by
    their unique_key (delete+insert or merge). Models without `sessionized_at` (dimensions,
    identities, pages) are tested whole. Any other `where` works as in dbt.
-#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where == '__latest_run__' -%}
        {%- set where = none -%}
        {%- if execute -%}
            {%- set columns = adapter.get_columns_in_relation(relation) | map(attribute='name')
                | map('lower') | list -%}
            {%- if 'sessionized_at' in columns -%}
                {%- set where -%}
                    sessionized_at = (select max(sessionized_at) from {{ relation }})
                {%- endset -%}
            {%- endif -%}
        {%- endif -%}
    {%- endif -%}
    {%- if where -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
