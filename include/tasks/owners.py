"""The ownership map: every DAG, dbt model, GX suite and model artefact has one owning role.

``python -m include.tasks.owners`` (``make owners``) prints the map as a table and writes it as
``<reports>/owners.html``; it exits 1 when anything has no owner or more than one.

Where each owner comes from:

- DAG: its one role tag (``include.roles``);
- dbt model: ``config.meta.owner`` (set per folder in ``dbt_project.yml``, or in the model);
- GX suite: ``expectations.SUITE_OWNERS``;
- model artefact: ``owner`` in ``models/<version>/manifest.json`` (DS writes it).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from include.reporting.pages import write_page
from include.roles import ROLE_TAGS, ROLES, Role
from include.settings import REPO_ROOT, get_settings


@dataclass(frozen=True)
class Owned:
    kind: str  # dag | dbt_model | gx_suite | model_artefact
    name: str
    owners: tuple[str, ...]  # as declared; exactly one role is valid
    where: str

    @property
    def problem(self) -> str | None:
        valid = [o for o in self.owners if o in ROLE_TAGS]
        if not self.owners:
            return "no owner"
        if len(self.owners) > 1:
            return f"{len(self.owners)} owners: {', '.join(self.owners)}"
        if len(valid) != 1:
            return f"owner {self.owners[0]!r} is not one of DE/DS/DA"
        return None


def _as_owners(value: object) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return (str(value),)


def dag_owners(dags_dir: Path | None = None) -> list[Owned]:
    from airflow.dag_processing.dagbag import DagBag

    from include.assets import WRITER_POOL

    folder = dags_dir or REPO_ROOT / "dags"
    bag = DagBag(dag_folder=str(folder), known_pools={"default_pool", WRITER_POOL})
    rows = []
    for dag_id, dag in sorted(bag.dags.items()):
        tags = tuple(sorted(set(dag.tags or ()) & ROLE_TAGS))
        rows.append(Owned("dag", dag_id, tags, Path(dag.fileloc).name))
    return rows


def dbt_model_owners(project_dir: Path | None = None) -> list[Owned]:
    """Owners of every dbt model, as dbt resolves its config (folder + model level)."""
    from include.dbt_runner import run_dbt

    result = run_dbt(
        [
            "ls",
            "--resource-type",
            "model",
            "--output",
            "json",
            "--output-keys",
            "name original_file_path config",
            "--quiet",
        ],
        target_path=get_settings().state_dir / "dbt_owners_target",
        log_output=False,
        project_dir=project_dir,
    )
    rows = []
    for line in result.stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        node = json.loads(line)
        meta = node.get("config", {}).get("meta", {}) or {}
        rows.append(
            Owned(
                "dbt_model", node["name"], _as_owners(meta.get("owner")), node["original_file_path"]
            )
        )
    return sorted(rows, key=lambda r: r.name)


def gx_suite_owners() -> list[Owned]:
    try:
        from expectations import SUITE_OWNERS
    except ImportError:
        return []
    return [
        Owned("gx_suite", suite, _as_owners(owner), "expectations/")
        for suite, owner in sorted(SUITE_OWNERS.items())
    ]


def model_artefact_owners(models_dir: Path | None = None) -> list[Owned]:
    root = models_dir or get_settings().models_dir
    rows = []
    if not root.exists():
        return rows
    versions = (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
    for version in sorted(versions):
        manifest = version / "manifest.json"
        owner = json.loads(manifest.read_text()).get("owner") if manifest.exists() else None
        rows.append(Owned("model_artefact", version.name, _as_owners(owner), str(version)))
    return rows


def ownership_map() -> list[Owned]:
    return dag_owners() + dbt_model_owners() + gx_suite_owners() + model_artefact_owners()


def problems(rows: list[Owned]) -> list[str]:
    return [f"{r.kind} {r.name} ({r.where}): {r.problem}" for r in rows if r.problem]


def page_context(rows: list[Owned]) -> dict[str, object]:
    """What the ownership page shows: one row per owned thing, counts per role, the roles."""

    def team(owners: tuple[str, ...]) -> str:
        if len(owners) == 1 and owners[0] in ROLE_TAGS:
            return ROLES[Role(owners[0])].owner
        return ""

    return {
        "title": "Who owns what",
        "rows": [
            {
                "kind": r.kind,
                "name": r.name,
                "role": ", ".join(r.owners) or "-",
                "team": team(r.owners),
                "check": r.problem or "ok",
                "where": r.where,
                "status": "bad" if r.problem else "ok",
            }
            for r in rows
        ],
        "counts": {role.value: sum(1 for r in rows if r.owners == (role.value,)) for role in Role},
        "roles": [
            {"role": i.role.value, "title": i.title, "team": i.owner} for i in ROLES.values()
        ],
    }


def main() -> int:
    rows = ownership_map()
    width = max((len(r.name) for r in rows), default=10)
    for r in rows:
        print(f"{r.kind:<15} {r.name:<{width}}  {', '.join(r.owners) or '-':<6} {r.problem or ''}")
    out = write_page(
        get_settings().reports_dir / "owners.html", "owners.html", **page_context(rows)
    )
    print(f"\nownership map: {out}")
    bad = problems(rows)
    for line in bad:
        print(f"PROBLEM: {line}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
