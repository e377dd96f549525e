"""One ingestion run: new landing files -> validated Parquet lake + quarantine + manifest.

A run holds an exclusive file lock (``<data>/.ingest.lock``) and the warehouse's single
read-write connection. It works in *loads*: a group of event files (about
``chunk_bytes`` of gzip) or one snapshot file. Each load is atomic and idempotent:

1. DuckDB validates every line of the load's files in one pass (:mod:`.parse`) into a temp
   table; valid events are deduplicated on ``event_id`` against the whole history
   (``raw.event_ids``) and within the load (first received wins), and flagged as bots.
2. Per file, ``lines_in = loaded + quarantined + duplicates`` is checked; a file that does
   not reconcile is left out of the load, recorded as ``failed`` and retried next run, and
   the run raises :class:`ReconciliationError` at the end naming it.
3. Lake and quarantine Parquet files are written into ``_staging`` on the same file system,
   their row counts are read back and checked, then they are renamed (``os.replace``) into
   place under names derived from the load id (a hash of the files' paths and contents).
4. Only then one DuckDB transaction records the manifest rows, the new event ids and the
   output files, and commits.

A crash before the commit leaves Parquet files that ``raw.ingest_outputs`` does not list;
the next run deletes them first, re-reads the same files, forms the same loads, and ends
in the state of one clean run.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from include import warehouse
from include.contracts import (
    CUSTOMER_LAKE_COLUMNS,
    INGEST_MANIFEST_COLUMNS,
    ITEM_LAKE_COLUMNS,
    QUARANTINE_COLUMNS,
    RAW_EVENT_COLUMNS,
)
from include.ingest.landing import FileContent, LandingFile, read_content, scan_landing
from include.ingest.parse import SPECS, DatasetSpec, quarantine_line_sql, staging_sql
from include.settings import Settings, get_settings

log = logging.getLogger(__name__)

#: Manifest statuses that mean "this version of the file is done".
DONE_STATUSES: tuple[str, ...] = ("loaded", "quarantined", "content_changed")
#: User agents of crawlers and scripts (case-insensitive regular expression, RE2).
BOT_USER_AGENT_RE = (
    r"(?i)(bot\b|bot/|crawler|crawl|spider|slurp|python-requests|python-urllib|curl/|wget|"
    r"headless|phantomjs|selenium|puppeteer|playwright|scrapy|httpclient|go-http-client)"
)
#: Test hook: pause (for an hour) before committing load N, after its files are in place.
TEST_PAUSE_ENV = "TRASOS_INGEST_TEST_PAUSE_AT_LOAD"

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
    """

    chunk_bytes: int = 64 << 20
    read_workers: int = 2
    bot_max_events_per_minute: int = 60
    lock_timeout_s: float = 900.0
    late_window_days: int | None = None

    @classmethod
    def from_env(cls) -> IngestConfig:
        env = os.environ
        return cls(
            chunk_bytes=int(env.get("TRASOS_INGEST_CHUNK_BYTES", cls.chunk_bytes)),
            read_workers=int(env.get("TRASOS_INGEST_READ_WORKERS", cls.read_workers)),
            bot_max_events_per_minute=int(
                env.get("TRASOS_BOT_MAX_EVENTS_PER_MINUTE", cls.bot_max_events_per_minute)
            ),
        )


@dataclass
class FileStats:
    """What happened to one landing file in this run (becomes its manifest row)."""

    path: str
    dataset: str
    content_hash: str
    size_bytes: int
    file_mtime: datetime
    first_seen_at: datetime
    status: str
    lines_in: int = 0
    blank_lines: int = 0
    loaded: int = 0
    quarantined: int = 0
    duplicates: int = 0
    late_loaded: int = 0
    bot_events: int = 0
    batch_start: datetime | None = None
    load_id: str | None = None
    loaded_at: datetime | None = None
    error: str | None = None

    def reconciles(self) -> bool:
        return self.lines_in == self.loaded + self.quarantined + self.duplicates

    def row(self) -> tuple:
        return tuple(getattr(self, name) for name, _ in INGEST_MANIFEST_COLUMNS)


