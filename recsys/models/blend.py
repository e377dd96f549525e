"""LightFM hybrid + ALS + item co-occurrence blend, its weights fitted on the validation slice."""

from __future__ import annotations

import dataclasses
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from recsys.config import (
    DEFAULT_ALS,
    DEFAULT_BLEND,
    DEFAULT_COOCCURRENCE,
    DEFAULT_LIGHTFM,
    ALSConfig,
    BlendConfig,
    CooccurrenceConfig,
    LightFMConfig,
)
from recsys.data import Dataset, Holdout
from recsys.metrics import ndcg_at_k
from recsys.models.als import ALSRecommender
from recsys.models.base import ExportedModel, Recommender
from recsys.models.cooccurrence import CooccurrenceRecommender, user_similarity
from recsys.models.lightfm_model import FactorState, LightFMRecommender, sample_users
from recsys.ranking import blend_scores, factor_moments, mask_known, top_k, zscored_factor_sum


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


def factor_ensemble(lfm: FactorState, als: ALSRecommender | None, als_weight: float) -> FactorState:
    """LightFM and ALS as one factor model scoring ``(1-a) z(LightFM) + a z(ALS)`` per user.

    ``a = 0`` (or no ALS) returns ``lfm`` itself. See :func:`recsys.ranking.zscored_factor_sum`.
    """
    if als is None or als_weight <= 0:
        return lfm
    n_items = len(als.item_factors_)
    user_emb, user_bias, item_emb, item_bias = zscored_factor_sum(
        [
            (lfm.user_emb, lfm.user_bias, lfm.item_emb, lfm.item_bias, 1.0 - als_weight),
            (
                als.user_factors_,
                np.zeros(len(als.user_factors_), np.float32),
                als.item_factors_,
                np.zeros(n_items, np.float32),
                als_weight,
            ),
        ]
    )
    return FactorState(user_emb, user_bias, item_emb, item_bias)


def _search(
    vstate: FactorState,
    inner: Dataset,
    cooc_config: CooccurrenceConfig,
    validation: Holdout,
    config: BlendConfig,
    users: np.ndarray,
    als: dict[int, ALSRecommender] | None = None,
) -> list[dict]:
    """nDCG@k on the validation slice along the grids, one coordinate at a time.

    ``als`` maps ALS ranks (``factors``) to an ALS fitted on the slice's training data
    (``inner``) like ``vstate``. First every (rank, ALS weight) of ``als`` x
    ``als_weight_grid`` is tried with the co-occurrence part at its fixed ``weight`` (0 when
    searched); then the (weight, self_weight) grid runs with the best rank and ALS weight:
    ``len(ranks) x len(als grid) + len(weight grid) x len(self grid)`` points instead of
    their product. Per ALS weight the factor z-scores of the sampled users are computed once
    ``(n_users, n_items)``; each (weight, self_weight) point only adds the sparse
    co-occurrence part and takes a top-k. Returns every point tried.
    """
    key = f"validation_ndcg@{config.validation_k}"
    als = als or {}
    grid = (
        (0.0,)
        if not als
        else ((config.als_weight,) if config.als_weight is not None else config.als_weight_grid)
    )
    # the slice's co-occurrence, fitted once for every pass below
    cooc = CooccurrenceRecommender(dataclasses.replace(cooc_config, self_weight=0.0)).fit(inner)
    curve: list[dict] = []
    best_a = grid[0]
    best_f = next(iter(als), 0)
    if len(grid) * max(len(als), 1) > 1:
        first = dataclasses.replace(
            config,
            weight=0.0 if config.weight is None else config.weight,
            self_weight=(
                config.self_weight_grid[0] if config.self_weight is None else config.self_weight
            ),
        )
        for f, model in als.items():
            for a in grid:
                for row in _search_cooc(
                    factor_ensemble(vstate, model, a), cooc, validation, first, users
                ):
                    curve.append({"als_factors": f, "als_weight": a, **row})
        best = max(curve, key=lambda r: r[key])
        best_f, best_a = best["als_factors"], best["als_weight"]
    for row in _search_cooc(
        factor_ensemble(vstate, als.get(best_f), best_a), cooc, validation, config, users
    ):
        curve.append({"als_factors": best_f, "als_weight": best_a, **row})
    return curve


