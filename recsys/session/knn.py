"""Session neighbourhoods (STAN / V-STAN family), vectorised, and their hybrid with the item table.

Session kNN scores a session ``s`` from the ``k`` past sessions most similar to it
(Ludewig & Jannach 2018; STAN, Garg et al. 2019; V-STAN, Ludewig et al. 2021):

* the revealed item ``d`` events before the end weighs ``w1 = exp(-d / l1)`` (position);
* a training session ``n`` weighs ``w2 = exp(-recency * (1 - q_n))`` (``q_n``: its time
  quantile among the training sessions; a relative time keeps one value valid on every
  dataset, and the constant factor of the query's own time never changes a ranking);
* ``sim(s, n) = w2(n) * sum_{i in s & n} w1(i) / sqrt(|s| |n|)`` (distinct items); the ``k``
  most similar sessions are the neighbours;
* a neighbour scores its items by their distance, in the neighbour, to the position of the
  shared item that is most recent in ``s``: ``w3 = exp(-|p_n(j) - p_n(anchor)| / l3)``;
* ``score(j) = sum_n sim(s, n) * w3(j, n) * (1 + idf * log(N / n_j))`` (V-STAN's idf weight).

The published model is a hybrid: ``score = knn / max(knn) + mix * table / max(table)``, where
``table`` is the item-to-item neighbourhood of :mod:`recsys.session.models` (rules +
co-occurrence), so items the neighbours do not reach still get a score. Everything is
sparse-matrix algebra and numpy over chunks of cases: no Python loop over sessions or events.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recsys.models.cooccurrence import keep_top_per_row
from recsys.session.data import Sessions
from recsys.session.models import (
    SessionKNN,
    SessionKNNConfig,
    SessionKNNParts,
    SessionModel,
    query_matrix,
    recency_weights,
    session_item_matrix,
)

SESSION_HYBRID = "session_stan"
#: items carrying the trend prior (the most trending ones)
PRIOR_ITEMS = 200


@dataclass(frozen=True)
class StanConfig:
    """Hyper-parameters of the session neighbourhood and of the hybrid.

    Attributes
    ----------
    k
        Neighbour sessions kept per query session.
    l1
        Position decay of the query's items ``exp(-d / l1)``.
    l3
        Decay of a neighbour's items with their distance to the anchor ``exp(-|gap| / l3)``.
    recency
        Neighbour session weight ``exp(-recency * (1 - q))``.
    idf
        Weight of ``log(N / n_j)`` in the item factor ``1 + idf * log(N / n_j)``.
    mix
        Weight of the (max-normalised) item table in the hybrid; 0 = the neighbourhood alone.
    knn
        Weight of the (max-normalised) neighbourhood; 0 = the item table alone.
    prior
        Weight of the trend prior: recency-weighted item popularity, max 1, added to every
        item (``exp(-prior_recency * (1 - q))`` per session), so what is selling now wins ties.
    sample
        Each item's posting list is cut to its ``sample`` most recent training sessions
        (STAN's ``m``; bounds the work per request).
    """

    k: int = 100
    l1: float = 2.0
    l3: float = 4.0
    recency: float = 1.0
    idf: float = 0.5
    mix: float = 1.0
    sample: int = 1000
    knn: float = 1.0
    prior: float = 0.15
    prior_recency: float = 5.0

    def __post_init__(self) -> None:
        if self.k < 1 or self.sample < 1:
            raise ValueError(f"k={self.k}, sample={self.sample}: use 1 or more")
        if self.l1 <= 0 or self.l3 <= 0:
            raise ValueError(f"l1={self.l1}, l3={self.l3}: use positive decays")
        weights = (self.recency, self.idf, self.mix, self.knn, self.prior, self.prior_recency)
        if min(weights) < 0:
            raise ValueError(
                f"recency, idf, mix, knn, prior, prior_recency = {weights}: use 0 or more"
            )
        if self.knn == 0 and self.mix == 0:
            raise ValueError("knn=0 and mix=0 leave no score: give one of them a weight")


@dataclass
class SessionIndex:
    """What the neighbourhood needs from the training sessions (also what is published).

    ``sessions``: the training sessions (ordered events); ``item_sessions``: CSC-like posting
    lists, CSR ``(n_items, n_sessions)`` with value = the session's weight ``w2 / sqrt(|n|)``,
    each row cut to the ``sample`` most recent sessions; ``item_factor``: ``(n_items,)`` the
    idf factor; ``prior``: ``(n_items,)`` the trend prior (max 1).
    """

    sessions: Sessions
    item_sessions: sp.csr_matrix
    item_factor: np.ndarray
    prior: np.ndarray

    @classmethod
    def build(cls, train: Sessions, n_items: int, config: StanConfig) -> SessionIndex:
        x = session_item_matrix(train, n_items)
        size = np.maximum(np.asarray(x.sum(axis=1)).ravel(), 1.0)
        w = recency_weights(train, config.recency) / np.sqrt(size)
        post = sp.csr_matrix(x.T.multiply(w[None, :]))
        # keep each item's `sample` most recent sessions (the session index is time order)
        post.sort_indices()
        rows = np.repeat(np.arange(n_items), np.diff(post.indptr))
        rank_from_end = post.indptr[rows + 1] - 1 - np.arange(len(rows))
        keep = rank_from_end < config.sample
        post = sp.csr_matrix((post.data[keep], (rows[keep], post.indices[keep])), shape=post.shape)
        n_j = np.asarray(x.sum(axis=0)).ravel()
        idf = np.log(max(train.n_sessions, 1) / np.maximum(n_j, 1.0))
        known = train.items >= 0
        rw = recency_weights(train, config.prior_recency)[train.session_of_event()]
        pop = np.bincount(train.items[known], weights=rw[known], minlength=n_items)
        prior = pop / max(float(pop.max(initial=0)), 1e-12)
        # only the most trending items carry the prior (it decides ranks near the top only)
        prior[np.argsort(-prior, kind="stable")[PRIOR_ITEMS:]] = 0.0
        return cls(train, post, 1.0 + config.idf * idf, prior)


def knn_scores(index: SessionIndex, prefix: Sessions, config: StanConfig) -> sp.csr_matrix:
    """CSR ``(n_cases, n_items)`` STAN scores of the revealed prefixes."""
    n_items = index.item_sessions.shape[0]
    n_cases = prefix.n_sessions
    case = prefix.session_of_event()
    known = prefix.items >= 0
    ends = np.repeat(prefix.indptr[1:], prefix.lengths)
    d = ends - 1 - np.arange(len(prefix.items))
    w1 = np.exp(-d / config.l1)
    # distinct query items, each at its last (most recent) occurrence
    key = case[known] * n_items + prefix.items[known]
    ukey, first_rev = np.unique(key[::-1], return_index=True)
    qw = w1[known][::-1][first_rev]
    qc, qi = ukey // n_items, ukey % n_items
    size = np.maximum(np.bincount(qc, minlength=n_cases), 1).astype(np.float64)
    q = sp.csr_matrix((qw / np.sqrt(size[qc]), (qc, qi)), shape=(n_cases, n_items))
    sim = keep_top_per_row(sp.csr_matrix(q @ index.item_sessions), config.k)
    sim.eliminate_zeros()
    if sim.nnz == 0:
        return sp.csr_matrix((n_cases, n_items))
    # expand each (case, neighbour) pair into the neighbour's events
    pc = np.repeat(np.arange(n_cases), np.diff(sim.indptr))
    pn, ps = sim.indices.astype(np.int64), sim.data
    tr = index.sessions
    lens = tr.lengths[pn]
    pair = np.repeat(np.arange(len(pn)), lens)
    start = np.repeat(tr.indptr[pn], lens)
    off = np.arange(int(lens.sum()), dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
    ev_item = tr.items[start + off]
    ev_case = pc[pair]
    # the query weight of each neighbour event's item (0 when not in the query)
    ev_key = ev_case * n_items + ev_item
    loc = np.searchsorted(ukey, ev_key)
    loc = np.minimum(loc, len(ukey) - 1)
    shared = (ukey[loc] == ev_key) & (ev_item >= 0)
    ev_qw = np.where(shared, qw[loc], -1.0)
    # anchor: the shared event whose item is the most recent in the query (latest in n on ties)
    order = np.lexsort((off, ev_qw, pair))
    last_of_pair = np.cumsum(lens) - 1
    anchor = off[order[last_of_pair]]
    w3 = np.exp(-np.abs(off - anchor[pair]) / config.l3)
    ok = (~shared) & (ev_item >= 0)
    vals = ps[pair[ok]] * w3[ok] * index.item_factor[ev_item[ok]]
    # an item repeated in one neighbour counts once, at its nearest occurrence
    k2 = pair[ok] * n_items + ev_item[ok]
    o = np.lexsort((-vals, k2))
    first = np.ones(len(o), dtype=bool)
    first[1:] = k2[o][1:] != k2[o][:-1]
    pick = o[first]
    out = sp.csr_matrix(
        (vals[pick], (ev_case[ok][pick], ev_item[ok][pick])), shape=(n_cases, n_items)
    )
    out.sum_duplicates()
    return out


def row_max_normalise(m: sp.csr_matrix) -> sp.csr_matrix:
    """Each row divided by its largest value (rows without values stay empty)."""
    m = sp.csr_matrix(m, dtype=np.float64, copy=True)
    if m.nnz == 0:
        return m
    mx = np.maximum.reduceat(m.data, m.indptr[:-1][np.diff(m.indptr) > 0])
    row_max = np.zeros(m.shape[0])
    row_max[np.diff(m.indptr) > 0] = mx
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    m.data = m.data / np.where(row_max[rows] > 0, row_max[rows], 1.0)
    return m


class SessionStan(SessionModel):
    """Hybrid: STAN session neighbourhood + the item table of :class:`SessionKNNConfig`."""

    name = SESSION_HYBRID

    def __init__(
        self, config: StanConfig | None = None, table_config: SessionKNNConfig | None = None
    ) -> None:
        self.config = config or StanConfig()
        self.table_config = table_config or SessionKNNConfig()

    def fit(self, train: Sessions, n_items: int, table: SessionKNN | None = None) -> SessionStan:
        """Build the session index and the item table (``table``: a :class:`SessionKNN`
        fitted on the same sessions with ``table_config``, whose table is reused; its fitting
        time counts in ``fit_s``)."""
        t0 = time.perf_counter()
        self.index = SessionIndex.build(train, n_items, self.config)
        if table is not None:
            self.table = table.table
            self.fit_s = time.perf_counter() - t0 + table.fit_s
            return self
        parts = SessionKNNParts.build(
            train, n_items, self.table_config.window, self.table_config.recency
        )
        self.table = parts.table(self.table_config)
        self.fit_s = time.perf_counter() - t0
        return self

    @classmethod
    def from_parts(
        cls,
        index: SessionIndex,
        table: sp.csr_matrix,
        config: StanConfig,
        table_config: SessionKNNConfig,
    ) -> SessionStan:
        model = cls(config, table_config)
        model.index, model.table = index, table
        return model

    def score(self, prefix: Sessions) -> sp.csr_matrix:
        return hybrid_scores(self.index, self.table, prefix, self.config, self.table_config.decay)


def knn_part(index: SessionIndex, prefix: Sessions, config: StanConfig) -> sp.csr_matrix:
    """The hybrid's neighbourhood part before its weight: ``knn / max(knn)`` per case (depends
    on ``k``, ``l1`` and ``l3`` of ``config`` only)."""
    return row_max_normalise(knn_scores(index, prefix, config))


def table_part(table: sp.csr_matrix, prefix: Sessions, table_decay: float) -> sp.csr_matrix:
    """The hybrid's item-table part before its weight: ``table / max(table)`` per case."""
    q = query_matrix(prefix, table.shape[0], table_decay)
    return row_max_normalise(sp.csr_matrix(q @ table))


