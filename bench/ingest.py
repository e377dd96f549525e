"""Benchmark of ingestion: gzipped JSON lines in -> validated Parquet lake out, end to end.

Simulates (once; reused from ``--cache`` afterwards) about 5.1M events with 1 % faults
(30 days, 250,000 visitors, seed 11), then runs one full ingestion into a fresh data
directory whose ``landing/`` points at that landing zone, and a plain Python loop
(``gzip`` + ``json.loads`` per line, no validation, nothing written) over the same event
files for comparison. Prints progress, then as its LAST line one JSON object::

    {"events_per_s": ..., "python_loop_events_per_s": ..., "bytes_per_event": ...,
     "lost": 0, "duckdb_copy_events_per_s": ..., ...}

* ``events_per_s``: event lines ingested / wall time of ``ingest()`` (reading, hashing,
  gunzip, validation, deduplication against history, bot flags, Parquet (zstd) writing,
  read-back check, manifest commit; snapshots are ingested in the same run and their time
  counts, their lines do not).
* ``python_loop_events_per_s``: lines / wall time of the plain loop (one core).
* ``duckdb_copy_events_per_s``: DuckDB copying the same files to day-partitioned zstd
  Parquet with nothing else done (:func:`duckdb_copy`): the machine's ceiling for this kind
  of ingestion.
* ``bytes_per_event``: bytes of ``lake/events`` Parquet / events loaded.
* ``lost``: lines the simulator wrote minus (loaded + quarantined + duplicates); must be 0.
* ``cpu_s_per_m_events``: process CPU seconds per million event lines (all threads): the
  figure that depends least on what else runs on the machine.
* ``duckdb_copy_cpu_s_per_m_events``: the same for :func:`duckdb_copy`; their ratio
  ``cpu_ratio_vs_duckdb_copy`` (copy's CPU / ingestion's CPU, like ``events_per_s`` /
  ``duckdb_copy_events_per_s``) compares the work done, where the wall-clock ratio also
  depends on how many cores each got while other processes ran (the copy keeps both
  cores busy throughout; ingestion has phases on one).

Usage: ``python bench/ingest.py [--days 30 --visitors 250000 --fault-rate 0.01]``
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import logging
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from include.settings import REPO_ROOT  # noqa: E402


def log(msg: str) -> None:
    print(f"[bench/ingest {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def landing_zone(args: argparse.Namespace) -> tuple[Path, dict]:
    """The simulated landing zone for these arguments (built once, then reused)."""
    from include.simulator import SimulatorConfig, simulate

    cfg = SimulatorConfig(
        seed=args.seed,
        days=args.days,
        visitors=args.visitors,
        fault_rate=args.fault_rate,
        late_window_days=3,
    )
    key = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
    root = args.cache / f"landing-{key}"
    done = root / "summary.json"
    if done.exists():
        log(f"reusing the simulated landing zone {root}")
        return root / "landing", json.loads(done.read_text())
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    log(f"simulating {args.days} days x {args.visitors:,} visitors into {root} (once) ...")
    summary = simulate(cfg, root).to_dict()
    done.write_text(json.dumps(summary))
    log(f"simulated {summary['lines']:,} lines in {summary['elapsed_s']:.0f} s")
    return root / "landing", summary


def python_loop(files: list[Path]) -> tuple[int, float]:
    """A plain loop: gzip + json.loads per line (bad lines counted, not kept)."""
    n = 0
    started = time.perf_counter()
    for path in files:
        with gzip.open(path, "rb") as fh:
            for raw in fh:
                if raw.strip():
                    n += 1
                    try:
                        json.loads(raw)
                    except ValueError:
                        pass
    return n, time.perf_counter() - started


def duckdb_copy(event_files: list[Path], out: Path) -> tuple[int, float]:
    """Rows and seconds of DuckDB copying the same files with nothing else done: its JSON
    reader (string columns, nested objects kept as JSON, unreadable lines skipped) straight
    to zstd Parquet partitioned by event day. No line numbers, validation, quarantine,
    deduplication, bot flags, manifest or reconciliation: the ceiling of any ingestion built
    on DuckDB on this machine, measured in the same run as ``events_per_s``."""
    import duckdb

    columns = {c: "VARCHAR" for c in ("event_id", "event_time", "event_type", "anonymous_id",
                                      "user_id", "item_id", "page")}  # fmt: skip
    columns.update(context="JSON", properties="JSON")
    con = duckdb.connect()
    con.execute("set preserve_insertion_order = false")
    t0 = time.perf_counter()
    [(rows,)] = con.execute(
        f"""
        copy (
            select *, try_cast(left(event_time, 10) as date) as event_date
            from read_json(?, format = 'newline_delimited', ignore_errors = true,
                           columns = {{{", ".join(f"'{k}': '{v}'" for k, v in columns.items())}}})
        ) to '{out}' (format parquet, compression zstd, partition_by (event_date))
        """,
        [[str(f) for f in event_files]],
    ).fetchall()
    took = time.perf_counter() - t0
    con.close()
    return rows, took


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--visitors", type=int, default=250_000)
    p.add_argument("--fault-rate", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--cache", type=Path, default=REPO_ROOT / ".state" / "bench" / "ingest")
    p.add_argument("--tmp", type=Path, default=None, help="parent of the scratch data directory")
    args = p.parse_args()

    landing, sim = landing_zone(args)
    event_files = sorted((landing / "events").rglob("*.jsonl.gz"))
    gz_bytes = sum(f.stat().st_size for f in event_files)
    log(
        f"{len(event_files):,} event files, {gz_bytes / 2**20:,.0f} MiB gzip, {sim['lines']:,} lines"
    )

    data_dir = Path(tempfile.mkdtemp(prefix="trasos_bench_ingest_", dir=args.tmp))
    try:
        (data_dir / "landing").symlink_to(landing, target_is_directory=True)
        os.environ["TRASOS_DATA_DIR"] = str(data_dir)
        logging.basicConfig(level=logging.INFO, format="  %(message)s")
        # Imports and DuckDB's first-use costs are not ingestion: pay them before the clock.
        import duckdb
        import pandas  # noqa: F401  (DuckDB imports it when it first scans a Python object)
        import pyarrow as pa

        from include.ingest import ingest

        duckdb.connect().register("warmup", pa.table({"x": [1]}))

        log("ingesting ...")
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        summary = ingest()
        took = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
        [(lines_in, loaded, quarantined, duplicates)] = con.execute(
            "select sum(lines_in), sum(loaded), sum(quarantined), sum(duplicates) "
            "from raw.ingest_manifest where dataset = 'events'"
        ).fetchall()
        con.close()
        lake_bytes = sum(f.stat().st_size for f in (data_dir / "lake" / "events").rglob("*"))
        lost = sim["lines"] - (loaded + quarantined + duplicates)
        log(
            f"ingested {lines_in:,} event lines in {took:.1f} s ({lines_in / took:,.0f}/s, "
            f"{cpu:.1f} CPU s): {loaded:,} loaded, {quarantined:,} quarantined, "
            f"{duplicates:,} duplicates, lost {lost}"
        )
        log(f"quarantine reasons: {summary.reasons}")
        log(f"simulated faults:   {sim['faults']}")

        log("plain Python loop (gzip + json.loads per line) over the same files ...")
        n_loop, loop_s = python_loop(event_files)
        log(f"python loop: {n_loop:,} lines in {loop_s:.1f} s ({n_loop / loop_s:,.0f}/s)")
        log("DuckDB alone: its JSON reader straight to day-partitioned zstd Parquet ...")
        copy_cpu0 = time.process_time()
        n_copy, copy_s = duckdb_copy(event_files, data_dir / "copy_floor")
        copy_cpu = time.process_time() - copy_cpu0
        log(f"duckdb copy: {n_copy:,} rows in {copy_s:.1f} s ({n_copy / copy_s:,.0f}/s)")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)

    figures = {
        "events_per_s": round(lines_in / took),
        "python_loop_events_per_s": round(n_loop / loop_s),
        "duckdb_copy_events_per_s": round(n_copy / copy_s),
        "bytes_per_event": round(lake_bytes / loaded, 1),
        "lost": int(lost),
        "events": int(lines_in),
        "ingest_s": round(took, 2),
        "cpu_s_per_m_events": round(cpu / (lines_in / 1e6), 2),
        "duckdb_copy_cpu_s_per_m_events": round(copy_cpu / (n_copy / 1e6), 2),
        "cpu_ratio_vs_duckdb_copy": round((copy_cpu / n_copy) / (cpu / lines_in), 3),
        "loads": summary.loads,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cores": os.cpu_count(),
    }
    print(json.dumps(figures))
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
