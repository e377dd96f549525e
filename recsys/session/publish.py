"""Write the session model as immutable files next to a version's lists.

``<published_dir>/<version>/`` gets

* ``session_neighbours.parquet``: one row per (item, neighbour): ``item_id``, ``rank``
  (1-based), ``neighbour_id``, ``weight`` (float32): the rows of the item-to-item table ``M``
  (:mod:`recsys.session.models`), at most ``neighbours`` per item;
* ``session_model.json``: ``model``, ``decay`` (position weight ``(1 + d) ** -decay``),
  ``max_session_items``, the config, validation/test figures, and ``item_categories``
  (item id -> category, for the popular-in-category fallback), when known.

The serving layer (``include/serving/session.py``) reads them with numpy only; the file names
are spelled again there (it never imports recsys) and a test checks both spellings agree.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from common.fs import atomic_write_text, atomic_write_with
from recsys.session.models import SESSION_KNN, SessionKNNConfig

SESSION_NEIGHBOURS_FILE = "session_neighbours.parquet"
SESSION_MODEL_FILE = "session_model.json"
NEIGHBOUR_COLUMNS: tuple[str, ...] = ("item_id", "rank", "neighbour_id", "weight")
#: the API scores at most this many of a session's most recent items
MAX_SESSION_ITEMS = 50


def neighbour_frame(table: sp.csr_matrix, items: pd.Index) -> pd.DataFrame:
    """The table's non-zero entries as rows, ranked by weight within each item (vectorised)."""
    m = sp.csr_matrix(table)
    m.eliminate_zeros()
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    order = np.lexsort((m.indices, -m.data, rows))
    rows, cols, vals = rows[order], m.indices[order], m.data[order]
    rank = np.arange(len(rows)) - np.repeat(m.indptr[:-1], np.diff(m.indptr))
    ids = np.asarray(items, dtype=object)
    return pd.DataFrame(
        {
            "item_id": ids[rows],
            "rank": (rank + 1).astype(np.int32),
            "neighbour_id": ids[cols],
            "weight": vals.astype(np.float32),
        }
    )


def write_session_model(
    folder: str | Path,
    table: sp.csr_matrix,
    items: pd.Index,
    config: SessionKNNConfig,
    metrics: Mapping[str, Any] | None = None,
    item_categories: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Write the two files into ``folder`` (each atomically); returns a small summary."""
    folder = Path(folder)
    frame = neighbour_frame(table, items)
    atomic_write_with(
        folder / SESSION_NEIGHBOURS_FILE, lambda tmp: frame.to_parquet(tmp, index=False)
    )
    meta = {
        "model": SESSION_KNN,
        "decay": float(config.decay),
        "max_session_items": MAX_SESSION_ITEMS,
        "config": dataclasses.asdict(config),
        "metrics": dict(metrics or {}),
        "n_items": int(len(items)),
        "n_rows": int(len(frame)),
        "item_categories": {str(k): str(v) for k, v in (item_categories or {}).items()},
    }
    atomic_write_text(folder / SESSION_MODEL_FILE, json.dumps(meta, indent=1) + "\n")
    return {"path": str(folder / SESSION_NEIGHBOURS_FILE), "rows": int(len(frame))}


def read_neighbour_matrix(folder: str | Path, ids: np.ndarray) -> sp.csr_matrix | None:
    """The published table of ``folder`` as CSR ``(len(ids), len(ids))`` over the ids ``ids``
    (another model's item vocabulary; pairs with an unknown item are dropped), or None."""
    path = Path(folder) / SESSION_NEIGHBOURS_FILE
    if not path.exists():
        return None
    frame = pd.read_parquet(path, columns=["item_id", "neighbour_id", "weight"])
    index = pd.Index(np.asarray(ids, dtype=object).astype(str))
    rows = index.get_indexer(frame["item_id"].astype(str))
    cols = index.get_indexer(frame["neighbour_id"].astype(str))
    keep = (rows >= 0) & (cols >= 0) & (rows != cols)
    n = len(index)
    return sp.csr_matrix(
        (frame["weight"].to_numpy(np.float32)[keep], (rows[keep], cols[keep])), shape=(n, n)
    )
