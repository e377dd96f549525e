"""One ingestion run: new landing files -> validated Parquet lake + quarantine + manifest.

A run holds an exclusive file lock (``<data>/.ingest.lock``) and the warehouse's single
read-write connection. It works in *loads*: a group of event files (about
``chunk_bytes`` of gzip) or one snapshot file. Each load is atomic and idempotent:

1. DuckDB validates every line of the load's files in one pass (:mod:`.validate`) into a temp
   table; valid events are deduplicated on ``event_id`` against the whole history
   (``raw.event_ids``) and within the load (first received wins), and flagged as bots.
2. Per file, ``lines_in = loaded + quarantined + duplicates`` is checked; a file that does
   not reconcile is left out of the load, recorded as ``failed`` and retried next run, and
   the run raises :class:`ReconciliationError` at the end naming it.
3. Lake and quarantine Parquet files are written into ``_staging`` on the same file system,
   their row counts are read back and checked, then they are renamed into place under names
   derived from the load id (a hash of the files' paths and contents) (:mod:`.lake`).
4. Only then one DuckDB transaction records the manifest rows, the new event ids and the
   output files, and commits (:mod:`.manifest`).

A crash before the commit leaves Parquet files that ``raw.ingest_outputs`` does not list;
the next run deletes them first, re-reads the same files, forms the same loads, and ends
in the state of one clean run.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

import duckdb

from include import warehouse
from include.ingest import manifest as bookkeeping
from include.ingest.lake import Lake, refresh_views
from include.ingest.landing import FileContent, LandingFile, read_content, scan_landing
from include.ingest.lock import ingest_lock
from include.ingest.manifest import Manifest
from include.ingest.model import (
    DONE_STATUSES,
    SETTLED_STATUSES,
    FileStats,
    IngestConfig,
    IngestLockedError,
    IngestSummary,
    LoadItem,
    ReconciliationError,
    now_utc,
)
from include.ingest.parse import SPECS, DatasetSpec
from include.ingest.validate import LoadValidator
from include.settings import Settings, get_settings

log = logging.getLogger(__name__)


class IngestHooks:
    """Points of a load that a test can observe or interrupt (crash tests kill the process
    there). Production runs pass none; the default does nothing.

    ``point`` is one of :data:`HOOK_POINTS`; ``load_no`` counts the run's loads from 1.
    """

    def at(self, point: str, load_no: int) -> None:
        """Called at ``point`` of load ``load_no``."""


#: scanned: the landing zone listed, nothing read (load_no 0); staged: a load's Parquet
#: written and verified, nothing moved; moved: its files in place, transaction open;
#: committed: the load is done.
HOOK_POINTS: tuple[str, ...] = ("scanned", "staged", "moved", "committed")


def ingest(
    config: IngestConfig | None = None,
    settings: Settings | None = None,
    *,
    hooks: IngestHooks | None = None,
    batch: str | None = None,
) -> IngestSummary:
    """Ingest every new landing file; returns the batch summary.

    ``batch`` names the run for its retries (``load_new_files`` passes the Airflow run id):
    the summary then also counts the loads an earlier, killed try of the same batch committed
    (``loads_resumed``), so the retry's gate checks them and its Asset event announces them.

    Raises :class:`ReconciliationError` (after committing every file that did reconcile)
    when a file's counts do not add up, and :class:`IngestLockedError` when another run
    holds the lock for longer than ``config.lock_timeout_s`` or another process holds the
    warehouse for longer than ``config.warehouse_wait_s``. ``hooks`` are for tests only.
    """
    cfg = config or IngestConfig.from_env()
    s = settings or get_settings()
    s.ensure_dirs()
    started = time.monotonic()
    summary = IngestSummary()
    with (
        ingest_lock(s, cfg.lock_timeout_s),
        _open_warehouse(s, cfg.warehouse_wait_s) as con,
    ):
        bookkeeping.prepare(con)
        lake = Lake(s)
        summary.orphans_removed = len(lake.clean_orphans(con))
        files, unknown = scan_landing(s.landing_dir)
        summary.files_found = len(files)
        summary.files_unknown = unknown
        if unknown:
            log.warning(
                "%d landing file(s) outside events/catalog/customers: %s", len(unknown), unknown[:5]
            )
        manifest = Manifest(con)
        todo = [f for f in files if not manifest.unchanged(f)]
        summary.files_skipped = len(files) - len(todo)
        young = _too_young(todo, cfg.min_file_age_s)
        if young:
            log.info(
                "%d file(s) modified in the last %s s, left for the next run: %s",
                len(young),
                cfg.min_file_age_s,
                [f.path for f in young[:5]],
            )
            summary.files_pending += len(young)
            waiting = {f.path for f in young}
            todo = [f for f in todo if f.path not in waiting]
        hooks = hooks or IngestHooks()
        hooks.at("scanned", 0)
        runner = _Runner(con, s, cfg, lake, manifest, summary, hooks, batch)
        runner.run(todo)
        refresh_views(con, s)
        if batch is not None:
            _resume(summary, bookkeeping.batch_loads(con, batch), runner.load_ids)
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


def _resume(summary: IngestSummary, loads: dict[str, IngestSummary], done_now: set[str]) -> None:
    """Count the batch's loads committed by an earlier try (not by this run) as this run's:
    their files were found unchanged by this run's scan, so they leave ``files_skipped``."""
    for load_id, earlier in loads.items():
        if load_id in done_now:
            continue
        summary.merge(earlier)
        summary.loads_resumed += earlier.loads
        summary.files_skipped = max(0, summary.files_skipped - earlier.files_new)
    if summary.loads_resumed:
        log.info(
            "batch: %d load(s) committed by an earlier try of this run, counted in this summary",
            summary.loads_resumed,
        )


