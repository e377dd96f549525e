"""Model-monitoring figures (DS): drift between model versions, coverage, click-through.

Plain numpy/pandas on frames the caller reads; no I/O, no Airflow.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def population_stability_index(
    expected: np.ndarray, actual: np.ndarray, bins: int = 10, eps: float = 1e-4
) -> float:
    """PSI of ``actual`` against ``expected`` over ``expected``'s quantile bins.

    Parameters
    ----------
    expected, actual : ndarray, shape (n,) and (m,)
        Scores of the previous and the current model version.

    Returns
    -------
    float
        0 for identical distributions; > 0.2 is the usual "significant shift".
    """
    expected = np.asarray(expected, dtype=float)
    actual = np.asarray(actual, dtype=float)
    if expected.size == 0 or actual.size == 0:
        return 0.0
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)))
    if edges.size < 2:  # a constant previous score: any change is all-or-nothing
        return 0.0 if np.allclose(actual, expected[0]) else float("inf")
    edges[0], edges[-1] = -np.inf, np.inf
    e = np.histogram(expected, edges)[0] / expected.size
    a = np.histogram(actual, edges)[0] / actual.size
    e, a = np.clip(e, eps, None), np.clip(a, eps, None)
    return float(np.sum((a - e) * np.log(a / e)))


def top_items_overlap(previous: pd.Series, current: pd.Series, n: int = 100) -> float:
    """Jaccard overlap of the ``n`` most recommended items of two versions (1 = same)."""
    top_prev = set(previous.value_counts().head(n).index)
    top_cur = set(current.value_counts().head(n).index)
    if not top_prev and not top_cur:
        return 1.0
    return len(top_prev & top_cur) / len(top_prev | top_cur)


def catalog_coverage(recommended_items: pd.Series, catalog_size: int) -> float:
    """Share of the catalog that appears in at least one published list."""
    if catalog_size <= 0:
        return 0.0
    return recommended_items.nunique() / catalog_size


def recommendation_click_through(events: pd.DataFrame) -> pd.DataFrame:
    """Per day: product views, those that came from a recommendation, and the share.

    Parameters
    ----------
    events : DataFrame
        Columns ``event_date``, ``event_type``, ``recommendation_id`` (null when the view
        did not come from a recommendation).
    """
    views = events[events["event_type"] == "product_view"]
    out = (
        views.assign(from_rec=views["recommendation_id"].notna())
        .groupby("event_date", as_index=False)
        .agg(product_views=("from_rec", "size"), rec_views=("from_rec", "sum"))
    )
    out["click_through"] = out["rec_views"] / out["product_views"].where(out["product_views"] > 0)
    return out
