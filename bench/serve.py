"""Latency and throughput of the recommendations API on this machine (loopback only).

Publishes a realistic synthetic version (default 100k users x 20 personal recs, 20k items x 20
also-bought, cold-start lists) into a temporary data directory, starts
``python -m include.serving serve`` in its own process on 127.0.0.1, and drives it from another
process: ``wrk`` (Debian package; a Lua script adds the API key and draws random ids) or, when
wrk is missing, an asyncio+httpx generator. Traffic: 70 % user lists (about 9 % of them for
users the model does not know -> cold start), 30 % also-bought, k=10; then a separate paced
run of session requests (``--session-rate``, default 500/s: POST /v1/sessions/recommendations
with 1..10 random items, k=10, against the hybrid session model: an item table of
``--session-width`` neighbours per item and a session neighbourhood over
``--session-sessions`` synthetic training sessions, posting lists of up to 1,000 sessions per
item; by the same load generator), reported as ``session_rps`` and ``session_p99_ms``.
wrk paces by a fixed delay between a connection's requests, so the achieved rate is a little
below the offered one: ``--session-rate 560`` gives ~500/s.

Per server configuration (``--workers 1,2``) two runs, each bounded by ``--duration``:

* ``paced``: ``--connections`` connections sending ``--rate`` requests/s in total (wrk's
  ``delay()``); latency at that rate. This is the figure against the goal (p99 < 10 ms at
  >= 500 requests/s, no errors).
* ``saturated``: the same connections without pause: maximum throughput, and its latency.

Before the HTTP runs, the session model is also timed in process (``session_score_p50_ms``,
``session_score_p99_ms``: ``SessionIndex.score`` alone, no HTTP), which separates the model's
cost from the server's and the load generator's on a busy machine.

The last line printed is one JSON object: the paced run of the configuration with the lowest
p99 (``workers``), ``errors`` summed over every run, ``max_rps`` from its saturated run, a
short line per configuration, and the 1-minute load average (other work on the machine
shows up there: compare figures only at similar load).

    .venv/bin/python bench/serve.py [--users 100000 --items 20000 --duration 10 --rate 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from include.serving.publish import item_id, publish_fixture  # noqa: E402

# in the environment: the load generators run in spawned processes, which import this file
# again and must send the same key
API_KEY = os.environ.setdefault("BENCH_API_KEY", "bench-" + os.urandom(8).hex())
USER_SHARE = 0.7
UNKNOWN_USER_SHARE = 0.09
SESSION_PATH = "/v1/sessions/recommendations"

WRK_SCRIPT = r"""
local key = os.getenv("BENCH_API_KEY")
local users = tonumber(os.getenv("BENCH_USERS"))
local items = tonumber(os.getenv("BENCH_ITEMS"))
local user_share = tonumber(os.getenv("BENCH_USER_SHARE"))
local unknown_share = tonumber(os.getenv("BENCH_UNKNOWN_SHARE"))
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS"))
local kind = os.getenv("BENCH_KIND")
local session_path = os.getenv("BENCH_SESSION_PATH")
local headers = {["X-API-Key"] = key}
local post_headers = {["X-API-Key"] = key, ["Content-Type"] = "application/json"}
local user_span = math.floor(users / (1 - unknown_share))
local seeded = false

