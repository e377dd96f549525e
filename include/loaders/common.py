"""Shared plumbing of the dataset loaders: paths, a light DuckDB session, atomic writes.

A loader maps one public dataset onto the landing-zone contract (``../shared/DESIGN.md``,
:mod:`include.contracts`). It does the heavy work in DuckDB SQL and hands this module a query
with **one row per source row** (``MAPPED_COLUMNS``); :meth:`LoaderRun.write_events` then

1. adds ``event_id = '<dataset>-<event_key>'`` and the generic checks (time in range, known
   event type, anonymous id set, product events carry an item id): a row that fails a check is
   not written but counted under ``skipped[<reason>]``, so ``source_rows = written + skipped``;
2. writes the good rows with one ``COPY ... (FORMAT json, COMPRESSION gzip, PARTITION_BY ...)``
   as hidden temp files ``.tmp-batch-<dataset>-*.tmp.gz`` in the hour directories;
3. renames each to ``landing/events/date=YYYY-MM-DD/hour=HH/batch-<dataset>.jsonl.gz`` with
   ``os.replace`` (atomic), leaves byte-identical files untouched (ingestion quarantines a
   file whose bytes change) and deletes this dataset's files from hours that a re-run no
   longer produces. Re-running a loader therefore changes nothing twice. Run one instance
   of a loader at a time: a run removes its dataset's temp-file leftovers.

Snapshots (catalog, customers) are written to ``landing/_loader/.tmp-<dataset>-<pid>/`` (ignored
by ingestion: it starts with ``_``) and renamed to ``snapshot_date=YYYY-MM-DD/<file>``. The run
ends with ``landing/_loader/<dataset>.json``: source rows, written, skipped by reason, files,
and the field mapping.

Ids are the source's own ids (event and order ids are prefixed with the dataset name), so
load one dataset per data directory: user and item ids of different datasets would collide.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from common.contracts import EVENT_TYPES, PRODUCT_EVENT_TYPES
from common.fs import atomic_write_text, replace_durably
from include.contracts import CONTEXT_KEYS, CUSTOMER_COLUMNS, ITEM_COLUMNS
from include.settings import REPO_ROOT, get_settings

REAL_DATA_ENV = "TRASOS_REAL_DATA_DIR"
DEFAULT_REAL_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "real"

LOADER_DIR_NAME = "_loader"  # under landing/; ingestion ignores paths starting with '_'
CATALOG_FILE = "items.jsonl.gz"
CUSTOMERS_FILE = "customers.jsonl.gz"

# Events outside this window are skipped ('event_time_out_of_range'), e.g. Taobao's unix 15.
MIN_EVENT_TIME = "2000-01-01"
MAX_FUTURE_DAYS = 1

# What a loader's events query must return, one row per source row.
MAPPED_COLUMNS: tuple[str, ...] = (
    "event_key",  # VARCHAR unique within the dataset (source row number, 'train-12', ...)
    "skip_reason",  # VARCHAR, NULL when the loader could map the row
    "event_time",  # TIMESTAMP, naive UTC
    "event_type",  # VARCHAR, one of common.contracts.EVENT_TYPES (NULL if unmapped)
    "anonymous_id",
    "user_id",
    "item_id",
    "page",
    "properties",  # JSON object (build with strip_nulls(json_object(...)))
    *CONTEXT_KEYS,  # platform, country, user_agent, experiment_id, variant (null: no experiment)
)

# Generic skip reasons (loaders may add their own, e.g. 'unmapped_event_type:<raw value>').
SKIP_MISSING_TIME = "missing_event_time"
SKIP_TIME_RANGE = "event_time_out_of_range"
SKIP_EVENT_TYPE = "unmapped_event_type"
SKIP_ANONYMOUS_ID = "missing_anonymous_id"
SKIP_ITEM_ID = "missing_item_id"


def real_data_dir(override: Path | str | None = None) -> Path:
    """Folder of the public datasets: ``override``, else ``$TRASOS_REAL_DATA_DIR``, else default.

    Relative paths resolve against the repository root, like every path in settings.
    """
    value = override or os.environ.get(REAL_DATA_ENV)
    path = Path(value) if value else DEFAULT_REAL_DATA_DIR
    return (path if path.is_absolute() else REPO_ROOT / path).resolve()


def source_file(source_dir: Path | str | None, folder: str, name: str) -> Path:
    """Path of one dataset file; a clear error if it is not there."""
    path = real_data_dir(source_dir) / folder / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: set {REAL_DATA_ENV} (or --source) to the folder of the public "
            f"datasets (default {DEFAULT_REAL_DATA_DIR})"
        )
    return path


def sql_str(value: str | Path) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_in(values: Sequence[str]) -> str:
    """``('a', 'b')`` for an IN list."""
    return "(" + ", ".join(sql_str(v) for v in values) + ")"


def check_header(path: Path, expected: Sequence[str], sep: str = ",") -> None:
    """Fail with a clear message when a source file's header is not the documented one."""
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        header = fh.readline().rstrip("\r\n").split(sep)
    if header != list(expected):
        raise ValueError(
            f"{path}: header {header} differs from the documented {list(expected)}; "
            "check the dataset's SOURCE.md and update the loader's column list"
        )


