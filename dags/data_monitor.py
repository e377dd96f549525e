"""
### data_monitor (DE)

Health of the data platform, daily and after every transform (the `sessions` Asset), as a
time series in `monitoring.checks`:

- **freshness** of every Asset against its expected cadence (from Airflow's Asset events);
- **volume** of events per type against the trailing 14 days (z-score, alert above 3);
- **quarantine rate** and its trend;
- **schema drift**: `properties` keys that are new, or missing though usually present.

Alerts go to DE through the roles notifier. The page with every check and its history is
`<data>/reports/monitoring/index.html`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from include import assets
from include.assets import WRITER_POOL
from include.roles import Role, dag_kwargs


@dag(
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("@daily", timezone="UTC"), assets=[assets.SESSIONS]
    ),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    **dag_kwargs(Role.DE, doc_md=__doc__, domain="monitoring"),
)
def data_monitor():
    @task(pool=WRITER_POOL, inlets=list(assets.ALL))
    def check_data(**context) -> dict:
        from include.tasks.monitoring import check_data as run_checks

        last_updated = {}
        for asset in assets.ALL:
            events = context["inlet_events"][asset]
            last_updated[asset.name] = events[-1].timestamp if len(events) else None
        return run_checks(last_updated, Role.DE)

    @task(pool=WRITER_POOL)
    def publish_monitoring_page(summary: dict) -> str:
        from include.tasks.monitoring import publish_page

        return publish_page()

    publish_monitoring_page(check_data())


data_monitor()
