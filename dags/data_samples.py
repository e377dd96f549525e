"""
### data_samples (DE)

Samples on request for data scientists and analysts. Manual only: trigger it with
parameters (UI: "Trigger DAG w/ config"; CLI: `make sample ARGS="..."` does the same).

1. **take_sample**: the units (`visitor` or `session`) of the first source within the date
   range are ranked by `md5(seed || unit)` within each stratum and a `fraction` (or `size`)
   of them kept; every requested source keeps all rows of those units. Ids become salted keyed
   hashes (one salt per sample, kept by DE outside the sample), free text, URLs and user
   agents are dropped. The GX suite `sample` checks every file (exact columns, no raw id,
   share of units within tolerance) before `samples/<sample_id>/` appears under the data
   directory, with Parquet files and a data card (`README.md`, `card.json`).

`keep_raw_ids` is for admins only: the run fails unless the user who triggered it is an admin
(`TRASOS_SAMPLE_ADMINS`, else the simple auth manager's `admin` role).

Sources: raw_events (alone), fct_events, fct_sessions, ml_interactions, ml_user_features,
and the item tables ml_item_features, dim_items (copied whole). Logic:
`include/tasks/samples.py` over `include/samples/`. Owner: data engineering (DE).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import Param, dag, task

from include.assets import WRITER_POOL
from include.roles import Role, dag_kwargs
from include.tasks.samples import DEFAULT_FRACTION, DEFAULT_SEED, DEFAULT_SOURCES

SOURCE_NAMES = [
    "raw_events",
    "fct_events",
    "fct_sessions",
    "ml_interactions",
    "ml_user_features",
    "ml_item_features",
    "dim_items",
]


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    max_active_runs=2,
    params={
        "sources": Param(
            list(DEFAULT_SOURCES),
            type="array",
            items={"type": "string", "enum": SOURCE_NAMES},
            minItems=1,
            description="Marts (or raw_events, alone) to sample; the first defines the units.",
        ),
        "date_from": Param(None, type=["null", "string"], format="date", description="First day."),
        "date_to": Param(None, type=["null", "string"], format="date", description="Last day."),
        "unit": Param("visitor", type="string", enum=["visitor", "session"]),
        "fraction": Param(
            DEFAULT_FRACTION,
            type=["null", "number"],
            exclusiveMinimum=0,
            maximum=1,
            description="Share of units; leave empty when giving size.",
        ),
        "size": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="Number of units; when given, fraction is ignored.",
        ),
        "stratify_by": Param(
            None, type=["null", "string"], description="Column of the first source, e.g. country."
        ),
        "seed": Param(DEFAULT_SEED, type="integer", minimum=0),
        "keep_raw_ids": Param(False, type="boolean", description="Admins only."),
        "sample_id": Param(
            None, type=["null", "string"], description="Folder name; default: time + random."
        ),
        "purpose": Param("", type="string", description="What the sample is for (data card)."),
    },
    **dag_kwargs(Role.DE, doc_md=__doc__, domain="samples"),
)
def data_samples() -> None:
    # Reads the warehouse read-only: in the writers' pool so no dbt run holds the file.
    @task(pool=WRITER_POOL)
    def take_sample(**context: Any) -> dict:
        from include.tasks import samples

        return samples.take(
            dict(context["params"]), samples.triggering_user(context), context["run_id"]
        )

    take_sample()


data_samples()
