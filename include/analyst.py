"""The analyst copy: the marts as read-only Parquet, so ad-hoc queries never block DE.

DuckDB allows one writer per file, and while anyone holds the warehouse open nobody else can
write it: an analyst's shell on ``warehouse.duckdb`` stops ingestion and dbt. So analysts
query a copy instead. :func:`publish` (run after each transform and after the DA metrics
build) writes

    <data>/analyst/<stamp>/<mart>.parquet   one file per mart (fct_, dim_, ml_, metrics_)
    <data>/analyst/<stamp>/analyst.duckdb   one view per mart over its Parquet file
    <data>/analyst/<stamp>/manifest.json    stamp, time, row counts
    <data>/analyst/current -> <stamp>       symlink, swapped atomically (os.replace)

A version folder is never rewritten. A session that opened ``current/analyst.duckdb`` keeps
reading the version it opened (its views name that folder's files) until it reconnects; the
last :data:`KEEP_VERSIONS` versions are kept so such a session does not lose its files under
it. A crash before the symlink swap leaves the old version served.

Command line (``make sql``)::

    python -m include.analyst sql [-c "select ..."]   # SQL prompt on the analyst copy
    python -m include.analyst publish                 # publish from the warehouse now
    python -m include.analyst path                    # the analyst.duckdb to connect to
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.fs import atomic_dir, fsync_dir
from common.locks import exclusive_lock
from include.settings import get_settings

log = logging.getLogger(__name__)

#: Tables of the warehouse's ``main`` schema that are marts (staging and intermediate models
#: live in schemas of their own; seeds and other tables in ``main`` are not published).
MART_NAME = re.compile(r"^(fct|dim|ml|metrics)_[a-z0-9_]*$")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_STAMP = re.compile(r"^\d{8}T\d{12}Z$")
KEEP_VERSIONS = 3
CURRENT = "current"
DATABASE = "analyst.duckdb"
MANIFEST = "manifest.json"


def analyst_dir() -> Path:
    """``<data>/analyst``: the versions and the ``current`` symlink."""
    return get_settings().analyst_dir


def current_database() -> Path:
    """The file an analyst opens (read-only): ``<data>/analyst/current/analyst.duckdb``."""
    return analyst_dir() / CURRENT / DATABASE


def _literal(value: str | Path) -> str:
    """``value`` as a quoted SQL string literal (file paths in ``copy``/``read_parquet``)."""
    return "'" + str(value).replace("'", "''") + "'"


def _identifier(name: str) -> str:
    """A catalog name as a quoted identifier; anything but ``[a-z_][a-z0-9_]*`` is refused."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"refusing to publish table {name!r}: not a plain lowercase identifier")
    return f'"{name}"'


def list_marts(con: Any) -> list[str]:
    """Mart tables of the warehouse (schema ``main``, ``fct_``/``dim_``/``ml_``/``metrics_``)."""
    # on the Spark target the marts are views on its Parquet tables (warehouse.read_marts); on
    # DuckDB a view in main is someone's ad-hoc query, not a mart
    spark = get_settings().dbt_target.startswith("spark")
    kinds = "('BASE TABLE', 'VIEW')" if spark else "('BASE TABLE')"
    rows = con.execute(
        "select table_name from information_schema.tables "
        f"where table_schema = 'main' and table_type in {kinds} order by table_name"
    ).fetchall()
    return [name for (name,) in rows if MART_NAME.match(name)]


def publish(
    warehouse: Path | None = None, *, keep: int = KEEP_VERSIONS, wait_s: float = 60.0
) -> Path:
    """Copy every mart of the warehouse into a new version folder and point ``current`` at it.

    Opens the warehouse read-only (in Airflow: in the ``duckdb_writer`` pool, so no dbt run
    holds it; by hand it waits ``wait_s`` for a writer to finish). Returns the new version
    folder. Raises ``RuntimeError`` when the warehouse has no mart yet.
    """
    import duckdb

    from include.warehouse import read_marts

    root = analyst_dir()
    root.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(root / ".lock", timeout_s=600, what="another analyst-copy publish"):
        _remove_leftovers(root)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        final = root / stamp
        # 1. the Parquet files, complete or absent (a staging folder renamed into place)
        with atomic_dir(final, replace=False) as staging:
            with read_marts(warehouse, wait_s=wait_s) as con:
                marts = list_marts(con)
                if not marts:
                    raise RuntimeError(
                        f"no mart in the warehouse {warehouse or get_settings().warehouse_path}:"
                        " run the events_transform DAG (make run) first"
                    )
                rows: dict[str, int] = {}
                for mart in marts:
                    table = f"main.{_identifier(mart)}"
                    rows[mart] = con.execute(f"select count(*) from {table}").fetchall()[0][0]
                    target = _literal(staging / f"{mart}.parquet")
                    con.execute(
                        f"copy (select * from {table}) to {target} "
                        "(format parquet, compression zstd)"
                    )
            manifest = {
                "version": stamp,
                "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "rows": rows,
            }
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        # 2. the views, over the files' final paths (a view binds its file when created); the
        #    folder is not served yet, so writing into it keeps it immutable for readers
        tmp_db = final / f".{DATABASE}.tmp"
        con = duckdb.connect(str(tmp_db))
        try:
            for mart in marts:
                con.execute(
                    f"create view {_identifier(mart)} as select * from "
                    f"read_parquet({_literal(final / f'{mart}.parquet')})"
                )
        finally:
            con.close()
        os.replace(tmp_db, final / DATABASE)
        fsync_dir(final)
        # 3. serve it: one atomic rename of a symlink
        _point_current(root, stamp)
        _prune(root, keep)
    log.info("analyst copy %s: %d marts %s", final, len(marts), rows)
    return final


def _point_current(root: Path, stamp: str) -> None:
    tmp = root / f".{CURRENT}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(stamp, tmp)  # relative: the data directory may be moved as a whole
    os.replace(tmp, root / CURRENT)
    fsync_dir(root)


def current_version(root: Path | None = None) -> str | None:
    """The version ``current`` points at (None before the first publish)."""
    link = (root or analyst_dir()) / CURRENT
    return os.readlink(link) if link.is_symlink() else None


def _remove_leftovers(root: Path) -> None:
    """What a crashed publish left (called under the lock): staging folders, temp symlinks,
    and version folders it never finished (no ``analyst.duckdb``), none of them served."""
    for entry in root.iterdir():
        if entry.name.startswith(".") and entry.name.endswith(".tmp"):
            if entry.is_symlink() or entry.is_file():
                entry.unlink(missing_ok=True)
            else:
                shutil.rmtree(entry, ignore_errors=True)
        elif (
            _STAMP.match(entry.name)
            and not (entry / DATABASE).exists()
            and entry.name != current_version(root)
        ):
            shutil.rmtree(entry, ignore_errors=True)


def _prune(root: Path, keep: int) -> None:
    """Keep the newest ``keep`` versions and the one ``current`` points at."""
    served = current_version(root)
    versions = sorted(p.name for p in root.iterdir() if p.is_dir() and _STAMP.match(p.name))
    for name in versions[:-keep] if keep > 0 else versions:
        if name != served:
            shutil.rmtree(root / name, ignore_errors=True)


# --- make sql --------------------------------------------------------------------------------
def open_copy(path: Path | None = None) -> Any:
    """A read-only DuckDB connection on the analyst copy (never the warehouse)."""
    import duckdb

    target = path or current_database()
    if not target.exists():
        raise FileNotFoundError(
            f"no analyst copy at {target}: it is published after each events_transform run "
            "(make run), or now with `python -m include.analyst publish`"
        )
    return duckdb.connect(str(target), read_only=True)


def _run(con: Any, sql: str) -> None:
    relation = con.sql(sql)
    if relation is not None:
        relation.show(max_rows=40, max_width=200)


def repl(con: Any) -> None:
    """A small SQL prompt: statements end with ``;``; ``.tables``, ``.quit``; Ctrl-D exits."""
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:  # pragma: no cover - not on Linux
        pass
    print(f"analyst copy {current_version()} (read-only). `.tables`, `.quit`; end SQL with ;")
    buffer: list[str] = []
    while True:
        try:
            line = input("sql> " if not buffer else "...> ")
        except EOFError:
            print()
            return
        except KeyboardInterrupt:
            print()
            buffer.clear()
            continue
        stripped = line.strip()
        if not buffer and not stripped:
            continue
        if not buffer and stripped in {".quit", ".exit"}:
            return
        if not buffer and stripped == ".tables":
            stripped = "show tables;"
        buffer.append(stripped)
        if not stripped.endswith(";"):
            continue
        sql = "\n".join(buffer)
        buffer.clear()
        try:
            _run(con, sql)
        except Exception as exc:  # a query error is shown, the prompt goes on
            print(f"error: {exc}")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m include.analyst", description=__doc__)
    parser.add_argument("command", choices=["sql", "publish", "path"])
    parser.add_argument("-c", dest="sql", help="run this SQL and exit (with `sql`)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "publish":
        print(publish())
        return 0
    if args.command == "path":
        print(current_database())
        return 0
    try:
        con = open_copy()
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        if args.sql:
            _run(con, args.sql)
        else:
            repl(con)
    finally:
        con.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
