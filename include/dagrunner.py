"""Run several DAGs one after the other in ONE process, exactly as ``airflow dags test`` does.

``airflow dags test <dag>`` pays Airflow's import, the DAG bag and the in-process execution
API start-up (together 15-20 s on 2 cores) for every DAG. ``make run`` runs six DAGs in data
order, so it calls the same CLI function (``airflow.cli.commands.dag_command.dag_test``,
through Airflow's own argument parser) for each DAG inside this one process: real DAG runs,
task instances and Asset events in the metadata DB, as with the CLI.

Each DAG's output (stdout and stderr, file descriptors included) goes to
``<log_dir>/<dag_id>.log``; one JSON line per DAG goes to the original stdout::

    {"dag_id": "events_ingest", "state": "success", "seconds": 41.2, "log": "..."}

Usage (with the environment of ``include.airflowctl.airflow_env``)::

    python -m include.dagrunner --log-dir .state/logs events_ingest events_transform ...

``--then-if-published DAG ...`` (with ``--then-log-dir``) is a second round in the same
process (``make run``'s experiment week, which needs served lists): after the first round, unless
it stopped at an untolerated failure, one line ``{"round": "then", "run": <bool>}`` says
whether a version is published, and if so the second round runs; if not, the DAGs given
with ``--otherwise`` run instead (``make run``: the DA and monitoring DAGs, which otherwise run
once, after the experiment week). One process for both rounds pays Airflow's start-up and
the heavy imports (GX, dbt, matplotlib) once. ``--wait-for-go`` builds the in-process
execution API first (see ``_warm_execution_api``) and starts when told.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def _redirect_output(path: Path) -> Iterator[None]:
    """Point fds 1 and 2 (and sys.stdout/stderr) at ``path`` for the duration."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("w") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _release_duckdb() -> None:
    """Close the DuckDB database dbt-duckdb keeps open in-process after a DAG's dbt tasks.

    Cosmos runs dbt in this process (``InvocationMode.DBT_RUNNER``); dbt-duckdb caches one
    open database per process (``DuckDBConnectionManager._ENV``), which would hold the
    warehouse's file lock against the next DAG's dbt subprocess. ``airflow dags test`` in a
    process of its own never meets this: the lock goes with the process.
    """
    import gc

    manager = sys.modules.get("dbt.adapters.duckdb.connections")
    if manager is not None:
        cm = manager.DuckDBConnectionManager
        with cm._LOCK:
            if cm._ENV is not None:
                cm._ENV.close()
            cm._ENV = None
    # the cursors of the closed database may sit in reference cycles: collect them, then
    # freeze what survived (imports, parsed DAGs, dbt's manifest) so that later collections,
    # this one after the next DAG and Python's own, walk only what was created since. A full
    # collection of this process's heap took 1.6 s; it ran after every DAG.
    gc.collect()
    gc.freeze()


