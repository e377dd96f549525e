"""
### recommender_train (DS)

Scheduled on the **interactions** Asset. Trains and publishes the recommender:

1. `extract_training_data`: snapshot the ML marts to Parquet (the only warehouse read,
   in the writer pool) and gate the training set with Great Expectations;
2. `train_model`: LightFM hybrid, the LightFM + co-occurrence blend and every baseline on a
   time split; evaluation report with warm and cold items; saved as a new version;
3. `check_definition_of_done`: the DS/DE contract (`recsys/definition_of_done.yaml`); a
   failing model stops here, its owners are notified with the clause and the margin;
4. `score_recommendations`: top-k per user, also-bought per item, cold-start lists;
5. `validate_recommendations`: Great Expectations gate on the lists;
6. `publish_recommendations`: move the model's `current` pointer and the published
   `CURRENT` atomically; emits the **recommendations** Asset.

Report: `<data>/reports/evaluation/<version>.html` (also `reports/evaluation/latest.html`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import dag, task

from include import assets
from include.assets import WRITER_POOL
from include.roles import Role, dag_kwargs


@dag(
    schedule=[assets.INTERACTIONS],
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    max_active_runs=1,
    **dag_kwargs(Role.DS, doc_md=__doc__, domain="recommender"),
)
def recommender_train():
    @task(pool=WRITER_POOL, inlets=[assets.INTERACTIONS])
    def extract_training_data(run_id: str | None = None) -> dict:
        from include.tasks.training import extract_training_data as extract

        return extract(run_id or "manual")

    @task
    def train_model(snapshot: dict) -> dict:
        from include.tasks.training import train

        return train(snapshot)

    @task
    def check_definition_of_done(summary: dict) -> dict:
        from include.tasks.training import check_dod

        return check_dod(summary)

    @task
    def score_recommendations(summary: dict) -> dict:
        from include.tasks.training import score

        return score(summary)

    @task
    def validate_recommendations(scored: dict, snapshot: dict) -> dict:
        from include.tasks.training import validate_recommendations as validate

        return validate(scored, snapshot)

    # The writer pool's one slot also keeps recommender_rollback from interleaving.
    @task(pool=WRITER_POOL, outlets=[assets.RECOMMENDATIONS])
    def publish_recommendations(validated: dict) -> dict:
        from include.tasks.training import publish

        return publish(validated)

    snapshot = extract_training_data()
    summary = check_definition_of_done(train_model(snapshot))
    publish_recommendations(validate_recommendations(score_recommendations(summary), snapshot))


recommender_train()
