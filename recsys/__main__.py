"""Command line of the DS library: ``python -m recsys evaluate FILE --protocol P``.

Each protocol lives in its own module with ``add_arguments(parser)`` and ``main(args) -> int``;
this file only dispatches. The last line a protocol prints is one JSON object.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: protocol name -> module holding ``add_arguments`` and ``main``
PROTOCOLS: dict[str, str] = {
    "session-last-item": "recsys.cli.session",
    "leave-last-out": "recsys.cli.interactions",
    "time": "recsys.cli.interactions",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recsys", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("evaluate", help="evaluate the models and baselines on a CSV file")
    ev.add_argument("path", help="CSV or CSV.gz file (see --protocol for its columns)")
    ev.add_argument("--protocol", required=True, choices=sorted(PROTOCOLS))
    ev.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    for module in sorted(set(PROTOCOLS.values())):
        try:
            importlib.import_module(module).add_arguments(ev)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        module = importlib.import_module(PROTOCOLS[args.protocol])
    except ModuleNotFoundError:
        print(f"protocol {args.protocol!r} is not available in this version", file=sys.stderr)
        return 2
    return int(module.main(args))


if __name__ == "__main__":
    sys.exit(main())
