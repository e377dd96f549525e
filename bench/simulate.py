"""Benchmark of the clickstream simulator: events written (gzipped) per second, end to end.

Runs the same config twice into two temporary data directories (default: 30 days,
50,000 visitors, fault rate 0.01, about 1M events), compares every output file byte for
byte, and prints as its LAST line one JSON object::

    {"events_per_s": ..., "deterministic": true, "events": ..., "runs_s": [...], ...}

``events_per_s`` = lines written to ``landing/events`` / wall time of ``simulate()`` (best
of the two runs; both are listed). Imports are excluded; everything else (model, JSON,
gzip, snapshots, ground truth) is included. ``events_per_cpu_s`` divides by the process
CPU time instead (all threads): on a shared machine it shows the cost when wall time
mostly shows the neighbours; with 2 idle cores the wall rate can approach twice it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from include.simulator import SimulatorConfig, simulate  # noqa: E402
from include.simulator import output as _output  # noqa: E402, F401  (import before timing)


def digest(landing: Path) -> dict[str, str]:
    return {
        str(p.relative_to(landing)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(landing.rglob("*"))
        if p.is_file()
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--visitors", type=int, default=50_000)
    p.add_argument("--fault-rate", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--tmp", type=Path, default=None, help="parent of the scratch directories")
    p.add_argument("--keep", action="store_true", help="keep the output directories")
    args = p.parse_args()
    cfg = SimulatorConfig(
        seed=args.seed,
        days=args.days,
        visitors=args.visitors,
        fault_rate=args.fault_rate,
        late_window_days=3,
        workers=args.workers,
    )
    root = Path(tempfile.mkdtemp(prefix="trasos_bench_sim_", dir=args.tmp))
    runs, cpu, summaries, digests = [], [], [], []
    try:
        for run in (1, 2):
            out = root / f"run{run}"
            print(f"run {run}: {cfg.days} days, {cfg.visitors:,} visitors -> {out}", flush=True)
            t0, c0 = time.perf_counter(), time.process_time()
            summary = simulate(cfg, out, progress=True)
            wall = time.perf_counter() - t0
            cpu.append(time.process_time() - c0)
            runs.append(wall)
            summaries.append(summary)
            print(
                f"run {run}: {summary.lines:,} lines, {summary.files:,} files in {wall:.2f} s "
                f"= {summary.lines / wall:,.0f} events/s; stages {summary.stage_s}",
                flush=True,
            )
            digests.append(digest(out / "landing"))
        deterministic = digests[0] == digests[1]
        s = summaries[0]
        size = sum(f.stat().st_size for f in (root / "run1" / "landing").rglob("*.gz"))
        result = {
            "events_per_s": round(s.lines / min(runs)),
            "deterministic": deterministic,
            "events": s.events,
            "lines": s.lines,
            "files": s.files,
            "faults": sum(s.faults.values()),
            "runs_s": [round(r, 3) for r in runs],
            "events_per_s_runs": [round(s.lines / r) for r in runs],
            "cpu_s_runs": [round(c, 3) for c in cpu],
            "events_per_cpu_s": round(s.lines / min(cpu)),
            "stage_s": s.stage_s,
            "gz_mb": round(size / 1e6, 1),
            "cpus": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
