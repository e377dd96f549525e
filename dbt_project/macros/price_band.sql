{#-
    Price band label of `column` for ascending band edges, e.g. edges [25, 50] give
    lt_25, 25_50, gte_50, and unknown for a null price.
-#}
{% macro price_band(column, edges) -%}
    case
        when {{ column }} is null then 'unknown'
        {%- for edge in edges %}
            when {{ column }} < {{ edge }}
                then '{{ "lt_" ~ edge if loop.first else edges[loop.index0 - 1] ~ "_" ~ edge }}'
        {%- endfor %}
        else 'gte_{{ edges[-1] }}'
    end
{%- endmacro %}
