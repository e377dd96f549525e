"""Monitoring of the data (DE) and of the model (DS), kept as a time series.

Each monitor produces :class:`Check` rows (one figure, its threshold and a status). The
DAGs ``data_monitor`` and ``model_monitor`` (task bodies in :mod:`include.tasks.monitoring`) store them in the warehouse table
``monitoring.checks`` (idempotent: a re-run of a monitor for a day replaces that day's
rows), route every alert to the owning role through :func:`include.roles.notify`, and
render all of the history as one HTML page, ``<reports>/monitoring/index.html``.

The heavy lifting is DuckDB SQL over the lake and the marts; the model monitor's figures
(score drift, top-item overlap, from :mod:`recsys.monitoring`) are gathered by the task layer.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import duckdb

OK, WARN, ALERT = "ok", "warn", "alert"


@dataclass(frozen=True)
class Check:
    monitor: str  # data | model
    metric: str  # e.g. freshness_hours, volume_z, quarantine_rate, schema_new_keys
    dimension: str  # e.g. the Asset name, the event type, '' for none
    value: float
    threshold: float
    status: str  # ok | warn | alert
    message: str
    day: date  # the data day the figure describes

    def as_row(self, measured_at: datetime) -> dict[str, Any]:
        return {**asdict(self), "measured_at": measured_at}


@dataclass(frozen=True)
class DataMonitorConfig:
    """Thresholds of the data monitor (DE)."""

    trailing_days: int = 14
    volume_z_alert: float = 3.0
    quarantine_rate_alert: float = 0.05
    quarantine_z_alert: float = 3.0
    # Expected cadence of each Asset: older than this is stale.
    cadence_hours: dict[str, float] = field(
        default_factory=lambda: {
            "raw_events": 2.0,
            "catalog": 26.0,
            "sessions": 3.0,
            "interactions": 3.0,
            "recommendations": 26.0,
            "business_metrics": 26.0,
        }
    )


# --- freshness --------------------------------------------------------------------------


def freshness_checks(
    last_updated: dict[str, datetime | None],
    now: datetime,
    cfg: DataMonitorConfig,
) -> list[Check]:
    """One check per Asset with a cadence: hours since its last update against the cadence.

    ``last_updated`` maps Asset name -> time of its latest Asset event (None: never).
    """
    checks = []
    for name, cadence in sorted(cfg.cadence_hours.items()):
        ts = last_updated.get(name)
        if ts is None:
            age = math.inf
        else:
            ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
            age = (now - ts).total_seconds() / 3600
        status = OK if age <= cadence else ALERT
        msg = (
            "never updated"
            if ts is None
            else f"last updated {age:.1f} h ago (expected every {cadence:g} h)"
        )
        checks.append(Check("data", "freshness_hours", name, age, cadence, status, msg, now.date()))
    return checks


# --- volume, quarantine, schema ---------------------------------------------------------


def latest_day(con: duckdb.DuckDBPyConnection, today: date | None = None) -> date | None:
    """The latest complete event day in the lake (today's partial day is skipped); None
    when nothing was ever ingested (no ``raw.events`` yet: only freshness is checked)."""
    today = today or datetime.now(UTC).date()
    exists = con.execute(
        "select count(*) from information_schema.tables "
        "where table_schema = 'raw' and table_name = 'events'"
    ).fetchall()[0][0]
    if not exists:
        return None
    row = con.execute(
        "select max(event_date) from raw.events where event_date < ?", [today]
    ).fetchall()
    return row[0][0] if row and row[0][0] else None


def _z(value: float, history: list[float]) -> float:
    """z-score of ``value`` against ``history``; the spread has a Poisson floor so that a
    flat history (std 0) does not make every small wobble infinite."""
    if not history:
        return 0.0
    mean = sum(history) / len(history)
    var = sum((h - mean) ** 2 for h in history) / max(len(history) - 1, 1)
    std = max(math.sqrt(var), math.sqrt(max(mean, 1.0)))
    return (value - mean) / std


def volume_checks(con: duckdb.DuckDBPyConnection, day: date, cfg: DataMonitorConfig) -> list[Check]:
    """Events per type on ``day`` against the trailing ``cfg.trailing_days`` (z-score)."""
    rows = con.execute(
        """
        with days as (
            select unnest(generate_series(?::date - ?::integer, ?::date, interval 1 day))::date
                as d
        ),
        types as (
            select distinct event_type from raw.events
            where event_date between ?::date - ?::integer and ?::date
        ),
        counts as (
            select event_date as d, event_type, count(*) as n
            from raw.events
            where event_date between ?::date - ?::integer and ?::date and not is_bot
            group by 1, 2
        )
        select t.event_type, list(coalesce(c.n, 0) order by days.d) as series
        from types as t
        cross join days
        left join counts as c on c.d = days.d and c.event_type = t.event_type
        group by 1
        order by 1
        """,
        [day, cfg.trailing_days, day] * 3,
    ).fetchall()
    checks = []
    for event_type, series in rows:
        history, value = [float(x) for x in series[:-1]], float(series[-1])
        z = _z(value, history)
        mean = sum(history) / len(history) if history else 0.0
        status = ALERT if abs(z) > cfg.volume_z_alert else OK
        msg = f"{int(value)} events vs {mean:.0f}/day over {len(history)} days (z={z:+.1f})"
        checks.append(
            Check("data", "volume_z", event_type, z, cfg.volume_z_alert, status, msg, day)
        )
    return checks


def quarantine_checks(
    con: duckdb.DuckDBPyConnection, day: date, cfg: DataMonitorConfig
) -> list[Check]:
    """Quarantined share of the lines of ``day``'s batches, and its trend (z-score)."""
    rows = con.execute(
        """
        select cast(batch_start as date) as d,
               sum(quarantined)::double / nullif(sum(lines_in), 0) as rate
        from raw.ingest_manifest
        where dataset = 'events'
          and cast(batch_start as date) between ?::date - ?::integer and ?::date
        group by 1
        order by 1
        """,
        [day, cfg.trailing_days, day],
    ).fetchall()
    rates = {d: (r or 0.0) for d, r in rows}
    value = rates.pop(day, 0.0)
    history = list(rates.values())
    mean = sum(history) / len(history) if history else 0.0
    std = (
        math.sqrt(sum((h - mean) ** 2 for h in history) / max(len(history) - 1, 1))
        if history
        else 0.0
    )
    z = (value - mean) / max(std, 0.002)  # 0.2 percentage points: the noise floor
    checks = [
        Check(
            "data",
            "quarantine_rate",
            "",
            value,
            cfg.quarantine_rate_alert,
            ALERT if value > cfg.quarantine_rate_alert else OK,
            f"{value:.2%} of lines quarantined (limit {cfg.quarantine_rate_alert:.0%})",
            day,
        ),
        Check(
            "data",
            "quarantine_rate_z",
            "",
            z,
            cfg.quarantine_z_alert,
            ALERT if z > cfg.quarantine_z_alert else OK,
            f"{value:.2%} vs {mean:.2%} on the previous {len(history)} days (z={z:+.1f})",
            day,
        ),
    ]
    return checks


def schema_drift_checks(
    con: duckdb.DuckDBPyConnection, day: date, cfg: DataMonitorConfig
) -> list[Check]:
    """Keys of ``properties`` new on ``day``, or missing on ``day`` though seen on most of
    the trailing days."""
    rows = con.execute(
        """
        with keys as (
            select distinct event_date as d, unnest(json_keys(properties::json)) as k
            from raw.events
            where event_date between ?::date - ?::integer and ?::date
              and properties is not null
        ),
        per_key as (
            select k,
                   bool_or(d = ?::date) as on_day,
                   count(distinct d) filter (where d < ?::date) as prior_days
            from keys
            group by 1
        )
        select k, on_day, prior_days,
               (select count(distinct d) from keys where d < ?::date) as n_prior
        from per_key
        order by k
        """,
        [day, cfg.trailing_days, day, day, day, day],
    ).fetchall()
    new = sorted(k for k, on_day, prior, _ in rows if on_day and prior == 0)
    n_prior = rows[0][3] if rows else 0
    missing = sorted(
        k for k, on_day, prior, _ in rows if not on_day and n_prior and prior / n_prior > 0.5
    )
    has_history = n_prior > 0
    return [
        Check(
            "data",
            "schema_new_keys",
            ",".join(new),
            float(len(new)) if has_history else 0.0,
            0.0,
            WARN if new and has_history else OK,
            f"new properties keys: {', '.join(new) or 'none'}",
            day,
        ),
        Check(
            "data",
            "schema_missing_keys",
            ",".join(missing),
            float(len(missing)),
            0.0,
            WARN if missing else OK,
            f"properties keys missing today: {', '.join(missing) or 'none'}",
            day,
        ),
    ]


# --- storage and page -------------------------------------------------------------------

CHECKS_DDL = """
create schema if not exists monitoring;
create table if not exists monitoring.checks (
    monitor varchar, metric varchar, dimension varchar, value double, threshold double,
    status varchar, message varchar, day date, measured_at timestamp
)
"""


def store_checks(
    con: duckdb.DuckDBPyConnection, monitor: str, day: date, checks: list[Check]
) -> None:
    """Replace ``monitor``'s rows for ``day`` with ``checks`` in one transaction."""
    import pandas as pd

    con.execute(CHECKS_DDL)
    measured_at = datetime.now(UTC).replace(tzinfo=None)
    frame = pd.DataFrame([c.as_row(measured_at) for c in checks])
    con.execute("begin")
    try:
        con.execute("delete from monitoring.checks where monitor = ? and day = ?", [monitor, day])
        if len(frame):
            con.register("new_checks", frame)
            con.execute("insert into monitoring.checks by name select * from new_checks")
            con.unregister("new_checks")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise


def history(con: duckdb.DuckDBPyConnection):
    """Every stored check as a DataFrame (empty frame when the table does not exist)."""
    con.execute(CHECKS_DDL)
    return con.execute("select * from monitoring.checks order by day, monitor, metric").df()


#: Columns of the page's table of latest checks: (key, label, format kind).
PAGE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("monitor", "monitor", "text"),
    ("metric", "metric", "text"),
    ("dimension", "dimension", "text"),
    ("value", "value", "sig"),
    ("threshold", "threshold", "sig"),
    ("status", "status", "text"),
    ("day", "data day", "date"),
    ("measured_at", "measured at (UTC)", "datetime"),
    ("message", "message", "long"),
)


