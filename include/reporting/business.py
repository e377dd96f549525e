"""The business metrics report (DA): build the metrics marts, export them, render the report.

Steps (the ``business_metrics`` DAG runs one task each; the CLI runs them all):

1. :func:`build_marts` - ``dbt build --select path:models/marts/metrics`` (writes the
   warehouse: run it in the ``duckdb_writer`` pool). See :mod:`include.reporting.export`.
2. :func:`export_marts` - every ``metrics_`` mart to Parquet and CSV in a new, never
   rewritten folder ``<reports>/business/exports/<export_id>/``; ``exports/LATEST`` names
   the newest one. Nothing after this step opens the warehouse.
3. :func:`write_lapsed_customers` - ``<reports>/business/lapsed_customers_<N>d.csv`` for
   marketing (:mod:`include.reporting.lapsed`).
4. :func:`render_report` - ``<reports>/business/index.html`` from the ``business.html``
   template: one self-contained file (charts are inline SVG, no script, no network) with
   every chart's definition and date range. Every figure on it is a mart value (the headline
   figures are ``metrics_headline``); this module only picks rows and draws charts.

Usage (``make report``)::

    python -m include.reporting.business [--lapsed-days N] [--from-export]

``--from-export`` skips dbt and the warehouse and re-renders from the latest export.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.reporting.export import (
    DBT_SELECT,
    MARTS,
    build_marts,
    business_dir,
    export_marts,
    latest_export,
    load_definitions,
    load_export,
    sql_literal,
)
from include.reporting.lapsed import (
    DEFAULT_LAPSED_DAYS,
    LAPSED_COLUMNS,
    count_lapsed,
    lapsed_path,
    write_lapsed_customers,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DBT_SELECT",
    "DEFAULT_LAPSED_DAYS",
    "LAPSED_COLUMNS",
    "MARTS",
    "build_marts",
    "business_dir",
    "export_marts",
    "latest_export",
    "lapsed_path",
    "load_definitions",
    "load_export",
    "main",
    "page_context",
    "render_report",
    "sql_literal",
    "write_lapsed_customers",
]

log = logging.getLogger(__name__)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict(orient="records")


def _date_range(*series: pd.Series) -> tuple[Any, Any] | None:
    """First and last date of the rows a section shows (None: no rows)."""
    values = [v for s in series for v in s.dropna().tolist()]
    return (min(values), max(values)) if values else None


def _definition(
    definitions: dict[str, Any], model: str, columns: Sequence[str], title: str | None = None
) -> dict[str, Any]:
    entry = definitions.get(model, {})
    described = entry.get("columns", {})
    return {
        "model": model,
        "title": title,
        "description": entry.get("description", ""),
        "columns": [(c, described[c]) for c in columns if c in described],
    }


def verdict(row: dict[str, Any], srm_flagged: bool) -> str:
    """One sentence: did the treatment move this metric (from the mart's interval)?"""
    if srm_flagged:
        return "Not readable: the split of visitors does not match the configuration (SRM)."
    if row.get("uplift_abs") is None or row["uplift_abs"] != row["uplift_abs"]:
        return "Not enough data in one of the variants."
    better = (
        row["uplift_abs"] > 0 if row["metric"] != "median_days_to_return" else row["uplift_abs"] < 0
    )
    if not row["is_significant"]:
        return "No detectable difference: the 95 % interval includes zero."
    return "Yes, it worked: " if better else "It got worse: "


def experiment_context(frames: dict[str, pd.DataFrame]) -> list[dict[str, Any]]:
    """Per experiment: its SRM row, and per metric the uplift row, a verdict and a chart."""
    from include.reporting import charts

    needed = ("metrics_experiment_uplift", "metrics_experiment_srm", "metrics_experiment_variants")
    if any(name not in frames for name in needed):  # an export from before the experiment marts
        return []
    uplift = frames["metrics_experiment_uplift"]
    srm = {r["experiment_id"]: r for r in _records(frames["metrics_experiment_srm"])}
    variants = frames["metrics_experiment_variants"]
    out = []
    for experiment_id in sorted(srm):
        check = srm[experiment_id]
        rows = _records(
            uplift[uplift["experiment_id"] == experiment_id].sort_values("metric_order")
        )
        metrics = []
        for row in rows:
            metrics.append(
                {
                    **row,
                    "verdict": verdict(row, bool(check["srm_flagged"])),
                    "chart": charts.experiment_metric(row),
                }
            )
        out.append(
            {
                "experiment_id": experiment_id,
                "srm": check,
                "metrics": metrics,
                "variants": _records(
                    variants[variants["experiment_id"] == experiment_id].sort_values("variant")
                ),
            }
        )
    return out


def page_context(
    export_dir: Path,
    lapsed_days: int = DEFAULT_LAPSED_DAYS,
    lapsed_csv: Path | None = None,
    page_dir: Path | None = None,
) -> dict[str, Any]:
    """Everything the report shows, read from an export folder (no database).

    ``page_dir`` is where the page will live (links to the CSVs are relative to it).
    """
    from include.reporting import charts

    frames = load_export(export_dir)
    definitions = json.loads((export_dir / "definitions.json").read_text())
    manifest = json.loads((export_dir / "manifest.json").read_text())
    page_dir = page_dir or business_dir()
    lapsed_csv = lapsed_csv or lapsed_path(lapsed_days)

    headline = frames["metrics_headline"]
    conversion = frames["metrics_conversion_daily"]
    returns = frames["metrics_time_to_return"]
    by_cohort = frames["metrics_return_by_cohort"]
    retention = frames["metrics_retention_cohorts"]
    funnel = frames["metrics_funnel_daily"]
    impact = frames["metrics_recommendation_impact"]
    recency = frames["metrics_customer_recency"]
    data_range = (manifest.get("data_start_date"), manifest.get("data_end_date"))
    totals = _records(headline)[0] if len(headline) else {}  # metrics_headline: one row
    link_base = Path(os.path.relpath(export_dir, page_dir)).as_posix()

    def definition(model: str, columns: Sequence[str], title: str | None = None) -> dict:
        return _definition(definitions, model, columns, title)

    experiments = experiment_context(frames)
    return {
        "experiments": experiments,
        "title": "Trasos business metrics",
        "manifest": manifest,
        "dbt_select": DBT_SELECT,
        "headline": totals,
        "lapsed_days": lapsed_days,
        "n_lapsed": count_lapsed(lapsed_csv) if lapsed_csv.exists() else None,
        "n_contactable": len(recency),
        "lapsed_name": lapsed_csv.name,
        "lapsed_href": Path(os.path.relpath(lapsed_csv, page_dir)).as_posix(),
        "glossary": {
            term: " ".join(str(text).split())
            for term, text in definitions.get("metrics_visitors", {})
            .get("meta", {})
            .get("glossary", {})
            .items()
        },
        "ranges": {
            "conversion": _date_range(conversion["activity_date"]),
            "time-to-return": _date_range(returns["previous_date"], returns["returned_date"]),
            "retention": data_range if len(retention) else None,
            "funnel": _date_range(funnel["session_date"]),
            "recommendation-impact": _date_range(
                impact["first_session_date"], impact["last_session_date"]
            ),
            "lapsed-customers": data_range if len(recency) else None,
            "experiment": data_range if experiments else None,
        },
        "charts": {
            "conversion": charts.conversion_trend(frames["metrics_conversion_trend"]),
            "time-to-return": charts.time_to_return(returns, by_cohort, totals),
            "retention": charts.retention_heatmap(retention),
            "funnel": charts.funnel(funnel, totals),
            "recommendation-impact": charts.recommendation_impact(impact),
        },
        "definitions": {
            "conversion": [
                definition(
                    "metrics_conversion_daily",
                    [
                        "non_customer_conversion_rate",
                        "n_non_customer_visitors",
                        "n_first_time_buyers",
                        "n_visitors",
                        "n_new_visitors",
                    ],
                ),
                definition(
                    "metrics_conversion_trend",
                    ["rolling_non_customer_conversion_rate"],
                    "Rolling rate (chart, top)",
                ),
            ],
            "time-to-return": [
                definition(
                    "metrics_time_to_return",
                    ["days_to_return", "is_customer", "return_type"],
                    "Distribution (left)",
                ),
                definition(
                    "metrics_return_by_cohort",
                    ["cohort_week", "median_days_to_return", "return_rate_within_window"],
                    "Trend by cohort (right)",
                ),
            ],
            "retention": [
                definition(
                    "metrics_retention_cohorts",
                    [
                        "cohort_week",
                        "weeks_since_first_purchase",
                        "purchasing_share",
                        "is_complete_week",
                    ],
                )
            ],
            "funnel": [
                definition(
                    "metrics_funnel_daily",
                    [
                        "n_product_view_sessions",
                        "n_add_to_cart_sessions",
                        "n_purchase_sessions",
                        "view_to_cart_rate",
                        "cart_to_purchase_rate",
                        "view_to_purchase_rate",
                        "n_sessions_with_any_purchase",
                    ],
                )
            ],
            "recommendation-impact": [
                definition(
                    "metrics_recommendation_impact",
                    [
                        "has_recommendation_click",
                        "conversion_rate",
                        "return_rate",
                        "median_days_to_return",
                        "return_rate_within_window",
                        "revenue_per_session",
                    ],
                )
            ],
            "experiment": [
                definition(
                    "metrics_experiment_uplift",
                    ["metric", "uplift_abs", "uplift_rel", "is_significant"],
                ),
                definition(
                    "metrics_experiment_srm",
                    ["configured_control_share", "observed_control_share", "srm_flagged"],
                ),
            ],
            "lapsed-customers": [
                definition(
                    "metrics_customer_recency",
                    ["days_since_last_session", "last_purchase_date", "n_orders"],
                )
            ],
            "headline": [
                definition(
                    "metrics_headline",
                    [
                        "non_customer_conversion_rate",
                        "median_days_to_next_visit_customers",
                        "view_to_purchase_rate",
                    ],
                )
            ],
        },
        "tables": {
            "by_platform": _records(
                frames["metrics_conversion_by_platform"].sort_values("platform")
            ),
            "by_cohort": _records(by_cohort.sort_values("cohort_week")),
            "funnel_totals": _records(headline),
            "impact": _records(impact.sort_values("has_recommendation_click", ascending=False)),
        },
        "exports": [
            {
                "mart": mart,
                "csv_href": f"{link_base}/{mart}.csv",
                "parquet_href": f"{link_base}/{mart}.parquet",
                "rows": manifest["rows"].get(mart, 0),
            }
            for mart in MARTS
        ],
    }


def render_report(
    export_dir: Path,
    lapsed_days: int = DEFAULT_LAPSED_DAYS,
    lapsed_csv: Path | None = None,
) -> Path:
    """Render ``<reports>/business/index.html`` from an export folder; returns its path."""
    from include.reporting.pages import write_page

    out = business_dir() / "index.html"
    context = page_context(export_dir, lapsed_days, lapsed_csv, out.parent)
    write_page(out, "business.html", **context)
    log.info("business report -> %s", out)
    return out


# --- CLI -------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m include.reporting.business",
        description="Rebuild the business metrics report by hand (what the business_metrics "
        "DAG does): dbt build of the metrics marts, export, lapsed-customer CSV, HTML report.",
    )
    parser.add_argument(
        "--lapsed-days",
        type=int,
        default=DEFAULT_LAPSED_DAYS,
        help=f"a customer is lapsed after this many days without a visit "
        f"(default {DEFAULT_LAPSED_DAYS})",
    )
    parser.add_argument(
        "--from-export",
        action="store_true",
        help="skip dbt and the warehouse: re-render from the latest export",
    )
    args = parser.parse_args(argv)
    if args.lapsed_days < 1:
        parser.error("--lapsed-days must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    if args.from_export:
        export_dir = latest_export()
    else:
        print(build_marts(), flush=True)
        export_dir = export_marts()
    lapsed = write_lapsed_customers(export_dir, args.lapsed_days)
    report = render_report(export_dir, args.lapsed_days, lapsed)
    print(f"export:           {export_dir}")
    print(f"lapsed customers: {lapsed}")
    print(f"report:           {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
