"""End to end on small synthetic data: train_evaluate -> save -> gate -> score -> publish.

Registry round trip (saved arrays score exactly like the in-memory model), scoring rules
(no known positives, no item in its own also-bought list), the DoD gate blocking a
deliberately bad model without moving `current`, and a self-contained HTML report.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from recsys import columns as C
from recsys import registry, scoring
from recsys.config import ALSConfig, BlendConfig, LightFMConfig, PipelineConfig
from recsys.pipeline import run_training, save_result, train_evaluate
from recsys.synthetic import SyntheticConfig, generate

pytestmark = pytest.mark.slow

CFG = PipelineConfig(
    lightfm=LightFMConfig(num_threads=1, epochs=8, validation_max_users=400),
    als=ALSConfig(factors=16, iterations=5, num_threads=1),
    blend=BlendConfig(
        weight_grid=(0.0, 0.5, 0.9), self_weight_grid=(0.0, 4.0), search_max_users=400
    ),
)
LENIENT = {
    "candidate": "lightfm_blend",
    "baselines": ["popularity", "category_popularity", "cooccurrence", "als"],
    "clauses": [
        {"id": "vs_popularity", "metric": "ndcg@10", "compare_to": "popularity", "factor": 1.5},
        {"id": "coverage", "metric": "coverage@20", "threshold": 0.1},
    ],
}


@pytest.fixture(scope="module")
def data():
    return generate(SyntheticConfig(n_users=800, n_items=250, n_interactions=8000, random_state=2))


SAID: list[str] = []  # the progress lines of the `result` fixture's training


@pytest.fixture(scope="module")
def result(data):
    return train_evaluate(
        data.events,
        data.item_features,
        data.user_features,
        CFG,
        contract=LENIENT,
        progress=SAID.append,
    )


def test_every_model_is_evaluated_warm_and_cold(result):
    m = result.metrics
    models = set(m[C.MODEL])
    assert {*CFG.baselines, "lightfm", CFG.candidate} <= models
    assert set(m[C.SEGMENT]) == {"all", "warm", "cold"}
    assert len(m) == 3 * len(models)
    cold = m[m[C.SEGMENT] == "cold"]
    assert (cold["n_items"] == int(result.split.test.cold_items.sum())).all()
    for col in (
        "precision@10",
        "recall@20",
        "ndcg@10",
        "map@10",
        "hit_rate@20",
        "auc",
        "coverage@20",
        "novelty@20",
    ):
        assert m[col].notna().any(), col
    assert result.dod.passed, result.dod.summary()
    assert result.learning_curve and result.best_epoch >= 1
    assert result.blend_search


def test_final_model_is_refit_on_all_events(result):
    assert result.final_dataset.interactions.nnz > result.split.test.dataset.interactions.nnz
    assert result.final_model is not result.models[CFG.candidate]
    assert result.final_model.lightfm.config.epochs == result.best_epoch
    assert not result.final_model.lightfm.config.early_stopping
    # its LightFM trained beside early stopping, in a second thread: the same model as a refit
    # after the evaluation (each part has its own seed and data)
    assert any(line.endswith("(its LightFM trained beside early stopping)") for line in SAID)
    from recsys.models import make_model
    from recsys.pipeline import _fixed_config

    fixed = _fixed_config(CFG, result.models[CFG.candidate])
    after = make_model(CFG.candidate, fixed).fit(result.final_dataset).export()
    early = result.final_model.export()
    for part in ("user_embeddings", "item_embeddings", "user_biases", "item_biases"):
        np.testing.assert_array_equal(getattr(early, part), getattr(after, part))
    assert (early.similarity != after.similarity).nnz == 0
    assert early.params == after.params


def test_registry_round_trip_scores_like_memory(result, tmp_path):
    version, path = save_result(result, tmp_path / "models")
    saved = registry.load_version(tmp_path / "models", version)
    assert saved.kind == "factors+cooccurrence"
    users = np.arange(result.final_dataset.n_users)
    in_memory = result.final_model.score_block(users)
    from_disk = scoring.SavedScorer(saved).score_block(users)
    np.testing.assert_allclose(from_disk, in_memory, rtol=1e-5, atol=1e-5)
    idx_mem, _ = result.final_model.top_k_indices(users, 20)
    _, idx_disk, _ = scoring.user_top_k(saved, 20)
    np.testing.assert_array_equal(idx_disk, idx_mem)


def test_scoring_rules(result, tmp_path):
    version, _ = save_result(result, tmp_path / "models")
    saved = registry.load_version(tmp_path / "models", version)
    frame = scoring.build_recommendations(
        saved, k=10, generated_at=datetime(2025, 5, 1, tzinfo=UTC)
    )
    assert list(frame.columns) == list(C.RECOMMENDATION_COLUMNS)
    assert (frame[C.MODEL_VERSION] == version).all()
    assert (frame[C.GENERATED_AT] == pd.Timestamp("2025-05-01")).all()
    users = frame[frame[C.LIST_TYPE] == C.LIST_USER]
    ds = result.final_dataset
    u = ds.users.index(users[C.KEY_ID].to_numpy())
    i = ds.items.index(users[C.ITEM_ID].to_numpy())
    assert np.asarray(ds.known_positives[u, i]).ravel().sum() == 0  # nothing already bought
    assert users.groupby(C.KEY_ID).size().max() == 10
    also = frame[frame[C.LIST_TYPE] == C.LIST_ALSO_BOUGHT]
    assert (also[C.KEY_ID] != also[C.ITEM_ID]).all()  # never the item itself
    assert also[C.KEY_ID].nunique() == ds.n_items  # cold items get backfilled lists too
    cold = frame[frame[C.LIST_TYPE] == C.LIST_COLD_START]
    keys = set(cold[C.KEY_ID])
    assert {C.COLD_KEY_POPULAR, C.COLD_KEY_TRENDING} <= keys
    assert any(k.startswith(C.COLD_KEY_CATEGORY_PREFIX) for k in keys)
    for _, g in frame.groupby([C.LIST_TYPE, C.KEY_ID]):
        assert g[C.RANK].tolist() == list(range(1, len(g) + 1))


def test_lightfm_alone_is_published_when_only_it_passes(data, tmp_path):
    from recsys.models import LightFMRecommender

    # a clause only LightFM alone can pass here: nDCG@10 no higher than LightFM's own
    contract = {
        **LENIENT,
        "candidates": ["lightfm"],
        "clauses": [{"id": "at_most_lightfm", "metric": "ndcg@10", "op": "<=",
                     "compare_to": "lightfm", "factor": 1.0}],
    }  # fmt: skip
    res = train_evaluate(
        data.events, data.item_features, data.user_features, CFG, contract=contract
    )
    m = res.metrics.set_index([C.MODEL, C.SEGMENT])["ndcg@10"]
    assert m[("lightfm_blend", "all")] > m[("lightfm", "all")]  # so the blend fails
    assert res.dod.passed and res.dod.candidate == "lightfm"
    assert {c.candidate: c.passed for c in res.dod.considered} == {
        "lightfm_blend": False,
        "lightfm": True,
    }
    # the chosen candidate is the one refit on all events (epochs frozen), saved and scored
    assert isinstance(res.final_model, LightFMRecommender)
    assert res.final_model.config.epochs == res.best_epoch
    version, _ = save_result(res, tmp_path / "models")
    assert registry.read_json(tmp_path / "models", version, "dod.json")["candidate"] == "lightfm"
    report = registry.read_json(tmp_path / "models", version, "report.json")
    # the verdict of each candidate, a row each in the report's data
    assert [(c["candidate"], c["passed"]) for c in report["considered"]] == [
        ("lightfm_blend", False),
        ("lightfm", True),
    ]
    assert report["considered"][0]["failed"] == "at_most_lightfm"
    out = tmp_path / "recs.parquet"
    assert scoring.score_version(tmp_path / "models", out, version=version, k=5)["rows"] > 0


def test_gate_blocks_a_bad_model_and_current_stays(data, tmp_path):
    models = tmp_path / "models"
    good = run_training(
        data.events,
        data.item_features,
        data.user_features,
        models_dir=models,
        config=CFG,
        contract=LENIENT,
        now=datetime(2025, 5, 1, tzinfo=UTC),
    )
    assert good["dod_passed"]
    registry.promote(models, good["version"])
    # deliberately bad: LightFM that never learns (learning rate 0), no co-occurrence help
    bad_cfg = dataclasses.replace(
        CFG,
        lightfm=dataclasses.replace(CFG.lightfm, learning_rate=0.0, early_stopping=False, epochs=1),
        blend=dataclasses.replace(CFG.blend, weight=0.0, self_weight=0.0),
    )
    bad = run_training(
        data.events,
        data.item_features,
        data.user_features,
        models_dir=models,
        config=bad_cfg,
        contract=LENIENT,
        now=datetime(2025, 5, 2, tzinfo=UTC),
    )
    assert not bad["dod_passed"] and "vs_popularity" in bad["failed_clauses"]
    # a model was published before: a failed retrain publishes nothing, the served one stays
    assert bad["kind"] == "none" and bad["served_version"] == good["version"]
    assert good["kind"] == "candidate" and good["served_version"] is None
    with pytest.raises(registry.DefinitionOfDoneError):
        registry.promote(models, bad["version"])
    assert registry.current_version(models) == good["version"]
    assert registry.list_versions(models) == [good["version"], bad["version"]]


def test_summary_is_strict_json_when_no_test_interaction_is_relevant(data, tmp_path):
    # only views after T (a views-only source, like RetailRocket): no user to evaluate, so
    # the candidate's nDCG is undefined; the XCom summary must still be strict JSON
    ev = data.events.copy()
    t = ev[C.EVENT_AT].max().floor("D") - pd.Timedelta(days=CFG.split.test_days - 1)
    ev.loc[ev[C.EVENT_AT] >= t, C.EVENT_TYPE] = "product_view"
    out = run_training(
        ev, data.item_features, data.user_features, models_dir=tmp_path, config=CFG,
        contract=LENIENT,
    )  # fmt: skip
    assert out["candidate_ndcg@10"] is None
    assert not out["dod_passed"] and "vs_popularity" in out["failed_clauses"]
    assert json.loads(json.dumps(out, allow_nan=False)) == out


def test_report_data_and_its_page(result, tmp_path):
    from include.reporting.evaluation import page_context, publish_report

    version, path = save_result(result, tmp_path / "models", tmp_path / "report.json")
    data = json.loads((tmp_path / "report.json").read_text())
    assert (path / "report.json").read_text() == (tmp_path / "report.json").read_text()
    assert data["version"] == version and data["candidate"] == result.dod.candidate
    assert [c["id"] for c in data["clauses"]] == [c.id for c in result.dod.clauses]
    # every (model, segment) of the metrics table is in the data, strict JSON (NaN -> null)
    assert {(r[C.MODEL], r[C.SEGMENT]) for r in data["metrics"]} == set(
        zip(result.metrics[C.MODEL], result.metrics[C.SEGMENT], strict=True)
    )
    # per segment, models with identical figures are one row naming them all
    for seg in data["segments"]:
        sub = result.metrics[result.metrics[C.SEGMENT] == seg["segment"]]
        assert sum(r["n_models"] for r in seg["rows"]) == len(sub)
        named = [m for r in seg["rows"] for m in r[C.MODEL].split(", ")]
        assert sorted(named) == sorted(sub[C.MODEL])
    assert data["learning_curve"] and all(
        isinstance(r["epoch"], int) for r in data["learning_curve"]
    )
    context = page_context(data)
    assert context["curve_image"].startswith("data:image/svg+xml;base64,")
    assert all(c["image"].startswith("data:image/svg+xml") for c in context["metric_charts"])
    page = publish_report(path / "report.json", tmp_path / "reports", version)
    html = page.read_text()
    assert (tmp_path / "reports" / "latest.html").read_text() == html
    assert not re.search(r"(src|href)\s*=\s*['\"]?https?://", html)  # nothing from the network
    assert "<script" not in html


def test_score_and_publish(result, data, tmp_path):
    from expectations.gate import run_gate
    from expectations.suites import RecommendationsParams

    models, published = tmp_path / "models", tmp_path / "published"
    version, _ = save_result(result, models)
    out = published / version / "recommendations.parquet"
    summary = scoring.score_version(models, out, version=version, k=5)
    recs = pd.read_parquet(out)
    assert summary["rows"] == len(recs) > 0 and summary["k"] == 5
    # within every list (also_bought mixes co-occurrence and cosine) scores never increase
    step = recs.sort_values("rank").groupby([C.LIST_TYPE, "key_id"])["score"].diff()
    assert (step.dropna() <= 0).all()
    # the gate the DAG runs, with the k the lists were scored with (was its default 10)
    purchases = data.events.loc[data.events[C.EVENT_TYPE] == "purchase", [C.USER_ID, C.ITEM_ID]]
    gate = run_gate(
        "recommendations", recs, params=RecommendationsParams(k=summary["k"]),
        purchases=purchases.drop_duplicates(), catalog_size=len(data.item_features),
    )  # fmt: skip
    assert gate.success
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]
    scoring.publish(models, published, version)
    assert (published / "CURRENT").read_text().strip() == version
    meta = (published / version / "model.json").read_text()
    assert '"trained_at"' in meta


def test_comparative_clauses_carry_a_paired_bootstrap_interval(result):
    c = next(c for c in result.dod.clauses if c.id == "vs_popularity")
    m = result.metrics.set_index([C.MODEL, C.SEGMENT])["ndcg@10"]
    assert c.reference == "popularity" and c.factor == 1.5 and c.rule == "better"
    assert c.ratio == pytest.approx(
        m[(result.dod.candidate, "all")] / m[("popularity", "all")], rel=1e-5
    )
    assert c.ci_low <= c.ratio <= c.ci_high
    assert c.n_users == result.split.test.stats["eval_users"]
    assert c.status == ("pass" if c.ratio >= 1.5 and c.ci_low > 1.0 else "fail")
    d = result.dod.to_dict()["clauses"][0]
    assert {"ratio", "ci_low", "ci_high", "rule", "reference", "factor"} <= set(d)


BAD = dataclasses.replace(
    CFG,
    lightfm=dataclasses.replace(CFG.lightfm, learning_rate=0.0, early_stopping=False, epochs=1),
    blend=dataclasses.replace(CFG.blend, weight=0.0, self_weight=0.0, als_weight=0.0),
)


def test_the_best_baseline_is_published_when_no_candidate_ever_passed(data, tmp_path):
    models, published = tmp_path / "models", tmp_path / "published"
    first = run_training(
        data.events, data.item_features, data.user_features, models_dir=models,
        config=BAD, contract=LENIENT, now=datetime(2025, 5, 1, tzinfo=UTC),
    )  # fmt: skip
    assert not first["dod_passed"] and first["kind"] == "baseline"
    dod = registry.read_json(models, first["version"], "dod.json")
    table = pd.DataFrame(registry.read_json(models, first["version"], "metrics.json")["table"])
    ndcg = table[table[C.SEGMENT] == "all"].set_index(C.MODEL)["ndcg@10"]
    best = max(("als", "popularity"), key=ndcg.__getitem__)
    assert first["published_model"] == best == dod["publication"]["model"]
    assert "no model was ever published" in first["kind_reason"]
    assert "lightfm_blend failed vs_popularity" in first["kind_reason"]
    registry.promote(models, first["version"])  # allowed: labelled baseline
    out = published / first["version"] / "recommendations.parquet"
    assert scoring.score_version(models, out, version=first["version"], k=5)["rows"] > 0
    scoring.publish(models, published, first["version"])
    meta = json.loads((published / first["version"] / "model.json").read_text())
    assert meta["kind"] == "baseline" and meta["candidate"] == best
    assert meta["kind_reason"] == first["kind_reason"]
    report = json.loads((models / first["version"] / "report.json").read_text())
    assert report["publication"]["kind"] == "baseline"
    from include.reporting.evaluation import render_report

    assert "kind: baseline" in render_report(report)
    # a later passing candidate replaces it
    good = run_training(
        data.events, data.item_features, data.user_features, models_dir=models,
        config=CFG, contract=LENIENT, now=datetime(2025, 5, 2, tzinfo=UTC),
    )  # fmt: skip
    assert good["kind"] == "candidate" and good["served_version"] == first["version"]
    assert registry.promote(models, good["version"]) == good["version"]
    report = json.loads((models / good["version"] / "report.json").read_text())
    assert report["publication"]["served_version"] == first["version"]
    page = render_report(report)  # links the served version's report and this attempt's
    assert f'href="{first["version"]}.html"' in page and f'href="{good["version"]}.html"' in page
