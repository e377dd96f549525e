"""
### model_monitor (DS)

Health of the published recommender, daily and after every publish (the `recommendations`
Asset), as a time series in `monitoring.checks`:

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

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from include import assets
from include.assets import WRITER_POOL
from include.roles import Role, dag_kwargs


@dag(
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("@daily", timezone="UTC"), assets=[assets.RECOMMENDATIONS]
    ),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    **dag_kwargs(Role.DS, doc_md=__doc__, domain="monitoring"),
)
def model_monitor():
    @task(pool=WRITER_POOL, inlets=[assets.RECOMMENDATIONS])
    def check_model() -> dict:
        from include.tasks.monitoring import check_model as run_checks

        return run_checks(Role.DS)

    @task(pool=WRITER_POOL)
    def publish_monitoring_page(summary: dict) -> str:
        from include.tasks.monitoring import publish_page

        return publish_page()

    publish_monitoring_page(check_model())


model_monitor()
