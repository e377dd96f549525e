"""Evaluate every model the same way on the time split: one table, warm/cold/all rows.

Segments restrict both the candidate items and the ground truth: ``all`` (every item on sale
in the test window), ``warm`` (launched before ``T``), ``cold`` (launched at/after ``T``; only
feature-based models can rank them). Known positives are filtered for every model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys import columns as C
from recsys.config import DEFAULT_EVAL, EvalConfig
from recsys.data import Holdout
from recsys.metrics import catalog_coverage, novelty, per_user_auc, per_user_ranking_metrics
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


@dataclass(eq=False)
class Evaluation:
    """The evaluation table plus what the definition of done needs to judge with uncertainty.

    Attributes
    ----------
    table
        One row per ``(model, segment)`` (see :func:`evaluate_models`).
    per_user
        ``per_user[model][segment][metric]``: ``(n_users,)`` float32 per-user values (NaN for
        users without a relevant item in the segment); row ``j`` is user ``users[j]`` for
        every model, so two models' arrays are paired.
    users
        ``(n_users,)`` user indices evaluated (all test users, or a seeded sample).
    """

    table: pd.DataFrame
    per_user: dict[str, dict[str, dict[str, np.ndarray]]]
    users: np.ndarray


def _segment_plan(holdout: Holdout) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(not_on_sale (m,), cold candidate items (c,), has_warm_difference)``."""
    cand = holdout.candidates
    cold = np.flatnonzero(cand & holdout.cold_items)
    return np.flatnonzero(~cand), cold, len(cold) > 0


def evaluate_model(
    model: Recommender,
    holdout: Holdout,
    config: EvalConfig = DEFAULT_EVAL,
    per_user: dict[str, dict[str, np.ndarray]] | None = None,
) -> list[dict]:
    """Metric rows (one per segment) for a fitted model on a holdout.

    Scores are computed once per block of users and every segment takes its top-k from that
    block, masked in place (no copy of the block for ``all`` and ``warm``): ``all`` masks the
    items not on sale, ``warm`` additionally the cold ones, ``cold`` ranks the few cold
    columns. When ``per_user`` is given it is filled with ``{segment: {metric: (n,)}}``.
    """
    ds = holdout.dataset
    kmax = max(config.ks)
    users = sample_users(holdout.eval_users, config.max_users, config.random_state)
    auc_users = sample_users(users, config.auc_max_users, config.random_state + 1)
    in_auc_all = np.isin(users, auc_users)
    segments = segment_items(holdout)
    not_on_sale, cold, has_cold = _segment_plan(holdout)
    truth_users = holdout.truth[users]
    reco = {s: np.full((len(users), kmax), -1, dtype=np.int64) for s in segments}
    aucs = {s: np.full(len(users), np.nan) for s in segments}
    block = max(64, min(config.block_size, config.block_elements // max(ds.n_items, 1)))
    for start in range(0, len(users), block):
        ub = users[start : start + block]
        rows = slice(start, start + len(ub))
        scores = model.score_block(ub)
        mask_known(scores, ds.known_positives, ub)
        in_auc = in_auc_all[rows]
        t_block = truth_users[rows]
        if has_cold:
            sub = scores[:, cold]
            idx, _ = top_k(sub, kmax)
            reco[C.SEGMENT_COLD][rows] = np.where(idx >= 0, cold[np.maximum(idx, 0)], -1)
            if in_auc.any():
                aucs[C.SEGMENT_COLD][rows][in_auc] = per_user_auc(
                    sub[in_auc], t_block[:, cold][in_auc]
                )
        if len(not_on_sale):
            scores[:, not_on_sale] = -np.inf
        for seg in (C.SEGMENT_ALL, C.SEGMENT_WARM):
            if seg == C.SEGMENT_WARM:
                if not has_cold:  # warm = all: nothing to rank again
                    reco[seg][rows] = reco[C.SEGMENT_ALL][rows]
                    aucs[seg][rows] = aucs[C.SEGMENT_ALL][rows]
                    continue
                scores[:, cold] = -np.inf
            idx, _ = top_k(scores, kmax)
            reco[seg][rows] = idx
            if in_auc.all():  # no copy of the block
                aucs[seg][rows] = per_user_auc(scores, t_block)
            elif in_auc.any():
                # positives in masked (-inf) columns are not counted by per_user_auc
                aucs[seg][rows][in_auc] = per_user_auc(scores[in_auc], t_block[in_auc])
    out = []
    counts = ds.item_user_counts
    for seg, items in segments.items():
        seg_mask = np.zeros(ds.n_items, dtype=bool)
        seg_mask[items] = True
        truth_seg = sp.csr_matrix(truth_users.multiply(seg_mask[None, :]))
        row = {C.MODEL: model.name, C.SEGMENT: seg, "n_items": int(len(items))}
        values = per_user_ranking_metrics(reco[seg], truth_seg, tuple(config.ks))
        has_rel = np.diff(truth_seg.indptr) > 0
        row[C.N_USERS] = int(has_rel.sum())
        row.update({k: _mean(v) for k, v in values.items()})
        a = aucs[seg][has_rel]
        a = a[~np.isnan(a)]
        row["auc"] = float(a.mean()) if len(a) else float("nan")
        row[f"coverage@{kmax}"] = catalog_coverage(reco[seg], len(items))
        row[f"novelty@{kmax}"] = novelty(reco[seg], counts, ds.n_users)
        out.append(row)
        if per_user is not None:
            per_user[seg] = {k: v.astype(np.float32) for k, v in values.items()}
    return out


def _mean(values: np.ndarray) -> float:
    ok = ~np.isnan(values)
    return float(values[ok].mean()) if ok.any() else float("nan")


def evaluate(
    models: Mapping[str, Recommender],
    holdout: Holdout,
    config: EvalConfig = DEFAULT_EVAL,
    fit_seconds: Mapping[str, float] | None = None,
) -> Evaluation:
    """Evaluate fitted models on the test holdout: the table and the per-user values."""
    rows = []
    per_user: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for name, model in models.items():
        per_user[name] = {}
        for row in evaluate_model(model, holdout, config, per_user[name]):
            row[C.MODEL] = name
            fit_s = (fit_seconds or {}).get(name, model.fit_s_)
            row[C.FIT_S] = float("nan") if fit_s is None else float(fit_s)
            rows.append(row)
    table = pd.DataFrame(rows)
    first = [C.MODEL, C.SEGMENT, C.N_USERS, "n_items"]
    table = table[first + [c for c in table.columns if c not in first]]
    users = sample_users(holdout.eval_users, config.max_users, config.random_state)
    return Evaluation(table=table, per_user=per_user, users=users)


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
        :func:`evaluate` also returns the per-user values.
    """
    return evaluate(models, holdout, config, fit_seconds).table
