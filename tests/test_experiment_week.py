"""The holdout experiment's closed loop in the simulator (issue 21), on a small world.

The published version is an oracle written here from the world's ground truth: each customer's
personal list is the top of their first taste segment, the default list the globally most
popular items. So the treatment's lists match the visitors' taste better than the control's,
and with a planted effect the ground truth's uplift is positive; at effect 0 it is zero.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.experiment import CONTROL, Experiment
from include.serving.publish import publish_version
from include.simulator import SimulatorConfig, simulate
from include.simulator.experiment import ExperimentWeekConfig, simulate_experiment_week

EXP = Experiment("test-holdout", control_share=0.2, salt="t", return_window_days=2)


def _publish_oracle(landing: Path, published: Path) -> None:
    gt = landing / "_simulator" / "ground_truth"
    people = pd.read_parquet(gt / "people.parquet")
    items = pd.read_parquet(gt / "items.parquet", columns=["item_id", "popularity"])
    prob = np.load(gt / "segments.npz")["item_prob"][-1]
    top = np.argsort(-prob, axis=1)[:, :20]
    customers = people[people["user_id"].notna()]
    rows = [
        ("user", u, r + 1, items["item_id"].iloc[i], 1.0 - r / 100)
        for u, s in zip(customers["user_id"], customers["segment1"], strict=True)
        for r, i in enumerate(top[s])
    ]
    popular = items.sort_values("popularity", ascending=False)["item_id"].head(20)
    rows += [("cold_start", "all", r + 1, i, 1.0 - r / 100) for r, i in enumerate(popular)]
    frame = pd.DataFrame(rows, columns=["list_type", "key_id", "rank", "item_id", "score"])
    publish_version(
        published, frame, model_version="oracle", trained_at="2026-10-06T00:00:00Z",
        candidate="oracle", metrics={},
    )  # fmt: skip


def _hashes(landing: Path) -> dict[str, str]:
    return {
        p.relative_to(landing).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((landing / "events").rglob("*.gz"))
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    cfg = SimulatorConfig(seed=3, days=5, visitors=3000, n_items=400, workers=1)
    simulate(cfg, out)
    _publish_oracle(out / "landing", out / "published")
    return out


def test_experiment_week_is_the_api_s_answer_and_leaves_the_first_period_alone(
    world: Path,
) -> None:
    landing = world / "landing"
    before = _hashes(landing)
    start = date(2026, 10, 6)
    cfg = ExperimentWeekConfig(seed=5, days=3, effect=2.0)
    truth = simulate_experiment_week(landing, world / "published", EXP, start, cfg)
    after = _hashes(landing)
    assert {k: v for k, v in after.items() if k in before} == before  # first period untouched
    new = sorted(set(after) - set(before))
    assert new and all(k.split("/")[1] >= f"date={start}" for k in new)

    events = [
        json.loads(line)
        for k in new
        for line in gzip.decompress((landing / k).read_bytes()).decode().splitlines()
    ]
    assert len(events) == truth["lines"]
    assert {e["context"]["experiment_id"] for e in events} == {"test-holdout"}
    # the variant on every event is the assignment of the visitor the API was asked about
    for e in events:
        visitor = e["user_id"] if e["user_id"] and not e["user_id"].startswith("u-x") else None
        if visitor:
            assert e["context"]["variant"] == EXP.assign(visitor)
        elif e["anonymous_id"].startswith("anon-x"):
            assert e["context"]["variant"] == EXP.assign(e["anonymous_id"])
    v = truth["visitors"]
    share = (v["customers_exposed_control"] + v["new_visitors_control"]) / (
        v["customers_exposed"] + v["new_visitors"]
    )
    assert 0.12 < share < 0.28, share  # configured 0.2, a few hundred visitors

    # the oracle's lists match taste better than the default list: a positive planted uplift
    assert truth["match"]["customers_treatment_list"] > truth["match"]["customers_default_list"]
    planted = truth["planted"]["customer_return_within_n_days"]
    assert planted["uplift_abs"] > 0 and planted["treatment"] > planted["control"]
    gt = json.loads((landing / "_simulator/ground_truth/experiment-test-holdout.json").read_text())
    assert gt["planted"] == truth["planted"]
    # control customers were shown the default list: their match is the default list's
    visitors = pd.read_parquet(
        landing / "_simulator/ground_truth/experiment-test-holdout-visitors.parquet"
    )
    control = visitors[(visitors["variant"] == CONTROL)]
    assert np.allclose(control["match_shown"], control["match_default"])


def test_no_effect_plants_no_uplift(world: Path, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    (landing / "_simulator").mkdir(parents=True)
    import shutil

    shutil.copytree(world / "landing/_simulator/ground_truth", landing / "_simulator/ground_truth")
    cfg = ExperimentWeekConfig(seed=6, days=3, effect=0.0)
    start = date(2026, 10, 6) + timedelta(days=10)
    truth = simulate_experiment_week(landing, world / "published", EXP, start, cfg)
    for metric in truth["planted"].values():
        assert metric["uplift_abs"] == 0.0
