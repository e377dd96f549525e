"""Item co-occurrence ("also bought"): item-item similarity from cart/purchase baskets."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.config import DEFAULT_COOCCURRENCE, CooccurrenceConfig
from recsys.data import Dataset, Holdout
from recsys.models.base import Recommender


def keep_top_per_row(m: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Keep the ``n`` largest entries of each CSR row (ties: lower column), vectorised."""
    m = sp.csr_matrix(m)
    m.sort_indices()
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    order = np.lexsort((-m.data, rows))
    rank = np.empty(len(order), dtype=np.int64)
    starts = m.indptr[rows[order]]
    rank[order] = np.arange(len(order)) - starts
    keep = rank < n
    out = sp.csr_matrix((m.data[keep], (rows[keep], m.indices[keep])), shape=m.shape)
    out.sort_indices()
    return out


def item_similarity(baskets: sp.csr_matrix, config: CooccurrenceConfig) -> sp.csr_matrix:
    """Normalised item-item co-occurrence, CSR ``(n_items, n_items)`` float32, zero diagonal.

    Parameters
    ----------
    baskets
        CSR ``(n_users, n_items)``; non-zero = the user carted/bought (or touched) the item.
    """
    x = sp.csr_matrix(baskets, dtype=np.float32)
    x.data[:] = 1.0
    n_i = np.asarray(x.sum(axis=0)).ravel().astype(np.float64)
    co = sp.csr_matrix((x.T @ x), dtype=np.float64)
    co.setdiag(0.0)
    co.eliminate_zeros()
    if config.min_count > 1:
        co.data[co.data < config.min_count] = 0.0
        co.eliminate_zeros()
    rows = np.repeat(np.arange(co.shape[0]), np.diff(co.indptr))
    cols = co.indices
    if config.normalisation == "cosine":
        denom = np.sqrt(n_i[rows] * n_i[cols]) + config.shrinkage
    elif config.normalisation == "conditional":
        denom = n_i[rows] + config.shrinkage
    else:
        raise ValueError(f"normalisation={config.normalisation!r}; use 'cosine' or 'conditional'")
    co.data = co.data / denom
    sim = keep_top_per_row(co, config.max_neighbours)
    return sp.csr_matrix(sim, dtype=np.float32)


def user_similarity(similarity: sp.csr_matrix, self_weight: float) -> sp.csr_matrix:
    """``S + self_weight * I``: the item-item matrix used to score users from their history."""
    eye = sp.identity(similarity.shape[0], dtype=np.float32, format="csr")
    return sp.csr_matrix(similarity + self_weight * eye, dtype=np.float32)


def user_history(dataset: Dataset, kind: str = "binary") -> sp.csr_matrix:
    """CSR ``(n_users, n_items)`` float32: 1 (``"binary"``) or ``decayed_score``
    (``"recency"``) where the user interacted in the training window."""
    if kind == "recency":
        return sp.csr_matrix(dataset.recency, dtype=np.float32, copy=True)
    if kind != "binary":
        raise ValueError(f"history={kind!r}; use 'binary' or 'recency'")
    h = sp.csr_matrix(dataset.interactions, dtype=np.float32, copy=True)
    h.data[:] = 1.0
    return h


class CooccurrenceRecommender(Recommender):
    """``score(u, i) = sum_{j in history(u)} h_uj (sim(j, i) + self_weight [i = j])``.

    With the default ``self_weight = 0`` this is "people who bought j also bought i".
    """

    name = "cooccurrence"

    def __init__(self, config: CooccurrenceConfig = DEFAULT_COOCCURRENCE) -> None:
        super().__init__()
        self.config = config

    def _fit(self, dataset: Dataset, validation: Holdout | None) -> None:
        baskets = (
            dataset.strong if self.config.source == "cart_or_purchase" else dataset.interactions
        )
        self.similarity_ = item_similarity(baskets, self.config)
        self.history_ = user_history(dataset, self.config.history)
        self.user_similarity_ = user_similarity(self.similarity_, self.config.self_weight)

    def score_block(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(
            (self.history_[users] @ self.user_similarity_).todense(), dtype=np.float32
        )

    def similar_items(self, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k "also bought" neighbours of items, ``(n, k)`` indices (``-1`` pad) and scores."""
        from recsys.ranking import top_k

        block = np.asarray(self.similarity_[items].todense(), dtype=np.float32)
        block[block <= 0] = -np.inf
        block[np.arange(len(items)), items] = -np.inf
        return top_k(block, k)