def _search_cooc(
    vstate: FactorState,
    cooc: CooccurrenceRecommender,
    validation: Holdout,
    config: BlendConfig,
    users: np.ndarray,
) -> list[dict]:
    """nDCG@k on the validation slice for every (weight, self_weight) of the grids.

    ``cooc`` is the co-occurrence fitted on the slice's training data with ``self_weight=0``.

    Exact, without scoring every item at every point: an item a user's history does not
    reach (a zero of the co-occurrence row) gets the same co-occurrence z-score as every
    other such item, so among those the blend ranks by LightFM alone. Per ``self_weight``
    the candidates of a user are therefore that row's non-zeros plus LightFM's top k of the
    rest; every ``weight`` then only scores those entries (and, of the co-occurrence items,
    only those above the k-th LightFM candidate reach the final top k).
    """
    inner = cooc.dataset_
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
    truth = validation.truth[users]
    history = cooc.history_[users]
    n_users = len(users)
    curve = []
    # weight 0 is LightFM alone: the same at every self_weight
    lightfm_alone = ndcg_at_k(top_k(base, k)[0], truth, k) if 0 in weights else None
    for lam in selfs:
        if all(w == 0 for w in weights):
            curve.extend(
                {"weight": w, "self_weight": lam, f"validation_ndcg@{k}": lightfm_alone}
                for w in weights
            )
            continue
        c = sp.csr_matrix(history @ user_similarity(cooc.similarity_, lam), dtype=np.float64)
        c.sort_indices()
        n = c.shape[1]
        mean = np.asarray(c.sum(axis=1)).ravel() / n
        sq = np.asarray(c.multiply(c).sum(axis=1)).ravel() / n
        sd = np.sqrt(np.maximum(sq - mean**2, 0.0))
        counts = np.diff(c.indptr)
        rows = np.repeat(np.arange(n_users), counts)
        # LightFM's best k among the items the co-occurrence row does not reach
        rest = base.copy()
        rest[rows, c.indices] = -np.inf
        plain_idx, _ = top_k(rest, k)
        del rest
        plain_lfm = np.take_along_axis(base, np.maximum(plain_idx, 0), axis=1)
        plain_lfm[plain_idx < 0] = -np.inf
        nnz_lfm = base[rows, c.indices].astype(np.float64)  # -inf: known or not on sale
        nnz_co = c.data - mean[rows]
        plain_out, nnz_out = np.isneginf(plain_lfm), np.isneginf(nnz_lfm)
        plain_lfm[plain_out], nnz_lfm[nnz_out] = 0.0, 0.0
        for w in weights:
            if w == 0:
                value = lightfm_alone
            else:
                inv = np.divide(w, sd, out=np.zeros_like(sd), where=sd > 0)
                pv = plain_lfm * (1.0 - w) - (mean * inv)[:, None]
                pv[plain_out] = -np.inf
                nv = nnz_lfm * (1.0 - w) + nnz_co * inv[rows]
                # an item below the k-th plain candidate cannot make the top k: drop it first
                keep = (nv >= pv[:, k - 1][rows]) & ~nnz_out
                idx = _top_k_of_candidates(pv, plain_idx, rows[keep], c.indices[keep], nv[keep], k)
                value = ndcg_at_k(idx, truth, k)
            curve.append({"weight": w, "self_weight": lam, f"validation_ndcg@{k}": value})
    return curve


def _top_k_of_candidates(
    dense_scores: np.ndarray,
    dense_items: np.ndarray,
    rows: np.ndarray,
    items: np.ndarray,
    scores: np.ndarray,
    k: int,
) -> np.ndarray:
    """Top-k item indices per row of ``(n, m)`` candidates plus extra sparse ones.

    ``dense_*`` give every row ``m`` candidates (item ``-1`` / score ``-inf`` for none);
    ``rows`` (sorted), ``items``, ``scores`` add a variable number per row. Returns
    ``(n, k)`` item indices, ``-1`` where a row has fewer than ``k`` finite candidates.
    """
    n, m = dense_scores.shape
    per_row = np.bincount(rows, minlength=n)
    at = m + np.arange(len(rows)) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    width = m + (int(per_row.max()) if len(rows) else 0)
    all_scores = np.full((n, width), -np.inf)
    all_items = np.full((n, width), -1, dtype=np.int64)
    all_scores[:, :m], all_items[:, :m] = dense_scores, dense_items
    all_scores[rows, at], all_items[rows, at] = scores, items
    j, _ = top_k(all_scores, k)
    return np.where(j >= 0, np.take_along_axis(all_items, np.maximum(j, 0), axis=1), -1)


