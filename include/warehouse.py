"""The DuckDB helper: the only place the warehouse file is opened from Python.

DuckDB allows one read-write process per file. Writers run in the one-slot
Airflow pool :data:`include.assets.WRITER_POOL`; readers that must not wait (the API, reports) read
published Parquet instead of this file.

Readers of dbt's marts use :func:`read_marts`, which follows the dbt target
(``TRASOS_DBT_TARGET``): the DuckDB file on ``dev``; on ``spark`` an in-memory DuckDB whose
``{schema}.{table}`` views read the Spark warehouse's Parquet tables, so the same SQL works.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    import pandas as pd

from include.settings import get_settings

log = logging.getLogger(__name__)


class WarehouseBusy(RuntimeError):
    """Another process holds the warehouse file open (DuckDB allows one writer, and no reader
    while it writes)."""


_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


def _open_waiting(
    target: Path, read_only: bool, wait_s: float, busy_error: type[Exception]
) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect``, retrying every 0.5-5 s (logged) for ``wait_s`` while another
    process holds the file; then ``busy_error`` naming the holder and what to do."""
    deadline = time.monotonic() + wait_s
    delay = 0.5
    while True:
        try:
            return duckdb.connect(str(target), read_only=read_only)
        except duckdb.IOException as exc:
            if "Could not set lock" not in str(exc):
                raise
            m = _HOLDER.search(str(exc))
            holder = f"{m['program']} (pid {m['pid']})" if m else "another process"
            left = deadline - time.monotonic()
            if left <= 0:
                raise busy_error(
                    f"the warehouse {target} is held open by {holder} for more than "
                    f"{wait_s:.0f} s (DuckDB allows one writer, and no reader while it writes). "
                    "Close that process (a notebook, a DuckDB shell, a dbt run), or wait for it "
                    "and re-run; readers that must not block writers should read the published "
                    "Parquet files instead of the warehouse."
                ) from None
            log.warning(
                "the warehouse %s is held open by %s; retrying in %.1f s (%.0f s left)",
                target,
                holder,
                min(delay, left),
                left,
            )
            time.sleep(min(delay, left))
            delay = min(delay * 2, 5.0)


