"""Task bodies of ``data_monitor`` (DE) and ``model_monitor`` (DS).

The data checks and the history page are DE plumbing (:mod:`include.monitoring`); the model
checks read the published lists and compute their figures with :mod:`recsys.monitoring`.
Both store their checks in ``monitoring.checks`` and notify the owning role of each alert.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from include.monitoring import (
    ALERT,
    OK,
    Check,
    notify_alerts,
    run_data_monitor,
    store_checks,
    write_page,
)
from include.settings import get_settings
from include.warehouse import connect, read_marts


def check_data(last_updated: dict[str, Any], role: str) -> dict[str, int]:
    """Run the data monitor (``last_updated``: Asset name -> last event time) and notify."""
    checks = run_data_monitor(last_updated)
    sent = notify_alerts(checks, role, "data_monitor", link=None)
    return {"checks": len(checks), "alerts": sent}


def check_model(role: str) -> dict[str, int]:
    """Run the model monitor on the published version and notify."""
    checks = run_model_monitor()
    sent = notify_alerts(checks, role, "model_monitor", link=None)
    return {"checks": len(checks), "alerts": sent}


def publish_page() -> str:
    """Render the monitoring history page; returns its path."""
    with connect() as con:
        return str(write_page(con, get_settings().reports_dir))


@dataclass(frozen=True)
class ModelMonitorConfig:
    """Thresholds of the model monitor (DS)."""

    max_model_age_days: float = 7.0
    min_coverage: float = 0.05
    max_score_psi: float = 0.25
    min_top_items_overlap: float = 0.3
    min_click_through: float = 0.0  # alert only when recommendations stop being clicked


def published_versions(published_dir) -> list[str]:
    """Published model versions, oldest first (folders holding recommendations.parquet)."""
    if not published_dir.exists():
        return []
    return sorted(
        p.name for p in published_dir.iterdir() if (p / "recommendations.parquet").exists()
    )


def run_model_monitor(
    cfg: ModelMonitorConfig | None = None, now: datetime | None = None
) -> list[Check]:
    """Coverage, drift against the previous version, model age and click-through."""
    import pandas as pd

    from recsys.monitoring import (
        catalog_coverage,
        population_stability_index,
        recommendation_click_through,
        top_items_overlap,
    )

    cfg = cfg or ModelMonitorConfig()
    now = now or datetime.now(UTC)
    published = get_settings().published_dir
    current_file = published / "CURRENT"
    today = now.date()
    checks: list[Check] = []
    if not current_file.exists():
        checks.append(
            Check(
                "model",
                "model_age_days",
                "",
                math.inf,
                cfg.max_model_age_days,
                ALERT,
                "no model has been published",
                today,
            )
        )
        with connect() as con:
            store_checks(con, "model", today, checks)
        return checks
    version = current_file.read_text().strip()
    meta = json.loads((published / version / "model.json").read_text())
    recs = pd.read_parquet(published / version / "recommendations.parquet")
    trained_at = datetime.fromisoformat(meta["trained_at"].replace("Z", "+00:00"))
    trained_at = trained_at if trained_at.tzinfo else trained_at.replace(tzinfo=UTC)
    age = (now - trained_at).total_seconds() / 86400
    checks.append(
        Check(
            "model",
            "model_age_days",
            version,
            age,
            cfg.max_model_age_days,
            ALERT if age > cfg.max_model_age_days else OK,
            f"model {version} trained {age:.1f} days ago",
            today,
        )
    )
    # the marts of the dbt target (DuckDB file or Spark warehouse); the checks go to the file
    with read_marts() as con:
        n_items = con.execute("select count(*) from dim_items").fetchall()[0][0]
        user_lists = recs[recs["list_type"] == "user"]
        cov = catalog_coverage(user_lists["item_id"], n_items)
        checks.append(
            Check(
                "model",
                "catalog_coverage",
                version,
                cov,
                cfg.min_coverage,
                ALERT if cov < cfg.min_coverage else OK,
                f"{cov:.1%} of {n_items} catalog items recommended",
                today,
            )
        )
        versions = published_versions(published)
        previous = [v for v in versions if v < version]
        if previous:
            prev = pd.read_parquet(published / previous[-1] / "recommendations.parquet")
            prev_user = prev[prev["list_type"] == "user"]
            psi = population_stability_index(
                prev_user["score"].to_numpy(), user_lists["score"].to_numpy()
            )
            overlap = top_items_overlap(prev_user["item_id"], user_lists["item_id"])
            checks.append(
                Check(
                    "model",
                    "score_psi",
                    version,
                    psi,
                    cfg.max_score_psi,
                    ALERT if psi > cfg.max_score_psi else OK,
                    f"score PSI {psi:.3f} against {previous[-1]}",
                    today,
                )
            )
            checks.append(
                Check(
                    "model",
                    "top_items_overlap",
                    version,
                    overlap,
                    cfg.min_top_items_overlap,
                    ALERT if overlap < cfg.min_top_items_overlap else OK,
                    f"top-100 items overlap {overlap:.0%} with {previous[-1]}",
                    today,
                )
            )
        events = con.execute(
            """
            select cast(event_at as date) as event_date, event_type, recommendation_id
            from fct_events
            where event_type = 'product_view'
              and cast(event_at as date) = (select max(cast(event_at as date)) from fct_events)
            """
        ).df()
        ctr = recommendation_click_through(events)
        if len(ctr):
            row = ctr.iloc[-1]
            value = float(row["click_through"] or 0.0)
            checks.append(
                Check(
                    "model",
                    "click_through",
                    "",
                    value,
                    cfg.min_click_through,
                    ALERT if value <= cfg.min_click_through else OK,
                    f"{int(row['rec_views'])} of {int(row['product_views'])} "
                    f"product views came from a recommendation",
                    row["event_date"],
                )
            )
    with connect() as con:
        store_checks(con, "model", today, checks)
    return checks