def hybrid_scores(
    index: SessionIndex,
    table: sp.csr_matrix,
    prefix: Sessions,
    config: StanConfig,
    table_decay: float,
    knn: sp.csr_matrix | None = None,
    table_scores: sp.csr_matrix | None = None,
) -> sp.csr_matrix:
    """``knn * knn/max + mix * table/max + prior * trend`` for each prefix, CSR.

    The prior goes to every item of a case with at least one known revealed item (a session
    the model knows nothing about is left to the popular fallback, as the API does).
    ``knn``/``table_scores``: :func:`knn_part`/:func:`table_part` of this ``prefix`` when
    already computed (a tuning grid reuses them across its points).
    """
    n_cases, n_items = prefix.n_sessions, table.shape[0]
    out = sp.csr_matrix((n_cases, n_items))
    if config.knn > 0:
        part = knn_part(index, prefix, config) if knn is None else knn
        out = out + config.knn * part
    if config.mix > 0:
        part = table_part(table, prefix, table_decay) if table_scores is None else table_scores
        out = out + config.mix * part
    out = sp.csr_matrix(out)
    nz = np.flatnonzero(index.prior)
    if config.prior > 0 and len(nz):
        has = np.bincount(prefix.session_of_event()[prefix.items >= 0], minlength=n_cases) > 0
        rows = np.flatnonzero(has)
        pr = sp.csr_matrix(
            (
                np.tile(index.prior[nz] * config.prior, len(rows)),
                (np.repeat(rows, len(nz)), np.tile(nz, len(rows))),
            ),
            shape=out.shape,
        )
        out = sp.csr_matrix(out + pr)
    return out
