"""Session models: popularity, cosine co-occurrence (the baselines) and the session model.

Every model maps revealed prefixes to a sparse score matrix ``(n_cases, n_items)``; items
without a score rank after the scored ones, by training popularity (see :mod:`.protocol`).

The session model (``session_knn``) is an item neighbourhood: one item-to-item table

    M = a * R + (1 - a) * C,  each row cut to its ``neighbours`` best entries,

where ``C`` counts training sessions holding both items and ``R`` are sequential rules (item
j follows item i within ``window`` events; weight 1/gap), both with recent training sessions
weighing more and normalised by ``n_i ** s * n_j ** (1 - s)`` (``s = 0.5``: the cosine).
A session is scored by summing the rows of its items, the item at distance ``d`` from the
end weighted ``(1 + d) ** -decay`` (``decay = 0``: plain sum, the co-occurrence baseline when
``a = 0``). The table is all the API needs: it is published as an item-to-item neighbour file
and the serving layer sums a few rows with numpy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from recsys.models.cooccurrence import keep_top_per_row
from recsys.session.data import Sessions

POPULARITY = "popularity"
COOCCURRENCE = "cooccurrence"
SESSION_KNN = "session_knn"
TWO_HOP_WIDTH = 50  # entries per row of M used for its two-step neighbours


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
    """

    rules_weight: float = 0.5
    window: int = 3
    decay: float = 1.0
    source_norm: float = 0.75
    recency: float = 1.0
    two_hop: float = 0.0
    neighbours: int = 200

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
    following i within ``window``; ``counts[i]``: weighted sessions holding i.
    """

    co: sp.csr_matrix
    rules: sp.csr_matrix
    counts: np.ndarray
    window: int
    recency: float

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
        return cls(co, rules, counts, window, recency)

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
        return sp.csr_matrix(keep_top_per_row(m, config.neighbours), dtype=np.float32)

    def model(self, config: SessionKNNConfig) -> SessionKNN:
        return SessionKNN.from_table(self.table(config), config)


def with_params(config: SessionKNNConfig, **changes: float) -> SessionKNNConfig:
    """A copy of ``config`` with some fields changed (validated again)."""
    return replace(config, **changes)  # type: ignore[arg-type]
