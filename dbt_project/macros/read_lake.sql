{#-
    The one engine-specific file read of the project.

    Sources in models/staging/_staging__sources.yml carry only a location (a glob of
    hive-partitioned Parquet files, via dbt-duckdb's `external_location`); staging models wrap
    the source in this macro to get a table expression:

        select * from {{ read_lake(source('lake', 'events')) }}

    A source that a landing zone may lack (customer snapshots: most real datasets have none)
    passes `empty_columns` (name -> type); with no files it reads as an empty table of those
    columns instead of failing:

        select * from {{ read_lake(source('lake', 'customers'), empty_columns={'user_id': 'varchar'}) }}

    DuckDB reads the glob with hive partitioning (the partition key, e.g. event_date, becomes a
    column) and unions files by column name, so a column added later reads as null in old files.
    Spark (`spark__read_lake`) reads the source's directory as a Parquet table: partition
    discovery gives the partition key as a column, `spark.sql.parquet.mergeSchema` (profiles.yml)
    unions columns by name. It cannot see that a directory is missing from Jinja, so a lake
    without customer or catalog snapshots fails on Spark (write empty snapshots first).
-#}
{% macro read_lake(source_relation, empty_columns=none) -%}
    {{ return(adapter.dispatch('read_lake', 'trasos')(source_relation, empty_columns)) }}
{%- endmacro %}


{% macro duckdb__read_lake(source_relation, empty_columns=none) -%}
    {%- set location = source_relation.external -%}
    {%- if not execute -%}
        {#- parsing: source() gives a placeholder relation, nothing to read yet -#}
        {{ return(source_relation) }}
    {%- endif -%}
    {%- if not location -%}
        {{ exceptions.raise_compiler_error(
            "read_lake() needs a source with meta.external_location, got " ~ source_relation
        ) }}
    {%- endif -%}
    {%- if flags.WHICH in ('run', 'build') -%}
    {%- set found = run_query("select count(*) from glob(" ~ location ~ ")").columns[0].values()[0] -%}
    {%- if found == 0 and empty_columns -%}
        {{ log("read_lake: no files match " ~ location ~ "; reading it as an empty table", info=true) }}
        {%- set cols = [] -%}
        {%- for name, type in empty_columns.items() -%}
            {%- do cols.append("cast(null as " ~ type ~ ") as " ~ name) -%}
        {%- endfor -%}
        {{ return("(select " ~ cols | join(", ") ~ " where false)") }}
    {%- elif found == 0 -%}
        {{ exceptions.raise_compiler_error(
            "No Parquet files match " ~ location ~ ": the raw lake is empty or TRASOS_DATA_DIR "
            ~ "points elsewhere. Load data first (the events_ingest DAG, `make run`)."
        ) }}
    {%- endif -%}
    {%- endif -%}
    {%- set committed = committed_filter(source_relation) -%}
    {%- if committed %}
    (select * exclude (filename) from read_parquet({{ location }}, hive_partitioning = true,
        union_by_name = true, filename = true) where {{ committed }})
    {%- else %}
    read_parquet({{ location }}, hive_partitioning = true, union_by_name = true)
    {%- endif %}
{%- endmacro %}


{#-
    Only the files ingestion committed: a load writes its Parquet under the final names, then
    lists them in `raw.ingest_outputs` in the transaction that commits it (on the object store
    there is no rename to hide them before). A load killed in between leaves files that the
    glob matches and the next ingestion deletes; until then this filter keeps them out, as the
    `raw.*` views do. A lake written without ingestion's bookkeeping (no `raw.ingest_outputs`,
    none of the source's files in it, or a lake outside `<root>/lake/<source>`) is read whole.
-#}
{% macro committed_filter(source_relation) -%}
    {%- set manifest = adapter.get_relation(database=target.database, schema='raw',
        identifier='ingest_outputs') -%}
    {%- set folder = '/lake/' ~ source_relation.identifier -%}
    {%- set directory = lake_directory(source_relation) -%}
    {%- if manifest is none or not directory.endswith(folder) -%}
        {{ return('') }}
    {%- endif -%}
    {%- set root = directory[:directory | length - folder | length] -%}
    {%- set listed = manifest ~ " where kind = '" ~ source_relation.identifier ~ "'" -%}
    {{ return("(filename in (select '" ~ root ~ "/' || path from " ~ listed
        ~ ") or not exists (select 1 from " ~ listed ~ "))") }}
{%- endmacro %}


{#- The source's directory: its meta.external_location up to the first glob. -#}
{% macro lake_directory(source_relation) -%}
    {%- for node in graph.sources.values() -%}
        {%- set location = node.config.meta.external_location or node.meta.external_location -%}
        {%- if location and node.identifier == source_relation.identifier -%}
            {{- return(location.replace('{name}', node.name).split('*')[0].rstrip('/')) -}}
        {%- endif -%}
    {%- endfor -%}
    {{ exceptions.raise_compiler_error("read_lake(): no lake source named " ~ source_relation) }}
{%- endmacro %}


{% macro spark__read_lake(source_relation, empty_columns=none) -%}
    {%- if not execute -%}
        {{ return(source_relation) }}
    {%- endif -%}
    parquet.`{{ lake_directory(source_relation) }}`
{%- endmacro %}


{% macro default__read_lake(source_relation, empty_columns=none) -%}
    {{ source_relation }}
{%- endmacro %}