def _release_spark() -> None:
    """Stop the JVM that a DAG's in-process dbt-spark started (target ``spark``).

    Cosmos's producer runs dbt in this process, and dbt-spark's ``method: session`` starts a
    SparkSession here, whose embedded Derby metastore admits one JVM: the next DAG's dbt
    (a subprocess: business_metrics) could not open it while this process holds it. The
    JVM ends when its stdin closes (pyspark's gateway server exits on EOF) or, when a forked
    child still holds that pipe, on a SIGTERM (its shutdown hooks close the metastore); the
    next in-process dbt-spark starts a new one.
    """
    context = sys.modules.get("pyspark.core.context")
    if context is None:
        return
    spark_context = context.SparkContext
    if spark_context._active_spark_context is not None:
        spark_context._active_spark_context.stop()
    gateway = spark_context._gateway
    if gateway is None:
        return
    proc = getattr(gateway, "proc", None)
    gateway.shutdown()
    spark_context._gateway = None
    spark_context._jvm = None
    if proc is None:
        return
    if proc.stdin is not None:
        proc.stdin.close()
    try:  # EOF ends it, unless a forked child still holds the pipe: then a SIGTERM
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _parse_dags() -> dict[str, object]:
    """Every DAG of the configured bundles, parsed once, as ``airflow dags test`` parses them.

    ``dags test`` parses the DAG folder and writes every DAG to the metadata DB before
    ``DAG.test()``, which parses and writes them again (Airflow 3.3): ~1.2 s per DAG here.
    A round of this runner parses once and gives each ``dags test`` its DAG; ``DAG.test()``
    still writes the bundle's DAGs to the metadata DB, so the run, its task instances and
    the Asset events are those of the CLI. A DAG missing here (failed to parse) goes to the
    CLI's own lookup, which reports it. Each round parses afresh: an operator may keep state
    between its runs in one process, as it cannot between ``dags test`` processes.
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag

    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    dags: dict[str, object] = {}
    for bundle in manager.get_all_dag_bundles():
        bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        for dag_id, dag in bag.dags.items():
            dags.setdefault(dag_id, dag)
    return dags


@contextmanager
def _bundles_written_once(written: set[tuple[str, str | None]]) -> Iterator[None]:
    """Within a round, let ``DAG.test()`` write each DAG bundle to the metadata DB once.

    ``DAG.test()`` (Airflow 3.3) parses its DAG's bundle again and writes every DAG of it to
    the metadata DB at each call (``sync_bag_to_db``; 0.4-0.8 s a call here, serialising
    ten DAGs to compare their hashes), so that sibling DAGs are there too. A round runs the
    DAGs it parsed once (:func:`_parse_dags`) from one bundle whose files it does not
    change: the first call writes them, and the round's later calls skip the same write.
    ``written``: the round's (bundle, version) pairs written so far, shared by its calls.
    """
    from airflow.dag_processing import dagbag

    write = dagbag.sync_bag_to_db

    def sync_bag_to_db(bag, bundle_name, bundle_version, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        key = (bundle_name, bundle_version)
        if key not in written:
            write(bag, bundle_name, bundle_version, *args, **kwargs)
            written.add(key)

    dagbag.sync_bag_to_db = sync_bag_to_db
    try:
        yield
    finally:
        dagbag.sync_bag_to_db = write


def _warm_execution_api() -> None:
    """Build the in-process execution API that ``DAG.test()`` runs every task through.

    Its first request makes Cadwyn generate the routers of every API version (~9 s of one
    core here, Airflow 3.3) inside the first task of the first DAG. ``--wait-for-go`` calls
    this before the go, while ``make run`` initialises Airflow and simulates: the request goes
    to a path that does not exist, so nothing reads the metadata DB, which may not exist yet.
    ``in_process_api_server`` is cached: every task of this process then uses this app.
    """
    import httpx
    from airflow.sdk.execution_time.supervisor import in_process_api_server

    api = in_process_api_server()
    with httpx.Client(transport=api.transport, base_url="http://in-process.invalid./") as c:
        c.get("/execution/warm-up")


def _dag_state(dag_id: str, started: float) -> str:
    """State of the DAG's latest run that started after ``started`` (epoch seconds)."""
    from datetime import UTC, datetime

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    since = datetime.fromtimestamp(started, tz=UTC)
    with create_session() as session:
        run = session.scalars(
            select(DagRun)
            .where(DagRun.dag_id == dag_id, DagRun.start_date >= since)
            .order_by(DagRun.start_date.desc())
            .limit(1)
        ).first()
        return str(run.state) if run is not None else "not_run"


