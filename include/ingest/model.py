"""What ingestion works with: statuses, errors, the run's tunables, per-file and per-run counts.

No I/O here: every other module of :mod:`include.ingest` imports these.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

from include.contracts import (
    CUSTOMER_LAKE_COLUMNS,
    INGEST_MANIFEST_COLUMNS,
    ITEM_LAKE_COLUMNS,
    RAW_EVENT_COLUMNS,
)
from include.ingest.landing import FileContent, LandingFile

#: Manifest statuses that make a later version of the same path a ``content_changed`` one.
SETTLED_STATUSES: tuple[str, ...] = ("loaded", "quarantined", "content_changed")
#: Manifest statuses that mean "this version (these bytes) of the file is done". An
#: ``unreadable`` version (cut off, not gzip) is done, but does not settle its path: the
#: complete delivery under the same name loads normally.
DONE_STATUSES: tuple[str, ...] = (*SETTLED_STATUSES, "unreadable")
#: User agents of crawlers and scripts (case-insensitive regular expression, RE2).
BOT_USER_AGENT_RE = (
    r"(?i)(bot\b|bot/|crawler|crawl|spider|slurp|python-requests|python-urllib|curl/|wget|"
    r"headless|phantomjs|selenium|puppeteer|playwright|scrapy|httpclient|go-http-client)"
)

LAKE_DATASETS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    # dataset -> (lake folder, columns)
    "events": ("events", RAW_EVENT_COLUMNS),
    "catalog": ("catalog", ITEM_LAKE_COLUMNS),
    "customers": ("customers", CUSTOMER_LAKE_COLUMNS),
}
QUARANTINE_FOLDER = "landing"


class IngestError(RuntimeError):
    """Ingestion could not finish; the message says what and what to do."""


class ReconciliationError(IngestError):
    """A file's counts do not add up (``lines_in != loaded + quarantined + duplicates``)."""

    def __init__(self, message: str, details: dict[str, Any]):
        super().__init__(message)
        self.details = details


class IngestLockedError(IngestError):
    """Another ingestion holds the lock."""


@dataclass(frozen=True)
class IngestConfig:
    """Tunables of a run (environment overrides in :meth:`from_env`).

    chunk_bytes
        Gzip bytes of event files per load. Bigger loads mean fewer, larger Parquet files
        and faster runs; memory is about 10x this.
    read_workers
        Threads that read, hash and gunzip files while DuckDB works on an earlier load.
    bot_max_events_per_minute
        An anonymous_id with more events than this in one minute of a load is a bot.
    lock_timeout_s
        How long to wait for another run to finish.
    late_window_days
        Events older than the batch hour start minus this are ``too_late``; None reads
        ``settings.late_window_days``.
    max_line_bytes
        A line longer than this (bytes, without its line end) is quarantined as
        ``line_too_long`` (``TRASOS_INGEST_MAX_LINE_BYTES``, default 1 MiB); shorter valid
        lines load whole, whatever their size (only quarantined text is capped, at
        ``contracts.RAW_LINE_MAX_CHARS``).
    plain_text_sources
        Landing path prefixes (e.g. ``events/legacy/``) whose ``.gz`` files may hold plain
        text (``TRASOS_INGEST_PLAIN_TEXT_SOURCES``, comma-separated). Anywhere else a ``.gz``
        file that is not gzip is quarantined whole as ``not_gzip``.
    min_file_age_s
        Files modified less than this many seconds ago are left for the next run
        (``TRASOS_INGEST_MIN_FILE_AGE_S``, default 0), for collectors that write in place;
        the convention is to write under a temporary name and rename (see
        :mod:`include.ingest.landing`).
    warehouse_wait_s
        How long to wait, retrying, for another process that holds the warehouse file open
        (``TRASOS_INGEST_WAREHOUSE_WAIT_S``, default 120 s) before failing with what to do.
    """

    chunk_bytes: int = 64 << 20
    read_workers: int = 2
    bot_max_events_per_minute: int = 60
    lock_timeout_s: float = 900.0
    late_window_days: int | None = None
    max_line_bytes: int = 1 << 20
    plain_text_sources: tuple[str, ...] = ()
    min_file_age_s: float = 0.0
    warehouse_wait_s: float = 120.0

    def plain_text_ok(self, path: str) -> bool:
        """May the ``.gz`` file at landing-relative ``path`` hold plain text?"""
        return path.startswith(self.plain_text_sources) if self.plain_text_sources else False

    @classmethod
    def from_env(cls) -> IngestConfig:
        env = os.environ
        return cls(
            chunk_bytes=int(env.get("TRASOS_INGEST_CHUNK_BYTES", cls.chunk_bytes)),
            read_workers=int(env.get("TRASOS_INGEST_READ_WORKERS", cls.read_workers)),
            bot_max_events_per_minute=int(
                env.get("TRASOS_BOT_MAX_EVENTS_PER_MINUTE", cls.bot_max_events_per_minute)
            ),
            max_line_bytes=int(env.get("TRASOS_INGEST_MAX_LINE_BYTES", cls.max_line_bytes)),
            plain_text_sources=tuple(
                p.strip()
                for p in env.get("TRASOS_INGEST_PLAIN_TEXT_SOURCES", "").split(",")
                if p.strip()
            ),
            min_file_age_s=float(env.get("TRASOS_INGEST_MIN_FILE_AGE_S", cls.min_file_age_s)),
            warehouse_wait_s=float(env.get("TRASOS_INGEST_WAREHOUSE_WAIT_S", cls.warehouse_wait_s)),
        )


