"""The growth benchmark's logic on small data (bench/incremental.py): the manifest it writes
as ingestion would, the hour it appends, and the figure. No dbt here: the benchmark times it."""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import incremental  # noqa: E402  (bench/ is a folder of scripts, not a package)
from sessionize import append_hour, write_lake  # noqa: E402


def _manifest(data_dir: Path) -> list[tuple]:
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(
            "select path, kind, rows, committed_at from raw.ingest_outputs order by path"
        ).fetchall()
    finally:
        con.close()


def test_manifest_lists_every_event_file_then_only_the_new_hour(tmp_path: Path) -> None:
    n = write_lake(tmp_path, 3_000)
    files = sorted((tmp_path / "lake" / "events").glob("*/*.parquet"))
    assert incremental.record_manifest(tmp_path) == len(files) > 1
    rows = _manifest(tmp_path)
    assert [r[0] for r in rows] == [f.relative_to(tmp_path).as_posix() for f in files]
    assert {r[1] for r in rows} == {"events"}
    assert sum(r[2] for r in rows) == n
    con = duckdb.connect()
    for path, _, _, committed in rows:  # committed when the file's newest line was received
        newest = con.execute(
            "select max(received_at) from read_parquet(?)", [str(tmp_path / path)]
        ).fetchall()[0][0]
        assert committed == newest
    assert incremental.record_manifest(tmp_path) == 0  # listed files stay listed once

    append_hour(tmp_path, 200, n)
    assert incremental.record_manifest(tmp_path, "hour_*") == 1  # one new hour, one partition
    (new,) = [r for r in _manifest(tmp_path) if "/hour_" in r[0]]
    assert new[2] == 200
    assert new[3] > max(r[3] for r in rows)


def test_growth_is_the_ratio_of_the_two_hourly_builds() -> None:
    assert incremental.growth(12.0, 18.0) == 1.5
    assert incremental.growth(10.0, 7.5) == 0.75
    with pytest.raises(ValueError, match="nothing measured"):
        incremental.growth(0.0, 3.0)
    grown = incremental.grown_nodes({"a": 1.0, "b": 2.0}, {"a": 4.0, "b": 2.2, "c": 0.5}, top=2)
    assert grown == {"a": 3.0, "c": 0.5}


def test_the_bench_lake_has_the_raw_event_contract(tmp_path: Path) -> None:
    """The generated lake carries exactly the columns and types ingestion writes, so the
    benches build the same dbt models (a column added to the contract must reach them)."""
    from include.contracts import RAW_EVENT_COLUMNS

    write_lake(tmp_path, 500)
    con = duckdb.connect()
    described = con.execute(
        "describe select * from read_parquet(?, hive_partitioning = false)",
        [str(tmp_path / "lake" / "events" / "*" / "*.parquet")],
    ).fetchall()
    partition_key = RAW_EVENT_COLUMNS[-1]  # event_date: in the path, not in the file
    assert partition_key == ("event_date", "DATE")
    assert [(name, kind) for name, kind, *_ in described] == list(RAW_EVENT_COLUMNS[:-1])
