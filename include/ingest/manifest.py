"""The warehouse's bookkeeping of ingestion (schema ``raw``).

``ingest_manifest``
    One row per (landing path, content hash): the file's status and counts. A status in
    :data:`~include.ingest.model.DONE_STATUSES` means that version of the file is done.
``ingest_outputs``
    Every committed Parquet file of the lake and the quarantine (a file it does not list is
    an orphan of a crashed run).
``event_ids``
    Every loaded event id as ``md5_number(event_id)`` (16 bytes): deduplication across all
    history.
``ingest_batches``
    For a run that names its batch (the Airflow run id of ``load_new_files``): each load it
    committed and what the load added to the run's summary. A retry of a killed try reports
    the loads the killed try committed as its own, so the gate checks them and the Asset
    event that starts the chain is emitted for them (not lost with the killed try).

The rows of one load are written inside the load's transaction (:mod:`.runner`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from include.contracts import INGEST_MANIFEST_COLUMNS
from include.ingest.landing import LandingFile
from include.ingest.model import DONE_STATUSES, FileStats, IngestSummary, mtime_of


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
        "create table if not exists raw.ingest_batches (load_id VARCHAR primary key, "
        "batch VARCHAR, summary JSON, committed_at TIMESTAMP)",
    ]


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    """Session settings of an ingestion connection, and the bookkeeping tables."""
    con.execute("set TimeZone = 'UTC'")
    con.execute("set enable_progress_bar = false")
    con.execute("set preserve_insertion_order = false")
    for stmt in _ddl():
        con.execute(stmt)


class Manifest:
    """The manifest rows in memory, by path (a few per file: one per content version)."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        rows = con.execute(
            "select path, content_hash, size_bytes, file_mtime, status, first_seen_at "
            "from raw.ingest_manifest"
        ).fetchall()
        self.index: dict[str, list[dict[str, Any]]] = {}
        for path, h, size, mtime, status, first_seen in rows:
            self.index.setdefault(path, []).append(
                {
                    "hash": h,
                    "size": size,
                    "mtime": mtime,
                    "status": status,
                    "first_seen": first_seen,
                }
            )

    def versions(self, path: str) -> list[dict[str, Any]]:
        return self.index.get(path, [])

    def unchanged(self, f: LandingFile) -> bool:
        """Cheap skip: a done version with the same size and mtime (no need to read it)."""
        return any(
            r["status"] in DONE_STATUSES
            and r["size"] == f.size
            and r["mtime"] == mtime_of(f.mtime_ns)
            for r in self.versions(f.path)
        )

    def remember(self, st: FileStats) -> None:
        """Add a committed file version (so a later load of this run sees it)."""
        self.index.setdefault(st.path, []).append(
            {
                "hash": st.content_hash,
                "size": st.size_bytes,
                "mtime": st.file_mtime,
                "status": st.status,
                "first_seen": st.first_seen_at,
            }
        )


def touch_mtime(con: Any, f: LandingFile, content_hash: str) -> None:
    """Same bytes dropped again (new mtime): remember the mtime so the next scan skips it
    without reading."""
    con.execute(
        "update raw.ingest_manifest set file_mtime = ? where path = ? and content_hash = ?",
        [mtime_of(f.mtime_ns), f.path, content_hash],
    )


def record_files(con: Any, stats: list[FileStats]) -> None:
    """Insert (or replace a ``failed``) manifest row per file of a load."""
    names = [n for n, _ in INGEST_MANIFEST_COLUMNS]
    rows = pa.Table.from_pylist([dict(zip(names, st.row(), strict=True)) for st in stats])
    con.register("manifest_rows", rows)
    cols = ", ".join(names)
    casts = ", ".join(f"cast({n} as {t})" for n, t in INGEST_MANIFEST_COLUMNS)
    con.execute(
        f"insert or replace into raw.ingest_manifest ({cols}) select {casts} from manifest_rows"
    )


def record_event_ids(con: Any, load_id: str, source: str = "loaded") -> None:
    """Add the event ids of ``source`` (the load's loaded rows) to the dedup table."""
    con.execute(f"insert into raw.event_ids select md5_number(event_id), '{load_id}' from {source}")


def record_outputs(con: Any, moved: list[tuple[str, str, str, int, int]], now: datetime) -> None:
    """List committed Parquet files: (path relative to data dir, load_id, kind, rows, bytes)."""
    if moved:
        con.executemany(
            "insert or replace into raw.ingest_outputs values (?, ?, ?, ?, ?, ?)",
            [(*m, now) for m in moved],
        )


def record_batch(con: Any, batch: str, load_id: str, summary: IngestSummary, now: datetime) -> None:
    """Remember, inside the load's transaction, that ``load_id`` belongs to ``batch`` and what
    it added to the run's summary (without failed files: those are retried, not done)."""
    done = summary.as_dict() | {"failed": [], "files_failed": 0}
    con.execute(
        "insert or replace into raw.ingest_batches values (?, ?, ?, ?)",
        [load_id, batch, json.dumps(done, default=str), now],
    )


def batch_loads(con: Any, batch: str) -> dict[str, IngestSummary]:
    """The loads committed so far for ``batch``, by load id, with what each added."""
    rows = con.execute(
        "select load_id, summary from raw.ingest_batches where batch = ? order by committed_at",
        [batch],
    ).fetchall()
    return {load_id: IngestSummary.from_dict(json.loads(text)) for load_id, text in rows}