def numbered_csv(path: Path, columns: Sequence[str], *, header: bool = True, sep: str = ",") -> str:
    """SQL for a CSV/TSV file read as text, with a 1-based ``source_row`` in file order.

    Every column is VARCHAR (casts happen in the loader with ``try_cast``, so a bad value
    becomes a skip reason instead of a failed or silently shortened read). ``strict_mode``
    stays on: a row with the wrong number of fields fails the load loudly.
    The session runs single-threaded, so ``row_number() over ()`` follows the file order.
    """
    cols = "{" + ", ".join(f"{sql_str(c)}: 'VARCHAR'" for c in columns) + "}"
    return (
        "select row_number() over () as source_row, * from read_csv("
        f"{sql_str(path)}, header = {str(header).lower()}, delim = {sql_str(sep)}, "
        f"quote = '\"', columns = {cols}, auto_detect = false)"
    )


@dataclass
class TableStats:
    """Reconciled counts of one output (events, catalog or customers)."""

    source_rows: int
    written: int
    skipped: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "source_rows": self.source_rows,
            "written": self.written,
            "skipped": dict(sorted(self.skipped.items())),
            "skipped_total": sum(self.skipped.values()),
            "files": self.files,
            **self.extra,
        }


def _connect() -> duckdb.DuckDBPyConnection:
    # In memory, one thread (2 cores are shared; also makes row_number() follow file order).
    con = duckdb.connect(config={"threads": 1, "memory_limit": "1GB"})
    con.execute("set TimeZone = 'UTC'")
    con.execute("set enable_progress_bar = false")
    # A JSON object without its null members: {"price": 1.0, "order_id": null} -> {"price": 1.0}
    con.execute(
        """
        create or replace temp macro strip_nulls(j) as to_json(map_from_entries(list_filter(
            list_transform(json_keys(j), lambda k: {'k': k, 'v': json_extract(j, '$."' || k || '"')}),
            lambda e: json_type(e.v) <> 'NULL')))
        """
    )
    return con


def _iso_z(col: str) -> str:
    """SQL: naive UTC timestamp -> ISO-8601 with 'Z' (milliseconds only when present)."""
    return (
        f"case when epoch_ms({col}) % 1000 = 0 then strftime({col}, '%Y-%m-%dT%H:%M:%SZ') "
        f"else strftime({col}, '%Y-%m-%dT%H:%M:%S.%gZ') end"
    )


def _same_bytes(a: Path, b: Path) -> bool:
    if not b.exists() or a.stat().st_size != b.stat().st_size:
        return False
    return a.read_bytes() == b.read_bytes()


