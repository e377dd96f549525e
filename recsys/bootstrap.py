"""Paired bootstrap over test users: the uncertainty of a ratio of two models' mean metric.

Resample the users with replacement ``n_resamples`` times; on each resample compute both
models' mean metric over the *same* users and their ratio; the interval is the percentiles of
those ratios. Pairing keeps the per-user correlation of the two models (a user who is easy
for one is easy for the other), so the interval is much narrower than two separate ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_CHUNK = 64  # resamples drawn at a time: bounds memory at _CHUNK x n_users indices


@dataclass(frozen=True)
class BootstrapConfig:
    """How the definition of done resamples (the contract's ``bootstrap:`` section)."""

    n_resamples: int = 2000
    confidence: float = 0.95
    seed: int = 42


def bootstrap_means(values: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Column means of ``values`` over ``n_resamples`` resamples of its rows.

    Parameters
    ----------
    values
        ``(n_users, m)`` float: one column per series (model, metric), rows paired by user.
    n_resamples, seed
        Every call with the same ``n_users``, ``n_resamples`` and ``seed`` draws the same
        resamples, so every clause of one segment is judged on the same users.

    Returns
    -------
    numpy.ndarray
        ``(n_resamples, m)`` float64.
    """
    values = np.asarray(values, dtype=np.float64)
    n, m = values.shape
    rng = np.random.default_rng(seed)
    out = np.empty((n_resamples, m))
    if n == 0:
        out[:] = np.nan
        return out
    for start in range(0, n_resamples, _CHUNK):
        b = min(_CHUNK, n_resamples - start)
        idx = rng.integers(0, n, size=(b, n))
        # bincount weights: w[r, u] = times user u is drawn in resample r; means = w @ values / n
        flat = (np.arange(b, dtype=np.int64)[:, None] * n + idx).ravel()
        w = np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)
        out[start : start + b] = w @ values / n
    return out


def ratio_interval(
    numerator: np.ndarray, denominator: np.ndarray, confidence: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of ``numerator / denominator`` over resamples ``(B,)`` each.

    A resample where both means are 0 counts as ratio 1 (the models tie); ``x / 0`` with
    ``x > 0`` is ``+inf``. Percentiles use the empirical distribution (no interpolation), so
    infinite ratios order correctly.
    """
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = num / den
    r[(num == 0) & (den == 0)] = 1.0
    r = r[~np.isnan(r)]
    if len(r) == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(r, [alpha, 1.0 - alpha], method="inverted_cdf")
    return float(lo), float(hi)


def point_ratio(candidate: np.ndarray, reference: np.ndarray) -> float:
    """mean(candidate) / mean(reference) over users where both are defined (0/0 = 1)."""
    a = np.asarray(candidate, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    ok = ~(np.isnan(a) | np.isnan(b))
    if not ok.any():
        return float("nan")
    ma, mb = a[ok].mean(), b[ok].mean()
    return 1.0 if ma == 0 and mb == 0 else (float("inf") if mb == 0 else float(ma / mb))


def paired_ratio(
    candidate: np.ndarray,
    reference: np.ndarray,
    config: BootstrapConfig = BootstrapConfig(),  # noqa: B008 (frozen, shared safely)
) -> tuple[float, float, float]:
    """``(ratio, ci_low, ci_high)`` of mean(candidate) / mean(reference) over paired users.

    ``candidate`` and ``reference`` are ``(n_users,)`` per-user metric values of the same
    users; users where either is NaN are dropped. ``ratio`` is the point estimate on all
    users.
    """
    a = np.asarray(candidate, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    ok = ~(np.isnan(a) | np.isnan(b))
    a, b = a[ok], b[ok]
    if len(a) == 0:
        return float("nan"), float("nan"), float("nan")
    ratio = point_ratio(a, b)
    means = bootstrap_means(np.column_stack([a, b]), config.n_resamples, config.seed)
    lo, hi = ratio_interval(means[:, 0], means[:, 1], config.confidence)
    return ratio, lo, hi


def resample_series(
    series: dict[tuple, np.ndarray],
    config: BootstrapConfig = BootstrapConfig(),  # noqa: B008
) -> dict[tuple, np.ndarray]:
    """Resampled means ``(n_resamples,)`` of many paired series, one draw per NaN pattern.

    ``series`` maps a key (e.g. ``(model, segment, metric)``) to ``(n_users,)`` values of
    the same users. Series with the same NaN pattern (the users without a relevant item in
    a segment, the same for every model) share one set of resamples, drawn once: the same
    draws :func:`paired_ratio` makes for them, so ``ratio_interval`` of two cached series
    equals ``paired_ratio``'s interval, at a fraction of the cost.
    """
    groups: dict[bytes, list[tuple]] = {}
    for key, v in series.items():
        groups.setdefault(np.isnan(np.asarray(v, dtype=np.float64)).tobytes(), []).append(key)
    out: dict[tuple, np.ndarray] = {}
    for keys in groups.values():
        first = np.asarray(series[keys[0]], dtype=np.float64)
        ok = ~np.isnan(first)
        values = np.column_stack([np.asarray(series[k], dtype=np.float64)[ok] for k in keys])
        means = bootstrap_means(values, config.n_resamples, config.seed)
        out.update({k: means[:, j] for j, k in enumerate(keys)})
    return out
