"""Evaluate every model the same way on the time split: one table, warm/cold/all rows.

Segments restrict both the candidate items and the ground truth: ``all`` (every item on sale
in the test window), ``warm`` (launched before ``T``), ``cold`` (launched at/after ``T``; only
feature-based models can rank them). Known positives are filtered for every model.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys import columns as C
from recsys.config import DEFAULT_EVAL, EvalConfig
from recsys.data import Holdout
from recsys.metrics import catalog_coverage, novelty, per_user_auc, ranking_metrics
from recsys.models.base import Recommender
from recsys.models.lightfm_model import sample_users
from recsys.ranking import mask_known, top_k


def segment_items(holdout: Holdout) -> dict[str, np.ndarray]:
    """Item indices of each segment, ``{"all": (n_all,), "warm": ..., "cold": ...}``."""
    cand = holdout.candidates
    return {
        C.SEGMENT_ALL: np.flatnonzero(cand),
        C.SEGMENT_WARM: np.flatnonzero(cand & ~holdout.cold_items),
        C.SEGMENT_COLD: np.flatnonzero(cand & holdout.cold_items),
    }


def evaluate_model(
    model: Recommender, holdout: Holdout, config: EvalConfig = DEFAULT_EVAL
) -> list[dict]:
    """Metric rows (one per segment) for a fitted model on a holdout.

    Scores are computed once per block of users; each segment takes its own top-k from the
    same block, so every segment sees exactly the same model output.
    """
    ds = holdout.dataset
    kmax = max(config.ks)
    users = sample_users(holdout.eval_users, config.max_users, config.random_state)
    auc_users = set(sample_users(users, config.auc_max_users, config.random_state + 1).tolist())
    segments = segment_items(holdout)
    truth_users = holdout.truth[users]
    reco = {s: np.full((len(users), kmax), -1, dtype=np.int64) for s in segments}
    aucs = {s: np.full(len(users), np.nan) for s in segments}
    for start in range(0, len(users), config.block_size):
        ub = users[start : start + config.block_size]
        rows = slice(start, start + len(ub))
        scores = model.score_block(ub)
        mask_known(scores, ds.known_positives, ub)
        in_auc = np.fromiter((u in auc_users for u in ub), dtype=bool, count=len(ub))
        for seg, items in segments.items():
            if len(items) == 0:
                continue
            sub = scores[:, items]
            idx, _ = top_k(sub, kmax)
            reco[seg][rows] = np.where(idx >= 0, items[np.maximum(idx, 0)], -1)
            if in_auc.any():
                t_sub = truth_users[rows][:, items][in_auc]
                values = np.full(len(ub), np.nan)
                values[in_auc] = per_user_auc(sub[in_auc], t_sub)
                aucs[seg][rows] = values
    out = []
    counts = ds.item_user_counts
    for seg, items in segments.items():
        seg_mask = np.zeros(ds.n_items, dtype=bool)
        seg_mask[items] = True
        truth_seg = sp.csr_matrix(truth_users.multiply(seg_mask[None, :]))
        row = {C.MODEL: model.name, C.SEGMENT: seg, "n_items": int(len(items))}
        row.update(ranking_metrics(reco[seg], truth_seg, tuple(config.ks)))
        has_rel = np.diff(truth_seg.indptr) > 0
        a = aucs[seg][has_rel]
        a = a[~np.isnan(a)]
        row["auc"] = float(a.mean()) if len(a) else float("nan")
        row[f"coverage@{kmax}"] = catalog_coverage(reco[seg], len(items))
        row[f"novelty@{kmax}"] = novelty(reco[seg], counts, ds.n_users)
        out.append(row)
    return out


def evaluate_models(
    models: Mapping[str, Recommender],
    holdout: Holdout,
    config: EvalConfig = DEFAULT_EVAL,
    fit_seconds: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Evaluate fitted models on the test holdout.

    Returns
    -------
    pandas.DataFrame
        One row per ``(model, segment)``: ``n_users`` (with a relevant item in the segment),
        ``n_items``, ``precision@k``, ``recall@k``, ``ndcg@k``, ``map@k``, ``hit_rate@k`` for
        every ``k`` in ``config.ks``, ``auc``, ``coverage@kmax``, ``novelty@kmax``, ``fit_s``.
    """
    rows = []
    for name, model in models.items():
        for row in evaluate_model(model, holdout, config):
            row[C.MODEL] = name
            fit_s = (fit_seconds or {}).get(name, model.fit_s_)
            row[C.FIT_S] = float("nan") if fit_s is None else float(fit_s)
            rows.append(row)
    table = pd.DataFrame(rows)
    first = [C.MODEL, C.SEGMENT, C.N_USERS, "n_items"]
    return table[first + [c for c in table.columns if c not in first]]
