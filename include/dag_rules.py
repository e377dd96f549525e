"""House rules every DAG must follow (checked by tests/test_dag_integrity.py).

Kept importable so the same checks can run as an Airflow cluster policy later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from include.roles import ROLE_TAGS, ROLES, Role


def dag_violations(dag: Any) -> list[str]:
    """Every broken house rule of one DAG, as readable sentences (empty when fine)."""
    problems: list[str] = []
    name = dag.dag_id
    role_tags = sorted(set(dag.tags or ()) & ROLE_TAGS)
    if len(role_tags) != 1:
        problems.append(
            f"{name}: needs exactly one role tag of DE/DS/DA, has {role_tags or 'none'}"
        )
    role = Role(role_tags[0]) if len(role_tags) == 1 else None
    if not (dag.doc_md or "").strip():
        problems.append(f"{name}: no doc_md (use the module docstring)")
    if dag.catchup:
        problems.append(f"{name}: catchup must be off")
    stem = Path(dag.fileloc).stem
    if stem != name:
        problems.append(f"{name}: dag_id must equal its file name ({stem})")
    for task in dag.tasks:
        if role is not None and task.owner != ROLES[role].owner:
            problems.append(
                f"{name}.{task.task_id}: owner {task.owner!r} does not match role "
                f"{role.value} ({ROLES[role].owner!r})"
            )
        if (task.retries or 0) < 1:
            problems.append(f"{name}.{task.task_id}: retries must be >= 1")
        if not task.on_failure_callback:
            problems.append(f"{name}.{task.task_id}: no on_failure_callback to notify the role")
    return problems


def scheduled_assets(dag: Any) -> set[str]:
    """Names of the Assets a DAG is scheduled on (empty for time-scheduled DAGs)."""
    condition = getattr(dag.timetable, "asset_condition", None)
    names: set[str] = set()

    def walk(node: Any) -> None:  # AssetAll / AssetAny nest; leaves are Assets
        if node is None:
            return
        children = getattr(node, "objects", None)
        if children is not None:
            for child in children:
                walk(child)
        elif getattr(node, "name", None):
            names.add(node.name)

    walk(condition)
    return names


def produced_assets(dag: Any) -> set[str]:
    names: set[str] = set()
    for task in dag.tasks:
        for outlet in task.outlets or ():
            if getattr(outlet, "name", None):
                names.add(outlet.name)
    return names


def orphan_assets(dags: dict[str, Any]) -> list[str]:
    """Assets some DAG is scheduled on that no DAG produces."""
    produced = set().union(*(produced_assets(d) for d in dags.values())) if dags else set()
    problems = []
    for dag_id, dag in sorted(dags.items()):
        for name in sorted(scheduled_assets(dag) - produced):
            problems.append(f"{dag_id}: scheduled on Asset {name!r} that no DAG produces")
    return problems
