"""The DAGs' data wiring, in one place: the Airflow Assets they chain by (never by clock)
and the pool every DuckDB writer takes."""

from __future__ import annotations

from airflow.sdk import Asset

#: One-slot Airflow pool of every task that writes the DuckDB warehouse (one writer per file).
WRITER_POOL = "duckdb_writer"
WRITER_POOL_DESCRIPTION = "DuckDB has one writer at a time"

#: New files in the landing zone (announced by simulator_land_day; ingestion also polls hourly).
LANDING = Asset(name="landing", uri="trasos://landing/events")
RAW_EVENTS = Asset(name="raw_events", uri="trasos://lake/events")
CATALOG = Asset(name="catalog", uri="trasos://lake/catalog")
SESSIONS = Asset(name="sessions", uri="trasos://warehouse/fct_sessions")
INTERACTIONS = Asset(name="interactions", uri="trasos://warehouse/ml_interactions")
RECOMMENDATIONS = Asset(name="recommendations", uri="trasos://published/recommendations")
BUSINESS_METRICS = Asset(name="business_metrics", uri="trasos://reports/business")

ALL = (RAW_EVENTS, CATALOG, SESSIONS, INTERACTIONS, RECOMMENDATIONS, BUSINESS_METRICS)
