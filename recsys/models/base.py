"""The one interface every recommender implements (RecTools/implicit style).

``fit(dataset, validation=None)`` learns from a :class:`recsys.data.Dataset`;
``score_block(users)`` gives dense scores ``(b, n_items)``; everything else (top-k with known
positives filtered, frames ``[user_id, item_id, score, rank]``) is shared here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys import columns as C
from recsys.data import Dataset, Holdout
from recsys.ranking import top_k_for_users


@dataclass
class ExportedModel:
    """Arrays a publishable model reduces to (see :mod:`recsys.registry`).

    Attributes
    ----------
    kind
        ``"factors"`` (``u . v + b_u + b_i``) or ``"factors+cooccurrence"`` (the blend).
    user_embeddings, user_biases
        ``(n_users, d)`` and ``(n_users,)`` float32, rows in ``dataset.users`` order.
    item_embeddings, item_biases
        ``(n_items, d)`` and ``(n_items,)`` float32.
    similarity
        CSR ``(n_items, n_items)`` item-item co-occurrence (blend and "also bought"), or None.
    history
        CSR ``(n_users, n_items)`` binary interaction history used with ``similarity``.
    blend_weight
        Co-occurrence share of the blend.
    self_weight
        Users are scored with ``history @ (similarity + self_weight * I)``.
    extra
        Further named arrays (e.g. LightFM feature embeddings for cold users/items).
    params
        JSON-able facts (name, epochs, ...).
    """

    kind: str
    user_embeddings: np.ndarray
    user_biases: np.ndarray
    item_embeddings: np.ndarray
    item_biases: np.ndarray
    similarity: sp.csr_matrix | None = None
    history: sp.csr_matrix | None = None
    blend_weight: float = 0.0
    self_weight: float = 0.0
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict = field(default_factory=dict)


class Recommender(ABC):
    """Base class: subclasses implement :meth:`_fit` and :meth:`score_block`."""

    name: str = "recommender"

    def __init__(self) -> None:
        self.dataset_: Dataset | None = None
        self.fit_s_: float | None = None

    # --- to implement ------------------------------------------------------------------------
    @abstractmethod
    def _fit(self, dataset: Dataset, validation: Holdout | None) -> None: ...

    @abstractmethod
    def score_block(self, users: np.ndarray) -> np.ndarray:
        """Scores of all items for users, ``(len(users), n_items)`` float32, a fresh array."""

    # --- shared ----------------------------------------------------------------------------------
    def fit(self, dataset: Dataset, validation: Holdout | None = None) -> Self:
        """Fit on ``dataset``; ``validation`` (same id maps) is used by models that tune on it."""
        import time

        t0 = time.perf_counter()
        self.dataset_ = dataset
        self._fit(dataset, validation)
        self.fit_s_ = time.perf_counter() - t0
        return self

    def _check_fitted(self) -> Dataset:
        if self.dataset_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(dataset) first")
        return self.dataset_

    def top_k_indices(
        self,
        users: np.ndarray,
        k: int,
        *,
        filter_known: bool = True,
        candidates: np.ndarray | None = None,
        block_size: int = 2048,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k in index space: ``(n, k)`` item indices (``-1`` padding) and scores."""
        ds = self._check_fitted()
        return top_k_for_users(
            self.score_block,
            np.asarray(users, dtype=np.int64),
            k,
            known=ds.known_positives if filter_known else None,
            candidates=candidates,
            block_size=block_size,
        )

    def recommend(
        self,
        user_ids: object = None,
        k: int = 10,
        *,
        filter_known: bool = True,
        item_ids: object = None,
        block_size: int = 2048,
    ) -> pd.DataFrame:
        """Recommendations as a frame ``[user_id, item_id, score, rank]`` (rank 1 = best).

        Parameters
        ----------
        user_ids
            External user ids (default: every training user); unknown ids raise KeyError.
        k
            List length per user (fewer rows when fewer items are eligible).
        filter_known
            Drop the user's known positives (see ``SplitConfig.known_positives``).
        item_ids
            Optional whitelist of external item ids to rank among.
        """
        ds = self._check_fitted()
        users = (
            np.arange(ds.n_users) if user_ids is None else ds.users.index(list(user_ids))  # type: ignore[arg-type]
        )
        candidates = None if item_ids is None else np.sort(ds.items.index(list(item_ids)))  # type: ignore[arg-type]
        idx, vals = self.top_k_indices(
            users, k, filter_known=filter_known, candidates=candidates, block_size=block_size
        )
        return reco_frame(ds, users, idx, vals)

    def export(self) -> ExportedModel:
        """Arrays for the registry; only factor models and the blend can be published."""
        raise NotImplementedError(f"{type(self).__name__} cannot be exported for publishing")


def reco_frame(ds: Dataset, users: np.ndarray, idx: np.ndarray, vals: np.ndarray) -> pd.DataFrame:
    """``[user_id, item_id, score, rank]`` from index-space top-k arrays ``(n, k)``."""
    valid = idx >= 0
    rows, ranks = np.nonzero(valid)
    return pd.DataFrame(
        {
            C.USER_ID: ds.users.ids[users[rows]],
            C.ITEM_ID: ds.items.ids[idx[rows, ranks]],
            C.SCORE: vals[rows, ranks].astype(np.float32),
            C.RANK: (ranks + 1).astype(np.int32),
        }
    )
