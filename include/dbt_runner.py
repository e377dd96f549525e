"""The one way to run dbt from Python: this venv's dbt, absolute data paths, state-dir targets.

Owners, the transform CLI, the DA report, benches and tests all call :func:`run_dbt`; Cosmos
(in the events_transform DAG) gets the same environment from :func:`dbt_env_vars`. It imports
only settings, so a module can run dbt without pulling in the gate code of
:mod:`include.transform`.

dbt's target and logs go under the state directory, never ``dbt_project/target``, so a run
from Airflow or a test does not race a developer's own ``dbt build``.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from include.settings import get_settings

log = logging.getLogger(__name__)


class DbtError(RuntimeError):
    """dbt exited non-zero; ``proc`` holds its full output."""

    def __init__(self, message: str, proc: subprocess.CompletedProcess):
        super().__init__(message)
        self.proc = proc


def dbt_executable() -> str:
    """The dbt of this interpreter's environment (the project venv), else dbt on PATH."""
    local = Path(sys.executable).parent / "dbt"
    found = str(local) if local.exists() else shutil.which("dbt")
    if not found:
        raise FileNotFoundError("dbt is not installed in this environment: run `make setup`")
    return found


#: The profile of dbt_project/profiles.yml (and of dbt_project.yml's ``profile:``)
DBT_PROFILE = "trasos"


def dbt_target() -> str:
    """The profiles.yml target (:attr:`include.settings.Settings.dbt_target`)."""
    return get_settings().dbt_target


def dbt_env(base: dict[str, str] | None = None, data_dir: Path | None = None) -> dict[str, str]:
    """Environment for a dbt process: absolute data paths from settings, telemetry off.

    profiles.yml resolves a relative ``TRASOS_DATA_DIR`` against the repository root; dbt
    runs from elsewhere (Cosmos copies the project to a temporary directory) therefore always
    get absolute paths from here. ``data_dir`` (benches, tests) overrides the settings' data
    directory and drops a ``TRASOS_WAREHOUSE`` that would point elsewhere.
    """
    settings = get_settings()
    env = dict(os.environ if base is None else base)
    env["DBT_PROFILES_DIR"] = str(settings.dbt_project_dir)
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")
    env["TRASOS_DBT_TARGET"] = env.get("TRASOS_DBT_TARGET") or settings.dbt_target
    if env["TRASOS_DBT_TARGET"].startswith("spark"):
        env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    if data_dir is not None:
        env["TRASOS_DATA_DIR"] = str(Path(data_dir).resolve())
        env.pop("TRASOS_WAREHOUSE", None)
        env.pop("TRASOS_SPARK_DIR", None)
        return env
    env["TRASOS_DATA_DIR"] = str(settings.data_dir)
    if os.environ.get("TRASOS_SPARK_DIR"):
        env["TRASOS_SPARK_DIR"] = str(settings.spark_dir)
    if os.environ.get("TRASOS_WAREHOUSE"):  # also for a bare ``base`` (Cosmos' env_vars)
        env["TRASOS_WAREHOUSE"] = str(settings.warehouse_path)
    return env


def dbt_env_vars() -> dict[str, str]:
    """Only the variables dbt needs (for Cosmos' ProjectConfig.env_vars)."""
    full = dbt_env({})
    return {k: v for k, v in full.items() if k.startswith(("TRASOS_", "DBT_", "SPARK_"))}


def run_dbt(
    args: list[str],
    target_path: Path | None = None,
    log_output: bool = True,
    *,
    data_dir: Path | None = None,
    project_dir: Path | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run ``dbt <args>`` in the project with target/logs under ``target_path``.

    ``target_path`` defaults to ``<state>/dbt/target``; logs go next to it (``../logs``).
    ``data_dir`` runs against another data directory (see :func:`dbt_env`), ``project_dir``
    another copy of the dbt project (its profiles.yml too). Logs dbt's output
    line by line unless ``log_output`` is false. With ``check`` (default) a failing dbt raises
    :class:`DbtError` with dbt's last lines; without it the caller reads ``returncode``.
    """
    settings = get_settings()
    target = Path(target_path or settings.state_dir / "dbt" / "target")
    command = [
        dbt_executable(),
        *args,
        "--target-path",
        str(target),
        "--log-path",
        str(target.parent / "logs"),
    ]
    env = dbt_env(data_dir=data_dir)
    project = Path(project_dir or settings.dbt_project_dir)
    env["DBT_PROFILES_DIR"] = str(project)
    log.info("running %s", " ".join(command))
    proc = subprocess.run(
        command,
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    output = (proc.stdout or "") + (proc.stderr or "")
    for line in output.splitlines() if log_output else ():
        log.info("dbt | %s", line)
    if check and proc.returncode != 0:
        tail = "\n".join(output.splitlines()[-40:])
        raise DbtError(
            f"`dbt {' '.join(args)}` failed (exit {proc.returncode}). Fix the model or test "
            f"named below; the whole log is in {target.parent / 'logs'}.\n{tail}",
            proc,
        )
    return proc
