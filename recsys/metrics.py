"""Ranking metrics, vectorised over all users at once (no per-user Python loops).

Conventions (shared by every function):

* ``reco`` is ``(n_users, k_max)`` int: recommended item indices best first, ``-1`` padding.
* ``truth`` is CSR ``(n_users, n_items)``: non-zero = relevant; rows align with ``reco``.
* Averages run over users with at least one relevant item (as ``lightfm.evaluation`` does with
  ``preserve_rows=False``); with no such user the result is NaN (undefined, not 0).
* ``precision@k = hits@k / k``; ``recall@k = hits@k / n_rel``;
  ``nDCG@k = sum_j hit_j / log2(j+2) / sum_{j < min(k, n_rel)} 1 / log2(j+2)``;
  ``AP@k = sum_j hit_j * precision@(j+1) / min(k, n_rel)``; ``hit_rate@k = P(hits@k > 0)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp


def _as_csr(truth: sp.spmatrix) -> sp.csr_matrix:
    t = sp.csr_matrix(truth)
    t.eliminate_zeros()
    t.sort_indices()
    return t


def hit_matrix(reco: np.ndarray, truth: sp.spmatrix) -> np.ndarray:
    """``(n_users, k_max)`` bool: whether each recommended item is relevant."""
    reco = np.asarray(reco)
    t = _as_csr(truth)
    if reco.shape[0] != t.shape[0]:
        raise ValueError(f"reco has {reco.shape[0]} rows, truth {t.shape[0]}; align them")
    if reco.size == 0:
        return np.zeros(reco.shape, dtype=bool)
    n_items = t.shape[1]
    rows = np.repeat(np.arange(t.shape[0], dtype=np.int64), np.diff(t.indptr))
    truth_keys = rows * n_items + t.indices  # sorted: rows ascending, indices sorted
    reco_keys = np.arange(reco.shape[0], dtype=np.int64)[:, None] * n_items + reco
    pos = np.searchsorted(truth_keys, reco_keys)
    pos = np.minimum(pos, max(len(truth_keys) - 1, 0))
    found = truth_keys[pos] == reco_keys if len(truth_keys) else np.zeros(reco.shape, bool)
    return found & (reco >= 0)


def _n_relevant(truth: sp.spmatrix) -> np.ndarray:
    return np.diff(_as_csr(truth).indptr)


def _users_mean(values: np.ndarray, n_rel: np.ndarray) -> float:
    sel = n_rel > 0
    return float(values[sel].mean()) if sel.any() else float("nan")


def precision_at_k(reco: np.ndarray, truth: sp.spmatrix, k: int) -> float:
    """Mean over users of ``hits@k / k``."""
    h = hit_matrix(reco, truth)[:, :k]
    return _users_mean(h.sum(axis=1) / k, _n_relevant(truth))


def recall_at_k(reco: np.ndarray, truth: sp.spmatrix, k: int) -> float:
    """Mean over users of ``hits@k / n_relevant``."""
    n_rel = _n_relevant(truth)
    h = hit_matrix(reco, truth)[:, :k]
    return _users_mean(h.sum(axis=1) / np.maximum(n_rel, 1), n_rel)


def hit_rate_at_k(reco: np.ndarray, truth: sp.spmatrix, k: int) -> float:
    """Share of users with at least one hit in the top ``k``."""
    h = hit_matrix(reco, truth)[:, :k]
    return _users_mean((h.sum(axis=1) > 0).astype(float), _n_relevant(truth))


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def ndcg_at_k(reco: np.ndarray, truth: sp.spmatrix, k: int) -> float:
    """Mean over users of binary-relevance nDCG@k."""
    n_rel = _n_relevant(truth)
    h = hit_matrix(reco, truth)[:, :k]
    disc = _discounts(k)
    dcg = h @ disc[: h.shape[1]]
    ideal = np.concatenate([[0.0], np.cumsum(disc)])[np.minimum(n_rel, k)]
    return _users_mean(np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0), n_rel)


def map_at_k(reco: np.ndarray, truth: sp.spmatrix, k: int) -> float:
    """Mean over users of AP@k, normalised by ``min(k, n_relevant)``."""
    n_rel = _n_relevant(truth)
    h = hit_matrix(reco, truth)[:, :k].astype(np.float64)
    prec = np.cumsum(h, axis=1) / np.arange(1, h.shape[1] + 1)
    ap = (prec * h).sum(axis=1) / np.maximum(np.minimum(n_rel, k), 1)
    return _users_mean(ap, n_rel)


def per_user_auc(scores: np.ndarray, truth: sp.spmatrix, chunk: int = 256) -> np.ndarray:
    """ROC AUC of each user's full score row, ``(n_users,)`` float64, NaN where undefined.

    Parameters
    ----------
    scores
        ``(n_users, n_items)``; ``-inf`` (or NaN) marks excluded items (known positives,
        non-candidates): they are neither positives nor negatives.
    truth
        CSR ``(n_users, n_items)`` relevant items.

    Notes
    -----
    ``AUC_u = mean over positives p of 1 - (#neg > s_p + 0.5 #neg == s_p) / #neg``: the
    probability that a random positive outranks a random negative, ties counting half. It
    equals ``lightfm.evaluation.auc_score`` when there are no ties.
    """
    t = _as_csr(truth)
    n_users = t.shape[0]
    out = np.full(n_users, np.nan)
    if n_users == 0 or t.nnz == 0:
        return out
    scores = np.asarray(scores)  # read only: no float64 copy of the block
    rows = np.repeat(np.arange(n_users), np.diff(t.indptr))
    cols = t.indices
    pos_scores = scores[rows, cols].astype(np.float64)
    valid = np.isfinite(pos_scores)
    # the user's other (finite) positives are not negatives: count them per pair, by rank
    # within the user (vectorised groupby ranks, no loop over users)
    ps = pd.Series(np.where(valid, pos_scores, np.nan))
    by_row = ps.groupby(rows)
    above_min = by_row.rank(method="min", ascending=False).to_numpy() - 1.0  # strictly greater
    above_max = by_row.rank(method="max", ascending=False).to_numpy() - 1.0
    pos_gt = np.nan_to_num(above_min)
    pos_eq = np.nan_to_num(above_max - above_min)  # ties, itself excluded
    n_pos_finite = np.bincount(rows[valid], minlength=n_users)
    n_neg = np.empty(n_users, dtype=np.int64)
    pair_gt = np.zeros(len(rows))
    pair_eq = np.zeros(len(rows))
    for start in range(0, n_users, chunk):  # blocks of users: bounded temporaries
        block = scores[start : start + chunk]
        n_neg[start : start + chunk] = np.count_nonzero(np.isfinite(block), axis=1)
        sel = slice(t.indptr[start], t.indptr[min(start + chunk, n_users)])
        r = rows[sel] - start
        if len(r) == 0:
            continue
        s_p = pos_scores[sel, None].astype(block.dtype)
        pair_gt[sel] = np.count_nonzero(block[r] > s_p, axis=1)
        pair_eq[sel] = np.count_nonzero(block[r] == s_p, axis=1) - 1  # itself
    n_neg -= n_pos_finite
    nn = n_neg[rows]
    ok = valid & (nn > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        pair_auc = 1.0 - ((pair_gt - pos_gt) + 0.5 * (pair_eq - pos_eq)) / nn
    sums = np.bincount(rows[ok], weights=pair_auc[ok], minlength=n_users)
    counts = np.bincount(rows[ok], minlength=n_users)
    np.divide(sums, counts, out=out, where=counts > 0)
    return out


def auc(scores: np.ndarray, truth: sp.spmatrix) -> float:
    """Mean of :func:`per_user_auc` over users where it is defined (NaN if none)."""
    values = per_user_auc(scores, truth)
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else float("nan")


def catalog_coverage(reco: np.ndarray, n_items: int) -> float:
    """Share of the ``n_items`` candidate items recommended to at least one user."""
    if n_items <= 0:
        return float("nan")
    valid = np.asarray(reco)[np.asarray(reco) >= 0]
    return float(len(np.unique(valid)) / n_items)


def novelty(reco: np.ndarray, item_user_counts: np.ndarray, n_users: int) -> float:
    """Mean self-information ``-log2((c_i + 1) / (n_users + 1))`` of recommended items.

    ``c_i`` is the number of training users who interacted with item ``i``; the +1 smoothing
    keeps never-seen (cold) items finite. Higher = less popular recommendations.
    """
    reco = np.asarray(reco)
    valid = reco[reco >= 0]
    if len(valid) == 0:
        return float("nan")
    p = (np.asarray(item_user_counts, dtype=np.float64)[valid] + 1.0) / (n_users + 1.0)
    return float(np.mean(-np.log2(p)))


def per_user_ranking_metrics(
    reco: np.ndarray, truth: sp.spmatrix, ks: tuple[int, ...]
) -> dict[str, np.ndarray]:
    """Each user's precision, recall, nDCG, AP and hit at each ``k``: ``(n_users,)`` float64.

    NaN for users without a relevant item (they do not count in a mean). The means of these
    arrays over the other users are :func:`ranking_metrics`; the arrays themselves feed the
    paired bootstrap of the definition of done (:mod:`recsys.bootstrap`).
    """
    n_rel = _n_relevant(truth)
    h_all = hit_matrix(reco, truth)
    undefined = n_rel == 0
    out: dict[str, np.ndarray] = {}
    for k in ks:
        h = h_all[:, :k]
        hk = h.sum(axis=1).astype(np.float64)
        disc = _discounts(k)
        dcg = h @ disc[: h.shape[1]]
        ideal = np.concatenate([[0.0], np.cumsum(disc)])[np.minimum(n_rel, k)]
        prec_run = np.cumsum(h, axis=1) / np.arange(1, h.shape[1] + 1)
        ap = (prec_run * h).sum(axis=1) / np.maximum(np.minimum(n_rel, k), 1)
        values = {
            f"precision@{k}": hk / k,
            f"recall@{k}": hk / np.maximum(n_rel, 1),
            f"ndcg@{k}": np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0),
            f"map@{k}": ap,
            f"hit_rate@{k}": (hk > 0).astype(np.float64),
        }
        for name, v in values.items():
            v = np.asarray(v, dtype=np.float64)
            v[undefined] = np.nan
            out[name] = v
    return out


def ranking_metrics(reco: np.ndarray, truth: sp.spmatrix, ks: tuple[int, ...]) -> dict:
    """precision, recall, nDCG, MAP and hit rate at each ``k`` in one pass over the hits.

    Returns ``{"precision@10": ..., "recall@10": ..., ...}`` plus ``"n_users"`` (users with at
    least one relevant item).
    """
    n_rel = _n_relevant(truth)
    out: dict = {"n_users": int((n_rel > 0).sum())}
    for name, v in per_user_ranking_metrics(reco, truth, ks).items():
        out[name] = _users_mean(np.nan_to_num(v), n_rel)
    return out
