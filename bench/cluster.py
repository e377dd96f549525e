"""Benchmark: the same simulated week through the embedded profile and the cluster profile.

1. Simulates a week (7 days, ``--visitors`` visitors, 1 % faults, seed 11).
2. Embedded: ``ingest()`` in this process on local disk (the default).
3. Object store: the same ``ingest()`` with ``TRASOS_STORE_URL=s3://...`` on the cluster's
   SeaweedFS (loopback): the lake and quarantine are uploaded, DuckDB reads them via fsspec.
4. Cluster: ``make up-cluster``'s stack (PostgreSQL, Redis, SeaweedFS, Airflow with two
   Celery workers); the week lands in the writer's landing zone and the ``events_ingest``
   DAG runs on the workers (wall time from unpausing to the run's success, scheduling and
   task start-up included).

Every run must leave the same committed outputs (keys, load ids, row counts) and the same
event ids: ``identical_outputs``. Prints progress, then as its LAST line one JSON object::

    {"embedded_wall_s": ..., "cluster_wall_s": ..., "identical_outputs": true,
     "events_per_s_local_disk": ..., "events_per_s_object_store": ..., ...}

Usage: ``python bench/cluster.py [--visitors 20000]`` (needs ``make setup-scale``).
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


def log(msg: str) -> None:
    print(f"[bench/cluster {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def fingerprint() -> dict:
    """Committed outputs and event ids of the current settings' warehouse."""
    from include.warehouse import connect

    with connect(read_only=True) as con:
        return {
            "outputs": con.execute(
                "select path, load_id, kind, rows from raw.ingest_outputs order by 1"
            ).fetchall(),
            "event_ids": con.execute(
                "select count(*), sum(hash(id_hash)) from raw.event_ids"
            ).fetchall(),
            "events": con.execute("select count(*) from raw.events").fetchall(),
            "quarantine": con.execute("select count(*) from raw.quarantine").fetchall(),
        }


def run_ingest(data: Path, landing: Path, env: dict[str, str]) -> tuple[dict, float, dict]:
    """``ingest()`` into a fresh ``data`` with ``env`` set; (summary, seconds, fingerprint)."""
    from include.ingest import ingest

    shutil.copytree(landing, data / "landing")
    saved = {k: os.environ.get(k) for k in [*env, "TRASOS_DATA_DIR", "TRASOS_STORE_URL"]}
    os.environ["TRASOS_DATA_DIR"] = str(data)
    os.environ.pop("TRASOS_STORE_URL", None)
    os.environ.update(env)
    try:
        t0 = time.perf_counter()
        summary = ingest()
        took = time.perf_counter() - t0
        return summary.as_dict(), took, fingerprint()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()

    from include import cluster
    from include.simulator import SimulatorConfig, simulate

    work = Path(tempfile.mkdtemp(prefix="trasos-bench-cluster-"))
    work.chmod(0o755)  # PostgreSQL runs as nobody under root
    os.environ["TRASOS_CLUSTER_DIR"] = str(work / "cluster")
    os.environ.pop("TRASOS_WAREHOUSE", None)
    try:
        log(f"simulating {args.days} days, {args.visitors} visitors")
        simulate(
            SimulatorConfig(seed=11, days=args.days, visitors=args.visitors, fault_rate=0.01),
            work / "sim",
        )
        landing = work / "sim" / "landing"

        log("embedded: ingest on local disk")
        local, local_s, local_fp = run_ingest(work / "local", landing, {})
        events = local["lines_in"]
        log(f"  {events} lines in {local_s:.1f} s")

        log("starting the cluster profile")
        t0 = time.perf_counter()
        state = cluster.up()
        up_s = time.perf_counter() - t0
        log(f"  up in {up_s:.1f} s")
        s3 = {**state["s3_env"], "TRASOS_STORE_URL": f"s3://{cluster.BUCKET}/bench-inprocess"}

        log("object store: the same ingest() with the lake on SeaweedFS")
        remote, remote_s, remote_fp = run_ingest(work / "remote", landing, s3)
        log(f"  {remote['lines_in']} lines in {remote_s:.1f} s")

        log("cluster: events_ingest on the Celery workers")
        env = cluster.cluster_env(state, "writer")
        shutil.copytree(landing, Path(env["TRASOS_DATA_DIR"]) / "landing")
        api = cluster.ClusterApi(state)
        api.wait("events_ingest parsed", lambda: api.get("/dags/events_ingest"))
        t0 = time.perf_counter()
        run_id = api.unpause_and_first_run("events_ingest")
        run = api.wait_run("events_ingest", run_id, timeout_s=1800)
        cluster_s = time.perf_counter() - t0
        hosts = sorted({t["hostname"] for t in run["tasks"].values()})
        log(f"  {run['state']} in {cluster_s:.1f} s on {hosts}")
        saved = dict(os.environ)
        os.environ.update({k: env[k] for k in env if k.startswith(("TRASOS_", "AWS_"))})
        try:
            cluster_fp = fingerprint()
        finally:
            os.environ.clear()
            os.environ.update(saved)
    finally:
        cluster.down()

    identical = local_fp == remote_fp == cluster_fp and run["state"] == "success"
    result = {
        "events": events,
        "embedded_wall_s": round(local_s, 2),
        "cluster_wall_s": round(cluster_s, 2),
        "cluster_up_s": round(up_s, 1),
        "identical_outputs": identical,
        "events_per_s_local_disk": round(events / local_s),
        "events_per_s_object_store": round(events / remote_s),
        "cluster_workers": hosts,
    }
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
