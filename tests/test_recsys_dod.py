"""Definition-of-done clauses: pass/fail, observed vs required, margins."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from recsys import columns as C
from recsys.dod import DEFAULT_CONTRACT, check_definition_of_done, load_contract


def table() -> pd.DataFrame:
    rows = [
        # model, segment, ndcg@10, recall@20, coverage@20, fit_s, n_users
        ("cand", "all", 0.12, 0.30, 0.40, 50.0, 500),
        ("cand", "cold", 0.05, 0.20, 0.30, 50.0, 80),
        ("popularity", "all", 0.05, 0.10, 0.01, 0.1, 500),
        ("als", "all", 0.10, 0.25, 0.30, 9.0, 500),
        ("cat_pop", "cold", 0.02, 0.08, 0.50, 0.1, 80),
    ]
    cols = [C.MODEL, C.SEGMENT, "ndcg@10", "recall@20", "coverage@20", C.FIT_S, C.N_USERS]
    return pd.DataFrame(rows, columns=cols)


def contract(*clauses: dict) -> dict:
    return {"candidate": "cand", "baselines": ["popularity", "als"], "clauses": list(clauses)}


def test_ratio_against_best_baseline_with_margin():
    c = {"id": "x", "metric": "ndcg@10", "compare_to": "best_baseline", "factor": 1.1}
    r = check_definition_of_done(table(), contract(c)).clauses[0]
    assert r.status == "pass"
    assert r.required == pytest.approx(0.11)  # 1.1 x als (the best baseline, 0.10)
    assert r.margin == pytest.approx(0.01)
    assert r.margin_pct == pytest.approx(100 * 0.01 / 0.11)
    assert "als" in r.detail


def test_failing_clause_reports_by_how_much():
    c = {"id": "x", "metric": "ndcg@10", "compare_to": "popularity", "factor": 3.0}
    rep = check_definition_of_done(table(), contract(c))
    assert not rep.passed and rep.failed[0].id == "x"
    assert rep.failed[0].margin == pytest.approx(0.12 - 0.15)


def test_thresholds_both_directions():
    rep = check_definition_of_done(
        table(),
        contract(
            {"id": "cov", "metric": "coverage@20", "op": ">=", "threshold": 0.5},
            {"id": "time", "metric": C.FIT_S, "op": "<=", "threshold": 60},
        ),
    )
    cov, time_ = rep.clauses
    assert cov.status == "fail" and cov.margin == pytest.approx(-0.1)
    assert time_.status == "pass" and time_.margin == pytest.approx(10.0)  # 10 s under
    assert not rep.passed


def test_cold_clause_and_missing_values():
    cold = {
        "id": "cold",
        "metric": "recall@20",
        "segment": "cold",
        "compare_to": "cat_pop",
        "factor": 2.0,
    }
    assert check_definition_of_done(table(), contract(cold)).clauses[0].status == "pass"
    missing = {**cold, "compare_to": "nobody"}
    assert check_definition_of_done(table(), contract(missing)).clauses[0].status == "fail"
    skip = {**missing, "on_missing": "skip"}
    r = check_definition_of_done(table(), contract(skip))
    assert r.passed and r.clauses[0].status == "skipped" and math.isnan(r.clauses[0].margin)


def test_unknown_metric_is_an_error():
    with pytest.raises(KeyError, match="not in the evaluation table"):
        check_definition_of_done(table(), contract({"id": "x", "metric": "mrr", "threshold": 1}))


def test_shipped_contract_has_the_agreed_clauses():
    c = load_contract(DEFAULT_CONTRACT)
    ids = {cl["id"] for cl in c["clauses"]}
    assert {
        "ndcg_vs_best_baseline",
        "cold_recall_vs_category_popularity",
        "coverage_floor",
        "train_time_ceiling",
    } <= ids
    assert c["candidate"] == "lightfm_blend"
    assert set(c["baselines"]) == {"popularity", "category_popularity", "cooccurrence", "als"}
    assert all(cl.get("owner") in ("DS", "DE") for cl in c["clauses"])


def test_the_best_candidate_that_passes_is_chosen():
    from recsys.dod import choose_candidate

    rows = table()
    extra = pd.DataFrame(
        # a second candidate: better nDCG than `cand`, worse coverage
        [("other", "all", 0.13, 0.31, 0.15, 20.0, 500)],
        columns=rows.columns,
    )
    rows = pd.concat([rows, extra], ignore_index=True)
    beat_als = {"id": "ndcg", "metric": "ndcg@10", "compare_to": "best_baseline", "factor": 1.1}
    cov = {"id": "cov", "metric": "coverage@20", "threshold": 0.2}
    both = {**contract(beat_als), "candidates": ["other"]}
    # both pass: the higher nDCG@10 wins (0.13 > 0.12)
    rep = choose_candidate(rows, both)
    assert rep.passed and rep.candidate == "other"
    assert [(c.candidate, c.passed) for c in rep.considered] == [("cand", True), ("other", True)]
    # a stronger ALS: the primary fails the ndcg clause (0.12 < 1.1 x 0.115 = 0.1265), `other`
    # passes it (0.13)
    rows.loc[rows[C.MODEL] == "als", "ndcg@10"] = 0.115
    rep = choose_candidate(rows, {**contract(beat_als, cov), "candidates": ["other"]})
    assert not rep.passed and rep.candidate == "cand"  # other fails coverage (0.15 < 0.2)
    assert {c.candidate: c.failed for c in rep.considered} == {"cand": ("ndcg",), "other": ("cov",)}
    rep = choose_candidate(rows, {**contract(beat_als), "candidates": ["other"]})
    assert rep.passed and rep.candidate == "other"
    assert [c.id for c in rep.clauses] == ["ndcg"] and rep.clauses[0].observed == 0.13
    # one candidate only: the contract's `candidate`, as before
    assert choose_candidate(rows, contract(cov)).candidate == "cand"


# --- judging with uncertainty: paired bootstrap intervals and the pass rules ------------------
def test_paired_interval_of_identical_models_is_exactly_one():
    from recsys.bootstrap import paired_ratio

    a = np.array([1.0, 0.0, 1.0, 0.0, 0.5])
    ratio, lo, hi = paired_ratio(a, a)
    assert (ratio, lo, hi) == (1.0, 1.0, 1.0)  # every resample: equal means (0/0 counts as 1)
    ratio, lo, hi = paired_ratio(2 * a, a)
    assert (ratio, lo, hi) == (2.0, 2.0, 2.0)  # paired: the ratio is 2 on every resample


def test_paired_interval_by_hand_on_two_users():
    """a = [1, 0], b = [1, 1]: a resample's mean of a is 1, 0.5 or 0 (p = 1/4, 1/2, 1/4) and
    b's is always 1, so the ratio is 0.5 on all users and the 95 % interval is [0, 1]."""
    from recsys.bootstrap import BootstrapConfig, paired_ratio

    ratio, lo, hi = paired_ratio(np.array([1.0, 0.0]), np.array([1.0, 1.0]))
    assert (ratio, lo, hi) == (0.5, 0.0, 1.0)
    # the same seed draws the same resamples; NaN users (no relevant item) are left out
    cfg = BootstrapConfig(n_resamples=500, seed=7)
    x, y = np.array([1.0, 0, 1, np.nan, 0, 1]), np.array([0.0, 0, 1, np.nan, 1, 1])
    assert paired_ratio(x, y, cfg) == paired_ratio(x, y, cfg)
    assert paired_ratio(x, y, cfg)[0] == pytest.approx(3 / 3)


