"""`make run`'s one-process DAG runner: real DAG runs, one JSON line each, stops on failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def run_dagrunner(*args: str, log_dir: Path) -> tuple[int, list[dict]]:
    proc = subprocess.run(
        [sys.executable, "-m", "include.dagrunner", "--log-dir", str(log_dir), *args],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()]


def test_runs_dags_in_order_in_one_process(airflow_home: Path, data_dir: Path, tmp_path):
    code, results = run_dagrunner("model_monitor", "model_monitor", log_dir=tmp_path)
    assert code == 0
    assert [(r["dag_id"], r["state"]) for r in results] == [("model_monitor", "success")] * 2
    log = Path(results[-1]["log"]).read_text()
    assert "dag_id=model_monitor" in log and "state=success" in log  # the DagRun's own line


def test_stops_at_the_first_failure_unless_tolerated(airflow_home: Path, data_dir: Path, tmp_path):
    code, results = run_dagrunner("no_such_dag", "model_monitor", log_dir=tmp_path)
    assert code == 1
    assert len(results) == 1  # model_monitor never ran
    assert results[0]["dag_id"] == "no_such_dag" and results[0]["state"] == "not_run"
    assert not results[0]["tolerated"]
    assert "could not be found" in results[0]["error"]

    code, results = run_dagrunner(
        "--tolerate", "could not be found", "no_such_dag", "model_monitor", log_dir=tmp_path
    )
    assert code == 1  # a tolerated failure is still a failure, but the next DAG runs
    assert [(r["dag_id"], r["state"], r["tolerated"]) for r in results] == [
        ("no_such_dag", "not_run", True),
        ("model_monitor", "success", False),
    ]
