{#-
    Which lake events an incremental run of the event-grain models reads (int_events_sessionized,
    fct_events), so that an hourly run does not grow with history.

    incremental_window(relation): the run's window of arrival times, computed once per model at
    run time from the model's own table:

        from = max(received_at) of `relation` - var('incremental__lookback_hours')
        to   = from + var('incremental__backfill_limit_hours')

    Events received in (from, to] are new to this run. A run after a long outage takes at most
    `incremental__backfill_limit_hours` of arrivals; the rest waits for the next run (logged),
    so one run never has to hold weeks of events in memory.

    new_events_filter(window): the WHERE condition on stg_lake__events for that window. The
    partitions (event_date) that hold such events come from ingestion's manifest of committed
    files (raw.ingest_outputs, committed at or after `from`: a file is committed after its
    lines are received), so DuckDB opens only those partitions' files instead of every file of
    the lake. A lake written without ingestion's bookkeeping (a hand-made test lake, no
    raw.ingest_outputs table) falls back to the received_at filter alone.
-#}
{% macro incremental_window(relation) -%}
    {%- set lookback = var('incremental__lookback_hours') | int -%}
    {%- set limit = var('incremental__backfill_limit_hours') | int -%}
    {%- set window = {'from': none, 'to': none, 'partitions': none, 'capped': false} -%}
    {%- if not execute -%}
        {{ return(window) }}
    {%- endif -%}
    {%- set newest = dbt.dateadd('hour', -lookback, 'max(received_at)') -%}
    {%- set bounds = run_query(
        "select cast(" ~ newest ~ " as " ~ dbt.type_string() ~ "), cast("
        ~ dbt.dateadd('hour', limit, newest) ~ " as " ~ dbt.type_string() ~ ") from " ~ relation
    ).rows[0] -%}
    {%- if bounds[0] is none -%}
        {{ return(window) }}
    {%- endif -%}
    {%- do window.update({'from': bounds[0], 'to': bounds[1]}) -%}
    {%- set manifest = adapter.get_relation(database=target.database, schema='raw',
        identifier='ingest_outputs') -%}
    {%- if manifest is not none -%}
        {%- set parts = run_query(
            "select distinct regexp_extract(path, 'event_date=([0-9-]+)', 1) from " ~ manifest
            ~ " where kind = 'events' and committed_at >= cast('" ~ bounds[0] ~ "' as "
            ~ dbt.type_timestamp() ~ ") order by 1"
        ).columns[0].values() | list -%}
        {%- do window.update({'partitions': parts}) -%}
        {{ log(relation ~ ": new arrivals after " ~ bounds[0] ~ " in the partitions event_date="
            ~ parts | join(", ") ~ " (ingestion's manifest)", info=true) }}
    {%- endif -%}
    {%- if window.partitions is none or window.partitions -%}
        {%- set after = {'from': bounds[1], 'to': none, 'partitions': window.partitions} -%}
        {%- set later = run_query(
            "select count(*) from " ~ ref('stg_lake__events') ~ " where "
            ~ new_events_filter(after)
        ).rows[0][0] -%}
        {%- if later > 0 -%}
            {%- do window.update({'capped': true}) -%}
            {{ log(relation ~ ": backfill capped at " ~ limit ~ " h of arrivals "
                ~ "(var incremental__backfill_limit_hours): " ~ later ~ " later events wait "
                ~ "for the next run", info=true) }}
        {%- endif -%}
    {%- endif -%}
    {{ return(window) }}
{%- endmacro %}


{% macro new_events_filter(window, received_at='received_at', event_date='event_date') -%}
    {%- if window.from is none -%}
        true
    {%- elif window.partitions is not none and window.partitions | length == 0 -%}
        false
    {%- else -%}
        {{ received_at }} > cast('{{ window.from }}' as {{ dbt.type_timestamp() }})
        {%- if window.to %}
        and {{ received_at }} <= cast('{{ window.to }}' as {{ dbt.type_timestamp() }})
        {%- endif %}
        {%- if window.partitions %}
        and {{ event_date }} in (
            {%- for p in window.partitions %}cast('{{ p }}' as date){{ ", " if not loop.last }}{% endfor -%}
        )
        {%- endif %}
    {%- endif -%}
{%- endmacro %}