def test_pairing_gives_a_narrower_interval_than_independent_users():
    from recsys.bootstrap import bootstrap_means, paired_ratio, ratio_interval

    rng = np.random.default_rng(0)
    b = (rng.random(2000) < 0.3).astype(float)
    a = b.copy()
    a[rng.choice(np.flatnonzero(b == 0), 60, replace=False)] = 1.0  # +60 hits, same users
    ratio, lo, hi = paired_ratio(a, b)
    assert ratio == pytest.approx(a.sum() / b.sum())
    assert lo < ratio < hi and lo > 1.0  # every resample gains hits: better beyond the noise
    # resampling the two models' users independently (unpaired) spreads much wider
    ma = bootstrap_means(a[:, None], 2000, 1)[:, 0]
    mb = bootstrap_means(b[:, None], 2000, 2)[:, 0]
    ulo, uhi = ratio_interval(ma, mb)
    assert (uhi - ulo) > 2 * (hi - lo)


@pytest.mark.parametrize(
    ("op", "factor", "ratio", "lo", "hi", "rule", "passes"),
    [
        (">=", 1.1, 1.12, 1.02, 1.22, "better", True),
        (">=", 1.1, 1.12, 0.99, 1.25, "better", False),  # reaches 1.1, not beyond the noise
        (">=", 1.1, 1.05, 1.01, 1.10, "better", False),  # beyond the noise, short of 1.1
        (">=", 1.1, 1.10, 1.0, 1.2, "better", False),  # the lower bound must be ABOVE 1
        (">=", 1.0, 0.95, 0.90, 1.01, "no_worse", True),  # lower, but within the noise
        (">=", 1.0, 0.95, 0.90, 1.00, "no_worse", True),  # upper bound not below 1
        (">=", 1.0, 0.90, 0.80, 0.99, "no_worse", False),  # worse beyond the noise
        ("<=", 0.8, 0.75, 0.6, 0.9, "better", True),
        ("<=", 1.0, 1.05, 1.01, 1.1, "no_worse", False),
    ],
)
def test_pass_rules_on_hand_made_ratios(op, factor, ratio, lo, hi, rule, passes):
    from recsys.dod import judge

    assert judge(op, factor, ratio, lo, hi) == (rule, passes)


