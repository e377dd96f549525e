"""
### events_transform (DE)

Turns the raw Parquet lake into the marts every other role reads. Runs whenever ingestion
has written new events (Asset `raw_events`).

1. **dbt** (a Cosmos task group in watcher mode): the task `dbt.dbt_producer_watcher` runs
   `dbt source freshness` of the lake sources, then ONE `dbt build` of the DE nodes:
   seeds -> `stg_lake__*` (typed, bots excluded) -> `int_identities_stitched` (each device
   belongs to its last known customer) -> `int_events_sessionized` (30-minute inactivity
   sessions per stitched visitor, incremental) -> core marts `fct_events`, `fct_sessions`,
   `dim_items`, `dim_customers` -> ML marts `ml_interactions`, `ml_item_features`,
   `ml_user_features`, in dbt's order: a model's unit tests before it (a failing one fails
   the producer, and dbt skips the model and what is below), its data tests after it. Then each seed, model (`dbt.<model>.run`),
   model's data tests (`dbt.<model>.test`) and lake source (`dbt.lake_<source>_source`) is a
   sensor task that takes its node's state in that build; retried or cleared, it runs its node
   alone. A stale events source (nothing received for 24 h) fails its source task, and the
   models that read only from it are skipped; an old snapshot only warns, which notifies DE.
   Every task that can run dbt is in the one-slot `duckdb_writer` pool.
2. **validate_marts**: row counts of the marts (fails on an empty one), then the Great
   Expectations `sessions` gate on `fct_sessions` (`include.tasks.transform.validate_marts`).
3. **publish_analyst_copy**: every mart to Parquet in a new folder `<data>/analyst/<version>/`
   with `analyst.duckdb` (one view per mart), then `<data>/analyst/current` is swapped to it
   (`include.analyst`). Analysts query that copy (`make sql`), so they never hold the
   warehouse lock. In the `duckdb_writer` pool: it reads the warehouse.
4. **publish_marts**: emits the Assets `sessions` and `interactions`, which start
   `business_metrics` (DA) and `train_recommender` (DS).

Models, grains and tests: `dbt_project/` (and its README for the incremental measurement);
`make dbt-docs` renders the dbt docs. DA's `marts/metrics` models are built by
`business_metrics`, not here. Owner: data engineering (DE).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import dag, task

import include.assets
import include.roles
from include.assets import WRITER_POOL
from include.roles import Role
from include.tasks.transform import dbt_task_group


@dag(
    dag_id="events_transform",
    schedule=[include.assets.RAW_EVENTS],
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    max_active_runs=1,
    **include.roles.dag_kwargs(Role.DE, doc_md=__doc__, domain="transform"),
)
def events_transform() -> None:
    dbt = dbt_task_group("dbt", WRITER_POOL)

    marts = [include.assets.SESSIONS, include.assets.INTERACTIONS]

    @task(pool=WRITER_POOL, inlets=marts)
    def validate_marts(run_id: str | None = None) -> dict[str, Any]:
        """Gate on the marts: none empty, then the GX sessions suite on fct_sessions."""
        from include.tasks.transform import validate_marts

        return validate_marts(run_name=run_id)

    @task(outlets=marts)
    def publish_marts(summary: dict[str, Any]) -> dict[str, int]:
        """Emit the mart Assets; the XCom carries the row counts only."""
        return {name: info["rows"] for name, info in summary["tables"].items()}

    @task(pool=WRITER_POOL, inlets=marts)
    def publish_analyst_copy() -> str:
        """The marts as the read-only analyst copy; XCom carries its folder."""
        from include.tasks.transform import publish_analyst_copy

        return publish_analyst_copy()

    summary = validate_marts()
    dbt >> summary
    summary >> publish_analyst_copy()
    publish_marts(summary)


events_transform()
