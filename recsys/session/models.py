"""Session models: popularity, cosine co-occurrence (the baselines) and the session model.

Every model maps revealed prefixes to a sparse score matrix ``(n_cases, n_items)``; items
without a score rank after the scored ones, by training popularity (see :mod:`.protocol`).

The session model (``session_knn``) is an item neighbourhood: one item-to-item table

    M = a * R + (1 - a) * C,  each row cut to its ``neighbours`` best entries,

where ``C`` counts training sessions holding both items and ``R`` are sequential rules (item
j follows item i within ``window`` events; weight 1/gap), both with recent training sessions
weighing more and normalised by ``n_i ** s * n_j ** (1 - s)`` (``s = 0.5``: the cosine).
A taste part can be added: ``M + taste * t * T``, where ``T`` is each item's ``neighbours``
best items in the rank-``taste_rank`` approximation of the *visitor*-level cosine
co-occurrence (all the sessions of one visitor pooled: a person's taste spans their visits;
without visitor ids each session is its own visitor) and ``t`` puts ``T`` on ``M``'s scale
(the median of the rows' largest weights of ``M`` over that of ``T``): items the visitors
who liked the session's items also like get a score even when no session held both.
A session is scored by summing the rows of its items, the item at distance ``d`` from the
end weighted ``(1 + d) ** -decay`` (``decay = 0``: plain sum, the co-occurrence baseline when
``a = 0``). The table is all the API needs: it is published as an item-to-item neighbour file
and the serving layer sums a few rows with numpy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from recsys.models.cooccurrence import keep_top_per_row
from recsys.session.data import Sessions

POPULARITY = "popularity"
COOCCURRENCE = "cooccurrence"
SESSION_KNN = "session_knn"
TWO_HOP_WIDTH = 50  # entries per row of M used for its two-step neighbours
#: oversampling and power iterations of the taste part's randomized eigensolver
TASTE_OVERSAMPLE = 8
TASTE_POWER_ITERATIONS = 4
#: rows of the dense taste similarity handled at once (bounded memory)
TASTE_BLOCK = 1024


@dataclass(frozen=True)
class SessionKNNConfig:
    """Hyper-parameters of the session model (defaults: robust across the datasets tried).

    Attributes
    ----------
    rules_weight
        ``a`` in ``M = a * R + (1 - a) * C``: share of the directional sequential rules.
    window
        Sequential rules count j after i when j follows within ``window`` events (1/gap).
    decay
        Position weight ``(1 + d) ** -decay`` of the revealed item ``d`` events before the end.
    source_norm
        Both tables divide a pair's count by ``n_i ** s * n_j ** (1 - s)`` (``n`` = sessions
        holding the item): 0.5 is the cosine, 1 the conditional probability of j given i.
    recency
        A training session's weight is ``exp(-recency * (1 - q))``, ``q`` its quantile by time
        (0 = all sessions weigh the same).
    two_hop
        Adds ``two_hop * M50 @ M50`` (``M50``: ``M`` cut to 50 entries per row, zero
        diagonal) before the cut: items two steps away get a score, so fewer targets fall
        back to popularity.
    neighbours
        Entries kept per row of ``M`` (the published neighbour table's width).
    taste
        Weight of the taste table ``T`` (0 = none; see the module docstring).
    taste_rank
        Rank of the visitor co-occurrence approximation behind ``T``.
    """

    rules_weight: float = 0.5
    window: int = 3
    decay: float = 1.0
    source_norm: float = 0.75
    recency: float = 1.0
    two_hop: float = 0.0
    neighbours: int = 200
    taste: float = 0.0
    taste_rank: int = 16

    def __post_init__(self) -> None:
        if not 0.0 <= self.rules_weight <= 1.0:
            raise ValueError(f"rules_weight={self.rules_weight}; use a value in [0, 1]")
        if not 0.0 <= self.source_norm <= 1.0:
            raise ValueError(f"source_norm={self.source_norm}; use a value in [0, 1]")
        if self.window < 1:
            raise ValueError(f"window={self.window}; use 1 or more events")
        if self.decay < 0 or self.recency < 0 or self.two_hop < 0:
            raise ValueError(
                f"decay={self.decay}, recency={self.recency}, two_hop={self.two_hop}: use 0 or more"
            )
        if self.neighbours < 1:
            raise ValueError(f"neighbours={self.neighbours}; keep at least 1 per item")
        if self.taste < 0 or self.taste_rank < 1:
            raise ValueError(
                f"taste={self.taste}, taste_rank={self.taste_rank}: use taste >= 0, rank >= 1"
            )


def session_item_matrix(sessions: Sessions, n_items: int) -> sp.csr_matrix:
    """CSR ``(n_sessions, n_items)`` float64: 1 where the session holds the item."""
    sess = sessions.session_of_event()
    known = sessions.items >= 0
    x = sp.csr_matrix(
        (np.ones(int(known.sum())), (sess[known], sessions.items[known])),
        shape=(sessions.n_sessions, n_items),
    )
    x.data[:] = 1.0
    return x


def item_counts(sessions: Sessions, n_items: int) -> np.ndarray:
    """``(n_items,)`` number of training sessions holding each item."""
    return np.asarray(session_item_matrix(sessions, n_items).sum(axis=0)).ravel()


def cosine_cooccurrence(sessions: Sessions, n_items: int) -> sp.csr_matrix:
    """``|S(i) & S(j)| / sqrt(|S(i)| |S(j)|)`` over training sessions, zero diagonal."""
    x = session_item_matrix(sessions, n_items)
    n_i = np.asarray(x.sum(axis=0)).ravel()
    co = sp.csr_matrix(x.T @ x)
    co.setdiag(0.0)
    co.eliminate_zeros()
    rows = np.repeat(np.arange(n_items), np.diff(co.indptr))
    co.data = co.data / np.sqrt(n_i[rows] * n_i[co.indices])
    return co


def visitor_item_matrix(sessions: Sessions, n_items: int) -> sp.csr_matrix:
    """CSR ``(n_visitors, n_items)`` float64: 1 where one of the visitor's sessions holds the item."""
    visitor = sessions.visitor_codes()[sessions.session_of_event()]
    known = sessions.items >= 0
    n_visitors = int(visitor.max()) + 1 if len(visitor) else 0
    x = sp.csr_matrix(
        (np.ones(int(known.sum())), (visitor[known], sessions.items[known])),
        shape=(n_visitors, n_items),
    )
    x.data[:] = 1.0
    return x


def top_eigenvectors(x: sp.csr_matrix, rank: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The ``rank`` largest eigenvalues and eigenvectors of ``G = x' x`` (never formed):
    seeded randomized subspace iteration, so deterministic (numpy/scipy only)."""
    n = x.shape[1]
    k = min(rank + TASTE_OVERSAMPLE, n)
    xt = sp.csr_matrix(x.T)
    q = np.linalg.qr(xt @ (x @ np.random.default_rng(seed).standard_normal((n, k))))[0]
    for _ in range(TASTE_POWER_ITERATIONS):
        q = np.linalg.qr(xt @ (x @ q))[0]
    xq = x @ q
    vals, vecs = np.linalg.eigh(xq.T @ xq)
    top = np.argsort(-vals, kind="stable")[: min(rank, k)]
    return np.maximum(vals[top], 0.0), q @ vecs[:, top]


def taste_table(visitors: sp.csr_matrix, rank: int, width: int) -> sp.csr_matrix:
    """``T``: each item's ``width`` best items by the rank-``rank`` approximation of the
    visitor-level cosine co-occurrence ``G = D^-1/2 X'X D^-1/2`` (``X``: visitors x items,
    ``D``: the items' visitor counts), positive entries only, zero diagonal. CSR float64."""
    n_items = visitors.shape[1]
    n_v = np.asarray(visitors.sum(axis=0)).ravel()
    xn = sp.csr_matrix(visitors @ sp.diags(1.0 / np.sqrt(np.maximum(n_v, 1.0))))
    if xn.nnz == 0 or n_items < 2:
        return sp.csr_matrix((n_items, n_items))
    vals, vecs = top_eigenvectors(xn, rank)
    emb = vecs * np.sqrt(vals)[None, :]
    width = min(width, n_items - 1)
    rows, cols, data = [], [], []
    for start in range(0, n_items, TASTE_BLOCK):
        block = np.arange(start, min(start + TASTE_BLOCK, n_items))
        sim = emb[block] @ emb.T
        sim[np.arange(len(block)), block] = -np.inf
        top = np.argpartition(-sim, width - 1, axis=1)[:, :width]
        val = np.take_along_axis(sim, top, axis=1)
        ok = val > 1e-12
        rows.append(np.repeat(block, width)[ok.ravel()])
        cols.append(top[ok])
        data.append(val[ok])
    return sp.csr_matrix(
        (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_items, n_items),
    )


def median_row_max(m: sp.csr_matrix) -> float:
    """Median over the non-empty rows of each row's largest entry (0 for an empty matrix)."""
    m = sp.csr_matrix(m)
    filled = np.diff(m.indptr) > 0
    if not filled.any():
        return 0.0
    return float(np.median(np.maximum.reduceat(m.data, m.indptr[:-1][filled])))


def position_weights(lengths: np.ndarray, decay: float) -> np.ndarray:
    """``(sum(lengths),)`` weight ``(1 + d) ** -decay`` of each event, ``d`` = events to the end."""
    ends = np.repeat(np.cumsum(lengths), lengths)
    d = ends - 1 - np.arange(int(np.sum(lengths)))
    return (1.0 + d) ** -decay


def query_matrix(prefix: Sessions, n_items: int, decay: float) -> sp.csr_matrix:
    """CSR ``(n_cases, n_items)``: each revealed item's position weight (its last occurrence)."""
    case = prefix.session_of_event()
    w = position_weights(prefix.lengths, decay)
    known = prefix.items >= 0
    case, items, w = case[known], prefix.items[known], w[known]
    # the last occurrence of a repeated item has the largest weight: keep it
    key = case * n_items + items
    _, last = np.unique(key[::-1], return_index=True)
    pick = len(key) - 1 - last
    return sp.csr_matrix((w[pick], (case[pick], items[pick])), shape=(prefix.n_sessions, n_items))


class SessionModel:
    """Interface: ``fit(train, n_items)`` then ``score(prefix) -> CSR (n_cases, n_items)``."""

    name: str = ""
    fit_s: float = 0.0

    def fit(self, train: Sessions, n_items: int) -> SessionModel:
        raise NotImplementedError

    def score(self, prefix: Sessions) -> sp.csr_matrix:
        raise NotImplementedError


class Popularity(SessionModel):
    """No scores at all: every item ranks by its training popularity (the tie-break)."""

    name = POPULARITY

    def fit(self, train: Sessions, n_items: int) -> Popularity:
        self.n_items = n_items
        return self

    def score(self, prefix: Sessions) -> sp.csr_matrix:
        return sp.csr_matrix((prefix.n_sessions, self.n_items))


class ItemNeighbourhood(SessionModel):
    """Score = query weights @ item-to-item table (the shape shared by the two models below)."""

    table: sp.csr_matrix
    decay: float = 0.0

    def score(self, prefix: Sessions) -> sp.csr_matrix:
        q = query_matrix(prefix, self.table.shape[0], self.decay)
        return sp.csr_matrix(q @ self.table)


class Cooccurrence(ItemNeighbourhood):
    """Baseline: cosine item co-occurrence summed over the (distinct) revealed items."""

    name = COOCCURRENCE

    def fit(self, train: Sessions, n_items: int) -> Cooccurrence:
        t0 = time.perf_counter()
        self.table = cosine_cooccurrence(train, n_items)
        self.decay = 0.0
        self.fit_s = time.perf_counter() - t0
        return self


class SessionKNN(ItemNeighbourhood):
    """The session model: position-weighted item neighbourhood of rules + co-occurrence."""

    name = SESSION_KNN

    def __init__(self, config: SessionKNNConfig | None = None) -> None:
        self.config = config or SessionKNNConfig()

    def fit(self, train: Sessions, n_items: int) -> SessionKNN:
        t0 = time.perf_counter()
        parts = SessionKNNParts.build(train, n_items, self.config.window, self.config.recency)
        self.table = parts.table(self.config)
        self.decay = self.config.decay
        self.fit_s = time.perf_counter() - t0
        return self

    @classmethod
    def from_table(cls, table: sp.csr_matrix, config: SessionKNNConfig) -> SessionKNN:
        model = cls(config)
        model.table = sp.csr_matrix(table)
        model.decay = config.decay
        return model


def recency_weights(sessions: Sessions, recency: float) -> np.ndarray:
    """``(n_sessions,)`` ``exp(-recency * (1 - q))``, ``q`` = the session's time quantile."""
    n = sessions.n_sessions
    order = np.argsort(sessions.end_time, kind="stable")
    q = np.empty(n)
    q[order] = np.arange(n) / max(n - 1, 1)
    return np.exp(-recency * (1.0 - q))


@dataclass
class SessionKNNParts:
    """Raw (session-weighted) pair counts of one training set, reused across a grid.

    ``co[i, j]``: weighted sessions holding both; ``rules[i, j]``: weighted ``1/gap`` of j
    following i within ``window``; ``counts[i]``: weighted sessions holding i;
    ``visitors``: :func:`visitor_item_matrix` (the taste tables are built from it on demand
    and kept per rank in ``taste_tables``).
    """

    co: sp.csr_matrix
    rules: sp.csr_matrix
    counts: np.ndarray
    window: int
    recency: float
    visitors: sp.csr_matrix | None = None
    taste_tables: dict[tuple[int, int], sp.csr_matrix] = field(default_factory=dict)
    #: the last uncut table and its (rules_weight, source_norm, two_hop): taste variants reuse it
    last_uncut: tuple[tuple[float, float, float], sp.csr_matrix] | None = field(
        default=None, repr=False
    )

    @classmethod
    def build(
        cls, train: Sessions, n_items: int, window: int, recency: float = 0.0
    ) -> SessionKNNParts:
        w = recency_weights(train, recency)
        x = session_item_matrix(train, n_items)
        xw = sp.csr_matrix(x.multiply(w[:, None]))
        co = sp.csr_matrix(x.T @ xw)
        co.setdiag(0.0)
        co.eliminate_zeros()
        sess = train.session_of_event()
        items = train.items
        rows, cols, vals = [], [], []
        for gap in range(1, window + 1):
            a, b = items[:-gap], items[gap:]
            ok = (sess[:-gap] == sess[gap:]) & (a >= 0) & (b >= 0) & (a != b)
            rows.append(a[ok])
            cols.append(b[ok])
            vals.append(w[sess[:-gap][ok]] / gap)
        rules = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n_items, n_items),
        )
        rules.sum_duplicates()
        counts = np.asarray(xw.sum(axis=0)).ravel()
        return cls(co, rules, counts, window, recency, visitor_item_matrix(train, n_items))

    def taste_part(self, rank: int, width: int) -> sp.csr_matrix:
        """:func:`taste_table` of these parts' visitors (computed once per rank and width)."""
        key = (rank, width)
        if key not in self.taste_tables:
            if self.visitors is None:
                raise ValueError("these parts were built without visitors: no taste table")
            self.taste_tables[key] = taste_table(self.visitors, rank, width)
        return self.taste_tables[key]

    def _normalised(self, m: sp.csr_matrix, source_norm: float) -> sp.csr_matrix:
        m = sp.csr_matrix(m, copy=True)
        n = np.maximum(self.counts, 1e-12)
        rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
        m.data = m.data / (n[rows] ** source_norm * n[m.indices] ** (1.0 - source_norm))
        return m

    def table(self, config: SessionKNNConfig) -> sp.csr_matrix:
        """The item-to-item table ``M`` (CSR float32, ``neighbours`` entries per row at most)."""
        if (config.window, config.recency) != (self.window, self.recency):
            raise ValueError(
                f"parts built with window={self.window}, recency={self.recency}; the config "
                f"has {config.window}, {config.recency}: build parts for it"
            )
        key = (config.rules_weight, config.source_norm, config.two_hop)
        if self.last_uncut is not None and self.last_uncut[0] == key:
            m = self.last_uncut[1]  # the same table under another taste weight (tuning)
        else:
            m = self._uncut(config)
            self.last_uncut = (key, m)
        if config.taste > 0:
            t = self.taste_part(config.taste_rank, config.neighbours)
            t_max = median_row_max(t)
            if t_max > 0:
                m_max = median_row_max(m) or 1.0
                m = sp.csr_matrix(m + (config.taste * m_max / t_max) * t)
        return sp.csr_matrix(keep_top_per_row(m, config.neighbours), dtype=np.float32)

    def _uncut(self, config: SessionKNNConfig) -> sp.csr_matrix:
        """``a * R + (1 - a) * C`` (+ the two-step neighbours), before the taste and the cut."""
        a = config.rules_weight
        m = a * self._normalised(self.rules, config.source_norm) + (1.0 - a) * self._normalised(
            self.co, config.source_norm
        )
        m = sp.csr_matrix(m)
        m.eliminate_zeros()
        if config.two_hop > 0:
            near = keep_top_per_row(m, TWO_HOP_WIDTH)
            two = sp.csr_matrix(near @ near)
            two.setdiag(0.0)
            two.eliminate_zeros()
            m = sp.csr_matrix(m + config.two_hop * two)
        return m

    def model(self, config: SessionKNNConfig) -> SessionKNN:
        return SessionKNN.from_table(self.table(config), config)


def with_params(config: SessionKNNConfig, **changes: float) -> SessionKNNConfig:
    """A copy of ``config`` with some fields changed (validated again)."""
    return replace(config, **changes)  # type: ignore[arg-type]
