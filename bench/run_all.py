"""Run every benchmark under bench/ and write bench/RESULTS.md (``make bench``).

Each benchmark prints, as its last line, one JSON object of figures. This runner keeps
that line, compares each figure with its goal from the issues, and writes one table
with the machine it ran on. A benchmark that fails is reported as such; the others
still run. Usage: ``python bench/run_all.py [name ...]`` (default: all).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
#: (benchmark, figure) -> (goal as text, check). Figures without a goal are informative.
GOALS: dict[tuple[str, str], tuple[str, object]] = {
    ("simulate", "events_per_s"): (">= 300k", lambda v, r: v >= 300_000),
    ("simulate", "deterministic"): ("true", lambda v, r: v is True),
    ("ingest", "events_per_s"): (">= 600k", lambda v, r: v >= 600_000),
    ("ingest", "python_loop_events_per_s"): (
        "ours >= 2x",
        lambda v, r: r["events_per_s"] >= 2 * v,
    ),
    ("ingest", "lost"): ("0", lambda v, r: v == 0),
    ("sessionize", "events_per_s"): (
        ">= 0.6x window_floor_events_per_s",
        lambda v, r: v >= 0.6 * r["window_floor_events_per_s"],
    ),
    ("sessionize", "pandas_events_per_s"): ("ours >= 4x", lambda v, r: r["events_per_s"] >= 4 * v),
    ("sessionize", "sessions_match"): ("true", lambda v, r: v is True),
    ("sessionize", "incremental_hour_s"): ("< 30", lambda v, r: v < 30),
    ("incremental", "incremental_hour_growth"): ("<= 1.5", lambda v, r: v <= 1.5),
    ("validate", "raw_gate_1m_s"): ("< 10", lambda v, r: v < 10),
    ("train", "train_s"): ("< 60", lambda v, r: v < 60),
    ("train", "score_all_users_s"): ("< 30", lambda v, r: v < 30),
    ("train", "ndcg10_vs_popularity"): (">= 1.5", lambda v, r: v >= 1.5),
    ("train", "ndcg10_vs_best_baseline"): (">= 1.1", lambda v, r: v >= 1.1),
    ("serve", "rps"): (">= 500", lambda v, r: v >= 500),
    ("serve", "p99_ms"): ("< 10", lambda v, r: v < 10),
    ("serve", "errors"): ("0", lambda v, r: v == 0),
}
ORDER = ("simulate", "ingest", "sessionize", "incremental", "validate", "train", "serve")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def run(name: str) -> tuple[dict | None, float, str]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(BENCH_DIR / f"{name}.py")],
        stdout=subprocess.PIPE,
        stderr=None,  # progress stays visible
        text=True,
    )
    took = time.monotonic() - started
    sys.stdout.write(proc.stdout)
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines:
        return None, took, f"exit {proc.returncode}"
    try:
        return json.loads(lines[-1]), took, ""
    except json.JSONDecodeError:
        return None, took, "last line is not JSON"


def fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return json.dumps(value)


def main(names: list[str]) -> int:
    names = names or [n for n in ORDER if (BENCH_DIR / f"{n}.py").exists()]
    rows, failed = [], []
    for name in names:
        print(f"\n== bench/{name}.py", flush=True)
        figures, took, error = run(name)
        if figures is None:
            failed.append(name)
            rows.append(f"| {name} | - | - | - | failed: {error} ({took:.0f} s) |")
            continue
        for key, value in figures.items():
            goal, check = GOALS.get((name, key), ("", None))
            verdict = "" if check is None else ("met" if check(value, figures) else "**short**")
            rows.append(f"| {name} | `{key}` | {fmt(value)} | {goal} | {verdict} |")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = (
        "# Benchmark results\n\n"
        f"Measured {stamp} by `make bench` on {machine()}.\n"
        "Each figure is the last JSON line of `bench/<name>.py`; goals are the issues'.\n\n"
        "| benchmark | figure | measured | goal | verdict |\n|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
    )
    (BENCH_DIR / "RESULTS.md").write_text(text)
    print(f"\nwrote {BENCH_DIR / 'RESULTS.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