@dataclass(kw_only=True)
class LineCounts:
    """How lines ended, for one file or a whole run: ``lines_in = loaded + quarantined +
    duplicates``; blank lines are not events (not in ``lines_in``); late and bot events are
    part of ``loaded``."""

    lines_in: int = 0
    blank_lines: int = 0
    loaded: int = 0
    quarantined: int = 0
    duplicates: int = 0
    late_loaded: int = 0
    bot_events: int = 0

    def balanced(self) -> bool:
        return self.lines_in == self.loaded + self.quarantined + self.duplicates


@dataclass(kw_only=True)
class FileStats(LineCounts):
    """What happened to one landing file in this run (becomes its manifest row)."""

    path: str
    dataset: str
    content_hash: str
    size_bytes: int
    file_mtime: datetime
    first_seen_at: datetime
    status: str
    batch_start: datetime | None = None
    load_id: str | None = None
    loaded_at: datetime | None = None
    error: str | None = None

    def reconciles(self) -> bool:
        return self.balanced()

    def row(self) -> tuple:
        return tuple(getattr(self, name) for name, _ in INGEST_MANIFEST_COLUMNS)


@dataclass(kw_only=True)
class IngestSummary(LineCounts):
    """The batch summary of one run (small: it travels through XCom)."""

    files_found: int = 0
    files_new: int = 0
    files_skipped: int = 0  # already loaded, same bytes
    files_loaded: int = 0
    files_content_changed: int = 0
    files_failed: int = 0
    files_unknown: list[str] = field(default_factory=list)
    files_unreadable: int = 0  # quarantined whole (cut off, not gzip); retried when re-sent
    files_pending: int = 0  # still being written (too young, or changed while read): next run
    orphans_removed: int = 0  # uncommitted Parquet files of a crashed run, deleted first
    loads: int = 0
    loads_resumed: int = 0  # of ``loads``: committed by an earlier, killed try of the batch
    events_loaded: int = 0  # the part of ``loaded`` that is events (the rest: snapshot rows)
    reasons: dict[str, int] = field(default_factory=dict)
    event_dates: list[str] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)  # "<dataset>/<snapshot_date>"
    failed: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def reconciles(self) -> bool:
        return self.balanced()

    def add(self, stats: FileStats) -> None:
        for f in fields(LineCounts):
            setattr(self, f.name, getattr(self, f.name) + getattr(stats, f.name))
        if stats.dataset == "events":
            self.events_loaded += stats.loaded

    #: What a load adds to its run's summary (the rest describes the run: the scan, orphans,
    #: files left for later, failures, time).
    LOAD_FIELDS: ClassVar[tuple[str, ...]] = (
        *(f.name for f in fields(LineCounts)),
        "files_new",
        "files_loaded",
        "files_content_changed",
        "files_unreadable",
        "loads",
        "events_loaded",
    )

    def merge(self, load: IngestSummary) -> None:
        """Add what another summary's loads did (:attr:`LOAD_FIELDS`, reasons, event dates,
        snapshots, failed files) to this one."""
        for name in self.LOAD_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(load, name))
        reasons = Counter(self.reasons)
        reasons.update(load.reasons)
        self.reasons = dict(sorted(reasons.items()))
        self.event_dates.extend(load.event_dates)
        self.snapshots.extend(load.snapshots)
        self.failed.extend(load.failed)
        self.files_failed += load.files_failed

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IngestSummary:
        """The summary :meth:`as_dict` wrote (keys it does not know are ignored)."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["files_unknown"] = self.files_unknown[:20]
        out["event_dates"] = sorted(set(self.event_dates))
        out["seconds"] = round(self.seconds, 3)
        out["reconciles"] = self.reconciles
        return out


@dataclass
class LoadItem:
    """A landing file being processed in one load."""

    file: LandingFile
    content: FileContent
    changed: bool
    first_seen_at: datetime
    batch_start: datetime
    batch_end: datetime
    snapshot_date: date

    @property
    def file_reason(self) -> str | None:
        """Why every line of the file is quarantined, if it is: it could not be read to its
        end (``truncated_gzip``, ...), or the path was done before with other bytes."""
        return self.content.file_reason or ("content_changed" if self.changed else None)


def now_utc() -> datetime:
    """Now, UTC, naive (the warehouse's timestamps are naive UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)


def mtime_of(ns: int) -> datetime:
    """A file's ``st_mtime_ns`` as the naive UTC timestamp the manifest stores."""
    return datetime(1970, 1, 1) + timedelta(microseconds=ns // 1000)
