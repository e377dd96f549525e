"""``python -m include.ingest [--data-dir DIR] [--json]``: run one ingestion, print the summary."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.ingest", description=__doc__)
    parser.add_argument(
        "--data-dir", type=Path, help="data directory (default: TRASOS_DATA_DIR or ./data)"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every load")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.data_dir:
        os.environ["TRASOS_DATA_DIR"] = str(args.data_dir.resolve())

    from include.ingest import IngestError, ingest

    try:
        summary = ingest().as_dict()
    except IngestError as exc:
        print(f"ingestion failed: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary, default=str))
        return 0
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
