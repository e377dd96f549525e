"""Id mappings: external ids (str) to dense indices and back."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd


# --- id mappings -------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class IdMap:
    """External ids <-> contiguous indices ``0..n-1``.

    Attributes
    ----------
    ids
        Array of shape ``(n,)``: the external id of each index (object dtype of str).
    """

    ids: np.ndarray

    @classmethod
    def from_values(cls, values: object) -> IdMap:
        """Sorted unique non-null ids of ``values`` (sorting makes the mapping reproducible)."""
        s = pd.Series(np.asarray(values, dtype=object)).dropna().astype(str)
        return cls(np.asarray(np.sort(s.unique()), dtype=object))

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def _index(self) -> pd.Index:
        index = pd.Index(self.ids, dtype=object)
        if not index.is_unique:
            raise ValueError("IdMap ids must be unique")
        return index

    def index(self, values: object, missing: str = "raise") -> np.ndarray:
        """Indices of external ids, shape ``(len(values),)`` int64.

        ``missing="raise"`` fails on unknown ids; ``missing="ignore"`` returns ``-1`` for them.
        """
        arr = pd.Series(values, dtype=object) if not isinstance(values, pd.Series) else values
        if arr.dtype == object and len(arr) and not isinstance(arr.iloc[0], str):
            arr = arr.astype(str)
        idx = self._index.get_indexer(arr).astype(np.int64)
        if missing == "raise" and (idx < 0).any():
            unknown = np.asarray(arr)[idx < 0][:5].tolist()
            raise KeyError(f"unknown ids {unknown} (of {(idx < 0).sum()}); fit on data with them")
        return idx
