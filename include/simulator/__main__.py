"""CLI: ``python -m include.simulator --days 30 --visitors 50000 --seed 7 --fault-rate 0.01``.

Writes the landing zone under ``--out`` (default: ``TRASOS_DATA_DIR``), shows a progress
bar on stderr and prints a short summary on stdout.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from include.simulator import SimulatorConfig, simulate


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = SimulatorConfig()
    p = argparse.ArgumentParser(
        prog="python -m include.simulator", description="Simulate the Trasos clickstream."
    )
    p.add_argument("--days", type=int, default=defaults.days)
    p.add_argument("--visitors", type=int, default=defaults.visitors)
    p.add_argument("--items", type=int, default=defaults.n_items, help="catalog size")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--fault-rate", type=float, default=defaults.fault_rate)
    p.add_argument("--start", type=date.fromisoformat, default=defaults.start, help="YYYY-MM-DD")
    p.add_argument("--out", type=Path, default=None, help="data directory (has landing/)")
    p.add_argument("--late-window-days", type=int, default=None)
    p.add_argument("--workers", type=int, default=defaults.workers, help="gzip threads")
    p.add_argument("--overwrite", action="store_true", help="replace earlier simulator output")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = SimulatorConfig(
            seed=args.seed,
            start=args.start,
            days=args.days,
            visitors=args.visitors,
            n_items=args.items,
            fault_rate=args.fault_rate,
            late_window_days=args.late_window_days,
            workers=args.workers,
        )
        summary = simulate(cfg, args.out, overwrite=args.overwrite, progress=not args.no_progress)
    except (ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n_faults = sum(summary.faults.values())
    rate = summary.events / summary.elapsed_s if summary.elapsed_s else 0.0
    print(f"landing:   {summary.landing_dir}")
    print(
        f"events:    {summary.events:,} in {summary.lines:,} lines, {summary.files:,} files "
        f"({summary.elapsed_s:.1f} s, {rate:,.0f} events/s)"
    )
    print(
        f"people:    {summary.visitors:,} visitors, {summary.sessions:,} sessions, "
        f"{summary.bots} bots"
    )
    print(
        f"customers: {summary.customers:,} at the end, {summary.new_customers:,} new "
        f"(conversion {summary.conversion_rate:.1%} of {summary.new_visitors:,} new visitors)"
    )
    faults = ", ".join(f"{k} {v}" for k, v in summary.faults.items() if v)
    print(f"faults:    {n_faults:,}" + (f" ({faults})" if faults else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
