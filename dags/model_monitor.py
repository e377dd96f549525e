"""
### model_monitor (DS)

Daily health of the published recommender, as a time series in `monitoring.checks`:

- **click-through**: share of product views that came from a recommendation
  (events carrying `recommendation_id`);
- **catalog coverage** of the published lists;
- **drift** between the current and the previous model version: PSI of the score
  distribution and overlap of the top-100 recommended items;
- **model age** against a maximum.

Alerts go to DS through the roles notifier. The page is
`<data>/reports/monitoring/index.html`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import dag, task

from include.assets import WRITER_POOL
from include.roles import Role, dag_kwargs


@dag(
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    **dag_kwargs(Role.DS, doc_md=__doc__, domain="monitoring"),
)
def model_monitor():
    @task(pool=WRITER_POOL)
    def check_model() -> dict:
        from include.monitoring import notify_alerts, run_model_monitor

        checks = run_model_monitor()
        sent = notify_alerts(checks, Role.DS, "model_monitor", link=None)
        return {"checks": len(checks), "alerts": sent}

    @task(pool=WRITER_POOL)
    def publish_monitoring_page(summary: dict) -> str:
        from include.monitoring import write_page
        from include.settings import get_settings
        from include.warehouse import connect

        with connect() as con:
            return str(write_page(con, get_settings().reports_dir))

    publish_monitoring_page(check_model())


model_monitor()