def _per_user_fixture(cand: np.ndarray, ref: np.ndarray) -> tuple[pd.DataFrame, dict]:
    t = pd.DataFrame(
        [("cand", "all", cand.mean(), len(cand)), ("ref", "all", ref.mean(), len(ref))],
        columns=[C.MODEL, C.SEGMENT, "ndcg@10", C.N_USERS],
    )
    per_user = {"cand": {"all": {"ndcg@10": cand}}, "ref": {"all": {"ndcg@10": ref}}}
    return t, per_user


def test_better_clause_needs_the_interval_above_one():
    """10 users, the reference hits users 0-4, the candidate also user 5: ratio 6/5 = 1.2
    reaches 1.1, but a resample without user 5 (probability 0.9^10 = 35 %) ties, so the
    lower bound is exactly 1.0 and the clause fails. Ten times the users, it passes."""
    ref = np.r_[np.ones(5), np.zeros(5)]
    cand = ref.copy()
    cand[5] = 1.0
    clause = {"id": "x", "metric": "ndcg@10", "compare_to": "ref", "factor": 1.1}
    t, pu = _per_user_fixture(cand, ref)
    point = check_definition_of_done(t, {"candidate": "cand", "clauses": [clause]}).clauses[0]
    assert point.status == "pass" and point.rule == "point" and point.ratio == pytest.approx(1.2)
    r = check_definition_of_done(
        t, {"candidate": "cand", "clauses": [clause]}, per_user=pu
    ).clauses[0]
    assert r.rule == "better" and r.ratio == pytest.approx(1.2)
    assert r.ci_low == 1.0 and r.ci_high > 1.2 and r.status == "fail" and r.n_users == 10
    t, pu = _per_user_fixture(np.tile(cand, 10), np.tile(ref, 10))
    r = check_definition_of_done(
        t, {"candidate": "cand", "clauses": [clause]}, per_user=pu
    ).clauses[0]
    assert r.ratio == pytest.approx(1.2) and r.ci_low > 1.0 and r.status == "pass"


