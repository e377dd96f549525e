"""The DuckDB helper: the only place the warehouse file is opened from Python.

DuckDB allows one read-write process per file. Writers run in the one-slot
Airflow pool :data:`include.assets.WRITER_POOL`; readers that must not wait (the API, reports) read
published Parquet instead of this file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from include.settings import get_settings


@contextmanager
def connect(
    read_only: bool = False, path: Path | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse (``settings.warehouse_path`` unless ``path``), close on exit."""
    target = path or get_settings().warehouse_path
    if read_only and not target.exists():
        raise FileNotFoundError(
            f"warehouse {target} does not exist yet: run the events_ingest DAG (make run) first"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(target), read_only=read_only)
    except duckdb.ConnectionException as exc:
        # This process already holds the file read-write (e.g. dbt run in-process by Cosmos
        # under `airflow dags test`): DuckDB refuses a second, read-only configuration in the
        # same process, but shares the open database with a default connection.
        if not (read_only and "different configuration" in str(exc)):
            raise
        con = duckdb.connect(str(target))
    try:
        yield con
    finally:
        con.close()
