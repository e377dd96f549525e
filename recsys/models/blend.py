"""LightFM + item co-occurrence blend with its weights fitted on the validation slice."""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from recsys.config import (
    DEFAULT_BLEND,
    DEFAULT_COOCCURRENCE,
    DEFAULT_LIGHTFM,
    BlendConfig,
    CooccurrenceConfig,
    LightFMConfig,
)
from recsys.data import Dataset, Holdout
from recsys.metrics import ndcg_at_k
from recsys.models.base import ExportedModel, Recommender
from recsys.models.cooccurrence import CooccurrenceRecommender, user_similarity
from recsys.models.lightfm_model import FactorState, LightFMRecommender, sample_users
from recsys.ranking import blend_scores, factor_moments, mask_known, top_k


class BlendScorer:
    """Scores ``(1-w) z(LightFM) + w z(co-occurrence)`` from arrays (in memory or loaded).

    ``history`` ``(n_users, n_items)`` and ``user_similarity`` ``(n_items, n_items)`` give the
    co-occurrence part ``history @ user_similarity``.
    """

    def __init__(
        self, state: FactorState, history: sp.csr_matrix, user_sim: sp.csr_matrix, weight: float
    ) -> None:
        self.state = state
        self.history = history
        self.user_sim = user_sim
        self.weight = float(weight)
        self.moments = factor_moments(state.item_emb, state.item_bias)

    def score_block(self, users: np.ndarray) -> np.ndarray:
        s = self.state
        return blend_scores(
            s.user_emb[users],
            s.user_bias[users],
            s.item_emb,
            s.item_bias,
            self.moments,
            self.history[users],
            self.user_sim,
            self.weight,
        )


def _search(
    vstate: FactorState,
    inner: Dataset,
    cooc_config: CooccurrenceConfig,
    validation: Holdout,
    config: BlendConfig,
    users: np.ndarray,
) -> list[dict]:
    """nDCG@k on the validation slice for every (weight, self_weight) of the grids.

    The LightFM z-scores of the sampled users are computed once ``(n_users, n_items)``; each
    grid point then only adds the sparse co-occurrence part and takes a top-k.
    """
    k = config.validation_k
    weights = config.weight_grid if config.weight is None else (config.weight,)
    selfs = config.self_weight_grid if config.self_weight is None else (config.self_weight,)
    base = blend_scores(
        vstate.user_emb[users],
        vstate.user_bias[users],
        vstate.item_emb,
        vstate.item_bias,
        factor_moments(vstate.item_emb, vstate.item_bias),
        sp.csr_matrix((len(users), inner.n_items), dtype=np.float32),
        sp.csr_matrix((inner.n_items, inner.n_items), dtype=np.float32),
        0.0,
    )  # (n, n_items): z-scored LightFM part
    mask_known(base, validation.dataset.known_positives, users)
    base[:, ~validation.candidates] = -np.inf
    masked = np.isneginf(base)
    base[masked] = 0.0
    truth = validation.truth[users]
    cooc = CooccurrenceRecommender(dataclasses.replace(cooc_config, self_weight=0.0)).fit(inner)
    history = cooc.history_[users]
    curve = []
    for lam in selfs:
        c = sp.csr_matrix(history @ user_similarity(cooc.similarity_, lam), dtype=np.float64)
        n = c.shape[1]
        mean = np.asarray(c.sum(axis=1)).ravel() / n
        sq = np.asarray(c.multiply(c).sum(axis=1)).ravel() / n
        sd = np.sqrt(np.maximum(sq - mean**2, 0.0))
        rows = np.repeat(np.arange(c.shape[0]), np.diff(c.indptr))
        for w in weights:
            inv = np.divide(w, sd, out=np.zeros_like(sd), where=sd > 0)
            s = base * np.float32(1.0 - w)
            s -= (mean * inv).astype(np.float32)[:, None]
            s[rows, c.indices] += (c.data * inv[rows]).astype(np.float32)
            s[masked] = -np.inf
            idx, _ = top_k(s, k)
            curve.append(
                {"weight": w, "self_weight": lam, f"validation_ndcg@{k}": ndcg_at_k(idx, truth, k)}
            )
    return curve


class LightFMCooccurrenceBlend(Recommender):
    """The candidate: LightFM hybrid blended with item co-occurrence on recency-weighted history.

    Each component's scores are z-scored per user over all items and mixed with weight ``w``
    (co-occurrence share); the co-occurrence part is
    ``recency_history @ (S + self_weight * I)``, so items co-bought with what the user touched
    recently, and (``self_weight > 0``) those items themselves, are lifted. ``w`` and
    ``self_weight`` are chosen on the validation slice (components fitted on the slice's
    data). The fitted components are ``.lightfm`` and ``.cooccurrence``.
    """

    name = "lightfm_cooc_blend"

    def __init__(
        self,
        lightfm: LightFMConfig = DEFAULT_LIGHTFM,
        cooccurrence: CooccurrenceConfig = DEFAULT_COOCCURRENCE,
        config: BlendConfig = DEFAULT_BLEND,
    ) -> None:
        super().__init__()
        self.config = config
        self.cooc_config = dataclasses.replace(cooccurrence, history="recency")
        self.lightfm = LightFMRecommender(lightfm)
        self.weight_curve_: list[dict] = []

    def _fit(self, dataset: Dataset, validation: Holdout | None) -> None:
        cfg = self.config
        self.lightfm.fit(dataset, validation)
        weight = cfg.default_weight if cfg.weight is None else cfg.weight
        self_weight = cfg.default_self_weight if cfg.self_weight is None else cfg.self_weight
        self.weight_curve_ = []
        vstate = self.lightfm.validation_state_
        searching = cfg.weight is None or cfg.self_weight is None
        if searching and validation is not None and vstate is not None:
            users = sample_users(validation.eval_users, cfg.search_max_users, cfg.random_state)
            self.weight_curve_ = _search(
                vstate, validation.dataset, self.cooc_config, validation, cfg, users
            )
            key = f"validation_ndcg@{cfg.validation_k}"
            best = max(self.weight_curve_, key=lambda r: r[key])
            weight, self_weight = best["weight"], best["self_weight"]
        self.weight_ = float(weight)
        self.self_weight_ = float(self_weight)
        self.cooccurrence = CooccurrenceRecommender(
            dataclasses.replace(self.cooc_config, self_weight=self.self_weight_)
        ).fit(dataset)
        self.scorer_ = BlendScorer(
            self.lightfm.state_,
            self.cooccurrence.history_,
            self.cooccurrence.user_similarity_,
            self.weight_,
        )

    @property
    def learning_curve_(self) -> list[dict]:
        return self.lightfm.learning_curve_

    @property
    def best_epoch_(self) -> int | None:
        return self.lightfm.best_epoch_

    def score_block(self, users: np.ndarray) -> np.ndarray:
        return self.scorer_.score_block(users)

    def export(self) -> ExportedModel:
        base = self.lightfm.export()
        base.kind = "factors+cooccurrence"
        base.similarity = self.cooccurrence.similarity_
        base.history = self.cooccurrence.history_
        base.blend_weight = self.weight_
        base.self_weight = self.self_weight_
        base.params = {
            **base.params,
            "name": self.name,
            "blend_weight": self.weight_,
            "self_weight": self.self_weight_,
        }
        return base
