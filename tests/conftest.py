"""Shared fixtures. Every test gets its own data directory; nothing touches ./data.

Airflow is configured here, before anything imports it, through the same
``include.airflowctl.airflow_env`` that ``make up`` uses, with AIRFLOW_HOME in a
throw-away directory for the whole test session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# With the scale-out stack installed (`make setup-scale`), Great Expectations imports
# pyspark.sql.connect, whose import calls sys.exit(0) ("Skipping doctests") in a process whose
# __main__ has neither __spec__ nor __file__: an xdist worker. Give the worker's __main__ a file.
_main = sys.modules["__main__"]
if getattr(_main, "__spec__", None) is None and not hasattr(_main, "__file__"):
    _main.__file__ = "<pytest-xdist worker>"

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="trasos-tests-"))  # one per xdist worker
os.environ["TRASOS_STATE_DIR"] = str(_SESSION_DIR / "state")
# A task that fails and keeps its retry (include.roles.retry_delay) retries after 1 s, not 30:
# `airflow dags test` would otherwise sit idle for the retry delay.
os.environ.setdefault("TRASOS_RETRY_DELAY_SECONDS", "1")
os.environ.setdefault("TRASOS_DATA_DIR", str(_SESSION_DIR / "data"))
os.environ.pop("AIRFLOW_HOME", None)
# An xdist worker inherits the environment of the process that started it, whose conftest set
# the keys below for ITS session dir (metadata DB URL, secrets, Cosmos cache, lineage file):
# drop exactly those, so this worker derives them for its own dir. Exported values stay.
_DERIVED = "TRASOS_TESTS_DERIVED_KEYS"
for _key in filter(None, os.environ.pop(_DERIVED, "").split(",")):
    os.environ.pop(_key, None)

from include.airflowctl import airflow_env  # noqa: E402

_derived = []
for _key, _value in airflow_env().items():
    if _key.startswith(("AIRFLOW", "DBT_", "GX_")) and _key not in os.environ:
        os.environ[_key] = _value
        _derived.append(_key)
os.environ[_DERIVED] = ",".join(_derived)
# Each test sets its own through `data_dir`; one that does not gets this worker's scratch
# folder, never the repository's ./data (where a gate would leave its GX context and pages).
os.environ["TRASOS_DATA_DIR"] = str(_SESSION_DIR / "data")
# MLflow tracking costs ~5 s of CPU per process that trains or promotes: off, except in the
# tests that check it (the `mlflow_on` fixture), which run it for real on a local store.
os.environ["TRASOS_MLFLOW"] = "off"
os.environ.pop("MLFLOW_TRACKING_URI", None)


#: Test files that run longest start first: under `-n 2 --dist loadfile` (pyproject) one worker
#: runs the two-day browser test while the other runs the rest of the suite meanwhile.
LONGEST_FIRST = ("test_e2e_browser.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name not in LONGEST_FIRST)  # stable: order kept else


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh TRASOS_DATA_DIR for one test; settings resolve every path under it."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("TRASOS_DATA_DIR", str(root))
    monkeypatch.delenv("TRASOS_WAREHOUSE", raising=False)
    return root


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow store, migrated once per session (its migrations cost ~4 s of CPU)."""
    from recsys import tracking

    root = tmp_path_factory.mktemp("mlflow-template")
    tracking.client(tracking.store(root)).search_experiments()
    return root / tracking.STORE_DIR / tracking.DB_FILE


@pytest.fixture
def mlflow_on(monkeypatch: pytest.MonkeyPatch, data_dir: Path, mlflow_template: Path) -> Path:
    """Experiment tracking on (``recsys.tracking``) into the test's data directory, starting
    from a copy of the migrated empty store; returns the store's folder."""
    from recsys import tracking

    monkeypatch.setenv("TRASOS_MLFLOW", "on")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    folder = data_dir / tracking.STORE_DIR
    folder.mkdir()
    shutil.copyfile(mlflow_template, folder / tracking.DB_FILE)
    return folder


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    """A migrated Airflow metadata DB (SQLite) with the duckdb_writer pool, once per session."""
    from include.airflowctl import init

    home = Path(os.environ["AIRFLOW_HOME"])
    init(home=home)
    return home


def run_airflow(*args: str, env: dict[str, str] | None = None, timeout: int = 600):
    """Run the Airflow CLI of this venv; returns the CompletedProcess (output captured)."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_dagrunner(
    *args: str, log_dir: Path, timeout: float = 600, stdin: str | None = None
) -> tuple[int, list[dict]]:
    """Run ``make run``'s DAG runner on ``args`` (``stdin`` its input, else none); returns its
    exit code and JSON lines."""
    import json

    proc = subprocess.run(
        [sys.executable, "-m", "include.dagrunner", "--log-dir", str(log_dir), *args],
        env=dict(os.environ),
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()]


CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Launches headless Chromium (Playwright) contexts: ``chromium(viewport=...)``.

    Persistent profile and $HOME under ``tmp_path`` (Chromium writes $HOME/.config whatever
    the flags); skips when Chromium is not installed (``make browser``). Contexts still open
    at the end of the test are closed.
    """
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed: `make browser` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    home = tmp_path / "chromium-home"
    home.mkdir(exist_ok=True)
    pw = sync_playwright().start()
    contexts: list[Any] = []

    def launch(**kwargs: Any) -> Any:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / f"chromium-profile-{len(contexts)}"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            env={**os.environ, "HOME": str(home)},
            **kwargs,
        )
        contexts.append(context)
        return context

    try:
        yield launch
    finally:
        for context in contexts:
            try:
                context.close()
            except Exception:  # already closed by the test
                pass
        pw.stop()
