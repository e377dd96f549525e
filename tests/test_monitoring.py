"""Monitors fire on constructed anomalies and stay quiet on normal data."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest

from include import monitoring as m
from include.settings import get_settings
from include.tasks import monitoring as tm
from recsys.monitoring import (
    catalog_coverage,
    population_stability_index,
    recommendation_click_through,
    top_items_overlap,
)

DAY = date(2026, 10, 15)
NOW = datetime(2026, 10, 16, 6, tzinfo=UTC)


def make_raw(con, volumes: dict[date, int], keys_on_day: list[str] | None = None) -> None:
    """raw.events with ``volumes[day]`` product views per day, and raw.ingest_manifest."""
    con.execute("create schema if not exists raw")
    rows = []
    for d, n in volumes.items():
        keys = keys_on_day if (keys_on_day is not None and d == DAY) else ["list_position"]
        props = json.dumps({k: 1 for k in keys})
        rows.append((d, "product_view", False, props, n))
    frame = pd.DataFrame(rows, columns=["event_date", "event_type", "is_bot", "properties", "n"])
    con.register("f", frame)
    con.execute(
        "create or replace table raw.events as select event_date, event_type, is_bot, properties "
        "from f, range(n)"
    )
    con.execute(
        "create or replace table raw.ingest_manifest as select 'events' as dataset, "
        "event_date::timestamp as batch_start, n::bigint as lines_in, "
        "(case when event_date = ? then n // 10 else n // 100 end)::bigint as quarantined "
        "from f",
        [DAY],
    )


def history(days: int = 14, n: int = 1000) -> dict[date, int]:
    return {DAY - timedelta(days=i): n for i in range(days, 0, -1)}


def test_freshness_alerts_on_a_stale_asset_only() -> None:
    cfg = m.DataMonitorConfig(cadence_hours={"raw_events": 2.0, "sessions": 3.0, "catalog": 26})
    checks = m.freshness_checks(
        {"raw_events": NOW - timedelta(hours=10), "sessions": NOW - timedelta(hours=1)},
        NOW,
        cfg,
    )
    by = {c.dimension: c for c in checks}
    assert by["raw_events"].status == m.ALERT and by["raw_events"].value == pytest.approx(10)
    assert by["sessions"].status == m.OK and by["sessions"].value == pytest.approx(1)
    assert by["catalog"].status == m.ALERT and math.isinf(by["catalog"].value)  # never updated


def test_volume_drop_of_60_percent_alerts() -> None:
    con = duckdb.connect()
    make_raw(con, {**history(), DAY: 400})
    (check,) = m.volume_checks(con, DAY, m.DataMonitorConfig())
    # flat history of 1000/day: std 0, so the Poisson floor sqrt(1000) is the spread
    assert check.value == pytest.approx((400 - 1000) / math.sqrt(1000))
    assert check.status == m.ALERT


def test_volume_normal_day_is_quiet() -> None:
    con = duckdb.connect()
    rng = np.random.default_rng(3)
    volumes = {d: int(v) for d, v in zip(history(), rng.poisson(1000, 14), strict=True)}
    make_raw(con, {**volumes, DAY: 1030})
    (check,) = m.volume_checks(con, DAY, m.DataMonitorConfig())
    assert check.status == m.OK and abs(check.value) < 3


def test_quarantine_rate_spike_alerts_and_schema_drift_warns() -> None:
    con = duckdb.connect()
    make_raw(con, {**history(), DAY: 1000}, keys_on_day=["list_position", "coupon_code"])
    rate, trend = m.quarantine_checks(con, DAY, m.DataMonitorConfig())
    assert rate.value == pytest.approx(0.1) and rate.status == m.ALERT  # 100 of 1000 > 5 %
    assert trend.status == m.ALERT  # 10 % against a steady 1 %
    new, missing = m.schema_drift_checks(con, DAY, m.DataMonitorConfig())
    assert new.status == m.WARN and new.dimension == "coupon_code"
    assert missing.status == m.OK


def test_normal_quarantine_and_schema_are_quiet() -> None:
    con = duckdb.connect()
    make_raw(con, {**history(), DAY: 1000}, keys_on_day=["list_position"])
    con.execute("update raw.ingest_manifest set quarantined = lines_in // 100")
    rate, trend = m.quarantine_checks(con, DAY, m.DataMonitorConfig())
    assert rate.status == m.OK and trend.status == m.OK
    assert all(c.status == m.OK for c in m.schema_drift_checks(con, DAY, m.DataMonitorConfig()))


def test_checks_are_stored_idempotently_and_rendered(data_dir) -> None:
    con = duckdb.connect()
    make_raw(con, {**history(), DAY: 400})
    checks = m.volume_checks(con, DAY, m.DataMonitorConfig())
    m.store_checks(con, "data", DAY, checks)
    m.store_checks(con, "data", DAY, checks)  # a re-run replaces, never doubles
    assert con.execute("select count(*) from monitoring.checks").fetchall()[0][0] == 1
    context = m.page_context(m.history(con))
    [row] = context["rows"]
    assert (row["metric"], row["status"], pd.Timestamp(row["day"]).date()) == (
        "volume_z",
        m.ALERT,
        DAY,
    )
    assert context["n_alerts"] == 1
    assert [pd.Timestamp(d).date() for d in context["data_days"]] == [DAY, DAY]
    [chart] = context["charts"]
    assert chart["title"] == "data: volume_z"
    assert chart["image"].startswith("data:image/svg+xml;base64,")
    page = m.write_page(con, get_settings().reports_dir)
    assert page.exists() and (page.parent / "checks.parquet").exists()


def test_one_data_day_is_charted_on_a_three_day_axis() -> None:
    # one point used to sit alone on a 2025-2029 axis (matplotlib widens a single date)
    import matplotlib.dates as mdates

    from include.reporting.charts import check_history_figure

    one = pd.DataFrame(
        {"day": [DAY], "value": [4.2], "threshold": [3.0], "dimension": ["product_view"]}
    )
    ax = check_history_figure(one, "data: volume_z").axes[0]
    low, high = (mdates.num2date(x).date() for x in ax.get_xlim())
    assert (low, high) == (DAY - timedelta(days=1), DAY + timedelta(days=1))


def test_monitoring_page_labels_data_days_apart_from_wall_clock(data_dir) -> None:
    from include.reporting.pages import render

    con = duckdb.connect()
    make_raw(con, {**history(), DAY: 400})
    m.store_checks(con, "data", DAY, m.volume_checks(con, DAY, m.DataMonitorConfig()))
    context = m.page_context(m.history(con))
    text = render("monitoring.html", **context)
    assert "Data days (the dates of the events checked" in text
    assert "Checks measured (wall clock, UTC)" in text
    assert (
        render("monitoring.html", **m.page_context(m.history(duckdb.connect()))).count(
            "No checks yet."
        )
        == 1
    )


def test_model_figures_by_hand() -> None:
    same = np.linspace(0, 1, 1000)
    assert population_stability_index(same, same) == pytest.approx(0.0)
    assert population_stability_index(same, same + 0.5) > 0.25
    assert top_items_overlap(pd.Series(list("aabbc")), pd.Series(list("bbcd")), n=2) == 1 / 3
    assert catalog_coverage(pd.Series(["a", "b", "b"]), 10) == 0.2
    ctr = recommendation_click_through(
        pd.DataFrame(
            {
                "event_date": [DAY] * 4,
                "event_type": ["product_view"] * 3 + ["purchase"],
                "recommendation_id": ["r1", None, None, "r1"],
            }
        )
    )
    assert ctr["click_through"].tolist() == [pytest.approx(1 / 3)]


def publish(version: str, items: list[str], scores: list[float], trained_at: datetime) -> None:
    root = get_settings().published_dir / version
    root.mkdir(parents=True)
    pd.DataFrame(
        {
            "list_type": "user",
            "key_id": [f"u{i}" for i in range(len(items))],
            "rank": 1,
            "item_id": items,
            "score": scores,
            "model_version": version,
            "generated_at": trained_at.replace(tzinfo=None),
        }
    ).to_parquet(root / "recommendations.parquet")
    (root / "model.json").write_text(json.dumps({"trained_at": trained_at.isoformat()}))
    (get_settings().published_dir / "CURRENT").write_text(version)


def test_model_monitor_alerts_on_coverage_collapse_and_drift(data_dir) -> None:
    from include.warehouse import connect

    with connect() as con:
        con.execute("create table dim_items as select 'i' || range as item_id from range(100)")
        con.execute(
            "create table fct_events as select timestamp '2026-10-15 10:00' as event_at, "
            "'product_view' as event_type, case when range < 5 then 'r' end as recommendation_id "
            "from range(50)"
        )
    publish("v1", [f"i{i}" for i in range(50)], list(np.linspace(0, 1, 50)), NOW)
    publish("v2", ["i1"] * 50, list(np.linspace(5, 6, 50)), NOW - timedelta(days=10))
    checks = {c.metric: c for c in tm.run_model_monitor(now=NOW)}
    assert checks["catalog_coverage"].value == pytest.approx(0.01)  # 1 item of 100
    assert checks["catalog_coverage"].status == m.ALERT
    assert checks["score_psi"].status == m.ALERT
    assert checks["top_items_overlap"].status == m.ALERT
    assert checks["model_age_days"].status == m.ALERT  # trained 10 days ago, max 7
    assert checks["click_through"].value == pytest.approx(0.1)
    assert checks["click_through"].status == m.OK


def test_model_monitor_quiet_on_a_healthy_model(data_dir) -> None:
    from include.warehouse import connect

    with connect() as con:
        con.execute("create table dim_items as select 'i' || range as item_id from range(100)")
        con.execute(
            "create table fct_events as select timestamp '2026-10-15 10:00' as event_at, "
            "'product_view' as event_type, 'r' as recommendation_id from range(3)"
        )
    items = [f"i{i}" for i in range(60)]
    publish("v1", items, list(np.linspace(0, 1, 60)), NOW - timedelta(days=1))
    publish("v2", items[::-1], list(np.linspace(0, 1, 60)), NOW - timedelta(days=1))
    checks = tm.run_model_monitor(now=NOW)
    assert [c.metric for c in checks if c.status != m.OK] == []


def test_data_monitor_on_a_platform_never_ingested_alerts_on_freshness_only(data_dir) -> None:
    """No raw.events yet (fresh install): no crash, every Asset is stale, nothing else runs."""
    cfg = m.DataMonitorConfig(cadence_hours={"raw_events": 2.0, "sessions": 3.0})
    checks = m.run_data_monitor({"raw_events": None, "sessions": None}, cfg, now=NOW)
    assert [(c.metric, c.dimension, c.status) for c in checks] == [
        ("freshness_hours", "raw_events", m.ALERT),
        ("freshness_hours", "sessions", m.ALERT),
    ]
    con = duckdb.connect(str(get_settings().warehouse_path), read_only=True)
    try:  # stored for the monitoring page, dated today
        rows = con.execute("select metric, day from monitoring.checks").fetchall()
    finally:
        con.close()
    assert rows == [("freshness_hours", NOW.date())] * 2
