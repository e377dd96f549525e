"""
### business_metrics (DA)

Business metrics for the two goals of the recommender: non-customers convert more easily,
customers come back sooner. Runs whenever `events_transform` has rebuilt the sessions
(Asset `sessions`).

1. **build_metrics_marts**: `dbt build --select path:models/marts/metrics` (models and their
   tests) in the one-slot `duckdb_writer` pool: conversion, time to return, return by cohort,
   retention cohorts, funnel, recommendation impact, customer recency.
2. **publish_analyst_copy**: refreshes the analyst copy (`<data>/analyst/current`, `make sql`)
   so it holds the metrics marts just built; in the writer pool (it reads the warehouse).
3. **export_metrics_marts**: copies every `metrics_` mart to Parquet and CSV in a new, never
   rewritten folder `<reports>/business/exports/<export_id>/` with the metric definitions;
   readers use these files, never the live warehouse.
4. **export_lapsed_customers**: `<reports>/business/lapsed_customers_<N>d.csv` for marketing,
   customers not seen for N days or more (param `lapsed_days`, default 14).
5. **render_report**: `<reports>/business/index.html`, one self-contained page with every
   chart, its definition and its date range. Produces the Asset `business_metrics`.

Logic: `include/tasks/business.py` over `include/reporting/` (by hand: `make report`). Definitions:
`dbt_project/models/marts/metrics/_metrics__models.yml`. Owner: data analytics (DA).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import Param, dag, task

import include.assets
import include.roles
from include.assets import WRITER_POOL
from include.roles import Role
from include.tasks.business import DEFAULT_LAPSED_DAYS


@dag(
    dag_id="business_metrics",
    schedule=[include.assets.SESSIONS],
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    max_active_runs=1,
    params={
        "lapsed_days": Param(
            DEFAULT_LAPSED_DAYS,
            type="integer",
            minimum=1,
            description="Customers not seen for this many days or more go to the lapsed CSV.",
        )
    },
    **include.roles.dag_kwargs(Role.DA, doc_md=__doc__, domain="analytics"),
)
def business_metrics() -> None:
    @task(pool=WRITER_POOL, inlets=[include.assets.SESSIONS])
    def build_metrics_marts() -> str:
        from include.tasks import business

        return business.build_marts()

    @task(pool=WRITER_POOL)
    def publish_analyst_copy() -> str:
        from include.tasks import business

        return business.publish_analyst_copy()

    @task(pool=WRITER_POOL)
    def export_metrics_marts() -> str:
        # Reads the warehouse (read-only): in the writers' pool so no dbt run holds the file.
        from include.tasks import business

        return business.export()

    @task
    def export_lapsed_customers(export_dir: str, **context: Any) -> str:
        from include.tasks import business

        return business.lapsed_list(export_dir, int(context["params"]["lapsed_days"]))

    @task(outlets=[include.assets.BUSINESS_METRICS])
    def render_report(export_dir: str, lapsed_csv: str, **context: Any) -> str:
        from include.tasks import business

        days = int(context["params"]["lapsed_days"])
        return business.render(export_dir, days, lapsed_csv)

    export_dir = export_metrics_marts()
    built = build_metrics_marts()
    built >> export_dir
    built >> publish_analyst_copy()
    render_report(export_dir, export_lapsed_customers(export_dir))


business_metrics()
