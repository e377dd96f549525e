"""The evaluation report's data: what the page shows, as plain JSON-able values.

``recsys`` stays a library that renders nothing: :func:`report_data` gathers the tables
(lists of dicts) and the facts of one training run; the page (template, charts, file) is
``include.reporting.evaluation``, called by the training task after the version is saved.
The data is saved in the model version as ``report.json``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from recsys import columns as C

#: Name of the report data in a model version directory.
REPORT_DATA = "report.json"
#: Metric columns that hold counts (shown as whole numbers).
COUNT_COLUMNS: tuple[str, ...] = (C.N_USERS, "n_items", "epoch", "n_points")


def _plain(value: Any) -> Any:
    """numpy scalars to Python, NaN to None (strict JSON)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def collapse_identical(rows: pd.DataFrame, metric_columns: list[str]) -> pd.DataFrame:
    """Rows of one segment whose metrics are all equal merged into one row.

    In the cold segment (items launched after T, no training interaction) every baseline that
    ranks by training interactions (popularity, co-occurrence, ALS...) scores the same, so
    their rows are identical; they become one row naming every model, with ``n_models``
    (columns outside ``metric_columns``, such as the fit time, are left empty there).
    """
    if rows.empty:
        return rows.assign(n_models=pd.Series(dtype="int64"))
    values = rows[metric_columns].astype("float64").round(12)
    key = pd.Series([repr(tuple(r)) for r in values.itertuples(index=False)], index=rows.index)
    groups = rows.assign(_key=key).groupby("_key", sort=False)
    merged = groups.first().reset_index(drop=True)
    merged[C.MODEL] = groups[C.MODEL].agg(", ".join).to_numpy()
    merged["n_models"] = groups.size().to_numpy()
    # other columns (fit time) differ between the merged models: not shown for a merged row
    other = [c for c in merged.columns if c not in (*metric_columns, C.MODEL, "n_models")]
    merged.loc[merged["n_models"] > 1, other] = np.nan
    return merged


def report_data(
    metrics: pd.DataFrame,
    dod: dict,
    *,
    title: str = "Trasos recommender: evaluation report",
    learning_curve: list[dict] | None = None,
    best_epoch: int | None = None,
    blend_search: list[dict] | None = None,
    snapshot: dict | None = None,
    timings: dict | None = None,
    version: str | None = None,
) -> dict[str, Any]:
    """Everything the evaluation page shows, JSON-able (no NaN: missing values are None).

    Parameters
    ----------
    metrics
        Evaluation table (:func:`recsys.evaluate.evaluate_models`), one row per (model, segment).
    dod
        ``DoDReport.to_dict()``; clause rows are passed through whole (extra fields such as
        ``ratio``, ``ci_low``, ``ci_high``, ``kind`` included).

    Returns
    -------
    dict
        ``title``, ``version``, ``candidate``, ``passed``, ``snapshot`` (fact/value rows),
        ``considered`` and ``clauses`` (rows), ``metric_columns`` (column names of the metric
        tables, model first), ``segments`` (``{"segment", "rows", "n_collapsed"}`` per segment,
        identical rows merged by :func:`collapse_identical`), ``metrics`` (all rows, for charts),
        ``learning_curve``, ``best_epoch``, ``blend_search``, ``timings`` (rows).
    """
    candidate = dod.get("candidate", "")
    considered = [
        {**c, "failed": ", ".join(c.get("failed") or [])} for c in dod.get("considered", [])
    ]
    metric_columns = [c for c in metrics.columns if c != C.SEGMENT]
    values = [c for c in metric_columns if c not in (C.MODEL, C.FIT_S)]
    segments = []
    for seg in C.SEGMENTS:
        sub = metrics[metrics[C.SEGMENT] == seg].drop(columns=[C.SEGMENT])
        if sub.empty:
            continue
        merged = collapse_identical(sub, values)
        segments.append(
            {
                "segment": seg,
                "rows": _records(merged),
                "n_collapsed": int((merged["n_models"] > 1).sum()),
            }
        )
    return {
        "title": title,
        "version": version,
        "candidate": candidate,
        "passed": bool(dod.get("passed", False)),
        # what this run publishes (kind candidate|baseline|none, the model, why) and which
        # version the API serves afterwards
        "publication": {k: _plain(v) for k, v in (dod.get("publication") or {}).items()},
        "snapshot": [{"fact": k, "value": str(v)} for k, v in (snapshot or {}).items()],
        "considered": [{k: _plain(v) for k, v in c.items()} for c in considered],
        "clauses": [{k: _plain(v) for k, v in c.items()} for c in dod.get("clauses", [])],
        "metric_columns": metric_columns,
        "segments": segments,
        "metrics": _records(metrics),
        "learning_curve": [{k: _plain(v) for k, v in r.items()} for r in learning_curve or []],
        "best_epoch": best_epoch,
        "blend_search": [{k: _plain(v) for k, v in r.items()} for r in blend_search or []],
        "timings": [{"step": k, "seconds": _plain(v)} for k, v in (timings or {}).items()],
    }
