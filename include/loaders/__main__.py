"""``python -m include.loaders list | all | <name> [--out DATADIR] [--source REALDIR]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from include.loaders import LOADERS, load, loader_module


def _describe(summary: dict[str, object]) -> str:
    lines = [f"{summary['dataset']}:"]
    for kind in ("events", "catalog", "customers"):
        stats = summary.get(kind)
        if not isinstance(stats, dict):
            continue
        skipped = stats["skipped"]
        reasons = f" ({', '.join(f'{k}: {v}' for k, v in skipped.items())})" if skipped else ""
        line = (
            f"  {kind:<9} source {stats['source_rows']:>7} = written {stats['written']:>7}"
            f" + skipped {stats['skipped_total']}{reasons}; {len(stats['files'])} file(s)"
        )
        if kind == "events":
            line += f", {stats['first_event_time']} .. {stats['last_event_time']}"
        else:
            line += f", snapshot_date={stats['snapshot_date']}"
        lines.append(line)
    lines.append(f"  files changed: {summary['files_changed']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m include.loaders",
        description="Load real public datasets into the landing zone (events, snapshots).",
    )
    parser.add_argument("name", help=f"'list', 'all' or one of: {', '.join(LOADERS)}")
    parser.add_argument("--out", type=Path, help="data dir (default: $TRASOS_DATA_DIR)")
    parser.add_argument(
        "--source", type=Path, help="folder of the datasets (default: $TRASOS_REAL_DATA_DIR)"
    )
    args = parser.parse_args(argv)

    if args.name == "list":
        for name in LOADERS:
            print(f"{name:<13} {loader_module(name).DESCRIPTION}")
        return 0
    names = list(LOADERS) if args.name == "all" else [args.name]
    if any(n not in LOADERS for n in names):
        parser.error(f"unknown loader {args.name!r}; known: list, all, {', '.join(LOADERS)}")
    for name in names:
        print(_describe(load(name, data_dir=args.out, source_dir=args.source)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
