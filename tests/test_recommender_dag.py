"""recommender_train for real, end to end, up to the API: events -> lake -> marts -> model ->
definition of done -> scored lists -> recommendations gate -> published -> a 200 answer.

The shipped definition of done refuses models trained on samples this small (that refusal is
tested in test_recsys_dod.py and test_recsys_registry.py); here a contract that a small sample
can pass (``TRASOS_DEFINITION_OF_DONE``) lets the publishing tasks run inside Airflow, where
two bugs once hid because no run got that far.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from conftest import run_dagrunner

from recsys import registry as R

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SMALL_SAMPLE_CONTRACT = """
version: 1
candidate: lightfm_blend
baselines: [popularity, category_popularity, cooccurrence, als]
clauses:
  - id: enough_users_evaluated
    owner: DE
    metric: n_users
    segment: all
    model: candidate
    op: ">="
    threshold: 5
session_clauses:
  - id: session_hr_vs_cooccurrence
    owner: DS
    metric: hr@20
    compare_to: cooccurrence
    factor: 0.0
    min_test_sessions: 5
"""


def test_the_chain_publishes_a_model_the_api_serves(
    airflow_home: Path, data_dir: Path, tmp_path: Path, monkeypatch, capsys
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
        json={"events": [{"item_id": item}], "k": 5},
        headers={"X-API-Key": "k"},
    )
    assert answer.status_code == 200 and answer.json()["items"][0]["source"] == "session"
