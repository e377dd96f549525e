"""Pages people read (DA reports and every other HTML page), and the business metrics export.

``pages`` renders every HTML page from ``templates/`` (Jinja2, autoescape, one base layout,
one stylesheet); ``charts`` draws the figures (matplotlib, ``data:`` URIs). The business
report is ``export`` (dbt build, immutable Parquet/CSV exports), ``lapsed`` (the marketing
list) and ``business`` (the page, the CLI); ``evaluation`` renders a model version's report.
Heavy libraries (pandas, matplotlib, jinja2) are imported inside functions or on first use.
"""
