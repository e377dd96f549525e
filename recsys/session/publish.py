"""Write the session model as immutable files next to a version's lists.

``<published_dir>/<version>/`` gets

* ``session_neighbours.parquet``: one row per (item, neighbour): ``item_id``, ``rank``
  (1-based), ``neighbour_id``, ``weight`` (float32): the rows of the item-to-item table ``M``
  (:mod:`recsys.session.models`), at most ``neighbours`` per item;
* ``session_index.npz`` (with the hybrid, :mod:`recsys.session.knn`): ``item_ids`` (the
  vocabulary of the arrays below), the training sessions the posting lists point to
  (``sess_indptr``, ``sess_items``), the posting lists item -> sessions (``post_indptr``,
  ``post_sessions``, ``post_weights`` = ``w2 / sqrt(|n|)``), ``item_factor`` (idf) and
  ``prior`` (trend); numpy arrays only, no pickles;
* ``session_model.json``: ``model``, ``decay`` (position weight ``(1 + d) ** -decay``),
  ``max_session_items``, the config, ``hybrid`` (k, l1, l3, knn, mix, prior: the weights of
  :func:`recsys.session.knn.hybrid_scores`), validation/test figures, and
  ``item_categories`` (item id -> category, for the popular-in-category fallback), when known.

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
from recsys.session.knn import SESSION_HYBRID, SessionIndex, StanConfig
from recsys.session.models import SESSION_KNN, SessionKNNConfig

SESSION_NEIGHBOURS_FILE = "session_neighbours.parquet"
SESSION_MODEL_FILE = "session_model.json"
SESSION_INDEX_FILE = "session_index.npz"
#: the hybrid's fields the API needs (:func:`recsys.session.knn.hybrid_scores`)
HYBRID_FIELDS: tuple[str, ...] = ("k", "l1", "l3", "knn", "mix", "prior")
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
    index: SessionIndex | None = None,
    hybrid: StanConfig | None = None,
    embeddings: tuple[pd.Index, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Write the files into ``folder`` (each atomically, the json last); returns a summary.

    With ``index`` and ``hybrid`` the model is the hybrid (``session_index.npz`` is written);
    without, the item table alone (an older version's layout). ``embeddings`` (item ids and
    the user model's item embeddings) give items without co-occurrence their embedding
    neighbours (:func:`with_embedding_neighbours`).
    """
    folder = Path(folder)
    n_embedding_only = 0
    table_items = items
    if embeddings is not None:
        table, table_items = with_embedding_neighbours(table, items, *embeddings)
        n_embedding_only = len(table_items) - len(items)
    frame = neighbour_frame(table, table_items)
    atomic_write_with(
        folder / SESSION_NEIGHBOURS_FILE, lambda tmp: frame.to_parquet(tmp, index=False)
    )
    if index is not None and hybrid is not None:
        arrays = index_arrays(index, items)
        atomic_write_with(folder / SESSION_INDEX_FILE, lambda tmp: _savez(tmp, arrays))
    elif (folder / SESSION_INDEX_FILE).exists():
        (folder / SESSION_INDEX_FILE).unlink()
    meta = {
        "model": SESSION_HYBRID if index is not None and hybrid is not None else SESSION_KNN,
        "hybrid": (
            {f: float(getattr(hybrid, f)) for f in HYBRID_FIELDS}
            if index is not None and hybrid is not None
            else None
        ),
        "decay": float(config.decay),
        "max_session_items": MAX_SESSION_ITEMS,
        "config": dataclasses.asdict(config),
        "metrics": dict(metrics or {}),
        "n_items": int(len(table_items)),
        "n_items_from_embeddings": int(n_embedding_only),
        "n_rows": int(len(frame)),
        "item_categories": {str(k): str(v) for k, v in (item_categories or {}).items()},
    }
    atomic_write_text(folder / SESSION_MODEL_FILE, json.dumps(meta, indent=1) + "\n")
    return {"path": str(folder / SESSION_NEIGHBOURS_FILE), "rows": int(len(frame))}


#: embedding neighbours given to an item without co-occurrence neighbours
EMBEDDING_NEIGHBOURS = 20


def with_embedding_neighbours(
    table: sp.csr_matrix,
    items: pd.Index,
    emb_ids: pd.Index,
    emb: np.ndarray,
    width: int = EMBEDDING_NEIGHBOURS,
    block: int = 2048,
) -> tuple[sp.csr_matrix, pd.Index]:
    """The table extended to the items of the user model's (LightFM) embeddings: an item
    without any co-occurrence neighbour (never in a training session, e.g. launched since, but
    with an embedding from its features) gets its ``width`` nearest items by embedding cosine,
    weighted ``cosine * w_min`` (``w_min``: the table's smallest weight), so they only ever
    rank after co-occurrence evidence. Returns the table over ``items`` + the new ids."""
    emb_ids = pd.Index(np.asarray(emb_ids, dtype=object).astype(str))
    items = pd.Index(np.asarray(items, dtype=object).astype(str))
    all_ids = items.append(emb_ids.difference(items))
    n = len(all_ids)
    m = sp.csr_matrix(table)
    m.eliminate_zeros()
    base = sp.csr_matrix(
        (m.data, m.indices, np.concatenate([m.indptr, np.full(n - len(items), m.indptr[-1])])),
        shape=(n, n),
    )
    if len(emb_ids) < 2 or width < 1:
        return base, all_ids
    w_min = float(m.data[m.data > 0].min()) if (m.data > 0).any() else 1.0
    to_all = all_ids.get_indexer(emb_ids)
    has = np.zeros(n, dtype=bool)
    has[np.flatnonzero(np.diff(base.indptr) > 0)] = True
    rows = np.flatnonzero(~has[to_all])  # embedding rows whose item has no neighbour
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-9)
    width = min(width, len(emb_ids) - 1)
    r_out, c_out, v_out = [], [], []
    for start in range(0, len(rows), block):
        rb = rows[start : start + block]
        cos = unit[rb] @ unit.T
        cos[np.arange(len(rb)), rb] = -np.inf
        top = np.argpartition(-cos, width - 1, axis=1)[:, :width]
        val = np.take_along_axis(cos, top, axis=1)
        ok = val > 0
        r_out.append(np.repeat(to_all[rb], width)[ok.ravel()])
        c_out.append(to_all[top][ok])
        v_out.append(val[ok] * w_min)
    extra = sp.csr_matrix(
        (np.concatenate(v_out), (np.concatenate(r_out), np.concatenate(c_out))), shape=(n, n)
    )
    return sp.csr_matrix(base + extra, dtype=np.float32), all_ids


def _savez(tmp: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def index_arrays(index: SessionIndex, items: pd.Index) -> dict[str, np.ndarray]:
    """The session index as plain arrays; only the sessions some posting list holds are kept
    (renumbered), so the file stays bounded by ``n_items * sample``."""
    post = sp.csr_matrix(index.item_sessions)
    used, new = np.unique(post.indices, return_inverse=True)
    sessions = index.sessions.take(used)
    return {
        "item_ids": np.asarray(items, dtype=object).astype(str),
        "sess_indptr": sessions.indptr.astype(np.int64),
        "sess_items": sessions.items.astype(np.int32),
        "post_indptr": post.indptr.astype(np.int64),
        "post_sessions": new.astype(np.int32),
        "post_weights": post.data.astype(np.float32),
        "item_factor": index.item_factor.astype(np.float32),
        "prior": index.prior.astype(np.float32),
    }


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
