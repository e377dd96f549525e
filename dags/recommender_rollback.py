"""
### recommender_rollback (DS)

Manual only (trigger it in the UI). Serves the previously promoted model again when the
current one misbehaves in the shop: `published/CURRENT`, which the recommendations API
follows without a restart, and the registry's `models/current` both move back one
promotion. The lists of the version rolled back to must still be in `published/<version>/`;
when they are not, nothing moves and the task fails with the reason. Emits the
**recommendations** Asset. Same as `make rollback` on the command line.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import dag, task

from include import assets
from include.assets import WRITER_POOL
from include.roles import Role, dag_kwargs


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    max_active_runs=1,
    **dag_kwargs(Role.DS, doc_md=__doc__, domain="recommender"),
)
def recommender_rollback():
    # One slot: never interleaves with recommender_train's publish step (same pool).
    @task(pool=WRITER_POOL, outlets=[assets.RECOMMENDATIONS])
    def roll_back() -> dict:
        from include.tasks.training import rollback

        return rollback()

    roll_back()


recommender_rollback()