def run_dags(
    dag_ids: list[str],
    log_dir: Path,
    out: IO[str],
    tolerate: tuple[str, ...] = (),
    results: list[dict] | None = None,
) -> int:
    """Run each DAG once (``airflow dags test``) and report one JSON line per DAG on ``out``.

    Stops after the first DAG whose run did not succeed, unless its log contains one of the
    ``tolerate`` strings (e.g. ``DefinitionOfDoneFailed``: a model that is not published is
    a result, the DAGs downstream still run); ``tolerated_by`` names the first one found.
    Returns 0 when every DAG succeeded, else 1; each result is also appended to ``results``.
    """
    from airflow.cli.cli_parser import get_parser
    from airflow.cli.commands.dag_command import dag_test

    log_dir.mkdir(parents=True, exist_ok=True)
    parser = get_parser()
    failed = 0
    dags: dict[str, object] | None = None  # parsed once per round: see _parse_dags
    written: set[tuple[str, str | None]] = set()  # bundles written this round
    for dag_id in dag_ids:
        log_path = log_dir / f"{dag_id}.log"
        t0 = time.time()
        error = None
        with _redirect_output(log_path):
            try:
                args = parser.parse_args(["dags", "test", dag_id])
                if dags is None:
                    dags = _parse_dags()
                # the CLI's own function, given the DAG this round parsed (the CLI would
                # parse the folder and write every DAG to the metadata DB first, and
                # DAG.test() does both again: the write, once a round)
                with _bundles_written_once(written):
                    dag_test(args, dag=dags.get(dag_id))
            except SystemExit as exc:  # the CLI's "DagRun failed"
                error = str(exc)
            except Exception as exc:  # noqa: BLE001 - reported, the caller decides
                error = f"{type(exc).__name__}: {exc}"
                import traceback

                traceback.print_exc()
            _release_duckdb()
            _release_spark()
        state = _dag_state(dag_id, t0 - 1)
        if error and state == "success":
            state = "failed"
        result = {
            "dag_id": dag_id,
            "state": state,
            "seconds": round(time.time() - t0, 1),
            "log": str(log_path),
            "error": error,
        }
        ok = state == "success"
        log_text = "" if ok else log_path.read_text(errors="replace")
        result["tolerated_by"] = next((t for t in tolerate if t in log_text), None)
        result["tolerated"] = result["tolerated_by"] is not None
        out.write(json.dumps(result) + "\n")
        out.flush()
        if results is not None:
            results.append(result)
        failed += not ok
        if not ok and not result["tolerated"]:
            break
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m include.dagrunner", description=__doc__)
    p.add_argument("--log-dir", type=Path, required=True)
    p.add_argument("--tolerate", action="append", default=[], help="see run_dags")
    p.add_argument("--then-if-published", nargs="+", default=[], metavar="DAG")
    p.add_argument("--then-log-dir", type=Path, default=None)
    p.add_argument("--otherwise", nargs="+", default=[], metavar="DAG",
                   help="the second round when nothing is published")  # fmt: skip
    p.add_argument("--wait-for-go", action="store_true",
                   help="warm Airflow up, then wait for a line 'go' on stdin (EOF: exit)")  # fmt: skip
    p.add_argument("dag_ids", nargs="+")
    args = p.parse_args(argv)
    out = os.fdopen(os.dup(1), "w")
    # stdout carries the JSON lines only: whatever else is printed outside a DAG run (a
    # library logging at exit: py4j after a Spark DAG) goes to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    if args.wait_for_go:
        args.log_dir.mkdir(parents=True, exist_ok=True)
        with _redirect_output(args.log_dir / "warm-up.log"):
            t0 = time.time()
            _warm_execution_api()
            print(f"execution API built in {time.time() - t0:.1f} s; waiting for go", flush=True)
        if sys.stdin.readline().strip() != "go":
            return 0  # the caller stopped before its data was ready: nothing to run
    tolerate = tuple(args.tolerate)
    results: list[dict] = []
    code = run_dags(args.dag_ids, args.log_dir, out, tolerate, results)
    stopped = any(r["state"] != "success" and not r["tolerated"] for r in results)
    if not args.then_if_published or stopped:
        return code
    from include.serving.loader import read_current
    from include.settings import get_settings

    published = read_current(get_settings().published_dir) is not None
    out.write(json.dumps({"round": "then", "run": published}) + "\n")
    out.flush()
    if not published:
        return max(code, run_dags(args.otherwise, args.log_dir, out, tolerate))
    then_dir = args.then_log_dir or args.log_dir / "then"
    return max(code, run_dags(args.then_if_published, then_dir, out, tolerate))


if __name__ == "__main__":
    sys.exit(main())