@dataclass
class IngestSummary:
    """The batch summary of one run (small: it travels through XCom)."""

    files_found: int = 0
    files_new: int = 0
    files_skipped: int = 0  # already loaded, same bytes
    files_loaded: int = 0
    files_content_changed: int = 0
    files_failed: int = 0
    files_unknown: list[str] = field(default_factory=list)
    orphans_removed: int = 0  # uncommitted Parquet files of a crashed run, deleted first
    loads: int = 0
    lines_in: int = 0
    blank_lines: int = 0
    loaded: int = 0
    quarantined: int = 0
    duplicates: int = 0
    late_loaded: int = 0
    bot_events: int = 0
    events_loaded: int = 0  # the part of ``loaded`` that is events (the rest: snapshot rows)
    reasons: dict[str, int] = field(default_factory=dict)
    event_dates: list[str] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)  # "<dataset>/<snapshot_date>"
    failed: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def reconciles(self) -> bool:
        return self.lines_in == self.loaded + self.quarantined + self.duplicates

    def add(self, stats: FileStats) -> None:
        for name in (
            "lines_in",
            "blank_lines",
            "loaded",
            "quarantined",
            "duplicates",
            "late_loaded",
            "bot_events",
        ):
            setattr(self, name, getattr(self, name) + getattr(stats, name))
        if stats.dataset == "events":
            self.events_loaded += stats.loaded

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["files_unknown"] = self.files_unknown[:20]
        out["event_dates"] = sorted(set(self.event_dates))
        out["seconds"] = round(self.seconds, 3)
        out["reconciles"] = self.reconciles
        return out


# --- locking, connection, schema -------------------------------------------------------------


@contextmanager
def ingest_lock(settings: Settings, timeout_s: float) -> Iterator[None]:
    """Exclusive ``fcntl`` lock on ``<data>/.ingest.lock``: one ingestion at a time, even
    outside Airflow's pool (CLI, tests, a second scheduler). Released when the process dies."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / ".ingest.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
                    raise IngestLockedError(
                        f"another ingestion (pid {holder or '?'}) holds {path} for more than "
                        f"{timeout_s:.0f} s; let it finish, or kill that process"
                    ) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _ddl() -> list[str]:
    def cols(columns: tuple[tuple[str, str], ...]) -> str:
        return ", ".join(f"{name} {typ}" for name, typ in columns)

    return [
        "create schema if not exists raw",
        f"create table if not exists raw.ingest_manifest ({cols(INGEST_MANIFEST_COLUMNS)}, "
        "primary key (path, content_hash))",
        "create table if not exists raw.ingest_outputs (path VARCHAR primary key, "
        "load_id VARCHAR, kind VARCHAR, rows BIGINT, bytes BIGINT, committed_at TIMESTAMP)",
        # every loaded event id, as md5_number(event_id): dedupe across all history
        "create table if not exists raw.event_ids (id_hash UHUGEINT, load_id VARCHAR)",
    ]


def _prepare(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("set TimeZone = 'UTC'")
    con.execute("set enable_progress_bar = false")
    con.execute("set preserve_insertion_order = false")
    for stmt in _ddl():
        con.execute(stmt)


def _empty_select(columns: tuple[tuple[str, str], ...]) -> str:
    return "select " + ", ".join(f"null::{t} as {n}" for n, t in columns) + " limit 0"


def refresh_views(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """(Re)create ``raw.events``, ``raw.items``, ``raw.customers`` and ``raw.quarantine``
    over the Parquet files (an empty typed view while there are none)."""
    con.execute("create schema if not exists raw")
    views = {
        "events": (settings.lake_dir / "events", "event_date", RAW_EVENT_COLUMNS),
        "items": (settings.lake_dir / "catalog", "snapshot_date", ITEM_LAKE_COLUMNS),
        "customers": (settings.lake_dir / "customers", "snapshot_date", CUSTOMER_LAKE_COLUMNS),
    }
    for view, (folder, part, columns) in views.items():
        _create_view(con, f"raw.{view}", folder, f"{part}=*/*.parquet", columns)
    _create_view(
        con,
        "raw.quarantine",
        settings.quarantine_dir / QUARANTINE_FOLDER,
        "*.parquet",
        QUARANTINE_COLUMNS,
    )


def _create_view(
    con: duckdb.DuckDBPyConnection,
    name: str,
    folder: Path,
    pattern: str,
    columns: tuple[tuple[str, str], ...],
) -> None:
    names = ", ".join(n for n, _ in columns)
    if any(folder.glob(pattern)):
        glob = str(folder / pattern).replace("'", "''")
        body = (
            f"select {names} from read_parquet('{glob}', hive_partitioning = false, "
            "union_by_name = true)"
        )
    else:
        body = _empty_select(columns)
    con.execute(f"create or replace view {name} as {body}")


# --- the lake on disk ------------------------------------------------------------------------


class Lake:
    """Paths and atomic file moves of the lake and the quarantine."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.data_dir = settings.data_dir
        self.staging = [settings.lake_dir / "_staging", settings.quarantine_dir / "_staging"]

    def output_folders(self) -> list[Path]:
        folders = [self.settings.lake_dir / folder for folder, _ in LAKE_DATASETS.values()]
        return [*folders, self.settings.quarantine_dir / QUARANTINE_FOLDER]

    def rel(self, path: Path) -> str:
        return path.relative_to(self.data_dir).as_posix()

    def clean_orphans(self, con: duckdb.DuckDBPyConnection) -> list[str]:
        """Delete staging leftovers and Parquet files no committed load lists (a crash
        between rename and commit leaves those); returns what was removed."""
        for folder in self.staging:
            shutil.rmtree(folder, ignore_errors=True)
        known = {row[0] for row in con.execute("select path from raw.ingest_outputs").fetchall()}
        removed: list[str] = []
        for folder in self.output_folders():
            if not folder.exists():
                continue
            for path in sorted(folder.rglob("*")):
                if path.is_file() and self.rel(path) not in known:
                    path.unlink()
                    removed.append(self.rel(path))
            for sub in sorted(folder.rglob("*"), reverse=True):
                if sub.is_dir() and not any(sub.iterdir()):
                    sub.rmdir()
        if removed:
            log.warning(
                "removed %d uncommitted file(s) of a crashed run: %s", len(removed), removed
            )
        return removed

    def staging_dir_paths(self, load_id: str) -> tuple[Path, Path]:
        return self.staging[0] / load_id, self.staging[1] / load_id

    def staging_dir(self, load_id: str) -> tuple[Path, Path]:
        lake_stage, q_stage = self.staging_dir_paths(load_id)
        for d in (lake_stage, q_stage):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
        return lake_stage, q_stage


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- the run ---------------------------------------------------------------------------------