def page_context(checks) -> dict[str, Any]:
    """What the monitoring page shows (``checks`` is :func:`history`'s frame): the latest
    status of every check, alerts first, and one chart per metric over the data days.

    Two clocks: ``day`` is the data day a figure describes (the events' own dates, which for
    simulated data can be years away from today), ``measured_at`` the wall-clock time the
    monitor ran. The page labels them apart.
    """
    from include.reporting.charts import check_history

    context: dict[str, Any] = {
        "title": "Data and model monitoring",
        "columns": PAGE_COLUMNS,
        "rows": [],
        "charts": [],
        "n_alerts": 0,
    }
    if checks.empty:
        return context
    latest = (
        checks.sort_values("measured_at")
        .groupby(["monitor", "metric", "dimension"], as_index=False)
        .last()
    )
    order = {ALERT: 0, WARN: 1, OK: 2}
    latest = latest.assign(_order=latest["status"].map(order).fillna(3)).sort_values(
        ["_order", "monitor", "metric", "dimension"]
    )
    context["rows"] = latest.drop(columns="_order").to_dict("records")
    context["charts"] = [
        {"title": f"{monitor}: {metric}", "image": check_history(group, f"{monitor}: {metric}")}
        for (monitor, metric), group in checks.groupby(["monitor", "metric"])
    ]
    context["n_alerts"] = int((latest["status"] == ALERT).sum())
    context["data_days"] = (checks["day"].min(), checks["day"].max())
    context["measured"] = (checks["measured_at"].min(), checks["measured_at"].max())
    return context


