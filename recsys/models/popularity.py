"""Popularity baselines: global and within the user's categories."""

from __future__ import annotations

import numpy as np

from recsys.data import Dataset, Holdout, category_affinity
from recsys.models.base import ExportedModel, Recommender


class PopularityRecommender(Recommender):
    """Score = number of training users who interacted with the item (same list for everyone)."""

    name = "popularity"

    def _fit(self, dataset: Dataset, validation: Holdout | None) -> None:
        self.item_scores_ = dataset.item_user_counts.astype(np.float32)

    def score_block(self, users: np.ndarray) -> np.ndarray:
        return np.repeat(self.item_scores_[None, :], len(users), axis=0)

    def export(self) -> ExportedModel:
        """A factor model with no dimensions: the score is the item bias (its user count)."""
        n_users = self._check_fitted().n_users
        return ExportedModel(
            kind="factors",
            user_embeddings=np.zeros((n_users, 0), np.float32),
            user_biases=np.zeros(n_users, np.float32),
            item_embeddings=np.zeros((len(self.item_scores_), 0), np.float32),
            item_biases=self.item_scores_.astype(np.float32),
            params={"name": self.name},
        )


class CategoryPopularityRecommender(Recommender):
    """Popular items in the categories the user likes.

    ``score(u, i) = a(u, c_i) * (n_i + 1) / (max_{j in c_i} n_j + 1) + 1e-3 * n_i / max_j n_j``
    where ``a(u, c)`` is the share of the user's training weight in category ``c`` and ``n_i``
    the item's training user count. Cold items (``n_i = 0``) still rank by the user's category
    affinity, which makes this the natural cold-start baseline ("new in your categories").
    """

    name = "category_popularity"

    def _fit(self, dataset: Dataset, validation: Holdout | None) -> None:
        n_cat = len(dataset.categories)
        counts = dataset.item_user_counts.astype(np.float64)
        cat = dataset.item_category
        cat_max = np.zeros(max(n_cat, 1))
        known = cat >= 0
        np.maximum.at(cat_max, cat[known], counts[known])
        share = np.where(known, (counts + 1.0) / (cat_max[np.maximum(cat, 0)] + 1.0), 0.0)
        self.item_share_ = share.astype(np.float32)
        self.global_ = (1e-3 * counts / max(counts.max(), 1.0)).astype(np.float32)
        aff = category_affinity(dataset.interactions, cat, n_cat)
        # an extra all-zero column serves items of unknown category (index -1)
        self.affinity_ = np.hstack([aff, np.zeros((aff.shape[0], 1), dtype=np.float32)])
        self.item_cat_col_ = np.where(known, cat, n_cat)

    def score_block(self, users: np.ndarray) -> np.ndarray:
        s = self.affinity_[users][:, self.item_cat_col_]
        s *= self.item_share_[None, :]
        s += self.global_[None, :]
        return s


class RecentlyViewedRecommender(Recommender):
    """Re-engagement baseline: the user's own not-yet-bought items, most recent first.

    ``score = 2 + h / (1 + h)`` for items in the user's history (``h`` = ``decayed_score``),
    else the item's popularity share in ``[0, 1)``: history first (by recency), then popular.
    """

    name = "recently_viewed"

    def _fit(self, dataset: Dataset, validation: Holdout | None) -> None:
        counts = dataset.item_user_counts.astype(np.float32)
        self.pop_share_ = counts / (counts.max() + 1.0) if len(counts) else counts
        self.recency_ = dataset.recency

    def score_block(self, users: np.ndarray) -> np.ndarray:
        h = np.asarray(self.recency_[users].todense(), dtype=np.float32)
        seen = h > 0
        s = np.where(seen, 2.0 + h / (1.0 + h), self.pop_share_[None, :])
        return s.astype(np.float32)
