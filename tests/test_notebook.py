"""The research notebook (notebooks/research.py, marimo) runs headless on a small sample:
it loads the sample's Parquet files, trains the champion's configuration and a variant through
the same evaluation, and logs the variant's run (beside the champion's row) to MLflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from include.settings import REPO_ROOT
from recsys import tracking as T
from recsys.synthetic import SyntheticConfig, generate

pytestmark = pytest.mark.slow


def test_the_research_notebook_runs_on_a_sample_and_logs_its_run(data_dir, mlflow_on):
    data = generate(SyntheticConfig(n_users=400, n_items=120, n_interactions=4000, random_state=3))
    sample = data_dir / "samples" / "s1"  # the layout of `make sample` (visitor keys)
    sample.mkdir(parents=True)
    data.events.rename(columns={"user_id": "visitor_id"}).to_parquet(sample / "fct_events.parquet")
    data.item_features.to_parquet(sample / "ml_item_features.parquet")
    data.user_features.to_parquet(sample / "ml_user_features.parquet")
    (sample / "card.json").write_text(json.dumps({"id": "s1"}))

    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "notebooks" / "research.py")],
        env={**os.environ, "TRASOS_NOTEBOOK_QUICK": "1", "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["source"] == "sample" and result["run_id"]

    c = T.client(T.store(data_dir))
    run = c.get_run(result["run_id"])
    assert c.get_experiment(run.info.experiment_id).name == T.RESEARCH
    m = run.data.metrics
    for metric, key in (("ndcg@10", "ndcg_at_10"), ("hit_rate@10", "hit_rate_at_10")):
        assert m[f"lightfm_blend/{key}"] == pytest.approx(result["variant"][metric], abs=1e-6)
        assert m[f"champion:lightfm_blend/{key}"] == pytest.approx(
            result["champion"][metric], abs=1e-6
        )
    assert m["dod/passed"] == float(result["variant_dod_passed"])
    assert run.data.params["lightfm.loss"] == "bpr"  # the variant, not the champion
    assert run.data.tags["dataset"] == "sample:s1" and run.data.tags["notebook"]
