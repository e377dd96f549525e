"""Task bodies of ``events_transform``: the Cosmos rendering of the DE dbt nodes, and the
gate on the marts after the build.

The dbt runner, ``dbt ls`` cache and marts summary are DE plumbing (:mod:`include.transform`);
this module wires them to Cosmos and to the GX ``sessions`` gate.
"""

from __future__ import annotations

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
    """The DE dbt nodes as a Cosmos ``DbtTaskGroup`` (one task per node, each in ``pool``).

    Cosmos reads its own settings when imported, so its cache directory (in the git-ignored
    state directory) and telemetry switch are set here, before the import.
    """
    from include.dbt_runner import dbt_env_vars, dbt_executable, dbt_target
    from include.transform import DE_SELECT, ensure_dbt_ls

    settings = get_settings()
    os.environ.setdefault("AIRFLOW__COSMOS__CACHE_DIR", str(settings.state_dir / "cosmos"))
    os.environ.setdefault("AIRFLOW__COSMOS__ENABLE_TELEMETRY", "False")
    from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
    from cosmos.constants import (
        DbtResourceType,
        ExecutionMode,
        InvocationMode,
        LoadMode,
        SourceRenderingBehavior,
        TestBehavior,
    )

    graph_log = logging.getLogger("cosmos.airflow.graph")
    if not any(isinstance(f, _ConvertedUnitTests) for f in graph_log.filters):
        graph_log.addFilter(_ConvertedUnitTests())
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
            profile_name="trasos",
            # TRASOS_DBT_TARGET: dev (DuckDB), object_store, spark (dbt_project/profiles.yml)
            target_name=dbt_target(),
            profiles_yml_filepath=DBT_PROJECT_DIR / "profiles.yml",
        ),
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.LOCAL,
            # dbtRunner in the task process: no second interpreter start per task (measured 3x
            # faster than SUBPROCESS on the small DAG test); the venv's dbt either way
            invocation_mode=InvocationMode.DBT_RUNNER,
            dbt_executable_path=dbt_executable(),
        ),
        render_config=RenderConfig(
            # `dbt ls` of the DE nodes (DE_SELECT: DA's marts/metrics run in business_metrics),
            # re-listed only when a project file changed: a parse reads a few kB, runs no dbt
            load_method=LoadMode.DBT_LS_FILE,
            dbt_ls_path=ensure_dbt_ls(DE_SELECT),
            # one task per node: `dbt build --select <node>` runs it and then its tests. Half
            # the tasks of AFTER_EACH (run + test), which matters under a one-slot writer pool
            # where every task pays a process start (~5-10 s on 2 cores).
            test_behavior=TestBehavior.BUILD,
            # a relationships test runs after BOTH its models, in a task of its own (left in
            # the build of its first parent it would run before the second one exists)
            should_detach_multiple_parents_tests=True,
            # Airflow owners stay the DAG's (data-engineering), not dbt's meta.owner ("DE")
            enable_owner_inheritance=False,
            # Cosmos emits each model's datasets (OpenLineage inputs/outputs from dbt's
            # artifacts, and per-model Asset events through an AssetAlias); the DAGs still
            # chain on the named Assets of include/assets.py only
            emit_datasets=True,
            # `dbt source freshness` of each lake source as a task upstream of its staging
            # model: an error (stale source) fails it and stops every model below it
            source_rendering_behavior=SourceRenderingBehavior.WITH_TESTS_OR_FRESHNESS,
            # dbt unit tests (Cosmos renders none by itself): one `dbt test` task each
            node_converters={DbtResourceType("unit_test"): _unit_test_task},
        ),
        # the model builds leave their unit tests to the unit-test tasks (run before them)
        operator_args={"pool": pool, "exclude": UNIT_TESTS},
        # freshness warnings (warn_after passed, error_after not yet) notify DE
        on_warning_callback=notify_dbt_warnings,
    )
    _run_unit_tests_before_their_model(group)
    return group


UNIT_TESTS = "resource_type:unit_test"


def _unit_test_task(
    dag: Any, task_group: Any, node: Any, task_id: str, task_args: dict[str, Any], **_: Any
) -> Any:
    """Cosmos node converter: a dbt unit test as one ``dbt test --select <its fqn>`` task."""
    from cosmos.operators.local import DbtTestLocalOperator

    args = {**task_args, "exclude": None, "select": "fqn:" + ".".join(node.fqn)}
    return DbtTestLocalOperator(
        task_id=f"{node.name}_unit_test",
        dag=dag,
        task_group=task_group,
        **args,
    )


def _run_unit_tests_before_their_model(group: Any) -> None:
    """dbt's order: unit tests, then the model they test (``dbt build`` does the same).

    Cosmos wires a unit test after the model it depends on; here it runs after the model's
    parents (a unit test reads their column types) and before the model, so a failing unit
    test stops the model and everything below it.
    """
    unit_tests = [t for t in group.children.values() if t.task_id.endswith("_unit_test")]
    models = {t.task_id: t.upstream_list[0] for t in unit_tests}  # Cosmos: the tested model
    parents = {m.task_id: list(m.upstream_list) for m in models.values()}  # before rewiring
    for task in unit_tests:
        model = models[task.task_id]
        model.downstream_task_ids.discard(task.task_id)
        task.upstream_task_ids.discard(model.task_id)
        for parent in parents[model.task_id]:
            parent >> task
        task >> model


class _ConvertedUnitTests(logging.Filter):
    """Cosmos 1.15 logs "Unavailable conversion function" for a unit test before it looks at
    ``node_converters``; ours converts them, so that one message is noise on every parse."""

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
    from include.warehouse import read_marts

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
        sessions = con.execute(
            "select session_id, visitor_id, started_at, ended_at, duration_s, n_events "
            "from fct_sessions"
        ).df()
    gate = run_gate("sessions", sessions, run_name=run_name)
    return {**summary, "gate": gate.summary()}


def publish_analyst_copy() -> str:
    """Publish the marts as the read-only analyst copy (:mod:`include.analyst`); its folder.

    Reads the warehouse: schedule it in the writers' pool, so no dbt run holds the file.
    """
    from include.analyst import publish

    return str(publish())
