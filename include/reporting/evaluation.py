"""The evaluation page of a training run, from the data ``recsys`` saves with the version.

``recsys.report.report_data`` gathers the tables (``report.json`` in the model version);
this module draws the charts from them (:mod:`include.reporting.charts`) and renders the
``evaluation.html`` template. The training task calls :func:`publish_report` once the version
is saved: ``<reports>/evaluation/<version>.html`` and ``<reports>/evaluation/latest.html``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.fs import atomic_write_text
from include.reporting.pages import render

#: Metric-table columns that count things (whole numbers on the page).
COUNT_COLUMNS = frozenset({"n_users", "n_items", "n_models", "epoch"})
#: The clause columns every definition of done has, then those shown when present.
CLAUSE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("id", "id", "text"),
    ("status", "status", "text"),
    ("observed", "observed", "metric"),
    ("required", "required", "metric"),
    ("margin", "margin", "metric"),
    ("margin_pct", "margin %", "points"),
)
OPTIONAL_CLAUSE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("kind", "kind", "text"),
    ("ratio", "ratio", "metric"),
    ("ci_low", "95% CI low", "metric"),
    ("ci_high", "95% CI high", "metric"),
    ("rule", "rule", "text"),
)
CLAUSE_TAIL: tuple[tuple[str, str, str], ...] = (
    ("owner", "owner", "text"),
    ("detail", "detail", "long"),
)


def column_kind(column: str) -> str:
    """How a column of the metric tables is formatted (see ``pages.fmt``)."""
    if column in COUNT_COLUMNS or column.startswith("n_"):
        return "int"
    if column in ("model", "candidate", "step", "fact", "value", "failed"):
        return "text"
    if column.endswith("weight"):  # a searched parameter: 0.35, and 32 rather than 32.0000
        return "num"
    return "metric"


def _count_text(value: Any) -> bool:
    return isinstance(value, str) and value.isdigit() and len(value) < 16


def clause_rows(clauses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The clauses as table rows: a clause on a count (``n_users[...] >= 100``) shows its
    observed, required and margin as whole numbers, like the count itself."""
    rows = []
    for clause in clauses:
        metric = str(clause.get("detail") or "").split("[", 1)[0]
        row = dict(clause)
        if metric and column_kind(metric) == "int":
            for key in ("observed", "required", "margin"):
                value = row.get(key)
                if isinstance(value, float) and value.is_integer():
                    row[key] = int(value)
        rows.append(row)
    return rows


def _columns(names: list[str]) -> list[tuple[str, str, str]]:
    return [(name, name, column_kind(name)) for name in names]


def page_context(data: dict[str, Any]) -> dict[str, Any]:
    """The page's context: ``data`` (:func:`recsys.report.report_data`) plus charts and the
    column lists of its tables."""
    import pandas as pd

    from include.reporting import charts

    candidate = data.get("candidate", "")
    metrics = pd.DataFrame(data.get("metrics", []))
    clauses = data.get("clauses", [])
    optional = [c for c in OPTIONAL_CLAUSE_COLUMNS if any(r.get(c[0]) is not None for r in clauses)]
    curve = data.get("learning_curve") or []
    search = data.get("blend_search") or []
    blend_image = charts.blend_search(search)
    for row in data.get("segments", []):
        for r in row["rows"]:
            r["row_class"] = "cand" if r.get("model") == candidate else ""
    for r in data.get("considered", []):
        r["row_class"] = "pass" if r.get("passed") else "fail"
    snapshot = [  # counts arrive as strings: 247126 -> 247,126 (not a hash of digits)
        {**r, "value": f"{int(r['value']):,}"} if _count_text(r.get("value")) else r
        for r in data.get("snapshot") or []
    ]
    return {
        **data,
        "snapshot": snapshot,
        "clauses": clause_rows(clauses),
        "clause_columns": [*CLAUSE_COLUMNS, *optional, *CLAUSE_TAIL],
        "has_ci": any(c[0] == "ci_low" for c in optional),
        "metric_table_columns": _columns(list(data.get("metric_columns", [])) + ["n_models"]),
        "metric_charts": [
            {"title": metric, "image": charts.evaluation_bars(metrics, metric, candidate)}
            for metric in ("ndcg@10", "recall@20")
        ],
        "curve_image": charts.learning_curve(curve, data.get("best_epoch")),
        "curve_columns": _columns(list(curve[0])) if curve else [],
        "blend_image": blend_image,
        "blend_columns": _columns(list(search[0])) if search else [],
        "session": data.get("session"),
    }


def session_context(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    """The session model's table (``session_metrics.json`` of ``recsys.session.training``):
    one row per model with HR@20, MRR@20 and the ratios to cosine co-occurrence."""
    if not metrics or not metrics.get("models"):
        return None
    models = metrics["models"]
    base = models.get("cooccurrence", {})
    rows = []
    for name, v in models.items():
        row = {"model": name, "hr@20": v.get("hr@20"), "mrr@20": v.get("mrr@20")}
        for key in ("hr@20", "mrr@20"):
            ref = base.get(key)
            row[f"{key} vs cooccurrence"] = (
                v.get(key) / ref if ref and v.get(key) is not None else None
            )
        row["row_class"] = "cand" if name == metrics.get("candidate") else ""
        rows.append(row)
    clause = metrics.get("clause") or {}
    return {
        "candidate": metrics.get("candidate"),
        "n_test_sessions": metrics.get("n_test_sessions", 0),
        "split_at": metrics.get("split_at"),
        "rows": rows,
        "columns": _columns([c for c in rows[0] if c != "row_class"]),
        "clause": [clause] if clause else [],
        "hybrid": metrics.get("hybrid"),
    }


def render_report(data: dict[str, Any]) -> str:
    """The evaluation page as one self-contained HTML string."""
    return render("evaluation.html", **page_context(data))


def publish_report(
    report_data: str | Path,
    reports_dir: str | Path,
    version: str,
    session: dict[str, Any] | None = None,
) -> Path:
    """Render a version's ``report.json`` to ``<reports_dir>/<version>.html`` and
    ``<reports_dir>/latest.html`` (both atomically); returns the version's page.

    ``session``: the session model's figures (``session_metrics.json``), shown as a table."""
    data = json.loads(Path(report_data).read_text(encoding="utf-8"))
    data["session"] = session_context(session)
    page = render_report(data)
    out = atomic_write_text(Path(reports_dir) / f"{version}.html", page)
    atomic_write_text(Path(reports_dir) / "latest.html", page)
    return out
