"""The house's import rules (pyproject.toml [tool.importlinter]) and the shape of the layers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from include.settings import REPO_ROOT


def test_import_contracts_hold() -> None:
    """lint-imports: dags -> include.tasks -> {include plumbing, expectations, recsys} -> common."""
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_the_contracts_would_catch_an_upward_import(tmp_path: Path) -> None:
    """The checker is live: a copy of recsys that imports include breaks its contract."""
    import shutil

    for name in ("dags", "include", "recsys", "expectations", "common"):
        shutil.copytree(
            REPO_ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bad = tmp_path / "recsys" / "plan.py"
    bad.write_text("from include.settings import get_settings\n" + bad.read_text())
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports")],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "recsys.plan -> include.settings" in proc.stdout


def test_dags_call_the_task_layer_only() -> None:
    """Every `include` module a DAG file imports is the task layer, roles or assets."""
    import ast

    allowed = ("include.tasks", "include.roles", "include.assets")
    for dag_file in sorted((REPO_ROOT / "dags").glob("*.py")):
        for node in ast.walk(ast.parse(dag_file.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                base = node.module
                names = [f"{base}.{a.name}" if base == "include" else base for a in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] == "include":
                    assert name.startswith(allowed), f"{dag_file.name} imports {name}"