def write_page(con: duckdb.DuckDBPyConnection, reports_dir) -> Any:
    """Render the page from the warehouse and export the series next to it (Parquet)."""
    from common.fs import atomic_write_with
    from include.reporting.pages import write_page as write_html

    out = reports_dir / "monitoring"
    frame = history(con)
    page = write_html(out / "index.html", "monitoring.html", **page_context(frame))
    atomic_write_with(out / "checks.parquet", lambda tmp: frame.to_parquet(tmp, index=False))
    return page


def alerts(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.status in (ALERT, WARN)]


# --- the two monitors, end to end (the DAG tasks call these) ------------------------------


def run_data_monitor(
    last_updated: dict[str, datetime | None],
    cfg: DataMonitorConfig | None = None,
    day: date | None = None,
    now: datetime | None = None,
) -> list[Check]:
    """Freshness, volume, quarantine and schema checks; stored in the warehouse."""
    from include.warehouse import connect

    cfg = cfg or DataMonitorConfig()
    now = now or datetime.now(UTC)
    checks = freshness_checks(last_updated, now, cfg)
    with connect() as con:
        day = day or latest_day(con, today=now.date())
        if day is not None:
            checks += volume_checks(con, day, cfg)
            checks += quarantine_checks(con, day, cfg)
            checks += schema_drift_checks(con, day, cfg)
        store_checks(con, "data", day or now.date(), checks)
    return checks


def notify_alerts(checks: list[Check], role: str, dag_id: str, link: str | None) -> int:
    """Send one notification per alerting or warning check to ``role``; returns the count."""
    from include.roles import notify

    found = alerts(checks)
    for c in found:
        notify(
            role,
            subject=f"{c.monitor} monitor: {c.metric} {c.dimension}".strip(),
            error=c.message,
            dag_id=dag_id,
            link=link,
            details={
                "value": c.value,
                "threshold": c.threshold,
                "status": c.status,
                "day": str(c.day),
            },
        )
    return len(found)
