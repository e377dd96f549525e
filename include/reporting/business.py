"""The business metrics report (DA): build the metrics marts, export them, render the report.

Steps (the ``business_metrics`` DAG runs one task each; the CLI runs them all):

1. :func:`build_marts` - ``dbt build --select path:models/marts/metrics`` (writes the
   warehouse: run it in the ``duckdb_writer`` pool).
2. :func:`export_marts` - every ``metrics_`` mart to Parquet and CSV in a new, never
   rewritten folder ``<reports>/business/exports/<export_id>/``, with ``definitions.json`` (the
   metric definitions from the dbt YAML) and ``manifest.json`` (row counts, date range).
   ``exports/LATEST`` names the newest one. Nothing after this step opens the warehouse.
3. :func:`write_lapsed_customers` - ``<reports>/business/lapsed_customers_<N>d.csv`` for
   marketing: contactable customers not seen for at least N days.
4. :func:`render_report` - ``<reports>/business/index.html``, one self-contained file (charts
   are inline SVG, no script, no network) with every chart's definition and date range.

Usage (``make report``)::

    python -m include.reporting.business [--lapsed-days N] [--from-export]

``--from-export`` skips dbt and the warehouse and re-renders from the latest export.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.settings import get_settings

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

DBT_SELECT = "path:models/marts/metrics"
METRICS_YAML_RELATIVE = Path("models/marts/metrics/_metrics__models.yml")
#: The marts exported, in the order the report uses them.
MARTS: tuple[str, ...] = (
    "metrics_conversion_daily",
    "metrics_time_to_return",
    "metrics_return_by_cohort",
    "metrics_retention_cohorts",
    "metrics_funnel_daily",
    "metrics_recommendation_impact",
    "metrics_customer_recency",
    "metrics_visitors",
)
DEFAULT_LAPSED_DAYS = 14
KEEP_EXPORTS = 10
LATEST_POINTER = "LATEST"
_EXPORT_ID = re.compile(r"^\d{8}T\d{12}Z$")
#: Columns of the marketing export, in file order.
LAPSED_COLUMNS: tuple[str, ...] = (
    "user_id",
    "country",
    "is_newsletter_subscriber",
    "last_session_date",
    "days_since_last_session",
    "last_purchase_date",
    "days_since_last_purchase",
    "n_orders",
    "n_sessions",
    "data_end_date",
)


# --- locations -------------------------------------------------------------------------------
def business_dir() -> Path:
    """``<reports>/business``: the report, the marketing CSVs and the exports."""
    return get_settings().reports_dir / "business"


def exports_dir() -> Path:
    return business_dir() / "exports"


def lapsed_path(days: int) -> Path:
    return business_dir() / f"lapsed_customers_{days}d.csv"


def _sql_literal(value: str | Path) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --- 1. build --------------------------------------------------------------------------------
def dbt_executable() -> str:
    local = Path(sys.executable).parent / "dbt"
    found = str(local) if local.exists() else shutil.which("dbt")
    if not found:
        raise FileNotFoundError("dbt is not installed in this environment: run `make setup`")
    return found


def build_marts(select: str | None = DBT_SELECT, target_path: Path | None = None) -> str:
    """``dbt build`` the metrics marts (and their tests) on the warehouse; the summary line.

    ``select=None`` builds the whole project. dbt's target and logs go under the state
    directory, so a run here never races a developer's ``dbt_project/target``. Raises
    ``RuntimeError`` with dbt's last lines on failure.
    """
    settings = get_settings()
    target = target_path or settings.state_dir / "dbt" / "target"
    env = dict(os.environ)
    env.setdefault("DBT_PROFILES_DIR", str(settings.dbt_project_dir))
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")
    env["TRASOS_DATA_DIR"] = str(settings.data_dir)
    command = [
        dbt_executable(),
        "build",
        *(["--select", select] if select else []),
        "--target-path",
        str(target),
        "--log-path",
        str(target.parent / "logs"),
    ]
    log.info("running %s", " ".join(command))
    proc = subprocess.run(
        command, cwd=settings.dbt_project_dir, env=env, capture_output=True, text=True
    )
    output = (proc.stdout or "") + (proc.stderr or "")
    for line in output.splitlines():
        log.info("dbt | %s", line)
    if proc.returncode != 0:
        tail = "\n".join(output.splitlines()[-40:])
        raise RuntimeError(
            f"`dbt build{f' --select {select}' if select else ''}` failed (exit {proc.returncode}). If a core mart "
            "(fct_sessions, fct_events, dim_customers) is missing, run the events_transform DAG "
            f"first (`make run`); otherwise fix the failing model or test below.\n{tail}"
        )
    done = [line for line in output.splitlines() if "Done. PASS=" in line]
    return done[-1].strip() if done else "dbt build finished"


# --- 2. export -------------------------------------------------------------------------------
def load_definitions(yaml_path: Path | None = None) -> dict[str, Any]:
    """Model and column descriptions of the metrics marts from their dbt YAML.

    Returns ``{model: {"description": str, "meta": dict, "columns": {column: str}}}`` with
    whitespace collapsed: the words of the YAML are the words of the report.
    """
    import yaml

    path = yaml_path or get_settings().dbt_project_dir / METRICS_YAML_RELATIVE
    document = yaml.safe_load(path.read_text(encoding="utf-8"))

    def clean(text: Any) -> str:
        return " ".join(str(text or "").split())

    definitions: dict[str, Any] = {}
    for model in document.get("models", []):
        meta = (model.get("config") or {}).get("meta") or model.get("meta") or {}
        definitions[model["name"]] = {
            "description": clean(model.get("description")),
            "meta": json.loads(json.dumps(meta, default=str)),
            "columns": {
                column["name"]: clean(column.get("description"))
                for column in model.get("columns", [])
            },
        }
    return definitions


def export_marts(keep: int = KEEP_EXPORTS) -> Path:
    """Copy every metrics mart out of the warehouse into a new immutable export folder.

    Opens the warehouse read-only (schedule it with the writers, in the ``duckdb_writer``
    pool, so no dbt run holds the file). Returns the folder; ``exports/LATEST`` names it.
    """
    from include.warehouse import connect

    root = exports_dir()
    root.mkdir(parents=True, exist_ok=True)
    export_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    staging = root / f".tmp-{export_id}"
    staging.mkdir()
    try:
        with connect(read_only=True) as con:
            present = {
                row[0]
                for row in con.execute(
                    "select table_name from information_schema.tables where table_schema = 'main'"
                ).fetchall()
            }
            missing = [mart for mart in MARTS if mart not in present]
            if missing:
                raise RuntimeError(
                    f"{', '.join(missing)} not in the warehouse {get_settings().warehouse_path}: "
                    f"build them first (`dbt build --select {DBT_SELECT}`, the "
                    "build_metrics_marts task)"
                )
            rows: dict[str, int] = {}
            for mart in MARTS:
                query = f"select * from main.{mart} order by all"
                rows[mart] = con.execute(f"select count(*) from main.{mart}").fetchall()[0][0]
                parquet = _sql_literal(staging / f"{mart}.parquet")
                csv = _sql_literal(staging / f"{mart}.csv")
                con.execute(f"copy ({query}) to {parquet} (format parquet)")
                con.execute(f"copy ({query}) to {csv} (format csv, header)")
            first, last = con.execute(
                "select min(session_date), max(session_date) from main.metrics_funnel_daily"
            ).fetchall()[0]
        manifest = {
            "export_id": export_id,
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "warehouse": str(get_settings().warehouse_path),
            "dbt_select": DBT_SELECT,
            "data_start_date": first.isoformat() if first else None,
            "data_end_date": last.isoformat() if last else None,
            "rows": rows,
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
        (staging / "definitions.json").write_text(json.dumps(load_definitions(), indent=2))
        final = root / export_id
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _write_atomic(root / LATEST_POINTER, export_id + "\n")
    _prune_exports(root, keep)
    log.info("exported %d marts to %s (%s)", len(MARTS), final, rows)
    return final


def _prune_exports(root: Path, keep: int) -> None:
    exports = sorted(p for p in root.iterdir() if p.is_dir() and _EXPORT_ID.match(p.name))
    for old in exports[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def latest_export() -> Path:
    """The newest export folder (``exports/LATEST``)."""
    pointer = exports_dir() / LATEST_POINTER
    if not pointer.exists():
        raise FileNotFoundError(
            f"no business metrics export under {exports_dir()}: run the business_metrics DAG "
            "or `python -m include.reporting.business` without --from-export first"
        )
    return exports_dir() / pointer.read_text().strip()


def load_export(export_dir: Path) -> dict[str, pd.DataFrame]:
    """Every exported mart as a DataFrame, read from its Parquet file (not the warehouse)."""
    import duckdb

    con = duckdb.connect()
    try:
        return {
            mart: con.execute(
                f"select * from read_parquet({_sql_literal(export_dir / f'{mart}.parquet')})"
            ).df()
            for mart in MARTS
        }
    finally:
        con.close()


# --- 3. lapsed customers -----------------------------------------------------------------------
def write_lapsed_customers(export_dir: Path, days: int = DEFAULT_LAPSED_DAYS) -> Path:
    """``lapsed_customers_<days>d.csv``: customers whose last visit is ``days`` or more days
    before the last day of data (metrics_customer_recency), longest-lapsed first."""
    import duckdb

    if int(days) != days or days < 1:
        raise ValueError(f"lapsed days must be a whole number of days >= 1, got {days!r}")
    source = _sql_literal(export_dir / "metrics_customer_recency.parquet")
    out = lapsed_path(int(days))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    con = duckdb.connect()
    try:
        con.execute(
            f"copy (select {', '.join(LAPSED_COLUMNS)} from read_parquet({source}) "
            f"where days_since_last_session >= {int(days)} "
            "order by days_since_last_session desc, user_id) "
            f"to {_sql_literal(tmp)} (format csv, header)"
        )
        n = con.execute(f"select count(*) from read_csv({_sql_literal(tmp)})").fetchall()[0][0]
    finally:
        con.close()
    os.replace(tmp, out)
    log.info("%d customers lapsed for %d+ days -> %s", n, days, out)
    return out


# --- 4. the report -----------------------------------------------------------------------------
def _fmt(value: Any, kind: str = "int") -> str:
    if value is None:
        return "–"
    try:
        if value != value:  # NaN / NA
            return "–"
    except (TypeError, ValueError):
        return "–"
    if kind == "pct":
        return f"{float(value):.1%}"
    if kind == "days":
        return f"{float(value):.1f}"
    if kind == "money":
        return f"{float(value):,.2f}"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "date":
        return str(value)[:10]
    return html.escape(str(value))


def _table(frame: pd.DataFrame, columns: Sequence[tuple[str, str, str]]) -> str:
    if frame.empty:
        return '<p class="empty">No rows.</p>'
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label, _ in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{kind}">{_fmt(row[column], kind)}</td>' for column, _, kind in columns
        )
        + "</tr>"
        for _, row in frame.iterrows()
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _date_range(*series: pd.Series) -> tuple[str | None, str | None]:
    values = [v for s in series for v in s.dropna().tolist()]
    if not values:
        return None, None
    return _fmt(min(values), "date"), _fmt(max(values), "date")


def _definitions_html(
    definitions: dict[str, Any], model: str, columns: Sequence[str], title: str | None = None
) -> str:
    entry = definitions.get(model, {})
    items = "".join(
        f"<dt>{html.escape(column)}</dt><dd>{html.escape(entry['columns'].get(column, ''))}</dd>"
        for column in columns
        if column in entry.get("columns", {})
    )
    heading = f"<h4>{html.escape(title)}</h4>" if title else ""
    return (
        f'<div class="definition" data-model="{model}">{heading}'
        f"<p>{html.escape(entry.get('description', ''))}</p><dl>{items}</dl></div>"
    )


def _section(
    section_id: str,
    title: str,
    question: str,
    date_range: tuple[str | None, str | None],
    chart: str | None,
    body: str,
    *,
    has_chart: bool = True,
) -> str:
    start, end = date_range
    span = (
        f"Data from <b>{start}</b> to <b>{end}</b> (UTC)." if start else "No data in this export."
    )
    if not has_chart:
        image = ""
    elif chart:
        image = f'<img class="chart" alt="{html.escape(title)}" src="{chart}">'
    else:
        image = '<p class="empty">No data to chart.</p>'
    return (
        f'<section id="{section_id}"><h2>{html.escape(title)}</h2>'
        f'<p class="question">{html.escape(question)}</p>'
        f'<p class="range" data-section="{section_id}">{span}</p>{image}{body}</section>'
    )


def _ratio_sum(frame: pd.DataFrame, numerator: str, denominator: str) -> float | None:
    if frame.empty:
        return None
    total = frame[denominator].sum()
    return float(frame[numerator].sum()) / float(total) if total else None


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
margin:0 auto;max-width:1100px;padding:1.5rem 2rem;color:#1b1b1b;line-height:1.45}
h1{margin-bottom:.2rem} h2{border-bottom:2px solid #1f5f99;padding-bottom:.2rem;margin-top:2.4rem}
nav a{margin-right:1rem} .meta{color:#555} .question{font-style:italic;color:#333}
.range{background:#eef3f8;padding:.3rem .6rem;border-radius:4px;display:inline-block}
img.chart{max-width:100%;height:auto;display:block;margin:.6rem 0;border:1px solid #e3e6ea}
.definition{background:#fafafa;border-left:4px solid #8a8f98;padding:.4rem .9rem;margin:.8rem 0}
.definition h4{margin:.3rem 0} dt{font-family:ui-monospace,monospace;font-weight:600;margin-top:.4rem}
dd{margin-left:1.2rem} table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #d8dce1;padding:.25rem .6rem} th{background:#eef3f8;text-align:left}
td.int,td.pct,td.days,td.money{text-align:right;font-variant-numeric:tabular-nums}
.headline{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:.8rem}
.kpi{border:1px solid #d8dce1;border-radius:6px;padding:.6rem .8rem}
.kpi b{display:block;font-size:1.5rem;color:#1f5f99} .empty{color:#8a8f98}
"""


