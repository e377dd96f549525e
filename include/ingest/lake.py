"""The lake and the quarantine on disk: views over them, staged Parquet, moves into place.

A load writes its Parquet files into ``_staging/<load_id>/`` on the same file system, reads
their row counts back (:meth:`Lake.verify`), and only then moves them into place
(:meth:`Lake.move_into_place`) inside the load's transaction. A crash before the commit leaves
files that ``raw.ingest_outputs`` does not list: :meth:`Lake.clean_orphans` deletes them first.

On an object store (``TRASOS_STORE_URL=s3://...``, :mod:`include.storage`) the staging folder
is local, "move into place" is an upload to the final key (no rename), and the commit is still
the warehouse transaction that lists the objects in ``raw.ingest_outputs``; the ``raw`` views
read exactly the committed objects, so an upload whose commit never came is invisible to them.

Layout (``<load_id>`` = hash of the load's file paths and contents)::

    lake/events/event_date=YYYY-MM-DD/part-<load_id>.parquet
    lake/catalog/snapshot_date=YYYY-MM-DD/part-<load_id>.parquet
    lake/customers/snapshot_date=YYYY-MM-DD/part-<load_id>.parquet
    quarantine/landing/part-<load_id>.parquet
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from common.fs import fsync_dir
from include.contracts import (
    CUSTOMER_LAKE_COLUMNS,
    ITEM_LAKE_COLUMNS,
    QUARANTINE_COLUMNS,
    RAW_EVENT_COLUMNS,
)
from include.ingest.model import (
    LAKE_DATASETS,
    QUARANTINE_FOLDER,
    FileStats,
    ReconciliationError,
)
from include.settings import Settings

log = logging.getLogger(__name__)

PARQUET_OPTIONS = "format parquet, compression zstd, compression_level 1"


def _empty_select(columns: tuple[tuple[str, str], ...]) -> str:
    return "select " + ", ".join(f"null::{t} as {n}" for n, t in columns) + " limit 0"


def refresh_views(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """(Re)create ``raw.events``, ``raw.items``, ``raw.customers`` and ``raw.quarantine``
    over the Parquet files (an empty typed view while there are none)."""
    con.execute("create schema if not exists raw")
    if settings.store.remote:
        _refresh_remote_views(con, settings)
        return
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


def _refresh_remote_views(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Views over the committed objects (``raw.ingest_outputs``), by URL: every reader of the
    warehouse registers the store on its connection (:func:`include.warehouse.connect`)."""
    store = settings.store
    store.register(con)
    views = {
        "events": ("events", RAW_EVENT_COLUMNS),
        "items": ("catalog", ITEM_LAKE_COLUMNS),
        "customers": ("customers", CUSTOMER_LAKE_COLUMNS),
        "quarantine": ("quarantine", QUARANTINE_COLUMNS),
    }
    for view, (kind, columns) in views.items():
        keys = [
            k
            for (k,) in con.execute(
                "select path from raw.ingest_outputs where kind = ? order by path", [kind]
            ).fetchall()
        ]
        names = ", ".join(n for n, _ in columns)
        if keys:
            urls = ", ".join("'" + store.url(k).replace("'", "''") + "'" for k in keys)
            body = (
                f"select {names} from read_parquet([{urls}], hive_partitioning = false, "
                "union_by_name = true)"
            )
        else:
            body = _empty_select(columns)
        con.execute(f"create or replace view raw.{view} as {body}")


@dataclass(frozen=True)
class Output:
    """One Parquet file of a load: written to ``staged``, committed under the store key
    ``final`` (``lake/events/event_date=.../part-<load_id>.parquet``)."""

    staged: Path
    final: str
    kind: str  # the dataset ("events", "catalog", "customers") or "quarantine"


