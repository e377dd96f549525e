r"""Event and snapshot ingestion: landing zone -> raw Parquet lake, quarantine, manifest.

Public API::

    from include.ingest import ingest
    summary = ingest()              # IngestSummary; summary.as_dict() is XCom-sized

The gate on a batch (reconciliation + GX ``raw_events``) is a task body:
:func:`include.tasks.ingest.validate_raw_events`.

CLI: ``python -m include.ingest [--data-dir DIR]``.

Warehouse objects (schema ``raw``): ``ingest_manifest`` (table), ``ingest_outputs``
(table: every committed Parquet file), ``event_ids`` (table: every loaded event id, for
deduplication across all history), and the views ``events``, ``quarantine``, ``items``,
``customers`` over the Parquet files. See :mod:`include.ingest.runner` for the guarantees.

Modules: :mod:`.model` (statuses, errors, config, counts), :mod:`.landing` (the landing
zone, reading a file), :mod:`.parse` (validation SQL), :mod:`.validate` (one load in DuckDB),
:mod:`.lake` (Parquet on disk, views), :mod:`.manifest` (bookkeeping tables), :mod:`.lock`,
:mod:`.runner` (the run).

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
* ``is_bot``: a crawler/script user agent (``model.BOT_USER_AGENT_RE``) or an anonymous_id
  with more than ``IngestConfig.bot_max_events_per_minute`` events in one minute of a load.
  Bots are kept in the raw lake; downstream models exclude them.
"""

from __future__ import annotations

from include.ingest.lake import refresh_views
from include.ingest.model import (
    IngestConfig,
    IngestError,
    IngestLockedError,
    IngestSummary,
    ReconciliationError,
)
from include.ingest.runner import IngestHooks, ingest

__all__ = [
    "IngestConfig",
    "IngestError",
    "IngestHooks",
    "IngestLockedError",
    "IngestSummary",
    "ReconciliationError",
    "ingest",
    "refresh_views",
]
