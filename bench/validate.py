"""Benchmark: the raw_events GX gate on 1M synthetic raw events.

Builds a DataFrame with the dtypes DuckDB gives for ``include.contracts.RAW_EVENT_COLUMNS``,
runs :func:`expectations.gate.run_gate` on it (prepare, validation, Data Docs rebuild, overview)
in a scratch data directory, prints progress, and as its LAST line one JSON object, e.g.
``{"raw_gate_1m_s": 3.1, ...}``. Goal: raw_gate_1m_s < 10 s. The one-off
``import great_expectations`` (several seconds) is timed separately as ``gx_import_s``.

Usage: ``python bench/validate.py [--rows N] [--keep]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def synthetic_raw_events(n: int, seed: int = 7):
    """``n`` valid raw events with the contract's columns and dtypes (vectorised numpy)."""
    import numpy as np
    import pandas as pd

    from common.contracts import EVENT_TYPES, PRODUCT_EVENT_TYPES
    from expectations.suites import PANDAS_DTYPE_OF_DUCKDB
    from include.contracts import RAW_EVENT_COLUMNS

    rng = np.random.default_rng(seed)
    types = np.array(EVENT_TYPES)
    event_type = types[rng.integers(0, len(types), n)]
    is_product = np.isin(event_type, PRODUCT_EVENT_TYPES)
    items = np.char.add("i", rng.integers(0, 20_000, n).astype(str))
    start = np.datetime64("2024-06-01T00:00:00", "us")
    event_time = start + rng.integers(0, 7 * 86_400_000_000, n).astype("timedelta64[us]")
    scroll = np.where(event_type == "scroll", rng.uniform(0, 100, n), np.nan)
    columns = {
        "event_id": np.char.add("e", np.arange(n).astype(str)),
        "event_time": event_time,
        "event_type": event_type,
        "anonymous_id": np.char.add("a", rng.integers(0, 200_000, n).astype(str)),
        "user_id": np.where(
            rng.random(n) < 0.4, np.char.add("u", rng.integers(0, 50_000, n).astype(str)), None
        ),
        "item_id": np.where(is_product, items, None),
        "page": np.where(is_product, np.char.add("/p/", items), "/"),
        "scroll_depth_pct": scroll,
        "list_position": pd.array(np.where(is_product, rng.integers(1, 50, n), 0), dtype="Int32"),
        "price": np.where(is_product, rng.uniform(5, 200, n).round(2), np.nan),
        "quantity": pd.array(np.ones(n, dtype="int32"), dtype="Int32"),
        "order_id": None,
        "search_query": None,
        "recommendation_id": None,
        "platform": np.array(["web", "ios", "android"])[rng.integers(0, 3, n)],
        "country": np.array(["DE", "FR", "NL", "SE"])[rng.integers(0, 4, n)],
        "user_agent": "bench/1.0",
        "properties": "{}",
        "is_bot": pd.array(np.zeros(n, dtype=bool), dtype="boolean"),
        "received_at": event_time + np.timedelta64(5, "s"),
        "source_file": "events/2024-06-01.jsonl.gz",
        "source_line": pd.array(np.arange(n), dtype="Int64"),
        "event_date": event_time.astype("datetime64[D]").astype("datetime64[us]"),
    }
    frame = pd.DataFrame(columns)
    return frame.astype({name: PANDAS_DTYPE_OF_DUCKDB[t] for name, t in RAW_EVENT_COLUMNS})[
        [name for name, _ in RAW_EVENT_COLUMNS]
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the scratch data dir")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="trasos-bench-gx-"))
    os.environ["TRASOS_DATA_DIR"] = str(scratch)
    figures: dict[str, float | int | str] = {"rows": args.rows}
    try:
        t0 = time.perf_counter()
        frame = synthetic_raw_events(args.rows)
        figures["build_frame_s"] = round(time.perf_counter() - t0, 2)
        print(f"built {len(frame):,} raw events in {figures['build_frame_s']} s", flush=True)

        t0 = time.perf_counter()
        from expectations.suites import import_gx

        import_gx()
        figures["gx_import_s"] = round(time.perf_counter() - t0, 2)
        print(f"imported great_expectations in {figures['gx_import_s']} s", flush=True)

        from expectations.gate import run_gate

        t0 = time.perf_counter()
        result = run_gate("raw_events", frame, n_quarantined=100, run_name="bench")
        figures["raw_gate_1m_s"] = round(time.perf_counter() - t0, 2)
        figures["success"] = str(result.success)
        figures["n_expectations"] = result.n_expectations
        print(
            f"raw_events gate: success={result.success}, {result.n_expectations} expectations, "
            f"{figures['raw_gate_1m_s']} s (first run, context and Data Docs included)",
            flush=True,
        )

        t0 = time.perf_counter()
        run_gate("raw_events", frame, n_quarantined=100, run_name="bench-again")
        figures["raw_gate_1m_second_run_s"] = round(time.perf_counter() - t0, 2)
        print(f"second run: {figures['raw_gate_1m_second_run_s']} s", flush=True)
        print(f"report: {result.overview_path}", flush=True)
    finally:
        if args.keep:
            print(f"kept {scratch}", flush=True)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
