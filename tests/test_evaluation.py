"""`make evaluate` on one real sample: loader -> ingestion -> dbt -> the training snapshot ->
train_evaluate on a split at the 80 % event quantile -> docs/evaluation.md's markdown."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from include.loaders.common import real_data_dir
from include.tasks import evaluation

REAL = real_data_dir()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not REAL.is_dir(), reason=f"real datasets not found at {REAL}"),
]


def test_evaluate_yoochoose_sample(tmp_path: Path) -> None:
    evaluation.build_marts("yoochoose", tmp_path)
    snap = evaluation.read_snapshot(tmp_path)
    assert set(snap) == {"events", "items", "users"}
    events = snap["events"]
    assert len(events) > 0 and events["item_id"].notna().all()

    result = evaluation.evaluate("yoochoose", tmp_path, test_share=0.2)
    split_at = pd.Timestamp(result["split_at"])
    after = (events["event_at"] > split_at).mean()
    assert after == pytest.approx(0.2, abs=0.01)  # the last 20 % of the events are the test
    assert result["events"] == len(events) and result["relevance"] == "any"
    models = {row["model"] for row in result["table"]}
    assert {"lightfm_blend", "lightfm", "popularity", "als", "recently_viewed"} <= models
    # few visitors come back inside the sample: the DoD refuses to judge on so few users
    users = result["snapshot"]["test_eval_users"]
    failed = {c["id"] for c in result["dod"]["clauses"] if c["status"] == "fail"}
    assert ("enough_users_evaluated" in failed) == (users < 100)

    page = evaluation.markdown([result])
    assert "## yoochoose" in page
    assert f"test: {users:,} users" in page
    rows = [line for line in page.splitlines() if line.startswith("| lightfm_blend | all |")]
    assert len(rows) == 1 and rows[0].count("|") == 3 + len(evaluation.METRICS) + 1
    # issue 19: the session model on the same split, sessions of visitors unknown at T
    session = result["session"]
    assert set(session["models"]) == {"popularity", "cooccurrence", "session_knn", "session_stan"}
    assert session["n_test_sessions"] > 0
    assert f"{session['n_test_sessions']:,} test sessions" in page
