"""The session-last-item protocol: rank every item for each case's target.

Ranking rule shared by all models: by score (higher first), then by training popularity
(more sessions first), then by item code; items revealed in the prefix are never ranked.
So an item without a score falls back to popularity, as the served lists do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recsys.session.data import Cases, Sessions
from recsys.session.models import SessionModel

CUTOFF = 20
HR = f"hr@{CUTOFF}"
MRR = f"mrr@{CUTOFF}"
#: rank given to a target that cannot be ranked (unknown item, or revealed already)
UNRANKED = np.iinfo(np.int64).max


def popularity_key(counts: np.ndarray) -> np.ndarray:
    """``(n_items,)`` unique int key, higher = ranks earlier among equal scores."""
    order = np.lexsort((np.arange(len(counts)), -np.asarray(counts, dtype=np.float64)))
    key = np.empty(len(counts), dtype=np.int64)
    key[order] = np.arange(len(counts) - 1, -1, -1)
    return key


def revealed_pairs(prefix: Sessions) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (case, item) pairs of the known revealed items."""
    case = prefix.session_of_event()
    known = prefix.items >= 0
    n = int(prefix.items.max()) + 1 if known.any() else 1
    key = np.unique(case[known] * n + prefix.items[known])
    return key // n, key % n


def target_ranks(scores: sp.csr_matrix, cases: Cases, pop_key: np.ndarray) -> np.ndarray:
    """``(n_cases,)`` 0-based rank of each target, :data:`UNRANKED` when it cannot be ranked.

    Parameters
    ----------
    scores
        CSR ``(n_cases, n_items)``, non-negative; missing entries are 0.
    pop_key
        ``(n_items,)`` from :func:`popularity_key`.
    """
    n_cases, n_items = scores.shape
    s = sp.csr_matrix(scores, dtype=np.float64, copy=True)
    rc, ri = revealed_pairs(cases.prefix)
    # drop the revealed items' scores: they are never ranked
    if len(rc):
        mask = sp.csr_matrix((np.ones(len(rc)), (rc, ri)), shape=s.shape)
        s = sp.csr_matrix(s - s.multiply(mask))
    s.eliminate_zeros()
    target = cases.target
    valid = target >= 0
    tgt = np.where(valid, target, 0)
    st = np.asarray(s[np.arange(n_cases), tgt]).ravel()
    pk_t = pop_key[tgt]
    rows = np.repeat(np.arange(n_cases), np.diff(s.indptr))
    data, cols = s.data, s.indices
    above = (data > st[rows]) | ((data == st[rows]) & (pop_key[cols] > pk_t[rows]))
    rank = np.bincount(rows[above], minlength=n_cases).astype(np.int64)
    # targets without a score: every zero-scored, unrevealed item more popular ranks above
    zero = st == 0
    more_pop_nz = np.bincount(rows[pop_key[cols] > pk_t[rows]], minlength=n_cases)
    more_pop_rev = np.bincount(rc[pop_key[ri] > pk_t[rc]], minlength=n_cases)
    more_pop_all = n_items - 1 - pk_t
    rank = np.where(zero, rank + more_pop_all - more_pop_nz - more_pop_rev, rank)
    revealed_target = np.zeros(n_cases, dtype=bool)
    hit = ri == tgt[rc]
    revealed_target[rc[hit]] = True
    return np.where(valid & ~revealed_target, rank, UNRANKED)


def hr_mrr(ranks: np.ndarray, cutoff: int = CUTOFF) -> tuple[float, float]:
    """Hit rate and mean reciprocal rank at ``cutoff`` over all cases (misses count 0)."""
    if len(ranks) == 0:
        return float("nan"), float("nan")
    hit = ranks < cutoff
    rr = np.where(hit, 1.0 / (np.minimum(ranks, cutoff) + 1.0), 0.0)
    return float(hit.mean()), float(rr.mean())


#: cases scored at once (bounded memory)
CASE_CHUNK = 2000


def case_chunks(cases: Cases, chunk: int = CASE_CHUNK) -> list[Cases]:
    """The cases in consecutive chunks of at most ``chunk``."""
    out = []
    for start in range(0, cases.n, chunk):
        idx = np.arange(start, min(start + chunk, cases.n))
        out.append(Cases(cases.prefix.take(idx), cases.target[idx]))
    return out


def chunk_ranks(
    chunks: list[Cases], score: Callable[[int, Sessions], sp.csr_matrix], pop_key: np.ndarray
) -> np.ndarray:
    """Ranks of the cases of all ``chunks``; ``score(i, prefix)`` scores chunk ``i``."""
    out = [target_ranks(score(i, sub.prefix), sub, pop_key) for i, sub in enumerate(chunks)]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def case_ranks(
    model: SessionModel, cases: Cases, pop_key: np.ndarray, chunk: int = CASE_CHUNK
) -> np.ndarray:
    """Ranks of all cases, scored ``chunk`` cases at a time (bounded memory)."""
    return chunk_ranks(case_chunks(cases, chunk), lambda _, prefix: model.score(prefix), pop_key)


@dataclass(frozen=True)
class ModelResult:
    """One model's figures on the cases."""

    name: str
    hr: float
    mrr: float
    fit_s: float
    ranks: np.ndarray

    def as_dict(self) -> dict[str, float]:
        return {HR: round(self.hr, 5), MRR: round(self.mrr, 5), "fit_s": round(self.fit_s, 3)}


def evaluate_model(model: SessionModel, cases: Cases, pop_key: np.ndarray) -> ModelResult:
    """Rank the cases' targets with a fitted model."""
    ranks = case_ranks(model, cases, pop_key)
    hr, mrr = hr_mrr(ranks)
    return ModelResult(model.name, hr, mrr, model.fit_s, ranks)
