"""Helpers shared by the scale tests."""

from __future__ import annotations

from pathlib import Path

from include.contracts import INGEST_MANIFEST_COLUMNS, QUARANTINE_COLUMNS, RAW_EVENT_COLUMNS
from include.settings import get_settings
from include.warehouse import connect


def lake_state() -> dict:
    """What a run leaves (object keys and rows; wall-clock columns left out)."""
    s = get_settings()
    events = [c for c, _ in RAW_EVENT_COLUMNS if c != "received_at"]
    q = [c for c, _ in QUARANTINE_COLUMNS if c != "quarantined_at"]
    manifest = [
        c
        for c, _ in INGEST_MANIFEST_COLUMNS
        if c not in ("first_seen_at", "loaded_at", "file_mtime")
    ]
    with connect(read_only=True) as con:

        def rows(sql: str) -> list[tuple]:
            return con.execute(sql).fetchall()

        return {
            "files": s.store.files("lake") + s.store.files("quarantine"),
            "events": rows(f"select {', '.join(events)} from raw.events order by all"),
            "quarantine": rows(f"select {', '.join(q)} from raw.quarantine order by all"),
            "manifest": rows(f"select {', '.join(manifest)} from raw.ingest_manifest order by all"),
            "event_ids": rows("select * from raw.event_ids order by all"),
            "outputs": rows("select path, load_id, kind, rows from raw.ingest_outputs order by 1"),
        }


def local_files(data_dir: Path) -> list[str]:
    return sorted(
        p.relative_to(data_dir).as_posix()
        for folder in ("lake", "quarantine", "models", "published")
        for p in (data_dir / folder).rglob("*")
        if p.is_file()
    )


def small_chunk(landing: Path) -> str:
    """About three event loads (plus one load per snapshot file)."""
    return str(sum(p.stat().st_size for p in (landing / "events").rglob("*.gz")) // 3 + 1)