def render_report(
    export_dir: Path,
    lapsed_days: int = DEFAULT_LAPSED_DAYS,
    lapsed_csv: Path | None = None,
) -> Path:
    """Render ``<reports>/business/index.html`` from an export folder; returns its path."""
    from include.reporting import charts

    frames = load_export(export_dir)
    definitions = json.loads((export_dir / "definitions.json").read_text())
    manifest = json.loads((export_dir / "manifest.json").read_text())
    out = business_dir() / "index.html"
    link_base = os.path.relpath(export_dir, out.parent)

    conversion = frames["metrics_conversion_daily"]
    returns = frames["metrics_time_to_return"]
    by_cohort = frames["metrics_return_by_cohort"]
    retention = frames["metrics_retention_cohorts"]
    funnel = frames["metrics_funnel_daily"]
    impact = frames["metrics_recommendation_impact"]
    recency = frames["metrics_customer_recency"]
    customer_returns = returns[returns["is_customer"].astype(bool)] if len(returns) else returns
    customer_visits = customer_returns[customer_returns["return_type"] == "session"]

    lapsed = recency[recency["days_since_last_session"] >= lapsed_days] if len(recency) else recency
    lapsed_csv = lapsed_csv or lapsed_path(lapsed_days)
    lapsed_link = os.path.relpath(lapsed_csv, out.parent)

    glossary = definitions.get("metrics_visitors", {}).get("meta", {}).get("glossary", {})
    glossary_html = "".join(
        f"<dt>{html.escape(term)}</dt><dd>{html.escape(' '.join(str(text).split()))}</dd>"
        for term, text in glossary.items()
    )
    impact_sorted = impact.sort_values("has_recommendation_click", ascending=False)
    with_rec = impact[impact["has_recommendation_click"].astype(bool)]
    without_rec = impact[~impact["has_recommendation_click"].astype(bool)]

    kpis = [
        (
            "Non-customer conversion",
            _fmt(_ratio_sum(conversion, "n_first_time_buyers", "n_non_customer_visitors"), "pct"),
        ),
        (
            "Median days to next visit (customers)",
            _fmt(
                customer_visits["days_to_return"].median() if len(customer_visits) else None, "days"
            ),
        ),
        (
            "Product view → purchase (sessions)",
            _fmt(_ratio_sum(funnel, "n_purchase_sessions", "n_product_view_sessions"), "pct"),
        ),
        (
            "Conversion with / without rec. click",
            f"{_fmt(with_rec['conversion_rate'].iloc[0] if len(with_rec) else None, 'pct')} / "
            f"{_fmt(without_rec['conversion_rate'].iloc[0] if len(without_rec) else None, 'pct')}",
        ),
        (f"Customers lapsed {lapsed_days}+ days", _fmt(len(lapsed))),
    ]
    headline = "".join(
        f'<div class="kpi">{html.escape(label)}<b>{value}</b></div>' for label, value in kpis
    )

    by_platform = (
        conversion.groupby("platform", as_index=False)[
            ["n_visitors", "n_non_customer_visitors", "n_first_time_buyers"]
        ].sum()
        if len(conversion)
        else conversion
    )
    if len(by_platform):
        by_platform["rate"] = by_platform["n_first_time_buyers"] / by_platform[
            "n_non_customer_visitors"
        ].where(by_platform["n_non_customer_visitors"] > 0)
    funnel_totals = (
        funnel[
            [
                "n_sessions",
                "n_product_view_sessions",
                "n_add_to_cart_sessions",
                "n_purchase_sessions",
                "n_sessions_with_any_purchase",
            ]
        ]
        .sum()
        .to_frame()
        .T
        if len(funnel)
        else funnel
    )
    data_range = (manifest.get("data_start_date"), manifest.get("data_end_date"))

    sections = [
        _section(
            "conversion",
            "Conversion of non-customers",
            "Do visitors who have never bought become customers more easily?",
            _date_range(conversion["activity_date"]),
            charts.conversion_trend(conversion),
            _definitions_html(
                definitions,
                "metrics_conversion_daily",
                [
                    "non_customer_conversion_rate",
                    "n_non_customer_visitors",
                    "n_first_time_buyers",
                    "n_visitors",
                    "n_new_visitors",
                ],
            )
            + "<h3>By platform, whole range</h3>"
            + _table(
                by_platform,
                [
                    ("platform", "platform", "text"),
                    ("n_visitors", "visitor-days", "int"),
                    ("n_non_customer_visitors", "non-customer visitor-days", "int"),
                    ("n_first_time_buyers", "first-time buyers", "int"),
                    ("rate", "non-customer conversion", "pct"),
                ],
            ),
        ),
        _section(
            "time-to-return",
            "Time to return",
            "Do customers come back sooner?",
            _date_range(returns["previous_date"], returns["returned_date"]),
            charts.time_to_return(returns, by_cohort),
            _definitions_html(
                definitions,
                "metrics_time_to_return",
                ["days_to_return", "is_customer", "return_type"],
                "Distribution (left)",
            )
            + _definitions_html(
                definitions,
                "metrics_return_by_cohort",
                ["cohort_week", "median_days_to_return", "return_rate_within_window"],
                "Trend by cohort (right)",
            )
            + _table(
                by_cohort.sort_values("cohort_week"),
                [
                    ("cohort_week", "cohort week", "date"),
                    ("n_customers", "new customers", "int"),
                    ("n_returned", "came back", "int"),
                    ("median_days_to_return", "median days to next visit", "days"),
                    ("median_days_to_second_order", "median days to 2nd order", "days"),
                    ("n_customers_window_observed", "followed for the window", "int"),
                    ("return_rate_within_window", "came back within window", "pct"),
                ],
            ),
        ),
        _section(
            "retention",
            "Retention by first-purchase cohort",
            "Of the customers who first bought in a week, how many buy again N weeks later?",
            data_range if len(retention) else (None, None),
            charts.retention_heatmap(retention),
            _definitions_html(
                definitions,
                "metrics_retention_cohorts",
                [
                    "cohort_week",
                    "weeks_since_first_purchase",
                    "purchasing_share",
                    "is_complete_week",
                ],
            ),
        ),
        _section(
            "funnel",
            "Shopping funnel",
            "Where do sessions drop out between viewing a product and buying it?",
            _date_range(funnel["session_date"]),
            charts.funnel(funnel),
            _definitions_html(
                definitions,
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
            + _table(
                funnel_totals,
                [
                    ("n_sessions", "sessions", "int"),
                    ("n_product_view_sessions", "product view", "int"),
                    ("n_add_to_cart_sessions", "add to cart", "int"),
                    ("n_purchase_sessions", "purchase", "int"),
                    ("n_sessions_with_any_purchase", "any purchase", "int"),
                ],
            ),
        ),
        _section(
            "recommendation-impact",
            "Recommendation impact",
            "Do sessions with a recommendation click convert more, and do visitors come back "
            "sooner after them?",
            _date_range(impact["first_session_date"], impact["last_session_date"]),
            charts.recommendation_impact(impact),
            _definitions_html(
                definitions,
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
            + _table(
                impact_sorted,
                [
                    ("session_group", "sessions", "text"),
                    ("n_sessions", "n", "int"),
                    ("conversion_rate", "conversion", "pct"),
                    ("revenue_per_session", "revenue / session", "money"),
                    ("return_rate", "came back", "pct"),
                    ("median_days_to_return", "median days to return", "days"),
                    ("return_rate_within_window", "came back within window", "pct"),
                ],
            ),
        ),
        _section(
            "lapsed-customers",
            f"Lapsed customers ({lapsed_days}+ days)",
            f"Which customers have not come back for {lapsed_days} days or more?",
            data_range if len(recency) else (None, None),
            None,
            f'<p><a href="{html.escape(lapsed_link)}">{html.escape(lapsed_csv.name)}</a>: '
            f"{len(lapsed):,} of {len(recency):,} contactable customers, counted back from the "
            "last day of data.</p>"
            + _definitions_html(
                definitions,
                "metrics_customer_recency",
                ["days_since_last_session", "last_purchase_date", "n_orders"],
            ),
            has_chart=False,
        ),
    ]
    exports = "".join(
        f'<li><a href="{html.escape(link_base)}/{mart}.csv">{mart}.csv</a> '
        f'(<a href="{html.escape(link_base)}/{mart}.parquet">Parquet</a>, '
        f"{manifest['rows'].get(mart, 0):,} rows)</li>"
        for mart in MARTS
    )
    nav = "".join(
        f'<a href="#{anchor}">{label}</a>'
        for anchor, label in (
            ("conversion", "Conversion"),
            ("time-to-return", "Time to return"),
            ("retention", "Retention"),
            ("funnel", "Funnel"),
            ("recommendation-impact", "Recommendations"),
            ("lapsed-customers", "Lapsed customers"),
            ("data", "Data"),
        )
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Trasos business metrics</title><style>{CSS}</style></head>
<body>
<h1>Trasos business metrics</h1>
<p class="meta">Data from <b>{manifest.get("data_start_date") or "–"}</b> to
<b>{manifest.get("data_end_date") or "–"}</b> (UTC) &middot; export {manifest["export_id"]}
&middot; generated {manifest["generated_at"]} &middot; owner: data analytics (DA)</p>
<nav>{nav}</nav>
<div class="headline">{headline}</div>
<section id="glossary"><h2>Words used in this report</h2><dl>{glossary_html}</dl></section>
{"".join(sections)}
<section id="data"><h2>Data</h2>
<p>Every number above comes from the export <code>{manifest["export_id"]}</code> (immutable
Parquet and CSV files built by dbt, <code>dbt build --select {DBT_SELECT}</code>); this page reads
no database.</p><ul>{exports}</ul></section>
</body></html>
"""
    _write_atomic(out, page)
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
