"""Score a visitor's session from the published session model (numpy only, no recsys).

Files in ``<published_dir>/<version>/`` (written by ``recsys.session.publish``; names spelled
again here because serving never imports recsys, ``tests/test_serving.py`` checks they agree):
``session_neighbours.parquet`` (item_id, rank, neighbour_id, weight) and
``session_model.json`` (decay, max_session_items, item_categories, hybrid) and, for the
hybrid model, ``session_index.npz`` (the training sessions' posting lists).

A session's score of item ``j`` is ``sum_i w_i * M[i, j]`` over the session's distinct items
``i``, ``w_i = (1 + d_i) ** -decay`` with ``d_i`` the number of events after ``i``'s last
occurrence. With the hybrid (``recsys.session.knn.hybrid_scores``, spelled again here and
checked equal on a fixture by ``tests/test_session.py``) the score is
``knn * stan / max(stan) + mix * table / max(table) + prior * trend``, where ``stan`` is the
session neighbourhood of the ``k`` training sessions most similar to the visitor's.
Items without a score are filled from the popular list of the session's most recent
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
SESSION_INDEX_FILE = "session_index.npz"
SOURCE_SESSION = "session"
SOURCE_CATEGORY = "popular-in-category"
SOURCE_POPULAR = "popular"
SOURCE_PERSONAL = "personal"
#: reciprocal-rank fusion constant of :func:`fuse_personal` (small: lists of <= 100 items)
FUSION_K = 10
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
    knn: SessionNeighbourhood | None = None

    def score(self, item_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Scored rows and their scores, best first: the hybrid when the version has one."""
        rows, total = self.table_score(item_ids)
        if self.knn is None:
            return rows, total
        return self.knn.hybrid(item_ids[-self.max_session_items :], self.codes, rows, total)

    @property
    def n_items(self) -> int:
        return len(self.ids)

    def table_score(self, item_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
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
        idx = _ranges(starts, lengths)
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


@dataclass(frozen=True, eq=False)
class SessionNeighbourhood:
    """The hybrid's session index, its item codes mapped to :class:`SessionIndex` rows.

    ``to_row[c]``: the table row of index item ``c``; ``to_code[r]``: the index item of row
    ``r`` (-1: none). Sessions hold index item codes.
    """

    to_row: np.ndarray
    to_code: np.ndarray
    sess_indptr: np.ndarray
    sess_items: np.ndarray
    post_indptr: np.ndarray
    post_sessions: np.ndarray
    post_weights: np.ndarray
    item_factor: np.ndarray
    prior_codes: np.ndarray
    prior_weights: np.ndarray
    k: int
    l1: float
    l3: float
    w_knn: float
    w_table: float
    w_prior: float

    def stan(self, item_ids: list[str], codes: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
        """Index item codes and their (unnormalised) neighbourhood scores."""
        n = len(item_ids)
        last: dict[int, int] = {}
        for pos, item in enumerate(item_ids):  # <= 50 items: the request, not the data
            row = codes.get(item)
            if row is not None and self.to_code[row] >= 0:
                last[int(self.to_code[row])] = pos  # last occurrence wins
        if not last:
            return np.zeros(0, np.int64), np.zeros(0)
        q = np.fromiter(last.keys(), np.int64, len(last))
        qw = np.exp(-(n - 1 - np.fromiter(last.values(), np.float64, len(last))) / self.l1)
        qw = qw / np.sqrt(len(q))
        starts, ends = self.post_indptr[q], self.post_indptr[q + 1]
        lengths = ends - starts
        if lengths.sum() == 0:
            return np.zeros(0, np.int64), np.zeros(0)
        idx = _ranges(starts, lengths)
        sess = self.post_sessions[idx]
        vals = self.post_weights[idx] * np.repeat(qw, lengths)
        usess, inv = np.unique(sess, return_inverse=True)
        sim = np.bincount(inv, weights=vals, minlength=len(usess))
        top = np.lexsort((usess, -sim))[: self.k]
        nb, nsim = usess[top], sim[top]
        nb_start = self.sess_indptr[nb]
        nb_len = self.sess_indptr[nb + 1] - nb_start
        pair = np.repeat(np.arange(len(nb)), nb_len)
        off = np.arange(int(nb_len.sum())) - np.repeat(np.cumsum(nb_len) - nb_len, nb_len)
        ev = self.sess_items[_ranges(nb_start, nb_len)].astype(np.int64)
        order_q = np.argsort(q)
        qs, qws = q[order_q], qw[order_q]
        loc = np.minimum(np.searchsorted(qs, ev), len(qs) - 1)
        shared = qs[loc] == ev
        ev_qw = np.where(shared, qws[loc], -1.0)
        anchor = off[np.lexsort((off, ev_qw, pair))[np.cumsum(nb_len) - 1]]
        w3 = np.exp(-np.abs(off - anchor[pair]) / self.l3)
        ok = ~shared & (ev >= 0)
        score = nsim[pair[ok]] * w3[ok] * self.item_factor[ev[ok]]
        # an item repeated in one neighbour counts once (its nearest occurrence)
        key = pair[ok] * len(self.to_row) + ev[ok]
        o = np.lexsort((-score, key))
        first = np.ones(len(o), dtype=bool)
        first[1:] = key[o][1:] != key[o][:-1]
        items, inv2 = np.unique(ev[ok][o[first]], return_inverse=True)
        return items, np.bincount(inv2, weights=score[o[first]], minlength=len(items))

    def hybrid(
        self, item_ids: list[str], codes: dict[str, int], rows: np.ndarray, total: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows and hybrid scores, best first (ties: lower row)."""
        parts_rows, parts_vals = [], []
        if self.w_knn > 0:
            items, sc = self.stan(item_ids, codes)
            if len(items):
                parts_rows.append(self.to_row[items])
                parts_vals.append(self.w_knn * sc / sc.max())
        if self.w_table > 0 and len(rows):
            parts_rows.append(rows)
            parts_vals.append(self.w_table * total / total.max())
        if not parts_rows:  # no known item: the popular fallback answers
            return np.zeros(0, np.int64), np.zeros(0)
        if self.w_prior > 0:
            parts_rows.append(self.to_row[self.prior_codes])
            parts_vals.append(self.w_prior * self.prior_weights)
        allr = np.concatenate(parts_rows)
        uniq, inv = np.unique(allr, return_inverse=True)
        out = np.bincount(inv, weights=np.concatenate(parts_vals), minlength=len(uniq))
        order = np.lexsort((uniq, -out))
        return uniq[order], out[order]


def fuse_personal(
    session: list[tuple[str, float]], personal: list[str], k: int
) -> list[tuple[str, float, str]]:
    """A known user's live session and personal list in one ranking (reciprocal-rank fusion).

    ``score(i) = 1 / (FUSION_K + r_session(i)) + 1 / (FUSION_K + r_personal(i))`` (1-based
    ranks; a list without ``i`` adds nothing); ties: the session's order first. ``source`` is
    the list where the item ranks higher (``session`` on a tie). Returns at most ``k`` items.
    """
    best: dict[str, list] = {}
    for r, (item, _) in enumerate(session, start=1):
        best[item] = [1.0 / (FUSION_K + r), r, SOURCE_SESSION, r]
    for r, item in enumerate(personal, start=1):
        row = best.get(item)
        if row is None:
            best[item] = [1.0 / (FUSION_K + r), len(session) + r, SOURCE_PERSONAL, r]
        else:
            row[0] += 1.0 / (FUSION_K + r)
            if r < row[3]:
                row[2] = SOURCE_PERSONAL
    ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[1][1]))[:k]
    return [(item, round(v[0], 6), v[2]) for item, v in ranked]


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(start, start + length)`` for each pair (vectorised)."""
    return np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())


def load_session_index(vdir: Path) -> SessionIndex | None:
    """The version's session model, or None when it has none (older versions)."""
    meta_path = vdir / SESSION_MODEL_FILE
    if not meta_path.exists():
        return None
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    table = pq.read_table(vdir / SESSION_NEIGHBOURS_FILE, use_threads=False)
    n = table.num_rows
    hybrid = meta.get("hybrid")
    arrays = None
    if hybrid:
        with np.load(vdir / SESSION_INDEX_FILE, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    extra = [pa.array(arrays["item_ids"].tolist(), pa.string())] if arrays is not None else []
    # one dictionary over both id columns (and the index's ids), built by Arrow
    both = pa.chunked_array(
        [
            *table["item_id"].cast(pa.string()).chunks,
            *table["neighbour_id"].cast(pa.string()).chunks,
            *extra,
        ],
        type=pa.string(),
    )
    encoded = pc.dictionary_encode(both).combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    ids = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
    item_code, nbr_code = codes[:n], codes[n : 2 * n]
    rank = table["rank"].to_numpy()
    weight = table["weight"].to_numpy().astype(np.float64)
    order = np.lexsort((rank, item_code))
    item_code, nbr_code, weight = item_code[order], nbr_code[order], weight[order]
    counts = np.bincount(item_code, minlength=len(ids))
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    if not np.isfinite(weight).all() or (weight < 0).any():
        raise ValueError(f"{vdir / SESSION_NEIGHBOURS_FILE}: weights must be finite and >= 0")
    knn = None
    if arrays is not None and hybrid:
        to_row = codes[2 * n :]
        to_code = np.full(len(ids), -1, dtype=np.int64)
        to_code[to_row] = np.arange(len(to_row))
        prior = arrays["prior"].astype(np.float64)
        prior_codes = np.flatnonzero(prior > 0)
        knn = SessionNeighbourhood(
            to_row=to_row,
            to_code=to_code,
            sess_indptr=arrays["sess_indptr"].astype(np.int64),
            sess_items=arrays["sess_items"].astype(np.int64),
            post_indptr=arrays["post_indptr"].astype(np.int64),
            post_sessions=arrays["post_sessions"].astype(np.int64),
            post_weights=arrays["post_weights"].astype(np.float64),
            item_factor=arrays["item_factor"].astype(np.float64),
            prior_codes=prior_codes,
            prior_weights=prior[prior_codes],
            k=int(hybrid["k"]),
            l1=float(hybrid["l1"]),
            l3=float(hybrid["l3"]),
            w_knn=float(hybrid["knn"]),
            w_table=float(hybrid["mix"]),
            w_prior=float(hybrid["prior"]),
        )
    return SessionIndex(
        codes={str(v): i for i, v in enumerate(ids.tolist())},
        ids=ids,
        indptr=indptr,
        neighbours=nbr_code.astype(np.int64),
        weights=weight,
        decay=float(meta.get("decay", 1.0)),
        max_session_items=int(meta.get("max_session_items", 50)),
        categories={str(k): str(v) for k, v in (meta.get("item_categories") or {}).items()},
        knn=knn,
    )
