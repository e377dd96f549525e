"""``python -m recsys evaluate SESSIONS.csv[.gz] --protocol session-last-item``.

The CSV has ``session_id,item_id`` and an order column (``pos`` or ``timestamp``), optionally
``split`` (``train``/``test``; without it the last 10 % of sessions by time are test). For each
test session of >= 2 events, all but its last event are revealed and every item is ranked for
the last one (revealed items excluded). The session model's hyper-parameters are chosen on a
validation slice carved from the train part. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys

from recsys.session.data import read_session_csv
from recsys.session.evaluation import evaluate_sessions, split_frame
from recsys.session.tuning import grid_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-sessions",
        type=int,
        default=None,
        help="session-last-item: evaluate at most N test sessions (seeded sample)",
    )


def main(args: argparse.Namespace) -> int:
    max_sessions = getattr(args, "max_sessions", None)
    if max_sessions is not None and max_sessions < 1:
        print(f"--max-sessions {max_sessions}: use 1 or more", file=sys.stderr)
        return 2
    try:
        frame = read_session_csv(args.path)
        train, test = split_frame(frame)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ev = evaluate_sessions(train, test, max_sessions=max_sessions, seed=args.seed)
    if ev.n_test_sessions == 0:
        print(
            f"error: {args.path} has no test session of 2 or more events to evaluate; check "
            "the split column (or let the last 10 % of sessions be the test)",
            file=sys.stderr,
        )
        return 2
    print(f"session-last-item on {args.path}: {ev.n_test_sessions} test sessions")
    print("validation grid (best points, chosen on the train part's last 10 % of sessions):")
    print(grid_table(ev.tuning))
    print(f"chosen: {ev.tuning.config}")
    print(f"hybrid (chosen on the same slice): {ev.tuning.hybrid}")
    print(ev.table().to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(json.dumps(ev.summary()))
    from recsys.tracking import log_cli_evaluation  # MLflow; a warning if unreachable

    log_cli_evaluation(args, None, ev, ev.summary())
    return 0
