"""Ranking kernels shared by in-memory models, evaluation and the scorer of saved models.

Scores are dense blocks ``(b, n_items)`` float32 for ``b`` users at a time, so memory stays
bounded and the work is matrix products and vectorised selections, never one call per user.
Ties are broken by the lower item index, so a top-k is a pure function of the scores.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

_SAMPLE_COLUMNS = 2048  # columns sampled to guess each row's k-th largest score


def _quadratic_form(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``x_b . m . x_b`` for every row ``b`` (one BLAS product; a 3-operand einsum loops)."""
    return np.einsum("bi,bi->b", x @ m, x)


def _kth_largest_exact(scores: np.ndarray, k: int) -> np.ndarray:
    n = scores.shape[1]
    return np.partition(scores, n - k, axis=1)[:, n - k]


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` columns of every row, best first; ``-inf`` entries are never returned.

    Parameters
    ----------
    scores
        ``(b, n)`` float array; ``-inf`` marks excluded items (no NaN).
    k
        List length.

    Returns
    -------
    idx
        ``(b, k)`` int64 column indices, ``-1`` where a row has fewer than ``k`` finite entries.
    vals
        ``(b, k)`` float32 scores, NaN where ``idx`` is ``-1``.

    Notes
    -----
    ``np.argpartition`` on a 2048 x 20000 block costs ~2 s; this guesses each row's threshold
    from a strided sample of columns, keeps the entries above it (usually ~3k per row), and
    falls back to an exact ``np.partition`` for the rows where the guess kept fewer than ``k``.
    """
    scores = np.ascontiguousarray(scores)
    b, n = scores.shape
    idx_out = np.full((b, k), -1, dtype=np.int64)
    val_out = np.full((b, k), np.nan, dtype=np.float32)
    k_eff = min(k, n)
    if b == 0 or k_eff == 0:
        return idx_out, val_out
    # a row with fewer than k finite scores has the threshold -inf: without `finite`, all of
    # its n columns would be sorted below (a sparse "also bought" block: 4.7 s of 8 s scoring)
    finite = scores > -np.inf
    if n <= 4 * _SAMPLE_COLUMNS:
        thr = _kth_largest_exact(scores, k_eff)
        mask = (scores >= thr[:, None]) & finite
    else:
        stride = n // _SAMPLE_COLUMNS
        sample = scores[:, ::stride]
        m = sample.shape[1]
        r = min(m, int(np.ceil(3 * k_eff * m / n)) + 8)
        thr = np.partition(sample, m - r, axis=1)[:, m - r]
        mask = (scores >= thr[:, None]) & finite
        short = np.count_nonzero(mask, axis=1) < k_eff
        if short.any():
            rows = np.flatnonzero(short)
            thr_exact = _kth_largest_exact(scores[rows], k_eff)
            mask[rows] = (scores[rows] >= thr_exact[:, None]) & finite[rows]
    flat = np.flatnonzero(mask)
    rows = flat // n
    cols = flat - rows * n
    vals = scores.reshape(-1)[flat]
    # lexsort is stable: equal (row, score) keep ascending column order -> ties by item index.
    order = np.lexsort((-vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    starts = np.searchsorted(rows, np.arange(b))
    pos = np.arange(len(rows)) - starts[rows]
    keep = (pos < k) & np.isfinite(vals)
    idx_out[rows[keep], pos[keep]] = cols[keep]
    val_out[rows[keep], pos[keep]] = vals[keep]
    return idx_out, val_out


def mask_known(scores: np.ndarray, known: sp.csr_matrix, users: np.ndarray) -> None:
    """Set ``scores[j, i] = -inf`` in place where ``known[users[j], i]`` is non-zero.

    Parameters
    ----------
    scores
        ``(b, n_items)`` writable float block.
    known
        CSR ``(n_users, n_items)`` of items to exclude.
    users
        ``(b,)`` user indices of the block rows.
    """
    kb = known[users]
    rows = np.repeat(np.arange(len(users)), np.diff(kb.indptr))
    scores[rows, kb.indices] = -np.inf


def top_k_for_users(
    score_block: Callable[[np.ndarray], np.ndarray],
    users: np.ndarray,
    k: int,
    known: sp.csr_matrix | None = None,
    candidates: np.ndarray | None = None,
    block_size: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k items for many users, block by block.

    Parameters
    ----------
    score_block
        Maps ``(b,)`` user indices to a fresh ``(b, n_items)`` float32 score block.
    users
        ``(n,)`` user indices.
    known
        Optional CSR ``(n_users, n_items)`` of known positives, filtered out.
    candidates
        Optional ``(n_cand,)`` item indices allowed (default all).

    Returns
    -------
    idx, vals
        ``(n, k)`` item indices (``-1`` padding) and scores, best first.
    """
    users = np.asarray(users, dtype=np.int64)
    excluded = None
    if candidates is not None:
        candidates = np.asarray(candidates, dtype=np.int64)
    idx = np.full((len(users), k), -1, dtype=np.int64)
    vals = np.full((len(users), k), np.nan, dtype=np.float32)
    for start in range(0, len(users), block_size):
        ub = users[start : start + block_size]
        s = score_block(ub)
        if candidates is not None and excluded is None:
            keep = np.zeros(s.shape[1], dtype=bool)
            keep[candidates] = True
            excluded = np.flatnonzero(~keep)
        if known is not None:
            mask_known(s, known, ub)
        if candidates is not None and len(candidates) < s.shape[1] // 2:
            bi, bv = top_k(s[:, candidates], k)
            bi = np.where(bi >= 0, candidates[np.maximum(bi, 0)], -1)
        else:
            if candidates is not None:  # most items allowed: mask the few others in place
                s[:, excluded] = -np.inf
            bi, bv = top_k(s, k)
        idx[start : start + len(ub)] = bi
        vals[start : start + len(ub)] = bv
    return idx, vals


# --- score functions (the same code runs in memory and on saved arrays) ------------------------
def factor_scores(
    user_emb: np.ndarray, user_bias: np.ndarray, item_emb: np.ndarray, item_bias: np.ndarray
) -> np.ndarray:
    """``(b, n_items)`` float32: ``u . v + b_u + b_i`` (LightFM's prediction).

    Parameters
    ----------
    user_emb
        ``(b, d)`` float32; ``user_bias`` ``(b,)``; ``item_emb`` ``(n_items, d)``;
        ``item_bias`` ``(n_items,)``.

    Notes
    -----
    The biases ride along as two extra columns of one matrix product
    (``[u, b_u, 1] . [v, 1, b_i]``), so the block is written once, not three times.
    """
    ones_u = np.ones((len(user_emb), 1), dtype=np.float32)
    ones_i = np.ones((len(item_emb), 1), dtype=np.float32)
    u = np.hstack([user_emb, user_bias[:, None], ones_u]).astype(np.float32, copy=False)
    v = np.hstack([item_emb, ones_i, item_bias[:, None]]).astype(np.float32, copy=False)
    return u @ v.T


def factor_moments(item_emb: np.ndarray, item_bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(d+1,)`` and covariance ``(d+1, d+1)`` of ``[v_i, b_i]`` over all items (float64).

    With them the mean and standard deviation of a user's scores over all items follow in
    closed form, so per-user z-scores need no pass over the score block.
    """
    aug = np.hstack([item_emb, item_bias[:, None]]).astype(np.float64)
    mean = aug.mean(axis=0)
    centred = aug - mean
    cov = centred.T @ centred / max(len(aug), 1)
    return mean, cov


def zscored_factor_sum(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One factor model whose scores are ``sum_k w_k z_k``: a weighted sum of per-user z-scores.

    Each part is ``(user_emb, user_bias, item_emb, item_bias, weight)`` with scores
    ``u . v + b_u + b_i`` over the same users and items. Part ``k``'s per-user mean ``mu`` and
    deviation ``sd`` follow from :func:`factor_moments`; with ``a = w / sd``,
    ``a (u . v + b_i + b_u - mu) = [a u, a] . [v, b_i] + a (b_u - mu)``, so the parts
    concatenate into ``(user_emb, user_bias, item_emb, item_bias)`` (item biases zero) that
    any factor scorer uses unchanged. Parts with weight 0 are left out; a user whose scores
    in a part are flat (deviation ~0) gets 0 from that part.
    """
    us: list[np.ndarray] = []
    vs: list[np.ndarray] = []
    n_users = len(parts[0][0])
    n_items = len(parts[0][2])
    user_bias = np.zeros(n_users)
    for user_emb, u_bias, item_emb, i_bias, weight in parts:
        if weight == 0:
            continue
        mean, cov = factor_moments(item_emb, i_bias)
        aug = np.hstack([user_emb.astype(np.float64), np.ones((n_users, 1))])
        mu = aug @ mean + u_bias.astype(np.float64)
        sd = np.sqrt(np.maximum(_quadratic_form(aug, cov), 0.0))
        # a user whose scores are flat in this part (no signal) gets z = 0 from it
        a = np.divide(weight, sd, out=np.zeros_like(sd), where=sd > 1e-6)
        us += [user_emb * a[:, None], a[:, None]]
        vs += [item_emb, i_bias[:, None]]
        user_bias += a * (u_bias.astype(np.float64) - mu)
    if not us:
        raise ValueError("zscored_factor_sum: every part has weight 0")
    return (
        np.ascontiguousarray(np.hstack(us), dtype=np.float32),
        user_bias.astype(np.float32),
        np.ascontiguousarray(np.hstack(vs), dtype=np.float32),
        np.zeros(n_items, dtype=np.float32),
    )


def blend_scores(
    user_emb: np.ndarray,
    user_bias: np.ndarray,
    item_emb: np.ndarray,
    item_bias: np.ndarray,
    moments: tuple[np.ndarray, np.ndarray],
    history: sp.csr_matrix,
    similarity: sp.csr_matrix,
    weight: float,
) -> np.ndarray:
    """Blend of factor and co-occurrence scores: ``(1-w) z_factor + w z_cooc``, ``(b, n_items)``.

    Each part is z-scored per user over all items. ``history`` ``(b, n_items)`` is the block's
    interaction history; ``similarity`` ``(n_items, n_items)`` the item-item matrix, so the
    co-occurrence score is ``history @ similarity`` (sparse). Rows without co-occurrence
    signal get ``z_cooc = 0``.

    Notes
    -----
    The factor part's per-user mean and deviation follow in closed form from ``moments``
    (:func:`factor_moments`), and every per-user scale and offset is folded into the user
    side of one matrix product ``[a u, a, c] . [v, b_i, 1]``; only the sparse co-occurrence
    entries are added afterwards. No pass over the dense block computes a statistic.
    """
    mean, cov = moments
    b = len(user_emb)
    aug = np.hstack([user_emb.astype(np.float64), np.ones((b, 1))])
    mu = aug @ mean + user_bias.astype(np.float64)
    sd = np.sqrt(np.maximum(_quadratic_form(aug, cov), 1e-12))
    a = (1.0 - weight) / sd
    const = a * (user_bias.astype(np.float64) - mu)
    c = None
    if weight > 0:
        c = sp.csr_matrix(history @ similarity, dtype=np.float64)
        n = c.shape[1]
        rows = np.repeat(np.arange(b), np.diff(c.indptr))
        cm = np.bincount(rows, weights=c.data, minlength=b) / n
        sq = np.bincount(rows, weights=c.data * c.data, minlength=b) / n
        csd = np.sqrt(np.maximum(sq - cm**2, 0.0))
        inv = np.divide(weight, csd, out=np.zeros_like(csd), where=csd > 0)
        const -= cm * inv
    u = np.hstack([user_emb * a[:, None], a[:, None], const[:, None]]).astype(np.float32)
    ones_i = np.ones((len(item_emb), 1), dtype=np.float32)
    v = np.hstack([item_emb, item_bias[:, None], ones_i]).astype(np.float32, copy=False)
    s = u @ v.T
    if c is not None and c.nnz:
        flat = rows * s.shape[1] + c.indices
        s.reshape(-1)[flat] += (c.data * inv[rows]).astype(np.float32)
    return s
