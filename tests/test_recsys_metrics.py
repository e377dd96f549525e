"""recsys.metrics against values worked out by hand, and against lightfm.evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recsys import metrics as M
from recsys.ranking import top_k


def csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    r = [i for i, row in enumerate(rows) for _ in row]
    c = [j for row in rows for j in row]
    return sp.csr_matrix((np.ones(len(c)), (r, c)), shape=(len(rows), n_items))


# user0: reco [2, 0, 5], relevant {0, 3} -> hit at rank 2 only
# user1: reco [1, 4, 3], relevant {1, 4} -> hits at ranks 1, 2
# user2: reco [0, 1, 2], relevant {}    -> not counted in any mean
RECO = np.array([[2, 0, 5], [1, 4, 3], [0, 1, 2]])
TRUTH = csr([[0, 3], [1, 4], []], 6)
L2, L3 = math.log2(2), math.log2(3)  # discounts 1/log2(rank + 1)


def test_hand_computed_at_3():
    assert M.precision_at_k(RECO, TRUTH, 3) == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert M.recall_at_k(RECO, TRUTH, 3) == pytest.approx((1 / 2 + 2 / 2) / 2)
    ndcg0 = (1 / L3) / (1 / L2 + 1 / L3)  # one hit at rank 2; ideal: 2 hits at ranks 1, 2
    assert M.ndcg_at_k(RECO, TRUTH, 3) == pytest.approx((ndcg0 + 1.0) / 2)
    ap0 = (1 / 2) / min(3, 2)  # precision@2 = 1/2 at the hit, over min(k, n_rel) = 2
    ap1 = (1 / 1 + 2 / 2) / 2
    assert M.map_at_k(RECO, TRUTH, 3) == pytest.approx((ap0 + ap1) / 2)
    assert M.hit_rate_at_k(RECO, TRUTH, 3) == pytest.approx(1.0)


def test_hand_computed_at_1():
    # only rank 1 counts: user0 misses, user1 hits
    assert M.precision_at_k(RECO, TRUTH, 1) == pytest.approx(0.5)
    assert M.recall_at_k(RECO, TRUTH, 1) == pytest.approx((0 + 1 / 2) / 2)
    assert M.ndcg_at_k(RECO, TRUTH, 1) == pytest.approx(0.5)
    assert M.hit_rate_at_k(RECO, TRUTH, 1) == pytest.approx(0.5)


def test_k_larger_than_relevant_set():
    reco = np.array([[4, 0, 1, 2, 3]])
    truth = csr([[4]], 5)
    assert M.precision_at_k(reco, truth, 5) == pytest.approx(1 / 5)  # denominator stays k
    assert M.recall_at_k(reco, truth, 5) == pytest.approx(1.0)
    assert M.ndcg_at_k(reco, truth, 5) == pytest.approx(1.0)  # ideal DCG uses min(k, n_rel)
    assert M.map_at_k(reco, truth, 5) == pytest.approx(1.0)
    # padding (-1) when fewer than k items exist: still one hit out of k slots
    padded = np.array([[4, -1, -1, -1, -1]])
    assert M.precision_at_k(padded, truth, 5) == pytest.approx(1 / 5)


def test_no_hits_are_zero():
    reco = np.array([[0, 1], [2, 3]])
    truth = csr([[4], [5]], 6)
    r = M.ranking_metrics(reco, truth, (2,))
    assert r["n_users"] == 2
    for key in ("precision@2", "recall@2", "ndcg@2", "map@2", "hit_rate@2"):
        assert r[key] == 0.0


def test_empty_input_is_nan():
    empty_reco = np.empty((0, 10), dtype=np.int64)
    empty_truth = sp.csr_matrix((0, 5))
    r = M.ranking_metrics(empty_reco, empty_truth, (10,))
    assert r["n_users"] == 0
    assert all(math.isnan(r[k]) for k in r if k != "n_users")
    # users exist but none has a relevant item: undefined, not 0
    assert math.isnan(M.ndcg_at_k(np.array([[0, 1]]), csr([[]], 3), 2))
    assert math.isnan(M.auc(np.zeros((0, 3)), sp.csr_matrix((0, 3))))
    assert math.isnan(M.novelty(np.full((2, 3), -1), np.zeros(3), 10))


def test_padding_never_hits_previous_users_last_item():
    # key(row 1, item -1) == key(row 0, item n_items-1): must not count as a hit
    truth = csr([[5], [0]], 6)
    reco = np.array([[0, 1], [-1, -1]])
    assert not M.hit_matrix(reco, truth).any()


def test_ranking_metrics_matches_single_functions():
    rng = np.random.default_rng(0)
    n, n_items = 50, 30
    truth = sp.random(n, n_items, density=0.1, random_state=1, format="csr")
    reco = np.stack([rng.permutation(n_items)[:10] for _ in range(n)])
    r = M.ranking_metrics(reco, truth, (5, 10))
    for k in (5, 10):
        assert r[f"precision@{k}"] == pytest.approx(M.precision_at_k(reco, truth, k))
        assert r[f"recall@{k}"] == pytest.approx(M.recall_at_k(reco, truth, k))
        assert r[f"ndcg@{k}"] == pytest.approx(M.ndcg_at_k(reco, truth, k))
        assert r[f"map@{k}"] == pytest.approx(M.map_at_k(reco, truth, k))
        assert r[f"hit_rate@{k}"] == pytest.approx(M.hit_rate_at_k(reco, truth, k))


def test_auc_by_hand():
    # negatives {0, 2} (item 3 excluded by -inf); the positive (0.8) beats one of two
    scores = np.array([[0.9, 0.8, 0.1, -np.inf]])
    assert M.per_user_auc(scores, csr([[1]], 4))[0] == pytest.approx(0.5)
    # a tie with one of two negatives counts half: 1 - 0.5 / 2
    scores = np.array([[0.5, 0.5, 0.1]])
    assert M.per_user_auc(scores, csr([[0]], 3))[0] == pytest.approx(0.75)
    # two positives ranked first: perfect
    scores = np.array([[3.0, 2.0, 1.0, 0.0]])
    assert M.per_user_auc(scores, csr([[0, 1]], 4))[0] == pytest.approx(1.0)
    # no negatives left: undefined
    assert math.isnan(M.per_user_auc(np.array([[1.0, -np.inf]]), csr([[0]], 2))[0])


def test_coverage_and_novelty_by_hand():
    reco = np.array([[0, 1], [1, -1]])
    assert M.catalog_coverage(reco, 4) == pytest.approx(2 / 4)
    counts = np.array([3, 1, 0, 0])  # p = (c + 1) / (3 + 1): item0 1 -> 0 bits, item1 1/2 -> 1
    assert M.novelty(reco, counts, 3) == pytest.approx((0 + 1 + 1) / 3)


# --- the top-k kernel every metric is fed by ---------------------------------------------------
@pytest.mark.parametrize("n_items", [7, 50, 9000, 20000])
def test_top_k_equals_brute_force(n_items):
    rng = np.random.default_rng(n_items)
    scores = rng.standard_normal((64, n_items)).astype(np.float32)
    scores[:, ::3] = np.round(scores[:, ::3], 1)  # plenty of ties
    scores[5, :] = -np.inf  # a row with nothing eligible
    scores[6, 2:] = -np.inf  # a row with fewer eligible items than k
    scores[7, :] = 1.0  # all tied
    sparse = scores[8:16]  # sparse rows (co-occurrence blocks): a few finite scores each
    sparse[rng.random(sparse.shape) > 0.02] = -np.inf
    k = 10
    idx, vals = top_k(scores, k)
    for r in range(len(scores)):
        finite = np.flatnonzero(np.isfinite(scores[r]))
        order = finite[np.lexsort((finite, -scores[r, finite]))][:k]  # score desc, index asc
        expected = np.full(k, -1)
        expected[: len(order)] = order
        np.testing.assert_array_equal(idx[r], expected)
        np.testing.assert_allclose(vals[r, : len(order)], scores[r, order])


# --- cross-check with lightfm.evaluation ------------------------------------------------------
def test_matches_lightfm_evaluation():
    from lightfm import LightFM
    from lightfm.evaluation import auc_score, precision_at_k, recall_at_k

    from recsys.models.lightfm_model import FactorState
    from recsys.ranking import top_k_for_users

    rng = np.random.default_rng(3)
    n_users, n_items = 120, 80
    dense = rng.random((n_users, n_items))
    train = sp.csr_matrix((dense < 0.08).astype(np.float32))
    test = sp.csr_matrix(((dense >= 0.08) & (dense < 0.12)).astype(np.float32))
    model = LightFM(no_components=8, loss="warp", random_state=np.random.RandomState(0))
    model.fit(train, epochs=3, num_threads=1)
    ub, ue = model.get_user_representations()
    ib, ie = model.get_item_representations()
    state = FactorState(
        ue.astype(np.float32), ub.astype(np.float32), ie.astype(np.float32), ib.astype(np.float32)
    )
    users = np.flatnonzero(test.getnnz(axis=1) > 0)
    k = 5
    idx, _ = top_k_for_users(state.score_block, users, k, known=train)
    ours_p = M.precision_at_k(idx, test[users], k)
    ours_r = M.recall_at_k(idx, test[users], k)
    theirs_p = precision_at_k(model, test, train, k=k, num_threads=1).mean()
    theirs_r = recall_at_k(model, test, train, k=k, num_threads=1).mean()
    assert ours_p == pytest.approx(theirs_p, abs=1e-6)
    assert ours_r == pytest.approx(theirs_r, abs=1e-6)
    scores = state.score_block(users)
    scores[train[users].nonzero()] = -np.inf
    ours_auc = M.per_user_auc(scores, test[users])
    theirs_auc = auc_score(model, test, train, num_threads=1)
    np.testing.assert_allclose(ours_auc, theirs_auc, atol=1e-4)
