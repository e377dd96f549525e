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
        "--tolerate", "could not be found", "--wait-for-go",  # make run's way: warm, then go
        "model_monitor", "no_such_dag", "model_monitor",
        log_dir=tmp_path, stdin="go\n",
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
    # the round's first DAG.test() wrote the DAGs to the metadata DB; the last one did not
    # write them again (include.dagrunner._bundles_written_once)
    assert "Bulk-writing dags to db" not in log

    code, results = run_dagrunner("no_such_dag", "model_monitor", log_dir=tmp_path)
    assert code == 1
    assert [(r["dag_id"], r["tolerated"]) for r in results] == [("no_such_dag", False)]


def test_a_second_round_runs_in_the_same_process_only_when_something_is_published(
    airflow_home: Path, data_dir: Path, tmp_path: Path
) -> None:
    """make run's experiment week: `--then-if-published` (one process, one Airflow start-up).
    A missing DAG (tolerated) stands in for the rounds' DAGs: no DAG run, the logic alone."""
    from include.serving.publish import publish_fixture
    from include.settings import get_settings

    then = ("--then-log-dir", str(tmp_path / "then"), "--then-if-published", "no_such_dag")
    otherwise = ("--otherwise", "no_such_dag")
    tolerant = ("--tolerate", "could not be found", *then, *otherwise, "--", "no_such_dag")
    code, results = run_dagrunner(*tolerant, log_dir=tmp_path)
    assert code == 1  # the tolerated failure; nothing published: the other round instead
    assert [r.get("dag_id", r.get("round")) for r in results] == [
        "no_such_dag",
        "then",
        "no_such_dag",
    ]
    assert results[1] == {"round": "then", "run": False}
    assert results[2]["state"] == "not_run" and results[2]["tolerated"]
    assert results[2]["log"] == str(tmp_path / "no_such_dag.log")  # the first round's folder

    publish_fixture(get_settings().published_dir, "v1", n_users=5, n_items=12, k=5)
    code, results = run_dagrunner(*then, "--", "no_such_dag", log_dir=tmp_path)
    assert code == 1 and len(results) == 1  # an untolerated failure stops before the round

    code, results = run_dagrunner(*tolerant, log_dir=tmp_path)
    assert [r.get("dag_id", r.get("round")) for r in results] == [
        "no_such_dag",
        "then",
        "no_such_dag",
    ]
    assert results[1]["run"] is True  # published: the then-round, not the other one
    assert results[2]["log"] == str(tmp_path / "then" / "no_such_dag.log")


def test_wait_for_go_runs_nothing_without_the_go(
    airflow_home: Path, data_dir: Path, tmp_path: Path
) -> None:
    """make run starts the runner beside Airflow's init and the simulation (--wait-for-go):
    it builds the execution API, then runs on a line "go" (the test above); EOF (the caller
    failed) runs nothing."""
    code, results = run_dagrunner("--wait-for-go", "model_monitor", log_dir=tmp_path, stdin="")
    assert (code, results) == (0, [])
    assert (tmp_path / "warm-up.log").exists() and not (tmp_path / "model_monitor.log").exists()
