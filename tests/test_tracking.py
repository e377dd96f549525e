"""Experiment tracking (recsys.tracking) for real on a local MLflow store: the evaluate
command's run holds what it printed, promotion and rollback move the `champion` alias, and an
unreachable tracking server costs a warning, never the run. The training DAG's run and the
MLflow UI are checked in test_recommender_dag.py (same Airflow run)."""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import time

import pytest
from test_recsys_cli_interactions import _synthetic_rows, write_csv
from test_recsys_registry import promoted_and_published

from recsys import registry as R
from recsys import tracking as T

pytestmark = pytest.mark.slow


def client(data_dir):
    return T.client(T.store(data_dir))


def test_the_evaluate_command_logs_what_it_prints(data_dir, mlflow_on, capsys):
    from recsys.__main__ import main

    path = write_csv(
        tmp := data_dir / "i.csv", _synthetic_rows(n_users=150), ["user_id", "item_id", "timestamp"]
    )
    assert main(["evaluate", str(path), "--protocol", "leave-last-out", "--max-users", "120"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    c = client(data_dir)
    exp = c.get_experiment_by_name(T.EVALUATE)
    (run,) = c.search_runs([exp.experiment_id])
    m, tags = run.data.metrics, run.data.tags
    # the figures the command printed (rounded to 6 digits there), model by model
    for model, figures in summary["models"].items():
        assert m[f"{model}/ndcg_at_10"] == pytest.approx(figures["ndcg@10"], abs=1e-6)
        assert m[f"{model}/hit_rate_at_10"] == pytest.approx(figures["hr@10"], abs=1e-6)
        assert m[f"{model}/recall_at_20"] == pytest.approx(figures["recall@20"], abs=1e-6)
    assert m["dod/passed"] == (1.0 if summary["dod_passed"] else 0.0)
    # every comparative clause carries its ratio and 95 % interval, in that order
    local = c.download_artifacts(run.info.run_id, "report/dod.json", str(data_dir))
    dod = json.loads(open(local).read())
    comparative = [cl for cl in dod["clauses"] if cl.get("ratio") is not None]
    assert comparative
    for cl in comparative:
        key = f"dod/{cl['id']}"
        assert m[f"{key}/ratio"] == pytest.approx(cl["ratio"])
        assert m[f"{key}/ci_low"] <= m[f"{key}/ratio"] <= m[f"{key}/ci_high"]
    assert tags["dataset"] == "i.csv" and tags["protocol"] == "leave-last-out"
    assert tags["snapshot"] == hashlib.sha256(tmp.read_bytes()).hexdigest()[:16]
    assert len(tags["git_commit"].split("+")[0]) == 40
    assert run.data.params["protocol"] == "leave-last-out" and run.data.params["max_users"] == "120"
    files = {f.path for f in c.list_artifacts(run.info.run_id, "report")}
    assert {
        "report/metrics.csv",
        "report/dod.json",
        "report/report.txt",
        "report/summary.json",
    } <= files
    arrays = {f.path for f in c.list_artifacts(run.info.run_id, "model")}
    assert "model/item_embeddings.npy" in arrays
    # the store lives under the data directory
    assert (data_dir / "mlflow" / "mlflow.db").exists()


def test_promotion_and_rollback_move_the_champion_alias(data_dir, mlflow_on):
    from include.tasks import training
    from include.tasks.tracking import track_registry

    models = data_dir / "models"
    v1, v2 = promoted_and_published(data_dir)  # promoted while nothing was tracked
    assert track_registry() == "2"  # the next promotion catches up with the whole history
    assert T.champion(data_dir)["registry_version"] == v2
    assert training.main(["rollback"]) == 0
    assert R.current_version(models) == v1
    champ = T.champion(data_dir)
    assert champ["registry_version"] == v1 and champ["mlflow_version"] == "1"
    c = client(data_dir)
    versions = T.model_versions(c)
    assert set(versions) == {v1, v2}  # one MLflow version per registry version, never twice
    assert "last_rollback_at" in c.get_model_version(T.REGISTERED_MODEL, "1").tags
    history = c.get_registered_model(T.REGISTERED_MODEL).description
    assert f"| rollback | {v1} | {v2} |" in history and f"**{v1}**" in history
    # promoting v2 again moves the alias back, without a third version
    R.promote(models, v2)
    assert track_registry() == "2" and len(T.model_versions(c)) == 2


def test_an_unreachable_tracking_server_costs_a_warning_not_the_run(
    data_dir, mlflow_on, monkeypatch, caplog
):
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    record = T.RunRecord(T.RESEARCH, "offline", metrics={"a/ndcg_at_10": 0.5})
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="recsys.tracking"):
        assert T.log_run(record, data_dir) is None
    assert time.monotonic() - t0 < 60
    assert "experiment tracking failed" in caplog.text and f"127.0.0.1:{port}" in caplog.text
    assert "the run continues untracked" in caplog.text
    assert not (data_dir / "mlflow" / "artifacts").exists()  # nothing written locally instead
    monkeypatch.setenv("TRASOS_MLFLOW", "off")
    assert T.log_run(record, data_dir) is None


def test_metric_keys_are_what_mlflow_accepts():
    rows = [
        {"model": "lightfm_blend", "segment": "all", "ndcg@10": 0.25, "auc": float("nan")},
        {"model": "als", "segment": "cold", "hit_rate@20": 0.5},
    ]
    assert T.table_metrics(rows) == {
        "lightfm_blend/ndcg_at_10": 0.25,
        "als/cold/hit_rate_at_20": 0.5,
    }
    dod = {
        "passed": False,
        "clauses": [
            {"id": "vs_pop", "status": "fail", "observed": 0.1, "required": 0.2, "margin": -0.1,
             "ratio": 1.1, "ci_low": 0.9, "ci_high": 1.3},
        ],
    }  # fmt: skip
    assert T.dod_metrics(dod) == {
        "dod/passed": 0.0, "dod/vs_pop/observed": 0.1, "dod/vs_pop/required": 0.2,
        "dod/vs_pop/margin": -0.1, "dod/vs_pop/ratio": 1.1, "dod/vs_pop/ci_low": 0.9,
        "dod/vs_pop/ci_high": 1.3, "dod/vs_pop/pass": 0.0,
    }  # fmt: skip
    assert T.flat_params({"lightfm": {"epochs": 8, "loss": "warp"}, "ks": [10, 20]}) == {
        "lightfm.epochs": "8", "lightfm.loss": "warp", "ks": "[10, 20]",
    }  # fmt: skip


def test_the_session_protocol_logs_its_table(data_dir, mlflow_on, capsys):
    from test_session import write_csv as write_sessions

    from recsys.__main__ import main

    rows = []
    train = [("a", "b")] * 3 + [("c", "d")] * 2 + [("a", "e")]
    for i, seq in enumerate(train):
        rows += [f"t{i},{item},{pos},train" for pos, item in enumerate(seq)]
    for i, seq in enumerate([("a", "b"), ("c", "d"), ("e", "a")]):
        rows += [f"q{i},{item},{pos},test" for pos, item in enumerate(seq)]
    write_sessions(path := data_dir / "s.csv", rows)
    assert main(["evaluate", str(path), "--protocol", "session-last-item"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    c = client(data_dir)
    (run,) = c.search_runs([c.get_experiment_by_name(T.EVALUATE).experiment_id])
    for model, figures in summary["models"].items():
        assert run.data.metrics[f"{model}/hr_at_20"] == pytest.approx(figures["hr@20"], abs=1e-5)
    assert run.data.tags["protocol"] == "session-last-item" and "dod" not in run.data.tags
