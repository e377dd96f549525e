"""Definition-of-done clauses: pass/fail, observed vs required, margins."""

from __future__ import annotations

import math

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
