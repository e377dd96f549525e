"""Task bodies of ``events_transform``: the Cosmos rendering of the DE dbt nodes, and the
gate on the marts after the build.

The dbt runner, ``dbt ls`` cache and marts summary are DE plumbing (:mod:`include.transform`);
this module wires them to Cosmos and to the GX ``sessions`` gate.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path
from typing import Any

from include.settings import REPO_ROOT, get_settings
from include.tasks import fail_fast

log = logging.getLogger(__name__)

DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"


def dbt_task_group(group_id: str, pool: str) -> Any:
    """The DE dbt nodes as a Cosmos ``DbtTaskGroup`` in watcher mode, every task in ``pool``.

    One producer task (``dbt_producer_watcher``) runs ``dbt source freshness`` and then ONE
    ``dbt build`` of the DE nodes (seeds, models, their data tests and unit tests, in dbt's own
    order: a model's unit tests before it, its data tests after it, a failure skips what is
    below). Each seed, model and lake source is still an Airflow task: a sensor that turns the
    state of its node in that build (and, for a model, of its tests) into its own state, and
    reruns its node alone when retried or cleared. Measured on ``make run``'s month (1M events,
    2 cores): 39 tasks of one ``dbt build --select <node>`` each took 115-123 s, mostly dbt's
    start-up paid per task; at the same load they took 1.4x the wall time and CPU of the one
    build with its sensors (docs/architecture.md).

    Cosmos reads its own settings when imported: :func:`cosmos_defaults` first.
    """
    from include.dbt_runner import DBT_PROFILE, dbt_env_vars, dbt_executable, dbt_target
    from include.transform import DE_SELECT, ensure_dbt_ls

    cosmos_defaults()
    from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
    from cosmos.constants import (
        ExecutionMode,
        InvocationMode,
        LoadMode,
        SourceRenderingBehavior,
        TestBehavior,
    )

    graph_log = logging.getLogger("cosmos.airflow.graph")
    if not any(isinstance(f, _UnrenderedUnitTests) for f in graph_log.filters):
        graph_log.addFilter(_UnrenderedUnitTests())
    group = DbtTaskGroup(
        group_id=group_id,
        project_config=ProjectConfig(
            dbt_project_path=DBT_PROJECT_DIR,
            # absolute paths: Cosmos runs dbt from a temporary copy of the project, where the
            # profile's relative defaults would point nowhere
            env_vars=dbt_env_vars(),
            install_dbt_deps=False,
        ),
        profile_config=ProfileConfig(
            profile_name=DBT_PROFILE,
            # TRASOS_DBT_TARGET: dev (DuckDB), object_store, spark (dbt_project/profiles.yml)
            target_name=dbt_target(),
            profiles_yml_filepath=DBT_PROJECT_DIR / "profiles.yml",
        ),
        execution_config=ExecutionConfig(
            # one `dbt build` in the producer task, sensors per node (see the docstring)
            execution_mode=ExecutionMode.WATCHER,
            # dbtRunner in the task process (no second interpreter); the producer follows the
            # build through dbt's callbacks
            invocation_mode=InvocationMode.DBT_RUNNER,
            dbt_executable_path=dbt_executable(),
            # the producer: a stale source (freshness `error`) stops what is below it; a
            # freshness warning only notifies DE
            setup_operator_args={"freshness_callback": stale_sources_stop_their_models},
        ),
        render_config=RenderConfig(
            # `dbt ls` of the DE nodes (DE_SELECT: DA's marts/metrics run in business_metrics),
            # re-listed only when a project file changed: a parse reads a few kB, runs no dbt
            load_method=LoadMode.DBT_LS_FILE,
            dbt_ls_path=(ls_path := ensure_dbt_ls(DE_SELECT)),
            # the producer builds exactly the nodes rendered
            select=list(DE_SELECT),
            # a sensor per model and one per model's data tests (their aggregated result in
            # the build, where dbt runs a relationships test after both its models)
            test_behavior=TestBehavior.AFTER_EACH,
            # Airflow owners stay the DAG's (data-engineering), not dbt's meta.owner ("DE")
            enable_owner_inheritance=False,
            # each model sensor emits its model's dataset (OpenLineage, per-model Asset events
            # through an AssetAlias); the DAGs still chain on the named Assets of
            # include/assets.py only
            emit_datasets=True,
            # `dbt source freshness` of each lake source: run by the producer before the
            # build, a sensor per source shows its result
            source_rendering_behavior=SourceRenderingBehavior.WITH_TESTS_OR_FRESHNESS,
        ),
        # sensors poke (no triggerer round trip): after the build each finds its node's state
        # at once. In the writer pool: a retried sensor runs its node's dbt command itself.
        operator_args={
            "pool": pool,
            "deferrable": False,
            "poke_interval": 5,
            # no dbt.log: Cosmos runs dbt in a temporary copy of the project, deleted after the
            # task, so its debug log file was written (5 s of a build here) and thrown away;
            # the task log keeps dbt's console output
            "dbt_cmd_global_flags": ["--log-level-file", "none"],
        },
    )
    _sensors_after_the_build(group)
    _seed_partial_parse(group, ls_path.parent)
    _report_node_ends_only(group)
    return group


def cosmos_defaults() -> None:
    """Cosmos's cache directory (in the git-ignored state directory), telemetry off and the
    producer's node states backed up on failure only, unless the environment says otherwise;
    Cosmos reads these once, when first imported.

    The backup (an Airflow Variable the retried producer restores its XCom from) is written
    by the failure callback when the build fails; Cosmos's default also rewrote the whole
    Variable, compressed, after each of the ~200 node events of a build (quadratic; 3 s of a
    build here), which only adds a producer killed without its callback (SIGKILL, lost
    host): then its sensors find the producer failed and no node state, and each runs its
    node alone (Cosmos's fallback), as they would for any node the build did not reach.
    """
    os.environ.setdefault("AIRFLOW__COSMOS__CACHE_DIR", str(get_settings().state_dir / "cosmos"))
    os.environ.setdefault("AIRFLOW__COSMOS__ENABLE_TELEMETRY", "False")
    os.environ.setdefault("AIRFLOW__COSMOS__ENABLE_WATCHER_RELIABLE_RETRY", "False")


def _seed_partial_parse(group: Any, ls_target: Path) -> None:
    """Give Cosmos's partial-parse cache the parse ``dbt ls`` just made, when it is newer.

    Cosmos copies its cached ``partial_parse.msgpack`` into each dbt run's temporary project
    and refreshes the cache after a build, but not after the producer's ``dbt source
    freshness``; so after ``make clean`` (or a project change) the freshness run and the
    build each parsed the whole project (~5 s each here). The ``dbt ls`` that renders this
    group parsed the same project, profile and environment: its file is valid, and where dbt
    finds it stale it parses in full, as without it.
    """
    from cosmos import cache
    from cosmos.constants import PRODUCER_WATCHER_TASK_ID
    from cosmos.dbt.project import get_partial_parse_path

    producer = group.dag.get_task(f"{group.group_id}.{PRODUCER_WATCHER_TASK_ID}")
    cache_dir = getattr(producer, "cache_dir", None)
    parsed = ls_target / "partial_parse.msgpack"
    if cache_dir is None or not parsed.exists():
        return
    cached = get_partial_parse_path(Path(cache_dir))
    if cache._get_timestamp(cached) < parsed.stat().st_mtime:
        cache._update_partial_parse_cache(parsed, Path(cache_dir))


#: dbt's events that a node is on its way (started, compiling, executing): followed, for
#: every node, by its ``NodeFinished``.
NODE_PROGRESS_EVENTS = frozenset({"NodeStart", "NodeCompiling", "NodeExecuting"})


def _report_node_ends_only(group: Any) -> None:
    """Make the group's producer pass dbt's node progress events by, and report ends only.

    Cosmos (1.15) pushes an XCom for each :data:`NODE_PROGRESS_EVENTS` event of every node
    (a node's "dbt event": status and times), each overwritten by the next and last by
    ``NodeFinished``; a sensor reads that XCom only once its node has ended, to log it. So
    3 of every node's ~5 pushes are never read, and each push is a round trip to Airflow's
    execution API, which the build's threads wait for: on ``make run``'s month (107 nodes,
    2 dbt threads) the producer took 30.4 s with them and 25.9 s without. Everything else the
    producer does with dbt's events (each node's end state and compiled SQL, the tests'
    aggregated result, the task log) is unchanged; dbt's debug log still has them.
    """
    from cosmos.constants import PRODUCER_WATCHER_TASK_ID

    producer = group.dag.get_task(f"{group.group_id}.{PRODUCER_WATCHER_TASK_ID}")
    producer.__class__ = _node_ends_producer(type(producer))


@functools.cache
def _node_ends_producer(base: type) -> type:
    """``base`` (Cosmos's producer class) with ``_make_parse_callable`` skipping
    :data:`NODE_PROGRESS_EVENTS`; one subclass per base, of the same name (the operator the
    UI and lineage show is still Cosmos's producer). A subclass, not a wrapped method on the
    instance: Airflow runs a copy of the task, whose state the parser must read."""
    if getattr(base, "_reports_node_ends_only", False):
        return base

    def _make_parse_callable(self: Any) -> Any:
        parse = base._make_parse_callable(self)

        def parse_node_ends(line: str, extra_kwargs: Any) -> None:
            try:
                name = json.loads(line).get("info", {}).get("name")
            except (ValueError, AttributeError):  # not a dbt JSON event: Cosmos logs it
                name = None
            if name not in NODE_PROGRESS_EVENTS:
                parse(line, extra_kwargs)

        return parse_node_ends

    return type(
        base.__name__,
        (base,),
        {
            "__module__": __name__,
            "__doc__": _report_node_ends_only.__doc__,
            "_reports_node_ends_only": True,
            "_make_parse_callable": _make_parse_callable,
        },
    )


def _sensors_after_the_build(group: Any) -> None:
    """Start the group's first sensors when the producer's build has ended (``all_done``: also
    when it failed, so each reads its node's state and the failed ones fail).

    Cosmos starts them next to the producer in a ``DbtTaskGroup``, to show progress live. Here
    every task shares the one-slot writer pool: a sensor taking the slot first would wait
    forever for a build that cannot start; and ``airflow dags test`` (``make run``) runs one
    task at a time, so a sensor before the producer would never return.

    Every sensor also gets a :data:`SENSOR_TIMEOUT_S`: started after the build, a sensor finds
    its node's state at its first poke, but Cosmos (1.15) pokes forever when the producer
    succeeded without reporting the node (seen when ``dbt source freshness`` failed with a
    runtime error: the build went on and the source sensors waited for ever). The timeout
    turns that into a failed task instead of a hung DAG run.
    """
    from airflow.sdk.bases.sensor import BaseSensorOperator
    from cosmos.constants import PRODUCER_WATCHER_DONE_TASK_ID, PRODUCER_WATCHER_TASK_ID

    tasks = {t.task_id: t for t in group.iter_tasks()}  # nested groups included
    producer = tasks[f"{group.group_id}.{PRODUCER_WATCHER_TASK_ID}"]
    done = tasks[f"{group.group_id}.{PRODUCER_WATCHER_DONE_TASK_ID}"]
    members = set(tasks)
    for task in tasks.values():
        if task is not producer and task is not done and not task.upstream_task_ids & members:
            producer >> task
            task.trigger_rule = "all_done"
        if isinstance(task, BaseSensorOperator):
            task.timeout = SENSOR_TIMEOUT_S


#: How long a dbt node's sensor waits for its node's state after the build (seconds). The
#: state is there at the first poke; only a node the producer never reported waits this long.
SENSOR_TIMEOUT_S = 600


#: The producer's freshness statuses that stop the models below a source: dbt's ``error``
#: (past ``error_after``). A ``warn`` (past ``warn_after`` only) notifies DE and stops nothing.
STALE_FRESHNESS = ("error", "runtime error")


def stale_sources_stop_their_models(
    context: Any, dag: Any, task_group: Any, nodes: Any, sources_json: dict[str, Any] | None
) -> list[tuple[str, str]]:
    """Cosmos watcher ``freshness_callback`` (run by the producer after ``dbt source freshness``).

    The models and seeds whose every parent is a stale source (or such a model) are left out
    of the build and marked skipped; the stale source's own sensor fails, so the run is red,
    as a freshness task of its own was. Cosmos's default also treats ``warn`` as stale; here
    a warning notifies DE (:func:`notify_dbt_warnings`) and the build goes on.
    """
    from cosmos.operators.watcher import _default_freshness_callback

    results = (sources_json or {}).get("results", [])
    warned = [r for r in results if r.get("status") == "warn"]
    if warned:
        notify_dbt_warnings(
            {
                "ti": context.get("ti"),
                "test_names": [r["unique_id"].removeprefix("source.trasos.") for r in warned],
                "test_results": [
                    f"WARN freshness: max_loaded_at {r.get('max_loaded_at')}, "
                    f"{r.get('max_loaded_at_time_ago_in_s', 0):.0f} s ago"
                    for r in warned
                ],
            }
        )
    stale = [r for r in results if r.get("status") in STALE_FRESHNESS]
    return _default_freshness_callback(context, dag, task_group, nodes, {"results": stale})


class _UnrenderedUnitTests(logging.Filter):
    """Cosmos 1.15 logs "Unavailable conversion function" for every dbt unit test: watcher mode
    renders none as a task, and none is needed (the producer's ``dbt build`` runs each before
    its model), so that one message is noise on every parse."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("Unavailable conversion function" in message and "unit_test." in message)


def notify_dbt_warnings(context: dict[str, Any]) -> None:
    """Cosmos ``on_warning_callback``: a dbt warning (e.g. a source past ``warn_after``)
    notifies DE with the nodes and dbt's messages; the task itself succeeds."""
    from include.roles import Role, notify

    names = list(context.get("test_names") or [])
    if not names:  # Cosmos calls this after every dbt command, warnings or not
        return
    ti = context.get("ti") or context.get("task_instance")
    results = [str(r) for r in context.get("test_results") or []]
    notify(
        Role.DE,
        subject=f"{getattr(ti, 'dag_id', '?')}.{getattr(ti, 'task_id', '?')}: dbt warning",
        error="; ".join(f"{n}: {r}" for n, r in zip(names, results, strict=False)),
        dag_id=getattr(ti, "dag_id", None),
        task_id=getattr(ti, "task_id", None),
        run_id=getattr(ti, "run_id", None),
        details={"nodes": names},
    )


@fail_fast
def validate_marts(path: Path | None = None, run_name: str | None = None) -> dict[str, Any]:
    """The gate after the dbt build: no mart may be empty, then the GX ``sessions`` suite on
    ``fct_sessions`` (durations, sizes, no overlapping sessions of one visitor).

    ``dim_customers`` alone may be empty when the data has no customer at all (no customer
    snapshot, no logged-in event: RetailRocket, OTTO and YOOCHOOSE visitors are anonymous).

    dbt tests guard the model logic; this gate guards the data handed to DS and DA. Raises
    ``ValueError`` naming empty marts, or fails without retry when the gate fails.
    """
    from expectations.gate import run_gate
    from include.transform import marts_summary
    from include.warehouse import frame, read_marts

    summary = marts_summary(path)
    empty = [name for name, info in summary["tables"].items() if info["rows"] == 0]
    with read_marts(path) as con:
        if (
            "main.dim_customers" in empty
            and not con.execute(
                "select count(*) from main.fct_events where user_id is not null"
            ).fetchall()[0][0]
        ):  # no customer snapshot and no login: an anonymous-only source
            log.warning("dim_customers is empty: no customer snapshot and no logged-in event")
            empty.remove("main.dim_customers")
        if empty:
            raise ValueError(
                f"marts built but empty: {', '.join(empty)}. Check that the raw lake has human "
                "(non-bot) events under TRASOS_DATA_DIR/lake/events and re-run events_transform."
            )
        log.info("marts: %s", json.dumps(summary["tables"], default=str))
        sessions = frame(
            con,
            "select session_id, visitor_id, started_at, ended_at, duration_s, n_events "
            "from fct_sessions",
        )
    gate = run_gate("sessions", sessions, run_name=run_name)
    return {**summary, "gate": gate.summary()}


def publish_analyst_copy() -> str:
    """Publish the marts as the read-only analyst copy (:mod:`include.analyst`); its folder.

    Reads the warehouse: schedule it in the writers' pool, so no dbt run holds the file.
    """
    from include.analyst import publish

    return str(publish())