def _too_young(files: list[LandingFile], min_age_s: float) -> list[LandingFile]:
    if min_age_s <= 0:
        return []
    cutoff = time.time_ns() - int(min_age_s * 1e9)
    return [f for f in files if f.mtime_ns > cutoff]


def _open_warehouse(s: Settings, wait_s: float) -> AbstractContextManager[Any]:
    """The warehouse read-write, waiting (bounded, logged) while another process has it open;
    then an :class:`IngestLockedError` that says what to do (Airflow retries the task)."""
    return warehouse.connect(path=s.warehouse_path, wait_s=wait_s, busy_error=IngestLockedError)


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
        manifest: Manifest,
        summary: IngestSummary,
        hooks: IngestHooks,
        batch: str | None = None,
    ):
        self.timings: Counter = Counter()
        self.batch = batch
        self.load_ids: set[str] = set()
        self.con = _TimedConnection(con, self.timings)
        self.settings = settings
        self.cfg = cfg
        self.lake = lake
        self.manifest = manifest
        self.summary = summary
        self.hooks = hooks
        late_days = (
            cfg.late_window_days if cfg.late_window_days is not None else settings.late_window_days
        )
        self.validator = LoadValidator(self.con, late_days, cfg.bot_max_events_per_minute)
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
            pending: dict[int, list[Future[FileContent | None]]] = {}
            ahead = 0  # next load index to submit

            def read_ahead(current: int) -> None:
                nonlocal ahead
                size = sum(f.size for j in range(current + 1, ahead) for f in loads[j])
                while ahead < len(loads) and (ahead <= current + 1 or size < self.cfg.chunk_bytes):
                    pending[ahead] = [pool.submit(self._read, f) for f in loads[ahead]]
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

    def _read(self, f: LandingFile) -> FileContent | None:
        """The file's content, or None when it is still being written (its size or mtime
        changed since the scan, or it is gone): left for the next run."""
        try:
            content = read_content(
                f.abs_path,
                plain_text_ok=self.cfg.plain_text_ok(f.path),
                max_line_bytes=self.cfg.max_line_bytes,
            )
            st = f.abs_path.stat()
        except FileNotFoundError:
            return None
        if content.size != f.size or (st.st_size, st.st_mtime_ns) != (f.size, f.mtime_ns):
            return None
        return content

    def _process(self, group: list[LandingFile], contents: list[FileContent | None]) -> None:
        now = now_utc()
        items: list[LoadItem] = []
        for f, content in zip(group, contents, strict=True):
            if content is None:
                log.info("%s changed while it was read: left for the next run", f.path)
                self.summary.files_pending += 1
                continue
            rows = self.manifest.versions(f.path)
            same = [r for r in rows if r["hash"] == content.content_hash]
            if any(r["status"] in DONE_STATUSES for r in same):
                # Same bytes dropped again (new mtime): skip without loading.
                self.summary.files_skipped += 1
                bookkeeping.touch_mtime(self.con, f, content.content_hash)
                continue
            changed = any(r["status"] in SETTLED_STATUSES for r in rows)
            first_seen = min((r["first_seen"] for r in same), default=now)
            hour = f.batch_hour
            if hour is None and f.dataset != "events" and f.snapshot_date is not None:
                hour = datetime.combine(f.snapshot_date, datetime.min.time())
            items.append(
                LoadItem(
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
        spec = SPECS[items[0].file.dataset]
        load_id = hashlib.sha256(
            "\n".join(
                f"{i.file.dataset}:{i.file.path}:{i.content.content_hash}" for i in items
            ).encode()
        ).hexdigest()[:20]
        self.load_no += 1
        t0 = time.monotonic()
        stats = self.validator.validate(spec, items, load_id, now)
        self._write_and_commit(spec, items, stats, load_id, now)
        self.hooks.at("committed", self.load_no)
        log.info(
            "load %d (%s, %d file(s), %d lines) in %.2f s",
            self.load_no,
            load_id,
            len(items),
            sum(st.lines_in for st in stats),
            time.monotonic() - t0,
        )

    def _write_and_commit(
        self,
        spec: DatasetSpec,
        items: list[LoadItem],
        stats: list[FileStats],
        load_id: str,
        now: datetime,
    ) -> None:
        con = self.con
        failed_ids = [i for i, st in enumerate(stats) if st.status == "failed"]

        def keep(alias: str = "") -> str:
            if not failed_ids:
                return "true"
            return f"{alias}file_id not in ({', '.join(map(str, failed_ids))})"

        self.lake.staging_dir(load_id)
        outputs = []
        # The rows that load, once; then one Parquet file per partition.
        con.execute(
            "create or replace temp table loaded as "
            + self.validator.loaded_sql(spec, now, keep("c."))
        )
        for file_id, late, bots in con.execute(
            "select file_id, count(*) filter (where late), count(*) filter (where is_bot) "
            "from loaded group by file_id"
        ).fetchall():
            stats[file_id].late_loaded, stats[file_id].bot_events = late, bots
        n_final = sum(st.loaded for st in stats if st.status != "failed")
        if n_final:
            outputs += self.lake.stage_partitions(con, spec.name, spec.partition, load_id)
        q_select, q_count = self.validator.quarantine_sql(spec, load_id, now, keep)
        if con.execute(q_count).fetchall()[0][0]:
            outputs.append(self.lake.stage_quarantine(con, q_select, load_id))
        # Read back what was written: the per-file counts must match before anything moves.
        self.lake.verify(con, outputs, stats)
        self.hooks.at("staged", self.load_no)

        done = self._load_summary(spec, items, stats, outputs, n_final, keep())
        con.execute("begin transaction")
        try:
            if spec.name == "events" and n_final:
                bookkeeping.record_event_ids(con, load_id)
            for st in stats:
                st.loaded_at = now if st.status != "failed" else None
            bookkeeping.record_files(con, stats)
            if self.batch is not None:
                bookkeeping.record_batch(con, self.batch, load_id, done, now)
            moved = self.lake.move_into_place(outputs, load_id)
            bookkeeping.record_outputs(con, moved, now)
            self.hooks.at("moved", self.load_no)
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        finally:
            self.lake.drop_staging(load_id)
        self.summary.merge(done)
        self.load_ids.add(load_id)
        for st in stats:
            if st.status != "failed":
                self.manifest.remember(st)

    def _load_summary(
        self,
        spec: DatasetSpec,
        items: list[LoadItem],
        stats: list[FileStats],
        outputs: list[Any],
        n_final: int,
        keep: str,
    ) -> IngestSummary:
        """What this load adds to the run's summary."""
        s = IngestSummary(files_new=len(items))
        s.reasons = dict(sorted(self.validator.reasons(keep)))
        if spec.name == "events" and n_final:
            s.event_dates.extend(
                o.final.rsplit("/", 2)[1].split("=", 1)[1] for o in outputs if o.kind == "events"
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
            elif st.status == "unreadable":
                s.files_unreadable += 1
            else:
                s.files_loaded += 1
            if spec.name != "events" and st.loaded:
                s.snapshots.append(f"{spec.name}/{it.snapshot_date.isoformat()}")
        return s