@dataclass
class _Item:
    """A landing file being processed in one load."""

    file: LandingFile
    content: FileContent
    changed: bool
    first_seen_at: datetime
    batch_start: datetime
    batch_end: datetime
    snapshot_date: date


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _mtime(ns: int) -> datetime:
    return datetime(1970, 1, 1) + timedelta(microseconds=ns // 1000)


def ingest(config: IngestConfig | None = None, settings: Settings | None = None) -> IngestSummary:
    """Ingest every new landing file; returns the batch summary.

    Raises :class:`ReconciliationError` (after committing every file that did reconcile)
    when a file's counts do not add up, and :class:`IngestLockedError` when another run
    holds the lock for longer than ``config.lock_timeout_s``.
    """
    cfg = config or IngestConfig.from_env()
    s = settings or get_settings()
    s.ensure_dirs()
    started = time.monotonic()
    summary = IngestSummary()
    with ingest_lock(s, cfg.lock_timeout_s), warehouse.connect(path=s.warehouse_path) as con:
        _prepare(con)
        lake = Lake(s)
        summary.orphans_removed = len(lake.clean_orphans(con))
        files, unknown = scan_landing(s.landing_dir)
        summary.files_found = len(files)
        summary.files_unknown = unknown
        if unknown:
            log.warning(
                "%d landing file(s) outside events/catalog/customers: %s", len(unknown), unknown[:5]
            )
        manifest = _manifest_index(con)
        todo = [f for f in files if not _unchanged(f, manifest)]
        summary.files_skipped = len(files) - len(todo)
        runner = _Runner(con, s, cfg, lake, manifest, summary)
        runner.run(todo)
        refresh_views(con, s)
        for label, took in runner.timings.most_common(12):
            log.info("%7.2f s  %s", took, label)
    summary.seconds = time.monotonic() - started
    if summary.failed:
        names = "; ".join(
            f"{f['path']}: lines_in={f['lines_in']} loaded={f['loaded']} "
            f"quarantined={f['quarantined']} duplicates={f['duplicates']}"
            for f in summary.failed
        )
        raise ReconciliationError(
            f"{len(summary.failed)} landing file(s) did not reconcile and were not loaded "
            f"(they stay 'failed' in raw.ingest_manifest and are retried next run): {names}",
            details={"failed": summary.failed},
        )
    return summary


def _manifest_index(con: duckdb.DuckDBPyConnection) -> dict[str, list[dict[str, Any]]]:
    rows = con.execute(
        "select path, content_hash, size_bytes, file_mtime, status, first_seen_at "
        "from raw.ingest_manifest"
    ).fetchall()
    index: dict[str, list[dict[str, Any]]] = {}
    for path, h, size, mtime, status, first_seen in rows:
        index.setdefault(path, []).append(
            {"hash": h, "size": size, "mtime": mtime, "status": status, "first_seen": first_seen}
        )
    return index


def _unchanged(f: LandingFile, manifest: dict[str, list[dict[str, Any]]]) -> bool:
    """Cheap skip: a done version with the same size and mtime (no need to read it)."""
    return any(
        r["status"] in DONE_STATUSES and r["size"] == f.size and r["mtime"] == _mtime(f.mtime_ns)
        for r in manifest.get(f.path, ())
    )


class _TimedConnection:
    """Times every statement (logged at DEBUG, summed per statement kind for the summary)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, timings: Counter):
        self._con = con
        self.timings = timings

    def execute(self, sql: str, params: Any = None) -> duckdb.DuckDBPyConnection:
        label = " ".join(sql.split()[:6])[:60]
        t0 = time.perf_counter()
        result = self._con.execute(sql, params) if params is not None else self._con.execute(sql)
        took = time.perf_counter() - t0
        self.timings[label] += took
        log.debug("%.3f s  %s", took, label)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


class _Runner:
    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        settings: Settings,
        cfg: IngestConfig,
        lake: Lake,
        manifest: dict[str, list[dict[str, Any]]],
        summary: IngestSummary,
    ):
        self.timings: Counter = Counter()
        self.con = _TimedConnection(con, self.timings)
        self.settings = settings
        self.cfg = cfg
        self.lake = lake
        self.manifest = manifest
        self.summary = summary
        self.late_days = (
            cfg.late_window_days if cfg.late_window_days is not None else settings.late_window_days
        )
        pause = os.environ.get(TEST_PAUSE_ENV)
        self.pause_at = int(pause) if pause else None
        self.load_no = 0

    # planning -----------------------------------------------------------------------------

    def _plan(self, todo: list[LandingFile]) -> list[list[LandingFile]]:
        """Snapshots one file per load; event files in receive order, ~chunk_bytes per load."""
        loads: list[list[LandingFile]] = []
        snapshots = sorted((f for f in todo if f.dataset != "events"), key=LandingFile.sort_key)
        loads.extend([f] for f in snapshots)
        events = sorted((f for f in todo if f.dataset == "events"), key=LandingFile.sort_key)
        current: list[LandingFile] = []
        size = 0
        for f in events:
            if current and size + f.size > self.cfg.chunk_bytes:
                loads.append(current)
                current, size = [], 0
            current.append(f)
            size += f.size
        if current:
            loads.append(current)
        return loads

    def run(self, todo: list[LandingFile]) -> None:
        loads = self._plan(todo)
        if not loads:
            return
        with ThreadPoolExecutor(max(1, self.cfg.read_workers)) as pool:
            # Read ahead while DuckDB works on the current load: at least the next load, and
            # more while the loads read ahead hold less than chunk_bytes (so the first event
            # load is read while the small snapshot loads run; memory stays about two loads).
            pending: dict[int, list[Future[FileContent]]] = {}
            ahead = 0  # next load index to submit

            def read_ahead(current: int) -> None:
                nonlocal ahead
                size = sum(f.size for j in range(current + 1, ahead) for f in loads[j])
                while ahead < len(loads) and (ahead <= current + 1 or size < self.cfg.chunk_bytes):
                    pending[ahead] = [pool.submit(read_content, f.abs_path) for f in loads[ahead]]
                    if ahead > current:
                        size += sum(f.size for f in loads[ahead])
                    ahead += 1

            for i, group in enumerate(loads):
                read_ahead(i)
                t0 = time.perf_counter()
                contents = [fut.result() for fut in pending.pop(i)]
                self.timings["wait for file reads"] += time.perf_counter() - t0
                self._process(group, contents)

    # one load -----------------------------------------------------------------------------

    def _process(self, group: list[LandingFile], contents: list[FileContent]) -> None:
        now = _now()
        items: list[_Item] = []
        for f, content in zip(group, contents, strict=True):
            rows = self.manifest.get(f.path, [])
            same = [r for r in rows if r["hash"] == content.content_hash]
            if any(r["status"] in DONE_STATUSES for r in same):
                # Same bytes dropped again (new mtime): skip; remember the mtime so the
                # next scan skips it without reading.
                self.summary.files_skipped += 1
                self.con.execute(
                    "update raw.ingest_manifest set file_mtime = ? where path = ? "
                    "and content_hash = ?",
                    [_mtime(f.mtime_ns), f.path, content.content_hash],
                )
                continue
            changed = any(r["status"] in DONE_STATUSES for r in rows)
            first_seen = min((r["first_seen"] for r in same), default=now)
            hour = f.batch_hour
            if hour is None and f.dataset != "events" and f.snapshot_date is not None:
                hour = datetime.combine(f.snapshot_date, datetime.min.time())
            items.append(
                _Item(
                    file=f,
                    content=content,
                    changed=changed,
                    first_seen_at=first_seen,
                    batch_start=hour or first_seen,
                    batch_end=(hour + timedelta(hours=1)) if hour else first_seen,
                    snapshot_date=f.snapshot_date or first_seen.date(),
                )
            )
        if not items:
            return
        self.summary.files_new += len(items)
        spec = SPECS[items[0].file.dataset]
        load_id = hashlib.sha256(
            "\n".join(
                f"{i.file.dataset}:{i.file.path}:{i.content.content_hash}" for i in items
            ).encode()
        ).hexdigest()[:20]
        self.load_no += 1
        t0 = time.monotonic()
        stats = self._validate(spec, items, load_id, now)
        self._write_and_commit(spec, items, stats, load_id, now)
        n = sum(st.lines_in for st in stats)
        log.info(
            "load %d (%s, %d file(s), %d lines) in %.2f s",
            self.load_no,
            load_id,
            len(items),
            n,
            time.monotonic() - t0,
        )

    def _register_inputs(self, items: list[_Item]) -> None:
        batches: list[pa.RecordBatch] = []
        schema = pa.schema(
            [("file_id", pa.int32()), ("line_no", pa.int64()), ("line", pa.large_string())]
        )
        for file_id, it in enumerate(items):
            lines = it.content.lines
            n = len(lines)
            step = 1 << 16
            for start in range(0, n, step):
                stop = min(n, start + step)
                batches.append(
                    pa.RecordBatch.from_arrays(
                        [
                            pa.array(np.full(stop - start, file_id, dtype=np.int32)),
                            pa.array(np.arange(start + 1, stop + 1, dtype=np.int64)),
                            lines.slice(start, stop - start),
                        ],
                        schema=schema,
                    )
                )
        self.con.register("lines", pa.Table.from_batches(batches, schema=schema))
        files = pa.table(
            {
                "file_id": pa.array(range(len(items)), pa.int32()),
                "path": [it.file.path for it in items],
                "batch_start": pa.array([it.batch_start for it in items], pa.timestamp("us")),
                "batch_end": pa.array([it.batch_end for it in items], pa.timestamp("us")),
                "changed": [it.changed for it in items],
                "late_days": pa.array([self.late_days] * len(items), pa.int32()),
                "snapshot_date": pa.array([it.snapshot_date for it in items], pa.date32()),
            }
        )
        self.con.register("files", files)
        bad = [
            (
                file_id,
                b.line_no,
                "content_changed" if it.changed else b.reason,
                b.raw_line,
                b.line_bytes,
            )
            for file_id, it in enumerate(items)
            for b in it.content.bad_lines
        ]
        self.con.register(
            "bad_lines",
            pa.table(
                {
                    "file_id": pa.array([b[0] for b in bad], pa.int32()),
                    "line_no": pa.array([b[1] for b in bad], pa.int64()),
                    "reason": pa.array([b[2] for b in bad], pa.string()),
                    "raw_line": pa.array([b[3] for b in bad], pa.string()),
                    "line_bytes": pa.array([b[4] for b in bad], pa.int64()),
                }
            ),
        )

    def _validate(
        self, spec: DatasetSpec, items: list[_Item], load_id: str, now: datetime
    ) -> list[FileStats]:
        """Validate the load's lines into ``staged``, find duplicates and bots; per-file
        counts with the reconciliation check."""
        con = self.con
        self._register_inputs(items)
        con.execute(staging_sql(spec))
        # Duplicates: a narrow table of the valid lines that are not loaded. Ids compare by
        # their 128-bit MD5 (raw.event_ids keeps only that: 16 bytes an id).
        history = (
            """seen as (
                select v.file_id, v.line_no from valid v
                semi join raw.event_ids e on e.id_hash = v.h
            ),"""
            if spec.name == "events"
            else "seen as (select file_id, line_no from valid where false),"
        )
        con.execute(
            f"""
            create or replace temp table dups as
            with valid as (
                select file_id, line_no, md5_number(v_{spec.key}) as h
                from staged where reason is null and not is_blank
            ),
            {history}
            repeated as (select h from valid group by h having count(*) > 1),
            later as (
                select file_id, line_no from (
                    select v.file_id, v.line_no,
                           row_number() over (partition by v.h order by v.file_id, v.line_no) as rn
                    from valid v semi join repeated r on r.h = v.h
                ) where rn > 1
            )
            select * from seen union select * from later
            """
        )
        if spec.name == "events":
            con.execute(
                f"""
                create or replace temp table rate_bots as
                select distinct v_anonymous_id as anonymous_id
                from staged s anti join dups d on d.file_id = s.file_id and d.line_no = s.line_no
                where s.reason is null and not s.is_blank
                group by v_anonymous_id, date_trunc('minute', v_event_time)
                having count(*) > {int(self.cfg.bot_max_events_per_minute)}
                """
            )
        counts = {
            row[0]: row[1:]
            for row in con.execute(
                """
                select file_id, count(*), count(*) filter (where is_blank),
                       count(*) filter (where reason is not null),
                       count(*) filter (where not is_blank and reason is null)
                from staged group by file_id
                """
            ).fetchall()
        }
        dup_counts = dict(
            con.execute("select file_id, count(*) from dups group by file_id").fetchall()
        )
        stats: list[FileStats] = []
        for file_id, it in enumerate(items):
            n_rows, blank_sql, quarantined_sql, candidates = counts.get(file_id, (0, 0, 0, 0))
            duplicates = dup_counts.get(file_id, 0)
            c = it.content
            utf8_blanked = sum(1 for b in c.bad_lines if b.reason == "invalid_utf8")
            blank = blank_sql - utf8_blanked
            st = FileStats(
                path=it.file.path,
                dataset=it.file.dataset,
                content_hash=c.content_hash,
                size_bytes=it.file.size,
                file_mtime=_mtime(it.file.mtime_ns),
                first_seen_at=it.first_seen_at,
                status="loaded",
                lines_in=c.lines_total - blank,
                blank_lines=blank,
                loaded=candidates - duplicates,
                quarantined=quarantined_sql + len(c.bad_lines),
                duplicates=duplicates,
                batch_start=it.batch_start,
                load_id=load_id,
                error=c.problem,
            )
            problems = []
            if n_rows != c.n_lines:
                problems.append(f"DuckDB saw {n_rows} lines, the file has {c.n_lines}")
            if not st.reconciles():
                problems.append(
                    f"lines_in {st.lines_in} != loaded {st.loaded} + quarantined "
                    f"{st.quarantined} + duplicates {st.duplicates}"
                )
            if problems:
                st.status = "failed"
                st.error = "; ".join(problems)
            elif it.changed:
                st.status = "content_changed"
            elif st.loaded == 0 and st.quarantined > 0 and c.problem:
                st.status = "quarantined"
            stats.append(st)
        return stats

    def _loaded_sql(self, spec: DatasetSpec, now: datetime, keep: str = "true") -> str:
        """SELECT of the rows that load (lake columns + file_id, late, is_bot)."""
        received = f"TIMESTAMP '{now.isoformat(sep=' ')}'"
        exprs: list[str] = []
        fields = {f.column for f in spec.fields}
        bot = (
            f"(regexp_matches(coalesce(c.v_user_agent, ''), '{BOT_USER_AGENT_RE}') "
            "or c.v_anonymous_id in (select anonymous_id from rate_bots))"
            if spec.name == "events"
            else "false"
        )
        for name, typ in spec.lake_columns:
            if name == "received_at":
                expr = received
            elif name == "source_file":
                expr = "f.path"
            elif name == "source_line":
                expr = "c.line_no"
            elif name == "event_date":
                expr = "c.v_event_time::DATE"
            elif name == "snapshot_date":
                expr = "f.snapshot_date"
            elif name == "is_bot":
                expr = bot
            elif name in fields:
                expr = f"c.v_{name}"
            else:
                raise ValueError(f"{spec.name}: no source for lake column {name!r}")
            exprs.append(f"cast({expr} as {typ}) as {name}")
        late = "c.v_event_time < f.batch_start" if spec.name == "events" else "false"
        extra = "" if spec.name == "events" else f", {bot} as is_bot"
        return f"""
            select c.file_id, {late} as late{extra}, {", ".join(exprs)}
            from staged c
            join files f on f.file_id = c.file_id
            anti join dups d on d.file_id = c.file_id and d.line_no = c.line_no
            where c.reason is null and not c.is_blank and {keep}
        """

    # writing ------------------------------------------------------------------------------

    def _write_and_commit(
        self,
        spec: DatasetSpec,
        items: list[_Item],
        stats: list[FileStats],
        load_id: str,
        now: datetime,
    ) -> None:
        con = self.con
        s = self.summary
        failed_ids = [i for i, st in enumerate(stats) if st.status == "failed"]

        def keep(alias: str = "") -> str:
            if not failed_ids:
                return "true"
            return f"{alias}file_id not in ({', '.join(map(str, failed_ids))})"

        folder, columns = LAKE_DATASETS[spec.name]
        lake_stage, q_stage = self.lake.staging_dir(load_id)
        names = ", ".join(n for n, _ in columns)
        outputs: list[tuple[Path, Path, str, int]] = []  # (staged, final, kind, rows)

        # The rows that load, once; then one plain COPY per partition (DuckDB's PARTITION_BY
        # writer costs about twice as much CPU for the same bytes).
        con.execute(
            "create or replace temp table loaded as " + self._loaded_sql(spec, now, keep("c."))
        )
        for file_id, late, bots in con.execute(
            "select file_id, count(*) filter (where late), count(*) filter (where is_bot) "
            "from loaded group by file_id"
        ).fetchall():
            stats[file_id].late_loaded, stats[file_id].bot_events = late, bots
        n_final = sum(st.loaded for st in stats if st.status != "failed")
        if n_final:
            partitions = [
                r[0]
                for r in con.execute(
                    f"select distinct {spec.partition}::VARCHAR from loaded order by 1"
                ).fetchall()
            ]
            for value in partitions:
                part = f"{spec.partition}={value}"
                staged = lake_stage / part / f"part-{load_id}.parquet"
                staged.parent.mkdir(parents=True)
                con.execute(
                    f"copy (select {names} from loaded where {spec.partition} = '{value}') "
                    f"to '{staged}' (format parquet, compression zstd, compression_level 1)"
                )
                final = self.settings.lake_dir / folder / part / staged.name
                outputs.append((staged, final, spec.name, 0))

        q_cols = ", ".join(n for n, _ in QUARANTINE_COLUMNS)
        quarantined_at = f"TIMESTAMP '{now.isoformat(sep=' ')}'"
        event_id = "s.v_event_id" if spec.name == "events" else "null::VARCHAR"
        raw_line, line_bytes = quarantine_line_sql("l.line")
        q_sql = f"""
            select '{spec.name}' as dataset, f.path as source_file, s.line_no as source_line,
                   s.reason, {event_id} as event_id, {raw_line} as raw_line,
                   {line_bytes} as line_bytes, '{load_id}' as load_id,
                   {quarantined_at} as quarantined_at
            from staged s join files f on f.file_id = s.file_id
            join lines l on l.file_id = s.file_id and l.line_no = s.line_no
            where s.reason is not null and {keep("s.")}
            union all
            select '{spec.name}', f.path, b.line_no, b.reason, null, b.raw_line, b.line_bytes,
                   '{load_id}', {quarantined_at}
            from bad_lines b join files f on f.file_id = b.file_id
            where {keep("b.")}
        """
        # counted without the join to the lines (which only supplies the text)
        n_q = con.execute(
            f"select (select count(*) from staged s where s.reason is not null and {keep('s.')})"
            f" + (select count(*) from bad_lines b where {keep('b.')})"
        ).fetchall()[0][0]
        if n_q:
            staged_q = q_stage / f"part-{load_id}.parquet"
            con.execute(
                f"copy (select {q_cols} from ({q_sql}) order by source_file, source_line) "
                f"to '{staged_q}' (format parquet, compression zstd, compression_level 1)"
            )
            final_q = self.settings.quarantine_dir / QUARANTINE_FOLDER / staged_q.name
            outputs.append((staged_q, final_q, "quarantine", 0))

        # Read back what was written: the per-file counts must match before anything moves.
        self._verify_outputs(spec, outputs, stats, failed_ids)

        con.execute("begin transaction")
        try:
            if spec.name == "events" and n_final:
                con.execute(
                    f"insert into raw.event_ids select md5_number(event_id), '{load_id}' "
                    "from loaded"
                )
            for st in stats:
                st.loaded_at = now if st.status != "failed" else None
            manifest = pa.Table.from_pylist(
                [
                    dict(zip([n for n, _ in INGEST_MANIFEST_COLUMNS], st.row(), strict=True))
                    for st in stats
                ]
            )
            self.con.register("manifest_rows", manifest)
            cols = ", ".join(n for n, _ in INGEST_MANIFEST_COLUMNS)
            casts = ", ".join(f"cast({n} as {t})" for n, t in INGEST_MANIFEST_COLUMNS)
            con.execute(
                f"insert or replace into raw.ingest_manifest ({cols}) select {casts} "
                "from manifest_rows"
            )
            moved: list[tuple[str, str, str, int, int]] = []
            for staged, final, kind, _ in outputs:
                final.parent.mkdir(parents=True, exist_ok=True)
                rows = pq_rows(staged)
                size = staged.stat().st_size
                _fsync(staged)
                os.replace(staged, final)
                moved.append((self.lake.rel(final), load_id, kind, rows, size))
            for d in {final.parent for _, final, _, _ in outputs}:
                _fsync(d)
            if moved:
                con.executemany(
                    "insert or replace into raw.ingest_outputs values (?, ?, ?, ?, ?, ?)",
                    [(*m, now) for m in moved],
                )
            if self.pause_at == self.load_no:
                print(
                    f"TEST PAUSE before commit of load {self.load_no}", file=sys.stderr, flush=True
                )
                time.sleep(3600)
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        finally:
            for d in self.lake.staging_dir_paths(load_id):
                shutil.rmtree(d, ignore_errors=True)

        # summary
        reasons = con.execute(
            f"""select reason, count(*) from (
                  select reason from staged where reason is not null and {keep()}
                  union all select reason from bad_lines where {keep()})
                group by reason"""
        ).fetchall()
        counter = Counter(s.reasons)
        for reason, n in reasons:
            counter[reason] += n
        s.reasons = dict(sorted(counter.items()))
        if spec.name == "events" and n_final:
            s.event_dates.extend(
                p.parent.name.split("=", 1)[1] for _, p, kind, _ in outputs if kind == "events"
            )
        s.loads += 1
        for st, it in zip(stats, items, strict=True):
            if st.status == "failed":
                s.files_failed += 1
                s.failed.append(
                    {
                        k: getattr(st, k)
                        for k in (
                            "path",
                            "lines_in",
                            "loaded",
                            "quarantined",
                            "duplicates",
                            "error",
                        )
                    }
                )
                continue
            s.add(st)
            if st.status == "content_changed":
                s.files_content_changed += 1
            else:
                s.files_loaded += 1
            if spec.name != "events" and st.loaded:
                s.snapshots.append(f"{spec.name}/{it.snapshot_date.isoformat()}")
            self.manifest.setdefault(st.path, []).append(
                {
                    "hash": st.content_hash,
                    "size": st.size_bytes,
                    "mtime": st.file_mtime,
                    "status": st.status,
                    "first_seen": st.first_seen_at,
                }
            )

    def _verify_outputs(
        self,
        spec: DatasetSpec,
        outputs: list[tuple[Path, Path, str, int]],
        stats: list[FileStats],
        failed_ids: list[int],
    ) -> None:
        lake_files = [str(o[0]) for o in outputs if o[2] != "quarantine"]
        q_files = [str(o[0]) for o in outputs if o[2] == "quarantine"]
        written_lake: dict[str, int] = {}
        written_q: dict[str, int] = {}
        if lake_files:
            written_lake = dict(
                self.con.execute(
                    "select source_file, count(*) from read_parquet(?) group by 1", [lake_files]
                ).fetchall()
            )
        if q_files:
            written_q = dict(
                self.con.execute(
                    "select source_file, count(*) from read_parquet(?) group by 1", [q_files]
                ).fetchall()
            )
        wrong = []
        for i, st in enumerate(stats):
            if i in failed_ids:
                continue
            got = (written_lake.get(st.path, 0), written_q.get(st.path, 0))
            if got != (st.loaded, st.quarantined):
                wrong.append(
                    f"{st.path}: expected loaded={st.loaded} quarantined={st.quarantined}, "
                    f"Parquet has {got[0]} and {got[1]}"
                )
        if wrong:
            raise ReconciliationError(
                "written Parquet does not match the validated counts (nothing was committed): "
                + "; ".join(wrong),
                details={"files": wrong},
            )


def pq_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows
