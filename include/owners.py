"""The ownership map: every DAG, dbt model, GX suite and model artefact has one owning role.

``python -m include.owners`` (``make owners``) prints the map as a table and writes it as
``<reports>/owners.html``; it exits 1 when anything has no owner or more than one.

Where each owner comes from:

- DAG: its one role tag (``include.roles``);
- dbt model: ``config.meta.owner`` (set per folder in ``dbt_project.yml``, or in the model);
- GX suite: ``expectations.SUITE_OWNERS``;
- model artefact: ``owner`` in ``models/<version>/manifest.json`` (DS writes it).
"""

from __future__ import annotations

import html
import json
import sys
from dataclasses import dataclass
from pathlib import Path

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

    folder = dags_dir or REPO_ROOT / "dags"
    bag = DagBag(dag_folder=str(folder), known_pools={"default_pool", "duckdb_writer"})
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


def render_html(rows: list[Owned]) -> str:
    def team(owners: tuple[str, ...]) -> str:
        if len(owners) == 1 and owners[0] in ROLE_TAGS:
            return ROLES[Role(owners[0])].owner
        return ""

    body = "\n".join(
        f"<tr class='{'bad' if r.problem else ''}'><td>{html.escape(r.kind)}</td>"
        f"<td>{html.escape(r.name)}</td><td><b>{html.escape(', '.join(r.owners) or '-')}</b></td>"
        f"<td>{html.escape(team(r.owners))}</td><td>{html.escape(r.problem or 'ok')}</td>"
        f"<td><code>{html.escape(r.where)}</code></td></tr>"
        for r in rows
    )
    counts = {role.value: sum(1 for r in rows if r.owners == (role.value,)) for role in Role}
    summary = ", ".join(f"{k}: {v}" for k, v in counts.items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Ownership map</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}tr.bad{{background:#fdd}}</style>
</head><body><h1>Who owns what</h1><p>{len(rows)} things; {summary}.
Roles: {", ".join(f"{i.role.value} = {i.title} ({i.owner})" for i in ROLES.values())}.</p>
<table><tr><th>kind</th><th>name</th><th>role</th><th>team</th><th>check</th><th>where</th></tr>
{body}</table></body></html>"""


def main() -> int:
    rows = ownership_map()
    width = max((len(r.name) for r in rows), default=10)
    for r in rows:
        print(f"{r.kind:<15} {r.name:<{width}}  {', '.join(r.owners) or '-':<6} {r.problem or ''}")
    out = get_settings().reports_dir / "owners.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(rows))
    print(f"\nownership map: {out}")
    bad = problems(rows)
    for line in bad:
        print(f"PROBLEM: {line}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
