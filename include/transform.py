"""The dbt side of the platform from Python: environment, builds, docs, the marts summary.

The ``events_transform`` DAG renders the dbt models as tasks with Cosmos; this module holds
what runs around them, and the command line used by ``make``:

    python -m include.transform build [dbt args...]   # dbt build on the local warehouse
    python -m include.transform docs                  # static dbt docs -> <reports>/dbt_docs/
    python -m include.transform summary               # row counts of the marts (JSON)
    python -m include.transform ls                    # refresh the dbt ls file the DAG renders

dbt itself runs through :func:`include.dbt_runner.run_dbt` (re-exported here).
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from common.fs import atomic_write_text
from common.locks import exclusive_lock
from include.dbt_runner import DBT_PROFILE, dbt_target, run_dbt
from include.settings import get_settings

log = logging.getLogger(__name__)


# Marts the marts gate (include.tasks.transform.validate_marts) summarises; (schema-qualified table, time column or None).
CORE_MARTS: tuple[tuple[str, str | None], ...] = (
    ("main.fct_sessions", "started_at"),
    ("main.fct_events", "event_at"),
    ("main.dim_customers", None),
    ("main.dim_items", None),
    ("main.ml_interactions", "last_interaction_at"),
    ("main.ml_item_features", None),
    ("main.ml_user_features", None),
)
# dbt selectors of the DE-owned part of the project (DA builds marts/metrics on its own).
DE_SELECT: tuple[str, ...] = (
    "path:seeds",
    "path:models/staging",
    "path:models/intermediate",
    "path:models/marts/core",
    "path:models/marts/ml",
)


def _project_mtime(project_dir: Path) -> float:
    """Newest modification time of the files dbt parses (not target/, logs/, .user.yml)."""
    newest = 0.0
    for path in project_dir.rglob("*"):
        rel = path.relative_to(project_dir).parts
        if rel[0] in {"target", "logs", "dbt_packages"} or path.name == ".user.yml":
            continue
        if path.is_file():
            newest = max(newest, path.stat().st_mtime)
    return newest


DBT_LS_KEYS: tuple[str, ...] = (
    "name",
    "unique_id",
    "resource_type",
    "depends_on",
    "original_file_path",
    "tags",
    "config",
    "freshness",
    "fqn",
)  # what Cosmos' own `dbt ls` asks for (cosmos.dbt.graph.run_dbt_ls)


def ensure_dbt_ls(select: tuple[str, ...] = DE_SELECT, target_path: Path | None = None) -> Path:
    """``dbt ls`` of the DE nodes as JSON lines, refreshed only when a project file is newer.

    The events_transform DAG renders its tasks from this file (Cosmos
    ``LoadMode.DBT_LS_FILE``): a DAG parse then reads a few kB and runs no dbt. Cosmos'
    ``DBT_LS`` mode caches in Airflow Variables, which a DAG processor cannot write, and
    ``DBT_MANIFEST`` reads the whole 1 MB manifest on every parse. A file lock keeps concurrent
    parsers from running dbt twice; the file is replaced atomically.
    """
    settings = get_settings()
    target = target_path or settings.state_dir / "dbt" / "ls"
    out = target / "dbt_ls.json"
    project_mtime = _project_mtime(settings.dbt_project_dir)
    if out.exists() and out.stat().st_mtime >= project_mtime:
        return out
    with exclusive_lock(target / ".lock", timeout_s=600, what="another `dbt ls`"):
        if out.exists() and out.stat().st_mtime >= project_mtime:
            return out  # another process listed while we waited
        proc = run_dbt(
            [
                "--quiet",
                "ls",
                "--select",
                *select,
                "--output",
                "json",
                "--output-keys",
                *DBT_LS_KEYS,
                # as Cosmos names them: dbt keys its partial parse on these flags, and this
                # parse seeds the producer's (include.tasks.transform._seed_partial_parse)
                "--profile",
                DBT_PROFILE,
                "--target",
                dbt_target(),
            ],
            target_path=target,
            log_output=False,
        )
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if not lines:
            raise RuntimeError(f"dbt ls selected no nodes with {' '.join(select)}")
        atomic_write_text(out, "\n".join(lines) + "\n")
    return out


#: dbt's static page as shipped (dbt-core 1.11) asks the browser for files that do not exist:
#: a favicon whose webpack ``require`` was never resolved, and each tree icon's raw Angular
#: expression (``<use xlink:href="{{ ... }}">`` is fetched before Angular fills it in; on a
#: file:// page that is a console error). The icon gets Angular's ``ng-attr-href`` (SVG 2
#: ``href``, set once evaluated); the page gets an empty inline favicon.
STATIC_DOCS_FIXES: tuple[tuple[str, str], ...] = (
    (
        """<link rel="shortcut icon" href="${require('./assets/favicons/favicon.ico')}"/>""",
        """<link rel="icon" href="data:,"/>""",
    ),
    ("""<use xlink:href="{{ getIcon(""", """<use ng-attr-href="{{ getIcon("""),
)


def fix_static_docs(html: str) -> str:
    """dbt's static docs page with :data:`STATIC_DOCS_FIXES` applied (a no-op for a dbt
    that no longer needs them)."""
    for old, new in STATIC_DOCS_FIXES:
        html = html.replace(old, new)
    return html


def generate_docs(out_dir: Path | None = None) -> Path:
    """``dbt docs generate --static`` into ``<reports>/dbt_docs/index.html`` (works offline).

    Opens the warehouse to read the catalog: run it when no dbt build is writing.
    """
    settings = get_settings()
    out = out_dir or settings.reports_dir / "dbt_docs"
    target = settings.state_dir / "dbt" / "docs_target"
    run_dbt(["docs", "generate", "--static"], target_path=target)
    out.mkdir(parents=True, exist_ok=True)
    page = (target / "static_index.html").read_text(encoding="utf-8")
    atomic_write_text(out / "index.html", fix_static_docs(page))
    for name in ("manifest.json", "catalog.json"):
        shutil.copyfile(target / name, out / name)
    log.info("dbt docs written to %s", out / "index.html")
    return out / "index.html"


def marts_summary(path: Path | None = None) -> dict[str, Any]:
    """Row counts (and time ranges) of the core and ML marts, read-only.

    Returns ``{"tables": {name: {"rows": n, "min": ..., "max": ...}}, "warehouse": path}``.
    """
    from include.warehouse import read_marts

    summary: dict[str, Any] = {"tables": {}}
    # connect() also works where dbt (run in-process by Cosmos) holds the file read-write
    with read_marts(path) as con:
        for table, time_column in CORE_MARTS:
            if time_column:
                rows, lo, hi = con.execute(
                    f"select count(*), min({time_column}), max({time_column}) from {table}"
                ).fetchall()[0]
                summary["tables"][table] = {"rows": rows, "min": str(lo), "max": str(hi)}
            else:
                rows = con.execute(f"select count(*) from {table}").fetchall()[0][0]
                summary["tables"][table] = {"rows": rows}
    summary["warehouse"] = str(path or get_settings().warehouse_path)
    return summary


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else "build"
    if command == "build":
        proc = run_dbt(["build", *argv[1:]])
        print(proc.stdout.splitlines()[-1] if proc.stdout else "dbt build done")
    elif command == "ls":
        print(ensure_dbt_ls())
    elif command == "docs":
        print(generate_docs())
    elif command == "summary":
        print(json.dumps(marts_summary(), indent=2, default=str))
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
