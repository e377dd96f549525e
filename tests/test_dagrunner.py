"""`make run`'s one-process DAG runner: real DAG runs, one JSON line each, stops on failure."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_dagrunner

pytestmark = pytest.mark.integration


def test_runs_dags_in_order_and_stops_at_an_untolerated_failure(
    airflow_home: Path, data_dir: Path, tmp_path: Path
) -> None:
    code, results = run_dagrunner(
        "--tolerate", "could not be found",
        "model_monitor", "no_such_dag", "model_monitor",
        log_dir=tmp_path,
    )  # fmt: skip
    assert code == 1  # a tolerated failure is still a failure, but the next DAG runs
    assert [(r["dag_id"], r["state"], r["tolerated"]) for r in results] == [
        ("model_monitor", "success", False),
        ("no_such_dag", "not_run", True),
        ("model_monitor", "success", False),
    ]
    assert "could not be found" in results[1]["error"]
    assert [r["tolerated_by"] for r in results] == [None, "could not be found", None]
    log = Path(results[-1]["log"]).read_text()
    assert "dag_id=model_monitor" in log and "state=success" in log  # the DagRun's own line

    code, results = run_dagrunner("no_such_dag", "model_monitor", log_dir=tmp_path)
    assert code == 1
    assert [(r["dag_id"], r["tolerated"]) for r in results] == [("no_such_dag", False)]
