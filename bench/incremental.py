"""Benchmark: does the hourly incremental build grow with history?

For each history size (default 1M and 10M events, the synthetic lake of ``bench/sessionize.py``):

1. write the lake, and ingestion's manifest of its files (``raw.ingest_outputs``: path, kind,
   committed_at = the file's newest ``received_at``), as ``events_ingest`` leaves them;
2. ``dbt build`` (full) of the DE models on that history;
3. append one new hour (``--new-events``, default 20k: the hourly volume of a 10M-event month
   is ~14k), list its files in the manifest, and time the whole incremental ``dbt build`` of
   the DE models, start-up and tests included, as the hourly ``events_transform`` runs it.

``incremental_hour_growth`` = the hourly build's wall time after the large history / after
the small one (goal <= 1.5). Both times, dbt's per-node timings and the nodes that grew most
are reported. The LAST line printed is one JSON object with the figures.

    .venv/bin/python bench/incremental.py [--small 1000000] [--large 10000000]
        [--new-events 20000] [--project-dir DIR]   # DIR: another copy of dbt_project (before/after)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import duckdb
from sessionize import DE_SELECT, append_hour, log, model_timings, write_lake

from include.dbt_runner import DbtError
from include.dbt_runner import run_dbt as project_run_dbt

MANIFEST_DDL = (
    "create schema if not exists raw",
    "create table if not exists raw.ingest_outputs (path VARCHAR primary key, load_id VARCHAR, "
    "kind VARCHAR, rows BIGINT, bytes BIGINT, committed_at TIMESTAMP)",
)


def record_manifest(data_dir: Path, pattern: str = "*") -> int:
    """List the lake's event files matching ``pattern`` in ``raw.ingest_outputs`` as ingestion
    does (path relative to the data directory, committed when its newest line was received);
    files already listed are kept. Returns how many files were added."""
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"))
    try:
        for ddl in MANIFEST_DDL:
            con.execute(ddl)
        known = {r[0] for r in con.execute("select path from raw.ingest_outputs").fetchall()}
        added = 0
        for path in sorted((data_dir / "lake" / "events").glob(f"*/{pattern}.parquet")):
            rel = path.relative_to(data_dir).as_posix()
            if rel in known:
                continue
            rows, newest = con.execute(
                "select count(*), max(received_at) from read_parquet(?)", [str(path)]
            ).fetchall()[0]
            con.execute(
                "insert into raw.ingest_outputs values (?, 'bench', 'events', ?, ?, ?)",
                [rel, rows, path.stat().st_size, newest],
            )
            added += 1
        return added
    finally:
        con.close()


def growth(small_s: float, large_s: float) -> float:
    """The figure: hourly build time after the large history over the same after the small."""
    if small_s <= 0:
        raise ValueError(f"the small history's hourly build took {small_s} s: nothing measured")
    return round(large_s / small_s, 3)


def grown_nodes(small: dict[str, float], large: dict[str, float], top: int = 8) -> dict:
    """The nodes whose time grew most (seconds added from the small to the large history)."""
    added = {name: round(large[name] - small.get(name, 0.0), 3) for name in large}
    return dict(sorted(added.items(), key=lambda kv: -kv[1])[:top])


def dbt(args: list[str], data_dir: Path, project_dir: Path | None) -> tuple[float, dict]:
    target = data_dir / "dbt_target"
    results_path = target / "run_results.json"
    results_path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    try:
        project_run_dbt(args, target, log_output=False, data_dir=data_dir, project_dir=project_dir)
    except DbtError as exc:
        raise SystemExit(str(exc)) from None
    wall = time.perf_counter() - t0
    return wall, json.loads(results_path.read_text()) if results_path.exists() else {}


def hourly_build(
    data_dir: Path, n_events: int, new_events: int, project_dir: Path | None
) -> dict[str, object]:
    """History of ``n_events``, full build, one new hour, the timed incremental build."""
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    log(f"{n_events:,} events of history in {data_dir}")
    n = write_lake(data_dir, n_events)
    record_manifest(data_dir)
    dbt(["parse"], data_dir, project_dir)  # warm partial parsing, as a deployed project has
    wall_full, _ = dbt(["build", *DE_SELECT], data_dir, project_dir)
    log(f"full build on {n:,} events: {wall_full:.1f} s")
    hour = append_hour(data_dir, new_events, n_events)
    added = record_manifest(data_dir, "hour_*")
    wall, results = dbt(["build", *DE_SELECT], data_dir, project_dir)
    timings = model_timings(results)
    log(
        f"hourly build after {n:,} events ({new_events:,} new at {hour}, {added} file): {wall:.1f} s"
    )
    return {
        "events": n,
        "full_build_s": round(wall_full, 2),
        "hour_s": round(wall, 2),
        "hour_executing_s": round(float(results["elapsed_time"]), 2),
        "node_s": timings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1_000_000)
    parser.add_argument("--large", type=int, default=10_000_000)
    parser.add_argument("--new-events", type=int, default=20_000)
    parser.add_argument("--project-dir", type=Path, default=None)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()

    root = (args.data_dir or Path(tempfile.mkdtemp(prefix="trasos_incr_"))).resolve()
    figures: dict[str, object] = {
        "cpus": os.cpu_count(),
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
        "new_events": args.new_events,
    }
    try:
        small = hourly_build(root / "small", args.small, args.new_events, args.project_dir)
        large = hourly_build(root / "large", args.large, args.new_events, args.project_dir)
    finally:
        if args.data_dir is None:
            shutil.rmtree(root, ignore_errors=True)
    figures.update(
        {
            "small_history_events": small["events"],
            "large_history_events": large["events"],
            "incremental_hour_small_s": small["hour_s"],
            "incremental_hour_large_s": large["hour_s"],
            "incremental_hour_growth": growth(float(small["hour_s"]), float(large["hour_s"])),
            "executing_growth": growth(
                float(small["hour_executing_s"]), float(large["hour_executing_s"])
            ),
            "full_build_small_s": small["full_build_s"],
            "full_build_large_s": large["full_build_s"],
            "grown_nodes_s": grown_nodes(small["node_s"], large["node_s"]),  # type: ignore[arg-type]
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        }
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