def _install(tmp_file: Path, target: Path) -> bool:
    """Atomically put ``tmp_file`` at ``target``; returns False if target already had it."""
    if _same_bytes(tmp_file, target):
        tmp_file.unlink()
        return False
    replace_durably(tmp_file, target, fsync=False)  # a loader run is re-run, not recovered
    return True


class LoaderRun:
    """One loader run: a DuckDB session, a temp dir under ``landing/_loader``, the summary."""

    def __init__(self, dataset: str, data_dir: Path | None = None) -> None:
        self.dataset = dataset
        self.data_dir = Path(data_dir) if data_dir else get_settings().data_dir
        self.landing_dir = self.data_dir / "landing"
        self.loader_dir = self.landing_dir / LOADER_DIR_NAME
        self.tmp_dir = self.loader_dir / f".tmp-{dataset}-{os.getpid()}"
        self.con = _connect()
        self.summary: dict[str, object] = {"dataset": dataset, "sources": []}
        self.files_changed = 0

    # -- sources ------------------------------------------------------------------------------
    def register_source(self, name: str, path: Path, sql: str) -> int:
        """Materialise a numbered source as temp table ``name``; returns its row count."""
        self.con.execute(f"create or replace temp table {name} as {sql}")
        rows = self.con.execute(f"select count(*) from {name}").fetchall()[0][0]
        self.summary["sources"].append({"table": name, "path": str(path), "rows": rows})
        return rows

    # -- events -------------------------------------------------------------------------------
    def write_events(self, mapped_sql: str) -> TableStats:
        """Check, count and write the events of ``mapped_sql`` (columns: ``MAPPED_COLUMNS``)."""
        con = self.con
        con.execute(f"create or replace temp table _mapped as {mapped_sql}")
        cols = [r[0] for r in con.execute("describe _mapped").fetchall()]
        if cols != list(MAPPED_COLUMNS):
            raise ValueError(f"{self.dataset}: mapped columns {cols} != {list(MAPPED_COLUMNS)}")
        con.execute(
            f"""
            create or replace temp table _events as
            select
                {sql_str(self.dataset + "-")} || event_key as event_id,
                event_time, event_type, anonymous_id, user_id, item_id, page, properties,
                json_object({", ".join(f"{sql_str(k)}, {k}" for k in CONTEXT_KEYS)}) as context,
                coalesce(
                    skip_reason,
                    case
                        when event_time is null then '{SKIP_MISSING_TIME}'
                        when event_time < timestamp '{MIN_EVENT_TIME}'
                            or event_time > now()::timestamp + interval {MAX_FUTURE_DAYS} day
                            then '{SKIP_TIME_RANGE}'
                        when event_type is null or event_type not in {sql_in(EVENT_TYPES)}
                            then '{SKIP_EVENT_TYPE}'
                        when coalesce(anonymous_id, '') = '' then '{SKIP_ANONYMOUS_ID}'
                        when event_type in {sql_in(PRODUCT_EVENT_TYPES)}
                            and coalesce(item_id, '') = '' then '{SKIP_ITEM_ID}'
                    end
                ) as skip_reason
            from _mapped
            """
        )
        total, distinct_ids = con.execute(
            "select count(*), count(distinct event_id) from _events"
        ).fetchall()[0]
        if total != distinct_ids:
            raise ValueError(f"{self.dataset}: event_key is not unique ({distinct_ids}/{total})")
        skipped = dict(
            con.execute(
                "select skip_reason, count(*) from _events where skip_reason is not null "
                "group by 1 order by 1"
            ).fetchall()
        )
        written, first, last = con.execute(
            f"select count(*), {_iso_z('min(event_time)')}, {_iso_z('max(event_time)')} "
            "from _events where skip_reason is null"
        ).fetchall()[0]
        by_type = dict(
            con.execute(
                "select event_type, count(*) from _events where skip_reason is null "
                "group by 1 order by 1"
            ).fetchall()
        )
        files = self._write_event_files()
        stats = TableStats(
            source_rows=total,
            written=written,
            skipped=skipped,
            files=files,
            extra={"first_event_time": first, "last_event_time": last, "by_type": by_type},
        )
        self._reconcile("events", stats)
        self.summary["events"] = stats.as_dict()
        return stats

    def _write_event_files(self) -> list[str]:
        """One COPY writes every hour file, as hidden temp files beside their targets.

        Temp files (``.tmp-batch-<dataset>-<run>-<uuid>.tmp.gz``) are written straight into
        the hour directories and renamed there: a temp tree elsewhere would double the
        directory creations and removals, which cost milliseconds each on this file system
        (RetailRocket alone has 1,859 hours). Ingestion never sees them: they are neither
        ``*.jsonl.gz`` nor visible names. Leftovers of a crashed run are removed first.
        """
        events_dir = self.landing_dir / "events"
        events_dir.mkdir(parents=True, exist_ok=True)
        name = f"batch-{self.dataset}.jsonl.gz"
        prefix = f".tmp-batch-{self.dataset}-"
        for leftover in events_dir.glob(f"date=*/hour=*/{prefix}*"):
            leftover.unlink()
        run_prefix = f"{prefix}{uuid.uuid4().hex[:12]}-"
        try:
            self.con.execute(
                f"""
                copy (
                    select
                        event_id, {_iso_z("event_time")} as event_time, event_type,
                        anonymous_id, user_id, item_id, page, properties, context,
                        strftime(event_time, '%Y-%m-%d') as date,
                        strftime(event_time, '%H') as hour
                    from _events
                    where skip_reason is null
                    order by event_time, event_id
                ) to {sql_str(events_dir)} (
                    format json, compression gzip, partition_by (date, hour), append,
                    filename_pattern '{run_prefix}{{uuid}}', file_extension 'tmp'
                )
                """
            )
            parts_by_hour: dict[Path, list[Path]] = {}
            for part in events_dir.glob(f"date=*/hour=*/{run_prefix}*"):
                parts_by_hour.setdefault(part.parent, []).append(part)
            written: list[str] = []
            for hour_dir, parts in sorted(parts_by_hour.items()):
                merged = parts[0]
                if len(parts) > 1:  # concatenated gzip members are one valid gzip stream
                    merged = hour_dir / f"{run_prefix}merged.tmp.gz"
                    with merged.open("wb") as dst:
                        for part in sorted(parts):
                            with part.open("rb") as src:
                                shutil.copyfileobj(src, dst)
                            part.unlink()
                target = hour_dir / name
                self.files_changed += _install(merged, target)
                written.append(str(target.relative_to(self.landing_dir)))
        finally:
            for part in events_dir.glob(f"date=*/hour=*/{run_prefix}*"):
                part.unlink()
        # Hours a previous run wrote but this one does not: remove our file there.
        keep = set(written)
        for old in events_dir.glob(f"date=*/hour=*/{name}"):
            if str(old.relative_to(self.landing_dir)) not in keep:
                old.unlink()
                self.files_changed += 1
        return written

    # -- snapshots ----------------------------------------------------------------------------
    def last_event_day(self) -> str:
        """``YYYY-MM-DD`` of the latest written event: the date of snapshots derived from them."""
        return self.con.execute(
            "select strftime(max(event_time), '%Y-%m-%d') from _events where skip_reason is null"
        ).fetchall()[0][0]

    def write_catalog(self, sql: str, snapshot_date: str, **extra: object) -> TableStats:
        """Items of ``sql`` (columns ``ITEM_COLUMNS`` + ``skip_reason``) as a catalog snapshot."""
        return self._write_snapshot(
            "catalog", ITEM_COLUMNS, "item_id", CATALOG_FILE, sql, snapshot_date, extra
        )

    def write_catalog_of_event_items(self) -> TableStats:
        """For sources without item data: a catalog snapshot of the item ids the written
        events name, every attribute unknown (null), dated at the last event's day.

        The marts count only interactions with catalog items (a shop's catalog is what it
        sells); without this snapshot such a source would have no interactions at all.
        """
        attributes = ", ".join(f"null::varchar as {c}" for c in ITEM_COLUMNS[1:])
        sql = f"""
            select item_id, {attributes}, null::varchar as skip_reason
            from (
                select distinct item_id from _events
                where skip_reason is null and coalesce(item_id, '') <> ''
            )
        """
        return self.write_catalog(
            sql,
            self.last_event_day(),
            derived_from="distinct item_id of the written events (ids only)",
        )

    def write_customers(self, sql: str, snapshot_date: str, **extra: object) -> TableStats:
        """Customers of ``sql`` (``CUSTOMER_COLUMNS`` + ``skip_reason``) as a snapshot."""
        return self._write_snapshot(
            "customers", CUSTOMER_COLUMNS, "user_id", CUSTOMERS_FILE, sql, snapshot_date, extra
        )

    def _write_snapshot(
        self,
        kind: str,
        columns: Sequence[str],
        key: str,
        file_name: str,
        sql: str,
        snapshot_date: str,
        extra: dict[str, object],
    ) -> TableStats:
        """One row of ``sql`` is one source row; a missing or repeated key is skipped."""
        con = self.con
        table = f"_{kind}"
        con.execute(f"create or replace temp table {table} as {sql}")
        cols = [r[0] for r in con.execute(f"describe {table}").fetchall()]
        if cols != [*columns, "skip_reason"]:
            raise ValueError(f"{self.dataset} {kind}: columns {cols} != {[*columns]} + skip_reason")
        con.execute(
            f"""
            create or replace temp table {table} as
            select * replace (coalesce(
                skip_reason,
                case when coalesce({key}, '') = '' then 'missing_{key}'
                     when row_number() over (partition by {key} order by _pos) > 1
                         then 'duplicate_{key}' end
            ) as skip_reason)
            from (select *, row_number() over () as _pos from {table})
            order by _pos
            """
        )
        total = con.execute(f"select count(*) from {table}").fetchall()[0][0]
        skipped = dict(
            con.execute(
                f"select skip_reason, count(*) from {table} where skip_reason is not null "
                "group by 1 order by 1"
            ).fetchall()
        )
        written = total - sum(skipped.values())
        tmp = self.tmp_dir / f"{kind}-{file_name}"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        con.execute(
            f"copy (select {', '.join(columns)} from {table} where skip_reason is null "
            f"order by {key}) to {sql_str(tmp)} (format json, compression gzip)"
        )
        target = self.landing_dir / kind / f"snapshot_date={snapshot_date}" / file_name
        self.files_changed += _install(tmp, target)
        stats = TableStats(
            source_rows=total,
            written=written,
            skipped=skipped,
            files=[str(target.relative_to(self.landing_dir))],
            extra={"snapshot_date": snapshot_date, **extra},
        )
        self._reconcile(kind, stats)
        self.summary[kind] = stats.as_dict()
        return stats

    # -- summary ------------------------------------------------------------------------------
    def _reconcile(self, kind: str, stats: TableStats) -> None:
        if stats.source_rows != stats.written + sum(stats.skipped.values()):
            raise AssertionError(
                f"{self.dataset} {kind}: {stats.source_rows} source rows != "
                f"{stats.written} written + {sum(stats.skipped.values())} skipped"
            )

    def finish(self, **info: object) -> dict[str, object]:
        """Write ``landing/_loader/<dataset>.json`` (atomically) and return the summary."""
        self.summary.update(info)
        self.summary["files_changed"] = self.files_changed
        self.summary["loaded_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        atomic_write_text(
            self.loader_dir / f"{self.dataset}.json",
            json.dumps(self.summary, indent=2, default=str) + "\n",
        )
        return self.summary

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self.tmp_dir, ignore_errors=True)


@contextmanager
def loader_run(dataset: str, data_dir: Path | None = None) -> Iterator[LoaderRun]:
    """A :class:`LoaderRun` whose temp files are removed however the run ends."""
    run = LoaderRun(dataset, data_dir)
    try:
        yield run
    finally:
        run.close()