request = function()
  if not seeded then
    math.randomseed(os.time() + math.floor(os.clock() * 1e6))
    seeded = true
  end
  if kind == "sessions" then
    -- POST a session of 1..10 random items, k=10, a random visitor (the holdout's key)
    local n = math.random(1, 10)
    local events = {}
    for i = 1, n do
      events[i] = string.format('{"item_id":"I%06d"}', math.random(0, items - 1))
    end
    local body = string.format('{"events":[%s],"k":10,"visitor_id":"anon-%d"}',
      table.concat(events, ","), math.random(0, 1073741823))
    return wrk.format("POST", session_path, post_headers, body)
  end
  local path
  if math.random() < user_share then
    path = string.format("/v1/users/U%07d/recommendations?k=10", math.random(0, user_span - 1))
  else
    path = string.format("/v1/items/I%06d/also-bought?k=10", math.random(0, items - 1))
  end
  return wrk.format("GET", path, headers)
end

if delay_ms > 0 then
  delay = function()
    return delay_ms
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (uvicorn workers), MiB."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class Server:
    """``python -m include.serving serve`` in its own process; stopped by its pid only."""

    def __init__(self, env: dict[str, str], workers: int, log_path: Path) -> None:
        self.port = free_port()
        self.workers = workers
        self.log_path = log_path
        self.log = open(log_path, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "include.serving", "serve", "--host", "127.0.0.1"]
            + ["--port", str(self.port), "--workers", str(workers)],
            cwd=REPO_ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 180) -> float:
        """Seconds until every worker has loaded the model."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log_path.read_text()}")
            text = self.log_path.read_text()
            loaded = text.count("serving model")
            if loaded >= self.workers and "Application startup complete" in text:
                return time.monotonic() - started
            time.sleep(0.2)
        raise TimeoutError(f"server not ready after {timeout} s:\n{self.log_path.read_text()}")

    def load_seconds(self) -> float | None:
        found = re.findall(r"loaded in ([0-9.]+) s", self.log_path.read_text())
        return float(found[0]) if found else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def run_wrk(
    url: str,
    args: argparse.Namespace,
    rate: float,
    duration: float,
    tmp: Path,
    kind: str = "lists",
) -> dict:
    """wrk paced at ``rate`` (0: saturated); ``kind`` ``lists`` (GET user and also-bought
    lists) or ``sessions`` (POST /v1/sessions/recommendations, as the httpx generator)."""
    script = tmp / "bench.lua"
    script.write_text(WRK_SCRIPT)
    delay_ms = int(round(args.connections * 1000 / rate)) if rate > 0 else 0
    env = {
        **os.environ,
        "BENCH_API_KEY": API_KEY,
        "BENCH_USERS": str(args.users),
        "BENCH_ITEMS": str(args.items),
        "BENCH_USER_SHARE": str(USER_SHARE),
        "BENCH_UNKNOWN_SHARE": str(UNKNOWN_USER_SHARE),
        "BENCH_DELAY_MS": str(delay_ms),
        "BENCH_KIND": kind,
        "BENCH_SESSION_PATH": SESSION_PATH,
    }
    cmd = ["wrk", "-t1", f"-c{args.connections}", f"-d{duration:.0f}s", "--timeout", "2s"]
    cmd += ["-s", str(script), url]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRK_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed:\n{out.stdout}\n{out.stderr}")
    raw = json.loads(line.split(" ", 1)[1])
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {
        "rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p90_ms": round(raw["p90_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 2),
        "requests": raw["requests"],
        "errors": errors,
    }


def _httpx_loadgen(
    url: str, kind: str, users: int, items: int, rate: float, duration: float, conns: int, q
):
    """Runs in its own process: ``conns`` tasks, each paced to rate/conns (0: no pause).

    ``kind`` ``lists``: GET user lists and also-bought lists (USER_SHARE users); ``sessions``:
    POST /v1/sessions/recommendations with 1..10 random items, k=10, a random visitor_id.
    """
    import httpx

    async def main() -> dict:
        latencies: list[float] = []
        errors = 0
        user_span = int(users / (1 - UNKNOWN_USER_SHARE))
        interval = conns / rate if rate > 0 else 0.0
        end = time.perf_counter() + duration
        limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
        async with httpx.AsyncClient(
            base_url=url, headers={"X-API-Key": API_KEY}, limits=limits, timeout=2
        ) as client:

            def request(rng: random.Random):
                if kind == "sessions":
                    n = rng.randint(1, 10)
                    body = {
                        "events": [{"item_id": f"I{rng.randrange(items):06d}"} for _ in range(n)],
                        "k": 10,
                        # every session call names its visitor (the holdout's assignment key)
                        "visitor_id": f"anon-{rng.randrange(1 << 30)}",
                    }
                    return client.post(SESSION_PATH, json=body)
                if rng.random() < USER_SHARE:
                    return client.get(
                        f"/v1/users/U{rng.randrange(user_span):07d}/recommendations?k=10"
                    )
                return client.get(f"/v1/items/I{rng.randrange(items):06d}/also-bought?k=10")

            async def worker(i: int) -> None:
                nonlocal errors
                rng = random.Random(i if kind == "lists" else 1000 + i)
                next_at = time.perf_counter() + rng.random() * interval
                while True:
                    now = time.perf_counter()
                    if now >= end:
                        return
                    if interval and next_at > now:
                        await asyncio.sleep(next_at - now)
                    next_at += interval
                    t0 = time.perf_counter()
                    try:
                        response = await request(rng)
                        ok = response.status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    latencies.append(time.perf_counter() - t0)
                    errors += not ok

            started = time.perf_counter()
            await asyncio.gather(*(worker(i) for i in range(conns)))
            took = time.perf_counter() - started
        latencies.sort()

        def pct(p: float) -> float:
            if not latencies:  # nothing completed (a starved machine): no figure, not a crash
                return float("nan")
            return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2)

        return {
            "rps": round(len(latencies) / took, 1),
            "p50_ms": pct(0.50),
            "p90_ms": pct(0.90),
            "p99_ms": pct(0.99),
            "max_ms": round(latencies[-1] * 1000, 2) if latencies else float("nan"),
            "requests": len(latencies),
            "errors": errors,
        }

    q.put(asyncio.run(main()))


def _run_loadgen(url: str, kind: str, args: argparse.Namespace, rate: float, duration: float):
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(
        target=_httpx_loadgen,
        args=(url, kind, args.users, args.items, rate, duration, args.connections, q),
    )
    proc.start()
    result = q.get(timeout=duration + 120)
    proc.join(timeout=30)
    return result


def run_sessions(
    url: str, args: argparse.Namespace, rate: float, duration: float, tmp: Path, loadgen: str
) -> dict:
    """The paced session run, by the same load generator as the lists (a Python generator
    tops out near 300 requests/s on 2 cores: its own latency, not the server's)."""
    if loadgen == "wrk":
        return run_wrk(url, args, rate, duration, tmp, kind="sessions")
    return _run_loadgen(url, "sessions", args, rate, duration)


def run_httpx(url: str, args: argparse.Namespace, rate: float, duration: float, _: Path) -> dict:
    return _run_loadgen(url, "lists", args, rate, duration)


def session_scoring(version_dir: Path, n_items: int, n: int = 2000, seed: int = 1) -> dict:
    """In-process cost of scoring one session (no HTTP, one thread): percentiles over ``n``
    sessions of 1..10 random items, the same draw as the session load generator's."""
    from include.serving.session import load_session_index

    index = load_session_index(version_dir)
    if index is None:
        return {}
    rng = random.Random(seed)
    sessions = [
        [item_id(rng.randrange(n_items)) for _ in range(rng.randint(1, 10))] for _ in range(n)
    ]
    out: dict = {"hybrid": index.knn is not None}
    # the hybrid, then the item table alone (what the hybrid adds; on a busy machine both
    # tails are the process waiting for a core)
    for name, score in (("session_score", index.score), ("session_table_score", index.table_score)):
        took = []
        for items in sessions:
            t0 = time.perf_counter()
            score(items)
            took.append((time.perf_counter() - t0) * 1000.0)
        took.sort()
        out[f"{name}_p50_ms"] = round(took[len(took) // 2], 3)
        out[f"{name}_p99_ms"] = round(took[int(len(took) * 0.99)], 3)
    return out


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--k", type=int, default=20, help="items published per list")
    parser.add_argument("--duration", type=float, default=10, help="seconds per run")
    parser.add_argument("--rate", type=float, default=1000, help="paced run, requests/s")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--session-rate", type=float, default=500, help="paced session run, requests/s"
    )
    parser.add_argument(
        "--session-width", type=int, default=100, help="neighbours per item, session model"
    )
    parser.add_argument(
        "--session-sessions",
        type=int,
        default=500_000,
        help="training sessions of the hybrid session model (0: the item table alone)",
    )
    parser.add_argument("--workers", default="1,2", help="uvicorn workers to measure, e.g. 1,2")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "httpx"), default="auto")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    args = parser.parse_args()
    loadgen = args.loadgen
    if loadgen == "auto":
        loadgen = "wrk" if shutil.which("wrk") else "httpx"
    run = run_wrk if loadgen == "wrk" else run_httpx

    tmp = Path(tempfile.mkdtemp(prefix="trasos-bench-serve-"))
    env = {
        **os.environ,
        "TRASOS_DATA_DIR": str(tmp / "data"),
        "TRASOS_STATE_DIR": str(tmp / "state"),
        "TRASOS_API_KEYS": API_KEY,
    }
    results: list[dict] = []
    try:
        started = time.perf_counter()
        publish_fixture(
            tmp / "data" / "published",
            "bench-v1",
            n_users=args.users,
            n_items=args.items,
            k=args.k,
            session_width=args.session_width,
            session_sessions=args.session_sessions,
        )
        size = (tmp / "data" / "published" / "bench-v1" / "recommendations.parquet").stat().st_size
        rows = (args.users + args.items + 4) * args.k
        print(
            f"published {rows:,} rows ({args.users:,} users, {args.items:,} items, k={args.k}; "
            f"{size / 2**20:.1f} MiB parquet) in {time.perf_counter() - started:.1f} s; "
            f"load generator: {loadgen}; {os.cpu_count()} cores",
            flush=True,
        )
        scoring = session_scoring(tmp / "data" / "published" / "bench-v1", args.items)
        print(f"session scoring in process: {scoring}", flush=True)
        for workers in [int(w) for w in args.workers.split(",")]:
            server = Server(env, workers, tmp / f"server-{workers}.log")
            try:
                ready = server.wait_ready()
                rss = rss_mib(server.proc.pid)
                run(server.url, args, args.rate, 2, tmp)  # warm-up, not counted
                load_before = load_average()
                paced = run(server.url, args, args.rate, args.duration, tmp)
                saturated = run(server.url, args, 0, args.duration, tmp)
                run_sessions(server.url, args, args.session_rate, 2, tmp, loadgen)  # warm-up
                session = run_sessions(
                    server.url, args, args.session_rate, args.duration, tmp, loadgen
                )
                record = {
                    "workers": workers,
                    "ready_s": round(ready, 1),
                    "load_s": server.load_seconds(),
                    "rss_mib": round(rss),
                    "loadavg_1m_before": load_before[0],
                    "paced": paced,
                    "saturated": saturated,
                    "session_paced": session,
                }
                results.append(record)
                print(json.dumps(record), flush=True)
            finally:
                server.stop()
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    # The last line: the configuration with the lowest paced p99, the others alongside.
    best = min(results, key=lambda r: (r["paced"]["errors"], r["paced"]["p99_ms"]))
    summary = {
        "rps": best["paced"]["rps"],
        "p50_ms": best["paced"]["p50_ms"],
        "p99_ms": best["paced"]["p99_ms"],
        "errors": sum(r["paced"]["errors"] + r["saturated"]["errors"] for r in results),
        "workers": best["workers"],
        "target_rps": args.rate,
        "connections": args.connections,
        "max_rps": best["saturated"]["rps"],
        "max_rps_p99_ms": best["saturated"]["p99_ms"],
        "session_rps": best["session_paced"]["rps"],
        "session_p99_ms": best["session_paced"]["p99_ms"],
        "session_errors": sum(r["session_paced"]["errors"] for r in results),
        "by_workers": {
            str(r["workers"]): {
                "rps": r["paced"]["rps"],
                "p99_ms": r["paced"]["p99_ms"],
                "max_rps": r["saturated"]["rps"],
                "rss_mib": r["rss_mib"],
                "session_rps": r["session_paced"]["rps"],
                "session_p99_ms": r["session_paced"]["p99_ms"],
            }
            for r in results
        },
        **scoring,
        "loadgen": loadgen,
        "loadavg_1m": load_average()[0],
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