class LightFMBlend(Recommender):
    """The candidate: LightFM hybrid blended with ALS and item co-occurrence.

    Scores are ``(1-w) z(F) + w z(C)`` per user, where ``F`` is the factor part
    ``(1-a) z(LightFM) + a z(ALS)`` (:func:`factor_ensemble`) and ``C`` the co-occurrence part
    ``recency_history @ (S + self_weight * I)``: items co-bought with what the user touched
    recently and (``self_weight > 0``) those items themselves are lifted. ``a``, ``w`` and
    ``self_weight`` are chosen on the validation slice (components fitted on the slice's
    data); a weight of 0 drops its part, so the search can settle on LightFM alone. LightFM
    is the only part that ranks cold items by their attributes. The fitted components are
    ``.lightfm``, ``.als`` (None when ALS weighs 0) and ``.cooccurrence``.
    """

    name = "lightfm_blend"

    def __init__(
        self,
        lightfm: LightFMConfig = DEFAULT_LIGHTFM,
        cooccurrence: CooccurrenceConfig = DEFAULT_COOCCURRENCE,
        config: BlendConfig = DEFAULT_BLEND,
        als: ALSConfig = DEFAULT_ALS,
    ) -> None:
        super().__init__()
        self.config = config
        self.cooc_config = dataclasses.replace(cooccurrence, history="recency")
        self.als_config = als
        self.lightfm = LightFMRecommender(lightfm)
        self.als: ALSRecommender | None = None
        self.weight_curve_: list[dict] = []
        # a LightFM already being fitted on the same dataset with this config (a Future of a
        # LightFMRecommender; recsys.pipeline's refit on all data): used instead of fitting one
        self.lightfm_prefit: Future | None = None

    def _fit(self, dataset: Dataset, validation: Holdout | None) -> None:
        cfg = self.config
        weight = cfg.default_weight if cfg.weight is None else cfg.weight
        self_weight = cfg.default_self_weight if cfg.self_weight is None else cfg.self_weight
        als_weight = cfg.default_als_weight if cfg.als_weight is None else cfg.als_weight
        self.weight_curve_ = []
        als_factors = self.als_config.factors if cfg.als_factors is None else cfg.als_factors
        # the rank is searched with the weights (fixed weights keep ALSConfig.factors)
        searching = cfg.weight is None or cfg.self_weight is None or cfg.als_weight is None
        if not searching or validation is None:
            # Nothing is chosen on a validation slice (a refit with the tuned values frozen):
            # ALS and co-occurrence do not depend on LightFM, so they fit in a second thread
            # while LightFM's single-threaded fit runs without the GIL. The result is the
            # same as one after the other: each part has its own seed and data.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="blend-parts") as pool:
                parts = pool.submit(
                    self._fit_parts, dataset, weight, self_weight, als_weight, als_factors, None
                )
                if self.lightfm_prefit is not None:
                    self.lightfm = self.lightfm_prefit.result()
                else:
                    self.lightfm.fit(dataset, validation)
                parts.result()
            self._combine()
            return
        self.lightfm.fit(dataset, validation)
        vstate = self.lightfm.validation_state_
        inner_als: dict[int, ALSRecommender] = {}
        if vstate is not None:
            users = sample_users(validation.eval_users, cfg.search_max_users, cfg.random_state)
            grid = cfg.als_weight_grid if cfg.als_weight is None else (cfg.als_weight,)
            ranks = cfg.als_factors_grid if cfg.als_factors is None else (cfg.als_factors,)
            if any(a > 0 for a in grid):
                inner_als = {
                    f: ALSRecommender(dataclasses.replace(self.als_config, factors=f)).fit(
                        validation.dataset
                    )
                    for f in dict.fromkeys(ranks)
                }
            self.weight_curve_ = _search(
                vstate, validation.dataset, self.cooc_config, validation, cfg, users, inner_als
            )
            key = f"validation_ndcg@{cfg.validation_k}"
            best = max(self.weight_curve_, key=lambda r: r[key])
            weight, self_weight = best["weight"], best["self_weight"]
            als_weight = best["als_weight"]
            if inner_als:
                als_factors = best["als_factors"]
        self._fit_parts(
            dataset, weight, self_weight, als_weight, als_factors, inner_als.get(int(als_factors))
        )
        self._combine()

    def _fit_parts(
        self,
        dataset: Dataset,
        weight: float,
        self_weight: float,
        als_weight: float,
        als_factors: int,
        als_init: ALSRecommender | None,
    ) -> None:
        """The chosen weights, and ALS and co-occurrence fitted on ``dataset``."""
        self.weight_ = float(weight)
        self.self_weight_ = float(self_weight)
        self.als_weight_ = float(als_weight)
        self.als_factors_ = int(als_factors)
        self.als = (
            # warm-started from the slice's ALS when there is one: 5 sweeps instead of 15
            ALSRecommender(
                dataclasses.replace(self.als_config, factors=self.als_factors_), init=als_init
            ).fit(dataset)
            if self.als_weight_ > 0
            else None
        )
        self.cooccurrence = CooccurrenceRecommender(
            dataclasses.replace(self.cooc_config, self_weight=self.self_weight_)
        ).fit(dataset)

    def _combine(self) -> None:
        self.factors_ = factor_ensemble(self.lightfm.state_, self.als, self.als_weight_)
        self.scorer_ = BlendScorer(
            self.factors_,
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
        base = self.lightfm.export()  # keeps LightFM's per-feature parameters in ``extra``
        f = self.factors_
        base.kind = "factors+cooccurrence"
        base.user_embeddings, base.user_biases = f.user_emb, f.user_bias
        base.item_embeddings, base.item_biases = f.item_emb, f.item_bias
        base.similarity = self.cooccurrence.similarity_
        base.history = self.cooccurrence.history_
        base.blend_weight = self.weight_
        base.self_weight = self.self_weight_
        base.params = {
            **base.params,
            "name": self.name,
            "blend_weight": self.weight_,
            "self_weight": self.self_weight_,
            "als_weight": self.als_weight_,
            "als_factors": self.als_factors_,
            "factor_dims": {
                "lightfm": int(self.lightfm.state_.user_emb.shape[1]),
                "als": 0 if self.als is None else int(self.als.user_factors_.shape[1]),
            },
        }
        return base
