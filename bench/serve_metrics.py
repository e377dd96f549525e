"""What GET /metrics' bookkeeping costs a request, in process (no network, no load generator).

bench/serve.py measures latency end to end, but on this shared 2-core machine its p99 moves by
far more than a few microseconds from run to run. This one calls the ASGI app directly, the
same requests through the same app with and without the metrics middleware
(``include.serving.metrics.MetricsMiddleware``), in alternating rounds, and reports the median
time per request of each: the fast path (a valid user list) and a FastAPI request (a 404
also-bought), plus one scrape of ``/metrics``.

    .venv/bin/python bench/serve_metrics.py [--requests 20000 --rounds 7]

Last line: one JSON object (``*_us`` per request; ``metrics_overhead_us`` = the fast path with
minus without; ``scrape_ms``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from include.serving.app import create_app  # noqa: E402
from include.serving.loader import ModelStore  # noqa: E402
from include.serving.metrics import MetricsMiddleware  # noqa: E402
from include.serving.publish import publish_fixture  # noqa: E402

KEY = "bench-key"


def scope(path: str, query: bytes = b"k=10") -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": [(b"host", b"bench"), (b"x-api-key", KEY.encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
    }


async def receive() -> dict:
    return {"type": "http.request", "body": b"", "more_body": False}


async def run(app, paths: list[str], statuses: list[int]) -> float:
    """Seconds per request over ``paths``."""
    status = [0]

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]

    start = time.perf_counter()
    for path in paths:
        await app(scope(path), receive, send)
    elapsed = time.perf_counter() - start
    statuses.append(status[0])
    return elapsed / len(paths)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--users", type=int, default=10_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        published = Path(tmp)
        publish_fixture(published, "v1", n_users=args.users, n_items=2000, k=20, session=False)
        store = ModelStore(published)
        assert store.check()
        apps = {}
        for name in ("without", "with"):
            app = create_app(store=store, api_keys=[KEY], start_watcher=False)
            if name == "without":
                app.user_middleware = [
                    m for m in app.user_middleware if m.cls is not MetricsMiddleware
                ]
            apps[name] = app
        users = [f"/v1/users/U{i % args.users:07d}/recommendations" for i in range(args.requests)]
        missing = [f"/v1/items/X{i:06d}/also-bought" for i in range(args.requests // 10)]
        times: dict[str, list[float]] = {}
        statuses: list[int] = []
        loop = asyncio.new_event_loop()
        for _ in range(args.rounds):
            for name, app in apps.items():
                times.setdefault(f"fast_{name}", []).append(
                    loop.run_until_complete(run(app, users, statuses))
                )
                times.setdefault(f"fastapi_{name}", []).append(
                    loop.run_until_complete(run(app, missing, statuses))
                )
        assert set(statuses) == {200, 404}, statuses
        scrape = []
        app = apps["with"]
        for _ in range(20):
            start = time.perf_counter()
            loop.run_until_complete(app(scope("/metrics", b""), receive, _discard))
            scrape.append(time.perf_counter() - start)
        loop.close()

    us = {name: round(statistics.median(values) * 1e6, 2) for name, values in times.items()}
    result = {
        "fast_path_us": us["fast_without"],
        "fast_path_with_metrics_us": us["fast_with"],
        "metrics_overhead_us": round(us["fast_with"] - us["fast_without"], 2),
        "fastapi_404_us": us["fastapi_without"],
        "fastapi_404_with_metrics_us": us["fastapi_with"],
        "scrape_ms": round(statistics.median(scrape) * 1e3, 2),
        "requests_per_round": args.requests,
        "rounds": args.rounds,
    }
    print(json.dumps(result))


async def _discard(message: dict) -> None:
    return None


if __name__ == "__main__":
    main()
