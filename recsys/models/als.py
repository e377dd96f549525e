"""implicit ALS baseline (CPU)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.config import DEFAULT_ALS, ALSConfig
from recsys.data import Dataset, Holdout
from recsys.models.base import ExportedModel, Recommender
from recsys.ranking import factor_scores


class ALSRecommender(Recommender):
    """implicit.cpu ALS on confidence ``1 + alpha * log1p(weight)``; score = ``u . v``.

    ``init`` (a fitted ALS of the same users and items, e.g. on the validation slice's
    shorter window) warm-starts the factors: then ``config.warm_start_iterations`` sweeps
    replace the ``config.iterations`` from random factors.
    """

    name = "als"

    def __init__(self, config: ALSConfig = DEFAULT_ALS, init: ALSRecommender | None = None) -> None:
        super().__init__()
        self.config = config
        self.init = init

    def _fit(self, dataset: Dataset, validation: Holdout | None) -> None:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        cfg = self.config
        x = sp.csr_matrix(dataset.interactions, dtype=np.float32, copy=True)
        x.data = np.log1p(x.data).astype(np.float32)
        # implicit parallelises itself; a multi-threaded BLAS underneath only oversubscribes
        # (implicit checks this when the model is built, so build it inside the limit too).
        init = self.init
        warm = init is not None and (init.user_factors_.shape, init.item_factors_.shape) == (
            (x.shape[0], cfg.factors),
            (x.shape[1], cfg.factors),
        )
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=cfg.factors,
                regularization=cfg.regularization,
                alpha=cfg.alpha,
                iterations=cfg.warm_start_iterations if warm else cfg.iterations,
                num_threads=cfg.num_threads,
                random_state=cfg.random_state,
            )
            if warm:  # implicit keeps factors that are already set
                model.user_factors = init.user_factors_.copy()
                model.item_factors = init.item_factors_.copy()
            model.fit(x, show_progress=False)
        self.warm_started_ = warm
        self.user_factors_ = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)

    def score_block(self, users: np.ndarray) -> np.ndarray:
        u = self.user_factors_[users]
        return factor_scores(
            u,
            np.zeros(len(users), np.float32),
            self.item_factors_,
            np.zeros(len(self.item_factors_), np.float32),
        )

    def export(self) -> ExportedModel:
        return ExportedModel(
            kind="factors",
            user_embeddings=self.user_factors_,
            user_biases=np.zeros(len(self.user_factors_), np.float32),
            item_embeddings=self.item_factors_,
            item_biases=np.zeros(len(self.item_factors_), np.float32),
            params={"name": self.name},
        )
