"""Event and snapshot ingestion: landing zone -> raw Parquet lake, quarantine, manifest.

Public API::

    from include.ingest import ingest, validate_raw_events
    summary = ingest()              # IngestSummary; summary.as_dict() is XCom-sized
    validate_raw_events(summary.as_dict())

CLI: ``python -m include.ingest [--data-dir DIR]``.

Warehouse objects (schema ``raw``): ``ingest_manifest`` (table), ``ingest_outputs``
(table: every committed Parquet file), ``event_ids`` (table: every loaded event id, for
deduplication across all history), and the views ``events``, ``quarantine``, ``items``,
``customers`` over the Parquet files. See :mod:`include.ingest.core` for the guarantees.
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


def validate_raw_events(summary: dict[str, Any]) -> dict[str, Any]:
    """The gate between ingestion and everything downstream; returns the batch summary.

    For now it re-checks the batch's own bookkeeping (every line loaded, quarantined or a
    counted duplicate). The Great Expectations suite on ``raw.events`` (the GX colleague's
    work) plugs in here and raises when the gate fails.
    """
    lost = summary["lines_in"] - summary["loaded"] - summary["quarantined"] - summary["duplicates"]
    if lost != 0:
        raise ReconciliationError(
            f"the ingestion batch does not reconcile: {lost} line(s) neither loaded, "
            f"quarantined nor counted as duplicates ({summary})",
            details={"lost": lost},
        )
    return summary