def test_no_worse_clause_fails_only_beyond_the_noise():
    ref = np.tile(np.r_[np.ones(5), np.zeros(5)], 10)  # 50 hits of 100 users
    clause = {"id": "nw", "metric": "ndcg@10", "compare_to": "ref", "factor": 1.0}
    contract_ = {"candidate": "cand", "clauses": [clause]}
    slightly = ref.copy()
    slightly[0] = 0.0  # one hit fewer: ratio 0.98, within the noise
    t, pu = _per_user_fixture(slightly, ref)
    point = check_definition_of_done(t, contract_).clauses[0]
    assert point.status == "fail"  # the point estimate alone would refuse it
    r = check_definition_of_done(t, contract_, per_user=pu).clauses[0]
    assert r.rule == "no_worse" and r.ratio == pytest.approx(0.98) and r.ci_high >= 1.0
    assert r.status == "pass"
    much = ref.copy()
    much[np.flatnonzero(ref)[:15]] = 0.0  # 15 hits fewer: ratio 0.7
    t, pu = _per_user_fixture(much, ref)
    r = check_definition_of_done(t, contract_, per_user=pu).clauses[0]
    assert r.ratio == pytest.approx(0.7) and r.ci_high < 1.0 and r.status == "fail"


def test_shipped_contract_cold_clause_is_one_and_a_half_times():
    c = {x["id"]: x for x in load_contract(DEFAULT_CONTRACT)["clauses"]}
    cold = c["cold_recall_vs_category_popularity"]
    assert cold["factor"] == 1.5 and cold["model"] == "lightfm" and cold["segment"] == "cold"
    assert load_contract(DEFAULT_CONTRACT)["bootstrap"]["confidence"] == 0.95


def test_publish_decision_by_case():
    from recsys.dod import Considered, DoDReport, publish_decision

    t = table()
    t.loc[t[C.MODEL] == "popularity", "ndcg@10"] = 0.05  # als (0.10) is the better baseline
    passed = DoDReport(passed=True, candidate="cand")
    assert publish_decision(passed, t, ever_published=True)["kind"] == "candidate"
    failed = DoDReport(
        passed=False,
        candidate="cand",
        considered=(Considered("cand", False, 0.12, ("ndcg_vs_best_baseline",)),),
    )
    keep = publish_decision(failed, t, ever_published=True)
    assert keep["kind"] == "none" and keep["model"] is None
    assert "cand failed ndcg_vs_best_baseline" in keep["reason"]
    first = publish_decision(failed, t, ever_published=False)
    assert first["kind"] == "baseline" and first["model"] == "als"
    assert "no model was ever published" in first["reason"]


def test_cached_resamples_give_the_same_intervals_as_pairwise_draws():
    from recsys.bootstrap import BootstrapConfig, paired_ratio, ratio_interval, resample_series

    rng = np.random.default_rng(3)
    mask = rng.random(300) < 0.2  # users without a relevant item: NaN for every model
    series = {}
    for name, p in (("a", 0.3), ("b", 0.25), ("c", 0.1)):
        v = (rng.random(300) < p).astype(float)
        v[mask] = np.nan
        series[(name, "all", "ndcg@10")] = v
    cfg = BootstrapConfig(n_resamples=400, seed=5)
    cached = resample_series(series, cfg)
    for x, y in (("a", "b"), ("a", "c"), ("c", "b")):
        kx, ky = (x, "all", "ndcg@10"), (y, "all", "ndcg@10")
        _, lo, hi = paired_ratio(series[kx], series[ky], cfg)
        assert ratio_interval(cached[kx], cached[ky], cfg.confidence) == (lo, hi)
