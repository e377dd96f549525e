r"""Event and snapshot ingestion: landing zone -> raw Parquet lake, quarantine, manifest.

Public API::

    from include.ingest import ingest, validate_raw_events
    summary = ingest()              # IngestSummary; summary.as_dict() is XCom-sized
    validate_raw_events(summary.as_dict())

CLI: ``python -m include.ingest [--data-dir DIR]``.

Warehouse objects (schema ``raw``): ``ingest_manifest`` (table), ``ingest_outputs``
(table: every committed Parquet file), ``event_ids`` (table: every loaded event id, for
deduplication across all history), and the views ``events``, ``quarantine``, ``items``,
``customers`` over the Parquet files. See :mod:`include.ingest.core` for the guarantees.

Lake layout (under ``settings.data_dir``; ``<load_id>`` = hash of the load's file paths and
contents, so a re-run writes the same names)::

    lake/events/event_date=YYYY-MM-DD/part-<load_id>.parquet      contracts.RAW_EVENT_COLUMNS
    lake/catalog/snapshot_date=YYYY-MM-DD/part-<load_id>.parquet  contracts.ITEM_LAKE_COLUMNS
    lake/customers/snapshot_date=.../part-<load_id>.parquet       contracts.CUSTOMER_LAKE_COLUMNS
    quarantine/landing/part-<load_id>.parquet                     contracts.QUARANTINE_COLUMNS

How lines count (``lines_in = loaded + quarantined + duplicates`` per file):

* A line is what ends with ``\n`` (or the end of the file); a trailing ``\r`` is stripped.
  Empty and whitespace-only lines are not events and not in ``lines_in`` (they are in
  ``blank_lines``). An empty file (0 bytes, or a gzip stream of 0 bytes) is done with
  ``lines_in = 0``, status ``loaded``.
* Invalid UTF-8: the line is quarantined (``invalid_utf8``) with its bytes shown as
  ``\xNN`` escapes. A truncated or corrupt gzip stream: the lines that decompress are
  ingested, the cut-off rest is one ``unreadable_file`` line.
* Duplicates (same ``event_id`` as an event already in the lake, or earlier in the same
  load: first received wins, receive order = batch hour, then file name, then line) are
  counted, never loaded twice. Snapshots deduplicate their key within the file.
* Time rules, with the batch hour from ``date=YYYY-MM-DD/hour=HH`` in the path (the file's
  first-seen time when the path has none): ``event_time < hour start - late_window_days``
  is ``too_late``, ``event_time > hour start + 2 h`` is ``future_event_time``; accepted late
  events go to their own ``event_date`` partition.
* ``is_bot``: a crawler/script user agent (``core.BOT_USER_AGENT_RE``) or an anonymous_id
  with more than ``IngestConfig.bot_max_events_per_minute`` events in one minute of a load.
  Bots are kept in the raw lake; downstream models exclude them.
"""

from __future__ import annotations

from typing import Any

from include.ingest.core import (
    IngestConfig,
    IngestError,
    IngestLockedError,
    IngestSummary,
    ReconciliationError,
    ingest,
    refresh_views,
)

__all__ = [
    "IngestConfig",
    "IngestError",
    "IngestLockedError",
    "IngestSummary",
    "ReconciliationError",
    "ingest",
    "refresh_views",
    "validate_raw_events",
]


def validate_raw_events(summary: dict[str, Any], run_name: str | None = None) -> dict[str, Any]:
    """The gate between ingestion and everything downstream; returns the batch summary.

    First the batch's own bookkeeping (every line loaded, quarantined or a counted
    duplicate), then the Great Expectations ``raw_events`` suite on every event partition the
    batch touched, with the batch's quarantine rate. Raises (``ReconciliationError`` or
    ``expectations.gate.GateFailed``) when the gate fails, so no Asset event is emitted.
    """
    lost = summary["lines_in"] - summary["loaded"] - summary["quarantined"] - summary["duplicates"]
    if lost != 0:
        raise ReconciliationError(
            f"the ingestion batch does not reconcile: {lost} line(s) neither loaded, "
            f"quarantined nor counted as duplicates ({summary})",
            details={"lost": lost},
        )
    if not summary["event_dates"]:
        return summary
    from datetime import date, datetime

    from expectations.gate import run_gate
    from expectations.suites import RawEventsParams
    from include.warehouse import connect

    dates = [date.fromisoformat(d) for d in summary["event_dates"]]
    with connect(read_only=True) as con:
        batch = con.execute(
            "select * from raw.events where event_date in (select unnest(?::date[]))", [dates]
        ).df()
    # Real datasets go back to 2015; the ingestion already enforced each batch's late window.
    params = RawEventsParams(event_time_min=datetime(2000, 1, 1))
    gate = run_gate(
        "raw_events",
        batch,
        params=params,
        n_quarantined=summary["quarantined"],
        n_loaded=summary["loaded"],
        run_name=run_name,
    )
    return {**summary, "gate": gate.summary()}
