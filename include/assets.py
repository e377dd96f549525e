"""The one place Airflow Assets are defined. DAGs chain by these, never by clock."""

from __future__ import annotations

from airflow.sdk import Asset

RAW_EVENTS = Asset(name="raw_events", uri="trasos://lake/events")
CATALOG = Asset(name="catalog", uri="trasos://lake/catalog")
SESSIONS = Asset(name="sessions", uri="trasos://warehouse/fct_sessions")
INTERACTIONS = Asset(name="interactions", uri="trasos://warehouse/ml_interactions")
RECOMMENDATIONS = Asset(name="recommendations", uri="trasos://published/recommendations")
BUSINESS_METRICS = Asset(name="business_metrics", uri="trasos://reports/business")

ALL = (RAW_EVENTS, CATALOG, SESSIONS, INTERACTIONS, RECOMMENDATIONS, BUSINESS_METRICS)
