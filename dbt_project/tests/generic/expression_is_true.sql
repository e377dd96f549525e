{#-
    Fails on every row where `expression` is not true (null counts as a failure unless the
    expression handles it). Usage, at model level:

        data_tests:
          - expression_is_true:
              arguments:
                expression: "ended_at >= started_at"
-#}
{% test expression_is_true(model, expression) %}

select *
from {{ model }}
where not coalesce({{ expression }}, false)

{% endtest %}
