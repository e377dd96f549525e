"""Ingest new landing files into the raw Parquet lake (DE).

Every hour, whenever new files are announced (the `landing` Asset, e.g. by
`simulator_land_day`), and on demand, `load_new_files` takes the files under `landing/` that
the manifest (`raw.ingest_manifest`) has not seen: event batches
(`events/date=YYYY-MM-DD/hour=HH/*.jsonl.gz`) and catalog / customer snapshots. DuckDB
validates every line; good events go to `lake/events/event_date=YYYY-MM-DD/`, deduplicated
on `event_id` across all history and flagged `is_bot`; every other line goes to
`quarantine/` with a reason. Per file, `lines_in = loaded + quarantined + duplicates`.

`validate_raw_events` is the gate on the new batch: reconciliation, then the Great
Expectations `raw_events` suite (Data Docs under `reports/data_docs/`). Only after it passes
does `publish_raw_events` emit the `raw_events` Asset (and `publish_catalog` the `catalog`
Asset when a catalog snapshot came in); a run that brought nothing new skips them, so
downstream DAGs do not rebuild for nothing.

Safe to re-run: a file already loaded is skipped, a loaded file dropped again with other
bytes is quarantined whole (`content_changed`), and a run killed halfway is cleaned up and
finished by the next one; a retried `load_new_files` also reports the loads its killed try
had committed (`loads_resumed`, by run id), so they are gated and announced like its own.
Writers share the one-slot `duckdb_writer` pool, and a file lock keeps two ingestions apart
even outside Airflow. Task bodies: `include/tasks/ingest.py`;
logic: `include/ingest/`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from include.assets import CATALOG, LANDING, RAW_EVENTS, WRITER_POOL
from include.roles import Role, dag_kwargs


@dag(
    dag_id="events_ingest",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("@hourly", timezone="UTC"), assets=[LANDING]
    ),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    max_active_runs=1,
    **dag_kwargs(Role.DE, doc_md=__doc__, domain="ingestion"),
)
def events_ingest() -> None:
    @task(pool=WRITER_POOL, inlets=[LANDING])
    def load_new_files(run_id: str | None = None) -> dict[str, Any]:
        """Load every new landing file; returns the batch summary (counts only). A retry
        also reports what its killed try committed (the run id names the batch)."""
        from include.tasks.ingest import load_new_files as load

        return load(batch=run_id)

    @task(pool=WRITER_POOL)
    def validate_raw_events(summary: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
        """Reconciliation and the GX raw_events gate on the new batch; fails (no retry) when
        it fails."""
        from include.tasks.ingest import validate_raw_events as gate

        return gate(summary, run_name=run_id)

    @task(outlets=[RAW_EVENTS])
    def publish_raw_events(summary: dict[str, Any], *, outlet_events=None) -> dict[str, Any]:
        """Emit the raw_events Asset (skipped when the run loaded nothing new)."""
        from airflow.sdk.exceptions import AirflowSkipException

        if not (summary["events_loaded"] or summary["snapshots"]):
            raise AirflowSkipException("nothing new was loaded: no raw_events Asset event")
        outlet_events[RAW_EVENTS].extra = {
            "events_loaded": summary["events_loaded"],
            "quarantined": summary["quarantined"],
            "event_dates": summary["event_dates"],
            "snapshots": summary["snapshots"],
        }
        return summary

    @task(outlets=[CATALOG])
    def publish_catalog(summary: dict[str, Any], *, outlet_events=None) -> list[str]:
        """Emit the catalog Asset when a catalog snapshot came in (skipped otherwise)."""
        from airflow.sdk.exceptions import AirflowSkipException

        snapshots = [s for s in summary["snapshots"] if s.startswith("catalog/")]
        if not snapshots:
            raise AirflowSkipException("no new catalog snapshot: no catalog Asset event")
        outlet_events[CATALOG].extra = {"snapshots": snapshots}
        return snapshots

    checked = validate_raw_events(load_new_files())
    publish_raw_events(checked)
    publish_catalog(checked)


events_ingest()