class Lake:
    """Paths and atomic file moves of the lake and the quarantine."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.data_dir = settings.data_dir
        self.store = settings.store
        if self.store.remote:  # staged on local disk, then uploaded
            local = settings.data_dir / ".lake_staging"
            self.staging = [local / "lake", local / "quarantine"]
        else:
            self.staging = [settings.lake_dir / "_staging", settings.quarantine_dir / "_staging"]

    def output_folders(self) -> list[Path]:
        folders = [self.settings.lake_dir / folder for folder, _ in LAKE_DATASETS.values()]
        return [*folders, self.settings.quarantine_dir / QUARANTINE_FOLDER]

    def output_prefixes(self) -> list[str]:
        return [
            *(f"lake/{folder}" for folder, _ in LAKE_DATASETS.values()),
            f"quarantine/{QUARANTINE_FOLDER}",
        ]

    def rel(self, path: Path) -> str:
        return path.relative_to(self.data_dir).as_posix()

    def clean_orphans(self, con: duckdb.DuckDBPyConnection) -> list[str]:
        """Delete staging leftovers and Parquet files no committed load lists (a crash
        between rename and commit leaves those); returns what was removed."""
        for folder in self.staging:
            shutil.rmtree(folder, ignore_errors=True)
        known = {row[0] for row in con.execute("select path from raw.ingest_outputs").fetchall()}
        removed: list[str] = []
        if self.store.remote:
            for prefix in self.output_prefixes():
                for key in self.store.files(prefix):
                    if key not in known:
                        self.store.remove(key)
                        removed.append(key)
            if removed:
                log.warning(
                    "removed %d uncommitted object(s) of a crashed run: %s", len(removed), removed
                )
            return removed
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

    def stage_partitions(
        self, con: Any, dataset: str, partition: str, load_id: str, source: str = "loaded"
    ) -> list[Output]:
        """One Parquet file per ``partition`` value of ``source`` (a plain COPY per
        partition: DuckDB's PARTITION_BY writer costs about twice the CPU for the same bytes)."""
        folder, columns = LAKE_DATASETS[dataset]
        names = ", ".join(n for n, _ in columns)
        lake_stage = self.staging_dir_paths(load_id)[0]
        outputs = []
        values = con.execute(f"select distinct {partition}::VARCHAR from {source} order by 1")
        for (value,) in values.fetchall():
            part = f"{partition}={value}"
            staged = lake_stage / part / f"part-{load_id}.parquet"
            staged.parent.mkdir(parents=True)
            con.execute(
                f"copy (select {names} from {source} where {partition} = '{value}') "
                f"to '{staged}' ({PARQUET_OPTIONS})"
            )
            final = f"lake/{folder}/{part}/{staged.name}"
            outputs.append(Output(staged, final, dataset))
        return outputs

    def stage_quarantine(self, con: Any, select_sql: str, load_id: str) -> Output:
        """The load's quarantined lines (``select_sql`` yields the quarantine columns)."""
        q_cols = ", ".join(n for n, _ in QUARANTINE_COLUMNS)
        staged = self.staging_dir_paths(load_id)[1] / f"part-{load_id}.parquet"
        con.execute(
            f"copy (select {q_cols} from ({select_sql}) order by source_file, source_line) "
            f"to '{staged}' ({PARQUET_OPTIONS})"
        )
        final = f"quarantine/{QUARANTINE_FOLDER}/{staged.name}"
        return Output(staged, final, "quarantine")

    def verify(self, con: Any, outputs: list[Output], stats: list[FileStats]) -> None:
        """Read back what was written: the per-file counts of every file that is not
        ``failed`` must match before anything moves."""
        written: dict[bool, dict[str, int]] = {False: {}, True: {}}  # is_quarantine -> counts
        for is_q in (False, True):
            files = [str(o.staged) for o in outputs if (o.kind == "quarantine") == is_q]
            if files:
                written[is_q] = dict(
                    con.execute(
                        "select source_file, count(*) from read_parquet(?) group by 1", [files]
                    ).fetchall()
                )
        wrong = []
        for st in stats:
            if st.status == "failed":
                continue
            got = (written[False].get(st.path, 0), written[True].get(st.path, 0))
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

    def move_into_place(
        self, outputs: list[Output], load_id: str
    ) -> list[tuple[str, str, str, int, int]]:
        """Move staged files to their final names (durably); returns the ``ingest_outputs``
        rows (path, load_id, kind, rows, bytes). Call inside the load's transaction."""
        moved = []
        for o in outputs:
            rows, size = pq_rows(o.staged), o.staged.stat().st_size
            self.store.put_file(o.staged, o.final, sync_dir=False)
            moved.append((o.final, load_id, o.kind, rows, size))
        if not self.store.remote:
            for folder in {self.store.local_path(o.final).parent for o in outputs}:
                fsync_dir(folder)
        return moved

    def drop_staging(self, load_id: str) -> None:
        for d in self.staging_dir_paths(load_id):
            shutil.rmtree(d, ignore_errors=True)


def pq_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows
