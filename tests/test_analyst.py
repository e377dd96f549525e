"""The analyst copy (include.analyst): the marts as Parquet behind a DuckDB file of views,
swapped atomically, that analysts hold open while ingestion and dbt write the warehouse."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from include import analyst
from include.transform import DE_SELECT


def _warehouse(data_dir: Path) -> Path:
    """A hand-made warehouse: three marts, a seed and a staging model that are not marts."""
    path = data_dir / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        """create table fct_sessions as select * from (values
            ('s1', 'v1', 120, true), ('s2', 'v1', 0, false), ('s3', 'v2', 35, false)
        ) t(session_id, visitor_id, duration_s, is_converted)"""
    )
    con.execute(
        "create table dim_items as select * from (values ('i1', 19.5), ('i2', 80.0)) t(item_id, price)"
    )
    con.execute("create table metrics_headline as select 0.5 as conversion_rate")
    con.execute("create table event_weights as select 'purchase' as event_type, 5 as weight")
    con.execute("create schema staging")
    con.execute("create table staging.fct_shadow as select 1 as x")  # a mart name, wrong schema
    con.execute("create view fct_view as select * from fct_sessions")  # a view, not a table
    con.close()
    return path


def _rows(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple]:
    return con.execute(f"select * from {table} order by all").fetchall()


def test_publish_copies_exactly_the_marts(data_dir: Path) -> None:
    _warehouse(data_dir)
    version = analyst.publish()

    assert version.parent == data_dir / "analyst"
    assert analyst.current_version() == version.name
    assert analyst.current_database().resolve() == (version / "analyst.duckdb").resolve()
    # only Parquet, the views file and the manifest: no copy of the warehouse, no WAL
    assert sorted(p.name for p in version.iterdir()) == [
        "analyst.duckdb",
        "dim_items.parquet",
        "fct_sessions.parquet",
        "manifest.json",
        "metrics_headline.parquet",
    ]
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["rows"] == {"dim_items": 2, "fct_sessions": 3, "metrics_headline": 1}

    con = analyst.open_copy()
    try:
        tables = con.execute(
            "select table_name, table_type from information_schema.tables order by 1"
        ).fetchall()
        assert tables == [
            ("dim_items", "VIEW"),
            ("fct_sessions", "VIEW"),
            ("metrics_headline", "VIEW"),
        ]
        assert _rows(con, "fct_sessions") == [
            ("s1", "v1", 120, True),
            ("s2", "v1", 0, False),
            ("s3", "v2", 35, False),
        ]
        assert _rows(con, "dim_items") == [("i1", 19.5), ("i2", 80.0)]
        assert float(_rows(con, "metrics_headline")[0][0]) == 0.5
        # read-only: nobody writes through the analyst file
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("create table t as select 1")
        # the analyst holds the copy; the warehouse stays free for a writer
        writer = duckdb.connect(str(data_dir / "warehouse.duckdb"))
        writer.execute("insert into fct_sessions values ('s4', 'v3', 10, true)")
        writer.close()
        assert len(_rows(con, "fct_sessions")) == 3
    finally:
        con.close()


def test_table_names_are_validated() -> None:
    assert analyst._identifier("fct_sessions") == '"fct_sessions"'
    for bad in ('fct_x"; drop table y; --', "Fct_X", "fct x", "1fct"):
        with pytest.raises(ValueError, match="not a plain lowercase identifier"):
            analyst._identifier(bad)


def test_a_crash_before_the_swap_leaves_the_old_copy_served(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _warehouse(data_dir)
    first = analyst.publish()
    point_current = analyst._point_current

    def crash(root: Path, stamp: str) -> None:
        raise OSError("killed before the swap")

    monkeypatch.setattr(analyst, "_point_current", crash)
    with pytest.raises(OSError, match="killed before the swap"):
        analyst.publish()
    assert analyst.current_version() == first.name
    con = analyst.open_copy()
    assert len(_rows(con, "fct_sessions")) == 3
    con.close()

    # a crash while copying: the staging folder is dropped, nothing new appears
    monkeypatch.setattr(analyst, "_point_current", point_current)
    monkeypatch.setattr(analyst, "list_marts", lambda con: ["fct_missing"])
    before = sorted(p.name for p in (data_dir / "analyst").iterdir())
    with pytest.raises(duckdb.CatalogException):
        analyst.publish()
    assert sorted(p.name for p in (data_dir / "analyst").iterdir()) == before
    assert analyst.current_version() == first.name


def test_old_versions_are_pruned_but_the_served_one_kept(data_dir: Path) -> None:
    _warehouse(data_dir)
    versions = [analyst.publish(keep=3).name for _ in range(5)]
    kept = sorted(p.name for p in (data_dir / "analyst").iterdir() if p.name[0].isdigit())
    assert kept == sorted(versions)[-3:]
    assert analyst.current_version() == versions[-1]


def test_no_warehouse_marts_is_an_error(data_dir: Path) -> None:
    duckdb.connect(str(data_dir / "warehouse.duckdb")).close()
    with pytest.raises(RuntimeError, match="no mart in the warehouse"):
        analyst.publish()
    assert analyst.current_version() is None


def test_sql_command_reads_the_copy(data_dir: Path) -> None:
    _warehouse(data_dir)
    analyst.publish()
    proc = subprocess.run(
        [sys.executable, "-m", "include.analyst", "sql"],
        input=".tables\nselect count(*) as n\nfrom fct_sessions;\nselect * from nope;\n",
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "fct_sessions" in proc.stdout and "metrics_headline" in proc.stdout
    assert "│     3 │" in proc.stdout
    assert "error: Catalog Error" in proc.stdout


# --- the point of it: analysts never block DE --------------------------------------------------
HOLDER = textwrap.dedent(
    """
    import sys, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    print(con.execute("select count(*) from fct_events").fetchall()[0][0], flush=True)
    sys.stdin.readline()  # hold the connection until the test says so, then query again
    print(con.execute("select count(*) from fct_events").fetchall()[0][0], flush=True)
    """
)


def _copy_landing(scratch: Path, data_dir: Path, day: str) -> None:
    """The simulated landing files of one day (events, catalog, customers) into the data dir."""
    for src in (scratch / "landing").rglob("*.jsonl.gz"):
        rel = src.relative_to(scratch / "landing")
        if f"date={day}" in str(rel):
            dst = data_dir / "landing" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)


def _ingest(data_dir: Path, *, ok: bool = True) -> subprocess.CompletedProcess:
    # fail within seconds (not the default 120 s) if anything held the warehouse
    env = {**os.environ, "TRASOS_INGEST_WAREHOUSE_WAIT_S": "3"}
    proc = subprocess.run(
        [sys.executable, "-m", "include.ingest", "--data-dir", str(data_dir), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if ok:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _build(data_dir: Path) -> None:
    from include import dbt_runner

    dbt_runner.run_dbt(
        ["build", "--select", *DE_SELECT], data_dir.parent / "dbt_target", data_dir=data_dir
    )


def _assert_copy_matches_warehouse(data_dir: Path, version: Path) -> dict[str, int]:
    wh = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        marts = analyst.list_marts(wh)
        expected = {m: _rows(wh, f"main.{m}") for m in marts}
    finally:
        wh.close()
    assert {"fct_events", "fct_sessions", "dim_items", "ml_interactions"} <= set(marts)
    con = duckdb.connect(str(version / "analyst.duckdb"), read_only=True)
    try:
        for mart in marts:
            assert _rows(con, mart) == expected[mart], mart
    finally:
        con.close()
    return {m: len(rows) for m, rows in expected.items()}


@pytest.mark.integration
@pytest.mark.slow
def test_analysts_holding_the_copy_never_block_ingestion_or_dbt(
    data_dir: Path, tmp_path: Path
) -> None:
    from include.simulator import SimulatorConfig, simulate

    scratch = tmp_path / "sim"
    simulate(SimulatorConfig(days=2, visitors=200, seed=1), scratch)
    _copy_landing(scratch, data_dir, "2026-10-01")
    _ingest(data_dir)
    _build(data_dir)
    first = analyst.publish()
    first_counts = _assert_copy_matches_warehouse(data_dir, first)
    assert first_counts["fct_events"] > 0

    copy = str(analyst.current_database())
    held = duckdb.connect(copy, read_only=True)  # an analyst in this process ...
    holder = subprocess.Popen(  # ... and one in another process (a notebook, a BI tool)
        [sys.executable, "-c", HOLDER, copy],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert int(holder.stdout.readline()) == first_counts["fct_events"]
        # day two arrives: ingestion and dbt run while both analysts hold the copy
        _copy_landing(scratch, data_dir, "2026-10-02")
        _ingest(data_dir)
        _build(data_dir)
        second = analyst.publish()
        second_counts = _assert_copy_matches_warehouse(data_dir, second)
        assert second_counts["fct_events"] > first_counts["fct_events"]
        assert analyst.current_version() == second.name != first.name
        # the held sessions keep reading the version they opened
        assert (
            held.execute("select count(*) from fct_events").fetchall()[0][0]
            == (first_counts["fct_events"])
        )
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert int(holder.stdout.readline()) == first_counts["fct_events"]
        assert holder.wait(timeout=30) == 0
    finally:
        held.close()
        if holder.poll() is None:
            holder.kill()
    # a new connection on `current` sees day two
    fresh = analyst.open_copy()
    try:
        n = fresh.execute("select count(*) from fct_events").fetchall()[0][0]
        assert n == second_counts["fct_events"]
    finally:
        fresh.close()
    for version in (first, second):
        assert not list(version.glob("warehouse*")) and not list(version.glob("*.wal"))

    # the control: an analyst on the warehouse itself does block ingestion (so the run above
    # could have failed)
    on_warehouse = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data_dir / "warehouse.duckdb")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert int(on_warehouse.stdout.readline()) == second_counts["fct_events"]
        blocked = _ingest(data_dir, ok=False)
        assert blocked.returncode != 0
        assert "held open" in blocked.stderr, blocked.stderr[-2000:]
    finally:
        on_warehouse.kill()
        on_warehouse.wait(timeout=30)
