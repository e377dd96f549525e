"""
### simulator_land_day (DE)

Manual (trigger it in the UI, or `make land DAYS=1` while Airflow is up). Lands the next
simulated day(s) in the landing zone, continuing the world already there: same seed,
population and catalog, the date after the last one landed, deterministic. Emits the
**landing** Asset, so `events_ingest` runs at once and the chain follows by itself:
`events_ingest` -> `events_transform` -> `recommender_train` / `business_metrics` ->
`data_monitor` / `model_monitor`. Param `days` (default 1). Logic: `include/tasks/landing.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Param, dag, task

from include.assets import LANDING
from include.roles import Role, dag_kwargs


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    max_active_runs=1,
    params={"days": Param(1, type="integer", minimum=1, maximum=30)},
    **dag_kwargs(Role.DE, doc_md=__doc__, domain="ingestion"),
)
def simulator_land_day():
    @task(outlets=[LANDING])
    def land_next_days(params=None, *, outlet_events=None) -> dict:
        """Land the next simulated day(s); the Asset event carries the dates landed."""
        from include.tasks.landing import land_next_days as land

        result = land(int(params["days"]))
        outlet_events[LANDING].extra = {"dates": result["dates"], "files": result["files"]}
        return result

    land_next_days()


simulator_land_day()
