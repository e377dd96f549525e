"""
### events_transform (DE)

Turns the raw Parquet lake into the marts every other role reads. Runs whenever ingestion
has written new events (Asset `raw_events`).

1. **dbt** (a Cosmos task group, one task per dbt node that builds it, then its tests):
   seeds -> `stg_lake__*` (typed, bots excluded) -> `int_identities_stitched` (each device
   belongs to its last known customer) -> `int_events_sessionized` (30-minute inactivity
   sessions per stitched visitor, incremental) -> core marts `fct_events`, `fct_sessions`,
   `dim_items`, `dim_customers` -> ML marts `ml_interactions`, `ml_item_features`,
   `ml_user_features`. Every dbt task runs in the one-slot `duckdb_writer` pool.
2. **validate_marts**: row counts of the marts (fails on an empty one), then the Great
   Expectations `sessions` gate on `fct_sessions` (`include.transform.validate_marts`).
3. **publish_marts**: emits the Assets `sessions` and `interactions`, which start
   `business_metrics` (DA) and `train_recommender` (DS).

Models, grains and tests: `dbt_project/` (and its README for the incremental measurement);
`make dbt-docs` renders the dbt docs. DA's `marts/metrics` models are built by
`business_metrics`, not here. Owner: data engineering (DE).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import dag, task

import include.assets
import include.roles
from include.dbt_runner import dbt_env_vars, dbt_executable
from include.roles import Role
from include.settings import get_settings
from include.transform import DE_SELECT, ensure_dbt_ls

WRITER_POOL = "duckdb_writer"  # include.warehouse.WRITER_POOL, without importing duckdb here
_settings = get_settings()
DBT_PROJECT_DIR = _settings.dbt_project_dir
# Cosmos reads its settings when imported: keep its dbt ls / partial-parse cache in the
# git-ignored state directory and its telemetry off, unless the environment says otherwise.
os.environ.setdefault("AIRFLOW__COSMOS__CACHE_DIR", str(_settings.state_dir / "cosmos"))
os.environ.setdefault("AIRFLOW__COSMOS__ENABLE_TELEMETRY", "False")

from cosmos import (  # noqa: E402 - after the cache settings above
    DbtTaskGroup,
    ExecutionConfig,
    ProfileConfig,
    ProjectConfig,
    RenderConfig,
)
from cosmos.constants import (  # noqa: E402
    ExecutionMode,
    InvocationMode,
    LoadMode,
    TestBehavior,
)

# Absolute paths for dbt (the one runner's environment): Cosmos runs dbt from a temporary
# copy of the project, where the profile's relative defaults would point nowhere.
DBT_ENV = dbt_env_vars()


@dag(
    dag_id="events_transform",
    schedule=[include.assets.RAW_EVENTS],
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    max_active_runs=1,
    **include.roles.dag_kwargs(Role.DE, doc_md=__doc__, domain="transform"),
)
def events_transform() -> None:
    dbt = DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(
            dbt_project_path=DBT_PROJECT_DIR,
            env_vars=DBT_ENV,
            install_dbt_deps=False,
        ),
        profile_config=ProfileConfig(
            profile_name="trasos",
            target_name="dev",
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
            # the Assets below are the contract; no per-model datasets
            emit_datasets=False,
        ),
        operator_args={"install_deps": False, "pool": WRITER_POOL},
    )

    @task(pool=WRITER_POOL)
    def validate_marts(run_id: str | None = None) -> dict[str, Any]:
        """Gate on the marts: none empty, then the GX sessions suite on fct_sessions."""
        from include import transform
        from include.roles import fail_without_retry

        with fail_without_retry():  # the same marts fail the same way on a retry
            return transform.validate_marts(run_name=run_id)

    @task(outlets=[include.assets.SESSIONS, include.assets.INTERACTIONS])
    def publish_marts(summary: dict[str, Any]) -> dict[str, int]:
        """Emit the mart Assets; the XCom carries the row counts only."""
        return {name: info["rows"] for name, info in summary["tables"].items()}

    summary = validate_marts()
    dbt >> summary
    publish_marts(summary)


events_transform()
