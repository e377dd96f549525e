"""recommender_train for real, end to end, up to the API: events -> lake -> marts -> model ->
definition of done -> scored lists -> recommendations gate -> published -> a 200 answer.

The shipped definition of done refuses models trained on samples this small (that refusal is
tested in test_recsys_dod.py and test_recsys_registry.py); here a contract that a small sample
can pass (``TRASOS_DEFINITION_OF_DONE``) lets the publishing tasks run inside Airflow, where
two bugs once hid because no run got that far.

Experiment tracking rides on the same run (no second chain): MLflow's UI is started on the
test's store before the chain, the training task logs its run and registers the version, the
publish task moves the alias ``champion``; then the run's metrics are compared with the
evaluation report and Chromium finds the run and the alias in MLflow's UI.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from conftest import run_dagrunner

from recsys import registry as R
from recsys import tracking as T

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: the small-sample definition of done (the shipped one refuses samples this small)
SMALL_SAMPLE_CONTRACT = (Path(__file__).parent / "fixtures" / "small_sample_dod.yaml").read_text()


@pytest.fixture
def mlflow_ui(mlflow_on: Path, data_dir: Path, tmp_path: Path):
    """``make mlflow``'s server on the test's store, on a free loopback port; its base URL.
    Started before the chain so that its start-up overlaps the training."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp_path / "mlflow.log").open("w")
    proc = subprocess.Popen(
        T.ui_command(data_dir, port),
        env={**os.environ, **T.UI_ENV},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _up(base: str, proc, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the MLflow server exited; see mlflow.log"
        try:
            if httpx.get(f"{base}/health", timeout=3).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"MLflow UI did not answer on {base}")


def check_tracking(data_dir: Path, version: str, ui, request, tmp_path: Path) -> None:
    """The run of this training holds the report's figures; the published version is the
    champion; the UI shows both."""
    models = data_dir / "models"
    c = T.client(T.store(data_dir))
    exp = c.get_experiment_by_name(T.TRAINING)
    (run,) = c.search_runs([exp.experiment_id], f"tags.model_version = '{version}'")
    m, tags = run.data.metrics, run.data.tags
    report = json.loads((models / version / "report.json").read_text())
    compared = 0
    for seg in report["segments"]:
        for row in seg["rows"]:
            if row["n_models"] != 1:  # identical models merged into one row
                continue
            for col in report["metric_columns"]:
                value = row.get(col)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    key = T.metric_key(
                        row["model"], None if seg["segment"] == "all" else seg["segment"], col
                    )
                    assert m[key] == pytest.approx(value), key
                    compared += 1
    assert compared >= 20
    for clause in report["clauses"]:
        assert m[f"dod/{clause['id']}/observed"] == pytest.approx(clause["observed"])
    assert m["dod/passed"] == 1.0 and tags["dod"] == "passed"
    assert tags["dataset"] == "simulator"
    assert tags["snapshot"] in {p.name for p in (models / "_snapshots").iterdir()}
    assert len(tags["git_commit"].split("+")[0]) == 40
    assert run.data.params["candidate"] == "lightfm_blend"
    assert {f.path for f in c.list_artifacts(run.info.run_id, "report")} >= {
        "report/report.json",
        f"report/{version}.html",
    }
    model_files = {f.path for f in c.list_artifacts(run.info.run_id, "model")}
    assert {"model/manifest.json", "model/item_embeddings.npy"} <= model_files
    champion = T.champion(data_dir)
    assert champion["registry_version"] == version and champion["run_id"] == run.info.run_id

    base, proc = ui
    _up(base, proc)
    chromium = request.getfixturevalue("chromium")
    page = chromium(viewport={"width": 1400, "height": 900}).new_page()
    page.goto(f"{base}/#/experiments/{exp.experiment_id}/runs")  # the runs table
    page.get_by_text(version).first.wait_for(timeout=120_000)  # the run, named by its version
    page.screenshot(path=str(tmp_path / "mlflow-runs.png"))
    page.goto(f"{base}/#/models/{T.REGISTERED_MODEL}")
    page.get_by_text(T.CHAMPION).first.wait_for(timeout=60_000)
    page.screenshot(path=str(tmp_path / "mlflow-model.png"))


def test_the_chain_publishes_a_model_the_api_serves(
    airflow_home: Path, data_dir: Path, tmp_path: Path, monkeypatch, capsys, mlflow_ui, request
) -> None:
    from include.serving.__main__ import main as serving
    from include.serving.loader import read_current
    from include.simulator import SimulatorConfig, simulate

    simulate(SimulatorConfig(days=10, visitors=2500, seed=11), data_dir)
    contract = tmp_path / "definition_of_done.yaml"
    contract.write_text(SMALL_SAMPLE_CONTRACT)
    monkeypatch.setenv("TRASOS_DEFINITION_OF_DONE", str(contract))
    db = sqlite3.connect(airflow_home / "airflow.db")
    query = "select count(*) from asset_event where source_dag_id = 'recommender_train'"
    before = db.execute(query).fetchone()[0]

    code, results = run_dagrunner(
        "events_ingest", "events_transform", "recommender_train", log_dir=tmp_path / "logs"
    )
    assert code == 0, results
    assert [(r["dag_id"], r["state"]) for r in results] == [
        ("events_ingest", "success"),
        ("events_transform", "success"),
        ("recommender_train", "success"),
    ]
    assert db.execute(query).fetchone()[0] == before + 1  # the recommendations Asset

    models, published = data_dir / "models", data_dir / "published"
    version = read_current(published)
    assert version is not None and R.current_version(models) == version
    dod = json.loads((models / version / "dod.json").read_text())
    assert dod["passed"] and [c["id"] for c in dod["clauses"]] == ["enough_users_evaluated"]
    model = json.loads((published / version / "model.json").read_text())
    assert model["dod_passed"] and model["candidate"] == "lightfm_blend"
    session = json.loads((models / version / "session" / "session_metrics.json").read_text())
    assert session["clause"]["status"] == "pass" and session["n_test_sessions"] >= 5
    assert (published / version / "session_neighbours.parquet").exists()

    capsys.readouterr()
    assert serving(["sample", "--k", "5"]) == 0  # what `make run` prints at its end
    out = capsys.readouterr().out
    assert "/recommendations?k=5 -> 200" in out
    body = json.loads(out[out.index("{") :])
    assert body["source"] == "personal" and body["model_version"] == version
    assert len(body["items"]) == 5

    from fastapi.testclient import TestClient

    from include.serving.app import create_app
    from include.serving.loader import ModelStore, load_version

    snap = load_version(published, version)
    assert snap.session is not None and snap.session.n_items > 0
    store = ModelStore(published)
    assert store.check()
    client = TestClient(create_app(store=store, api_keys=["k"], start_watcher=False))
    item = next(iter(snap.session.codes))
    answer = client.post(
        "/v1/sessions/recommendations",
        # anon-1 is in the treatment of the seed's experiment (control would get the default)
        json={"events": [{"item_id": item}], "k": 5, "visitor_id": "anon-1"},
        headers={"X-API-Key": "k"},
    )
    assert answer.status_code == 200 and answer.json()["items"][0]["source"] == "session"

    # last: the browser part skips (after everything else passed) without Chromium
    check_tracking(data_dir, version, mlflow_ui, request, tmp_path)