@contextmanager
def connect(
    read_only: bool = False,
    path: Path | None = None,
    *,
    wait_s: float = 0.0,
    busy_error: type[Exception] = WarehouseBusy,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse (``settings.warehouse_path`` unless ``path``), close on exit.

    While another process holds the file, retry for ``wait_s`` seconds (logged), then raise
    ``busy_error`` (default :class:`WarehouseBusy`) saying who holds it and what to do.
    """
    target = path or get_settings().warehouse_path
    if read_only and not target.exists():
        raise FileNotFoundError(
            f"warehouse {target} does not exist yet: run the events_ingest DAG (make run) first"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = _open_waiting(target, read_only, wait_s, busy_error)
    except duckdb.ConnectionException as exc:
        # This process already holds the file read-write (e.g. dbt run in-process by Cosmos
        # under `airflow dags test`): DuckDB refuses a second, read-only configuration in the
        # same process, but shares the open database with a default connection.
        if not (read_only and "different configuration" in str(exc)):
            raise
        con = duckdb.connect(str(target))
    try:
        # views over the lake on an object store read s3:// URLs through fsspec
        get_settings().store.register(con)
        yield con
    finally:
        con.close()


def frame(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pd.DataFrame:
    """The result of ``sql`` (``params`` bound) as a pandas DataFrame, with ``.df()``'s dtypes.

    DuckDB's ``.df()`` converts string columns value by value under pandas 3 (its ``str``
    dtype is Arrow-backed): 4.4-6.7 s for a month of raw events (1.03-1.12M rows, 25 columns),
    against 0.8-1.7 s through Arrow. Arrow alone would give an integer column with nulls as
    float64, a boolean one as object, DATE as Python dates and DECIMAL as Python decimals;
    these are mended here to what ``.df()`` gives (nullable ``Int32``/``Int64``/``boolean``,
    DATE as ``datetime64[us]``, DECIMAL as float64).
    """
    import pandas as pd
    import pyarrow as pa

    table = con.sql(sql, params=params or None).to_arrow_table()
    df = table.to_pandas(date_as_object=False)
    for field, column in zip(table.schema, table.columns, strict=True):
        kind = field.type
        if pa.types.is_date(kind):
            df[field.name] = df[field.name].astype("datetime64[us]")
        elif pa.types.is_decimal(kind):
            df[field.name] = df[field.name].astype("float64")
        elif column.null_count and (pa.types.is_integer(kind) or pa.types.is_boolean(kind)):
            name = str(kind)  # int32 -> Int32, uint8 -> UInt8
            dtype = (
                "boolean" if name == "bool" else name.replace("uint", "UInt").replace("int", "Int")
            )
            df[field.name] = column.to_pandas(
                types_mapper={kind: pd.api.types.pandas_dtype(dtype)}.get
            )
    return df


def spark_table_dirs(warehouse_dir: Path) -> dict[tuple[str, str], Path]:
    """``(schema, table) -> directory`` of the Spark warehouse's Parquet tables
    (``{warehouse}/{schema}.db/{table}``; dbt's staging tables, ``__dbt_tmp`` and
    ``__trasos_stage`` leftovers skipped)."""
    found = {}
    for schema_dir in sorted(warehouse_dir.glob("*.db")):
        for table in sorted(p for p in schema_dir.iterdir() if p.is_dir()):
            if table.name.endswith(("__dbt_tmp", "__trasos_stage")):
                continue
            if any(table.rglob("*.parquet")):
                found[(schema_dir.name.removesuffix(".db"), table.name)] = table
    return found


def attach_spark_warehouse(con: duckdb.DuckDBPyConnection, warehouse_dir: Path) -> list[str]:
    """Create a view ``{schema}.{table}`` on ``con`` for every table of the Spark warehouse
    (Spark writes timestamps as UTC INT96, which DuckDB reads as naive UTC timestamps, like
    the DuckDB warehouse's). Returns the qualified names."""
    names = []
    for (schema, table), path in spark_table_dirs(warehouse_dir).items():
        con.execute(f'create schema if not exists "{schema}"')
        glob = str(path / "**" / "*.parquet").replace("'", "''")
        con.execute(
            f'create or replace view "{schema}"."{table}" as select * from '
            f"read_parquet('{glob}', hive_partitioning = true)"
        )
        names.append(f"{schema}.{table}")
    return names


def _attach_duckdb_rest(con: duckdb.DuckDBPyConnection, path: Path, taken: set[str]) -> None:
    """Views on ``con`` for the DuckDB warehouse's tables that Spark does not have (ingestion's
    ``raw`` schema, monitoring history), the file attached read-only."""
    try:
        con.execute(
            f"attach '{str(path).replace(chr(39), chr(39) * 2)}' as duckdb_file (read_only)"
        )
    except duckdb.IOException as exc:  # a writer holds it: the marts alone still answer
        log.warning(
            "the DuckDB warehouse %s is not readable now (%s): raw tables left out", path, exc
        )
        return
    rows = con.execute(
        "select schema_name, table_name from duckdb_tables() where database_name = 'duckdb_file' "
        "union all select schema_name, view_name from duckdb_views() "
        "where database_name = 'duckdb_file' and not internal"
    ).fetchall()
    for schema, table in rows:
        if f"{schema}.{table}" in taken:
            continue
        con.execute(f'create schema if not exists "{schema}"')
        con.execute(
            f'create view "{schema}"."{table}" as select * from duckdb_file."{schema}"."{table}"'
        )


@contextmanager
def read_marts(
    path: Path | None = None, *, wait_s: float = 0.0
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only DuckDB connection on dbt's tables for the configured dbt target.

    ``dev`` (DuckDB): the warehouse file (``path``, default settings'), as :func:`connect`
    ``(read_only=True)``. ``spark``: an in-memory database with a view per table of
    ``settings.spark_dir/warehouse``, plus views on the DuckDB file's other tables (ingestion's
    ``raw`` schema, monitoring history) when the file exists.
    """
    settings = get_settings()
    if not settings.dbt_target.startswith("spark"):
        with connect(read_only=True, path=path, wait_s=wait_s) as con:
            yield con
        return
    warehouse_dir = settings.spark_dir / "warehouse"
    if not warehouse_dir.is_dir():
        raise FileNotFoundError(
            f"the Spark warehouse {warehouse_dir} does not exist yet: build the marts first "
            "(make dbt-build TARGET=spark, or the events_transform DAG with "
            "TRASOS_DBT_TARGET=spark)"
        )
    con = duckdb.connect()
    try:
        taken = set(attach_spark_warehouse(con, warehouse_dir))
        duckdb_file = path or settings.warehouse_path
        if duckdb_file.exists():
            _attach_duckdb_rest(con, duckdb_file, taken)
        yield con
    finally:
        con.close()
