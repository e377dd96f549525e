"""Score a visitor's session from the published session model (numpy only, no recsys).

Files in ``<published_dir>/<version>/`` (written by ``recsys.session.publish``; names spelled
again here because serving never imports recsys, ``tests/test_serving.py`` checks they agree):
``session_neighbours.parquet`` (item_id, rank, neighbour_id, weight) and
``session_model.json`` (decay, max_session_items, item_categories).

A session's score of item ``j`` is ``sum_i w_i * M[i, j]`` over the session's distinct items
``i``, ``w_i = (1 + d_i) ** -decay`` with ``d_i`` the number of events after ``i``'s last
occurrence. Items without a score are filled from the popular list of the session's most recent
known category (``popular-in-category``), then the global popular list (``popular``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SESSION_NEIGHBOURS_FILE = "session_neighbours.parquet"
SESSION_MODEL_FILE = "session_model.json"
SOURCE_SESSION = "session"
SOURCE_CATEGORY = "popular-in-category"
SOURCE_POPULAR = "popular"
CATEGORY_KEY_PREFIX = "category:"


@dataclass(frozen=True, eq=False)
class SessionIndex:
    """The item-to-item table as CSR arrays, plus item ids and categories."""

    codes: dict[str, int]  # item id -> row of the table
    ids: np.ndarray  # row -> item id (object)
    indptr: np.ndarray  # int64 (n_items + 1,)
    neighbours: np.ndarray  # int32 (n_rows,)
    weights: np.ndarray  # float64 (n_rows,)
    decay: float
    max_session_items: int
    categories: dict[str, str]

    @property
    def n_items(self) -> int:
        return len(self.ids)

    def score(self, item_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Scored neighbour rows and their scores, best first (ties: lower row).

        Only the last ``max_session_items`` events count; unknown items are skipped.
        """
        recent = item_ids[-self.max_session_items :]
        n = len(recent)
        seen: dict[int, float] = {}
        for pos, item in enumerate(recent):  # <= 50 items: the request, not the data
            row = self.codes.get(item)
            if row is not None:
                seen[row] = (n - pos) ** -self.decay  # last occurrence wins (largest weight)
        if not seen:
            return np.zeros(0, np.int64), np.zeros(0)
        rows = np.fromiter(seen.keys(), np.int64, len(seen))
        w = np.fromiter(seen.values(), np.float64, len(seen))
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        lengths = ends - starts
        idx = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        cand = self.neighbours[idx]
        vals = self.weights[idx] * np.repeat(w, lengths)
        uniq, inv = np.unique(cand, return_inverse=True)
        total = np.bincount(inv, weights=vals, minlength=len(uniq))
        order = np.lexsort((uniq, -total))
        return uniq[order], total[order]

    def category_of_session(self, item_ids: list[str]) -> str | None:
        """The category of the session's most recent item with a known category."""
        for item in reversed(item_ids):
            cat = self.categories.get(item)
            if cat is not None:
                return cat
        return None


def load_session_index(vdir: Path) -> SessionIndex | None:
    """The version's session model, or None when it has none (older versions)."""
    meta_path = vdir / SESSION_MODEL_FILE
    if not meta_path.exists():
        return None
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    table = pq.read_table(vdir / SESSION_NEIGHBOURS_FILE, use_threads=False)
    n = table.num_rows
    # one dictionary over both id columns, built by Arrow (no Python string per row)
    both = pa.chunked_array(
        [
            *table["item_id"].cast(pa.string()).chunks,
            *table["neighbour_id"].cast(pa.string()).chunks,
        ]
    )
    encoded = pc.dictionary_encode(both).combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    ids = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
    item_code, nbr_code = codes[:n], codes[n:]
    rank = table["rank"].to_numpy()
    weight = table["weight"].to_numpy().astype(np.float64)
    order = np.lexsort((rank, item_code))
    item_code, nbr_code, weight = item_code[order], nbr_code[order], weight[order]
    counts = np.bincount(item_code, minlength=len(ids))
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    if not np.isfinite(weight).all() or (weight < 0).any():
        raise ValueError(f"{vdir / SESSION_NEIGHBOURS_FILE}: weights must be finite and >= 0")
    return SessionIndex(
        codes={str(v): i for i, v in enumerate(ids.tolist())},
        ids=ids,
        indptr=indptr,
        neighbours=nbr_code.astype(np.int64),
        weights=weight,
        decay=float(meta.get("decay", 1.0)),
        max_session_items=int(meta.get("max_session_items", 50)),
        categories={str(k): str(v) for k, v in (meta.get("item_categories") or {}).items()},
    )
