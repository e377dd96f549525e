{#-
    Custom schemas are used as they are (staging, intermediate, reference), not prefixed with
    the target schema: consumers read marts from `main` and layers from stable schema names.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
