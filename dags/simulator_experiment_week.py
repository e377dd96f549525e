"""
### simulator_experiment_week (DE)

Manual (trigger it in the UI; `make run` runs it after the first period). The closed loop of
the holdout experiment (issue 21): lands the next simulated days (param `days`, default 7)
against what is published: each visitor of the world gets its variant and its list from the
API's own code on the published files (treatment: the recommendations; control: the shop's
default list) and behaves with a planted effect (param `effect`, 0 = A/A). Every event carries
`context.experiment_id`/`variant`; the planted effect's ground truth goes to
`landing/_simulator/ground_truth/experiment-<id>.json`. Emits the **landing** Asset, so
`events_ingest` -> `events_transform` -> `business_metrics` follow by themselves and the
business report's "Holdout experiment" section answers "did it work?".
Logic: `include/tasks/landing.py`, `include/simulator/experiment.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Param, dag, task

from include.assets import LANDING, RECOMMENDATIONS
from include.roles import Role, dag_kwargs


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    max_active_runs=1,
    params={
        "days": Param(7, type="integer", minimum=1, maximum=28),
        "effect": Param(1.5, type="number", minimum=0),
    },
    **dag_kwargs(Role.DE, doc_md=__doc__, domain="ingestion"),
)
def simulator_experiment_week():
    # reads the published lists (the API's code on the published files): a lineage inlet
    @task(inlets=[RECOMMENDATIONS], outlets=[LANDING])
    def land_experiment_week(params=None, *, outlet_events=None) -> dict:
        """Land the experiment week; the Asset event carries the dates landed."""
        from include.tasks.landing import land_experiment_week as land

        result = land(int(params["days"]), float(params["effect"]))
        outlet_events[LANDING].extra = {"dates": result["dates"], "files": result["files"]}
        return result

    land_experiment_week()


simulator_experiment_week()
