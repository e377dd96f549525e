"""The business metrics marts: build them with dbt, export them to immutable files.

1. :func:`build_marts` - ``dbt build --select path:models/marts/metrics`` through
   :func:`include.dbt_runner.run_dbt` (writes the warehouse: run it in the ``duckdb_writer``
   pool).
2. :func:`export_marts` - every mart of :data:`MARTS` to Parquet and CSV in a new, never
   rewritten folder ``<reports>/business/exports/<export_id>/``, with ``definitions.json``
   (the metric definitions from the dbt YAML) and ``manifest.json`` (row counts, date range).
   ``exports/LATEST`` names the newest one. Nothing after this step opens the warehouse.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.fs import atomic_dir, atomic_write_text
from include.settings import get_settings

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

DBT_SELECT = "path:models/marts/metrics"
METRICS_YAML_RELATIVE = Path("models/marts/metrics/_metrics__models.yml")
#: The marts exported, in the order the report uses them.
MARTS: tuple[str, ...] = (
    "metrics_headline",
    "metrics_conversion_daily",
    "metrics_conversion_trend",
    "metrics_conversion_by_platform",
    "metrics_time_to_return",
    "metrics_return_by_cohort",
    "metrics_retention_cohorts",
    "metrics_funnel_daily",
    "metrics_recommendation_impact",
    "metrics_customer_recency",
    "metrics_visitors",
    "metrics_experiment_visitors",
    "metrics_experiment_variants",
    "metrics_experiment_uplift",
    "metrics_experiment_srm",
)
KEEP_EXPORTS = 10
LATEST_POINTER = "LATEST"
_EXPORT_ID = re.compile(r"^\d{8}T\d{12}Z$")


# --- locations -------------------------------------------------------------------------------
def business_dir() -> Path:
    """``<reports>/business``: the report, the marketing CSVs and the exports."""
    return get_settings().reports_dir / "business"


def exports_dir() -> Path:
    return business_dir() / "exports"


def sql_literal(value: str | Path) -> str:
    """``value`` as a quoted SQL string literal (file paths in DuckDB ``copy``/``read_*``)."""
    return "'" + str(value).replace("'", "''") + "'"


# --- 1. build --------------------------------------------------------------------------------
def build_marts(select: str | None = DBT_SELECT, target_path: Path | None = None) -> str:
    """``dbt build`` the metrics marts (and their tests) on the warehouse; the summary line.

    ``select=None`` builds the whole project. Raises ``RuntimeError`` with dbt's last lines
    on failure.
    """
    from include.dbt_runner import run_dbt

    try:
        proc = run_dbt(["build", *(["--select", select] if select else [])], target_path)
    except RuntimeError as exc:
        raise RuntimeError(
            f"{exc}\nIf a core mart (fct_sessions, fct_events, dim_customers) is missing, run "
            "the events_transform DAG first (`make run`)."
        ) from exc
    output = (proc.stdout or "") + (proc.stderr or "")
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
    from include.warehouse import read_marts

    root = exports_dir()
    export_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    final = root / export_id
    with atomic_dir(final, replace=False) as staging:
        with read_marts() as con:
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
                parquet = sql_literal(staging / f"{mart}.parquet")
                csv = sql_literal(staging / f"{mart}.csv")
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
    atomic_write_text(root / LATEST_POINTER, export_id + "\n")
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
                f"select * from read_parquet({sql_literal(export_dir / f'{mart}.parquet')})"
            ).df()
            for mart in MARTS
        }
    finally:
        con.close()
