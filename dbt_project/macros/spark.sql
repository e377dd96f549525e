{#-
    What the project needs from Spark that dbt-spark does not offer on plain Parquet tables
    (no Delta Lake or Iceberg here: their jars come from Maven). docs/scale-out.md, "Spark target".

    - `type_double()`: a 64-bit float type for ratios. `float` (dbt.type_float) is 32-bit on
      DuckDB and Spark, and DuckDB divides `cast(n as float) / m` in 32 bits where Spark
      divides in 64: the metrics marts' rates differed in the 8th digit.
    - `delete_where(relation, condition)`: `delete from` on DuckDB; on Spark the rows that stay
      are staged into a table and written back with `insert overwrite` (Parquet has no delete).
    - The incremental strategies `delete+insert` and `merge` (with merge_update_columns) on
      Spark Parquet tables, the same way: the new table (old rows that stay + new rows, or the
      merged rows) is staged, then `insert overwrite` replaces the table. dbt-spark's
      validate/get-SQL macros are overridden here (a root-project macro wins over the
      adapter's); `append` and `insert_overwrite` go to dbt-spark unchanged, and so do
      `merge` on a table format with merges (file_format delta, iceberg, hudi).
      Cost: one rewrite of the table per incremental run (O(table)), against DuckDB's O(rows
      changed): measured in bench/sessionize.py.
    - `dbt source freshness` of the lake sources: dbt asks `max(loaded_at_field)` of the
      source relation, which Spark does not know (a lake source is a Parquet directory, not a
      metastore table): read through `read_lake` like the staging models.
-#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'trasos')()) }}
{%- endmacro %}


{% macro default__type_double() -%}
    double
{%- endmacro %}


{% macro delete_where(relation, condition) -%}
    {{ return(adapter.dispatch('delete_where', 'trasos')(relation, condition)) }}
{%- endmacro %}


{% macro default__delete_where(relation, condition) -%}
    delete from {{ relation }} where {{ condition }}
{%- endmacro %}


{#- `condition` must not be null for a row that stays (a key column in (subquery)). -#}
{% macro spark__delete_where(relation, condition) -%}
    {%- if execute -%}
        {%- do spark_replace_rows(
            relation, 'select * from ' ~ relation ~ ' where not (' ~ condition ~ ')'
        ) -%}
    {%- endif -%}
    select 1
{%- endmacro %}


{#- Replace every row of `target` with the rows of `select_sql` (which may read `target`). -#}
{% macro spark_replace_rows(target, select_sql) -%}
    {%- set stage = target.incorporate(path={'identifier': target.identifier ~ '__trasos_stage'}) -%}
    {%- set columns = adapter.get_columns_in_relation(target) | map(attribute='quoted')
        | join(', ') -%}
    {%- do run_query('drop table if exists ' ~ stage) -%}
    {%- do run_query('create table ' ~ stage ~ ' using parquet as ' ~ select_sql) -%}
    {%- do run_query('insert overwrite table ' ~ target ~ ' select ' ~ columns ~ ' from ' ~ stage) -%}
    {%- do run_query('drop table if exists ' ~ stage) -%}
{%- endmacro %}


{#- dbt-spark's macro, plus delete+insert and merge on any file format -#}
{% macro dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format) -%}
    {%- if raw_strategy in ['delete+insert', 'merge'] -%}
        {{ return(raw_strategy) }}
    {%- endif -%}
    {{ return(dbt.dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format)) }}
{%- endmacro %}


{% macro dbt_spark_get_incremental_sql(
    strategy, source, target, existing, unique_key, incremental_predicates
) -%}
    {%- set file_format = config.get('file_format', 'parquet') -%}
    {%- if strategy == 'delete+insert' or (
        strategy == 'merge' and file_format not in ['delta', 'iceberg', 'hudi']
    ) -%}
        {%- if unique_key is none or unique_key is not string -%}
            {{ exceptions.raise_compiler_error(
                strategy ~ " on Spark Parquet needs one unique_key column, got " ~ unique_key) }}
        {%- endif -%}
        {%- set columns = adapter.get_columns_in_relation(target) -%}
        {%- if strategy == 'delete+insert' -%}
            {%- set names = columns | map(attribute='quoted') | join(', ') -%}
            {%- set select_sql -%}
                select {{ names }} from {{ target }}
                where {{ unique_key }} not in (select {{ unique_key }} from {{ source }})
                union all
                select {{ names }} from {{ source }}
            {%- endset -%}
        {%- else -%}
            {%- set update = config.get('merge_update_columns') -%}
            {%- set update = (update or columns | map(attribute='name') | list)
                | map('lower') | list -%}
            {%- set select_sql -%}
                select
                {%- for column in columns %}
                    case when {{ 'new.' if column.name | lower in update else 'old.' }}{{ unique_key }} is not null
                        then {{ 'new.' if column.name | lower in update else 'old.' }}{{ column.quoted }}
                        else {{ 'old.' if column.name | lower in update else 'new.' }}{{ column.quoted }}
                    end as {{ column.quoted }}{{ ',' if not loop.last }}
                {%- endfor %}
                from {{ target }} as old
                full outer join {{ source }} as new
                    on old.{{ unique_key }} = new.{{ unique_key }}
            {%- endset -%}
        {%- endif -%}
        {%- do spark_replace_rows(target, select_sql) -%}
        select 1
    {%- else -%}
        {{ dbt.dbt_spark_get_incremental_sql(
            strategy, source, target, existing, unique_key, incremental_predicates) }}
    {%- endif -%}
{%- endmacro %}


{#- dbt's freshness query (global project, collect_freshness) on the lake's Parquet -#}
{% macro spark__collect_freshness(source, loaded_at_field, filter) %}
  {% call statement('collect_freshness', fetch_result=True, auto_begin=False) -%}
    select
      max({{ loaded_at_field }}) as max_loaded_at,
      {{ current_timestamp() }} as snapshotted_at
    from {{ read_lake(source) }}
    {% if filter %}
    where {{ filter }}
    {% endif %}
  {% endcall %}
  {{ return(load_result('collect_freshness')) }}
{% endmacro %}
