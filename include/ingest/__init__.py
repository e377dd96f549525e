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
  ``\xNN`` escapes. A UTF-8 byte order mark at the start of a file is dropped. A line longer
  than ``IngestConfig.max_line_bytes`` (default 1 MiB) is ``line_too_long``; shorter valid
  lines load whole (only the quarantine's ``raw_line`` text is capped).
* A file that cannot be read to its end is quarantined whole, every line with the file's
  reason: ``truncated_gzip``, ``unreadable_file`` (corrupt stream, bytes after its end; the
  cut-off tail is one more line, and a file with nothing readable is one line), ``not_gzip``
  (a ``.gz`` name over other bytes, unless ``IngestConfig.plain_text_sources`` allows plain
  text there). Its status is ``unreadable``: the same bytes are not read again, and a
  complete delivery under the same name later loads normally (not ``content_changed``).

Collector convention (files are taken only when complete): write a landing file under a
temporary name (a name starting with ``.`` or ending in ``.tmp``/``.part``/``.partial``/
``.inprogress``/``.filepart``) and rename it when it is complete; such names are never taken.
A collector that cannot rename sets ``TRASOS_INGEST_MIN_FILE_AGE_S`` so that files modified
more recently are left for the next run. A file whose size or mtime changes while it is read is
left for the next run too (``files_pending``); a gzip file taken half-written ends as
``truncated_gzip`` and loads when it is complete.

The warehouse file admits one writer and no reader while it writes: a run waits for another
process holding it (``TRASOS_INGEST_WAREHOUSE_WAIT_S``, default 120 s, each retry logged),
then fails with :class:`IngestLockedError` naming the holder and what to do.
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
