{#-
    Hooks of the visitor-keyed incremental marts (fct_sessions, int_interactions_aggregated).

    A run of int_events_sessionized rewrites every event of the visitors it touched and stamps
    them with sessionized_at. A visitor-keyed model then rebuilds exactly those visitors:

    - pre-hook `delete_touched_visitors()`: delete this model's rows of every visitor with an
      event in fct_events newer than this model's sessionized_at watermark (covers a visitor
      whose events moved to another visitor: their own events were rewritten too);
    - the model selects the same visitors' whole history and inserts it;
    - post-hook `delete_stitched_devices()`: delete rows of visitors that no longer exist,
      i.e. device ids of devices that now belong to a customer.
-#}
{% macro touched_visitors_sql(visitor_column='visitor_id') -%}
    select distinct touched.visitor_id
    from {{ ref('fct_events') }} as touched
    where touched.sessionized_at > (
        select coalesce(max(sessionized_at), cast('1900-01-01' as {{ dbt.type_timestamp() }}))
        from {{ this }}
    )
{%- endmacro %}


{% macro delete_touched_visitors(visitor_column='visitor_id') -%}
    {%- if is_incremental() -%}
        {{ delete_where(this, visitor_column ~ ' in (' ~ touched_visitors_sql(visitor_column) ~ ')') }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}


{% macro delete_stitched_devices(visitor_column='visitor_id') -%}
    {%- if is_incremental() -%}
        {%- set stitched_devices -%}
            {{ visitor_column }} in (
                select stitched.anonymous_id
                from {{ ref('int_identities_stitched') }} as stitched
                where stitched.is_identified
            )
        {%- endset -%}
        {{ delete_where(this, stitched_devices) }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
