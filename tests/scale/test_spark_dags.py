"""The DAGs on the Spark target (issue 23): the same chain, the transform switched by
``TRASOS_DBT_TARGET=spark`` alone.

A simulated fortnight goes through ``make run``'s DAG runner: ``events_ingest`` (DuckDB's raw
lake, as on every target), ``events_transform`` (Cosmos's producer runs ``dbt source
freshness`` and ``dbt build`` on local Spark, the GX marts gate reads Spark's tables),
``recommender_train`` (reads the marts through :func:`include.warehouse.read_marts`) and
``business_metrics`` (DA's marts on Spark, the report). Then:

- every DAG succeeds and the DuckDB file holds no dbt table: the marts are Spark's Parquet;
- ``fct_sessions`` and ``ml_interactions`` read through the reader equal a DuckDB build of
  the same lake (row count and an order-free hash of every column but the run stamp);
- a version is published and the business report shows the sessions read from Spark.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from include import dbt_runner

pytestmark = [pytest.mark.scale, pytest.mark.integration, pytest.mark.timeout(2400)]

CONTRACT = Path(__file__).parents[1] / "fixtures" / "small_sample_dod.yaml"
# every column but the run's own time (sessionized_at differs between any two builds)
FINGERPRINTS = {
    "main.fct_sessions": "select count(*), sum(hash(session_id, visitor_id, started_at, "
    "ended_at, n_events, is_converted)) from main.fct_sessions",
    "main.ml_interactions": "select count(*), sum(hash(user_id, item_id, weight, "
    "round(decayed_score, 9))) from main.ml_interactions",
}


def _fingerprints(con: duckdb.DuckDBPyConnection) -> dict[str, tuple]:
    return {table: con.execute(sql).fetchone() for table, sql in FINGERPRINTS.items()}


def test_the_chain_runs_on_spark(
    airflow_home: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import run_dagrunner

    from include.serving.loader import read_current
    from include.settings import get_settings
    from include.simulator import SimulatorConfig, simulate
    from include.warehouse import read_marts

    simulate(SimulatorConfig(days=10, visitors=1500, seed=11, fault_rate=0.0), data_dir)
    monkeypatch.setenv("TRASOS_DEFINITION_OF_DONE", str(CONTRACT))
    monkeypatch.setenv("TRASOS_DBT_TARGET", "spark")
    monkeypatch.setenv("TRASOS_MLFLOW", "off")

    dags = ("events_ingest", "events_transform", "recommender_train", "business_metrics")
    code, results = run_dagrunner(*dags, log_dir=tmp_path / "logs", timeout=2000)
    assert code == 0, results
    assert [(r["dag_id"], r["state"]) for r in results] == [(d, "success") for d in dags], results

    settings = get_settings()
    assert (settings.spark_dir / "warehouse").is_dir()
    raw = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:  # ingestion's raw schema only: no dbt relation was written to the DuckDB file
        schemas = {r[0] for r in raw.execute("select distinct table_schema from "
                                             "information_schema.tables").fetchall()}  # fmt: skip
    finally:
        raw.close()
    assert "main" not in schemas and "intermediate" not in schemas, schemas
    with read_marts() as con:
        on_spark = _fingerprints(con)
    assert on_spark["main.fct_sessions"][0] > 100

    # the same lake on DuckDB (another warehouse file): the same sessions and interactions
    duck = tmp_path / "duckdb-warehouse.duckdb"
    monkeypatch.setenv("TRASOS_WAREHOUSE", str(duck))
    monkeypatch.setenv("TRASOS_DBT_TARGET", "dev")
    dbt_runner.run_dbt(
        [
            "build",
            "--select",
            "+ml_interactions",
            "+fct_sessions",
            "--exclude-resource-type",
            "test",
            "unit_test",
        ],
        target_path=tmp_path / "dbt-duckdb",
        log_output=False,
    )
    con = duckdb.connect(str(duck), read_only=True)
    try:
        assert _fingerprints(con) == on_spark
    finally:
        con.close()

    version = read_current(data_dir / "published")
    assert version is not None
    page = data_dir / "reports" / "business" / "index.html"
    assert page.exists()
    assert f"{on_spark['main.fct_sessions'][0]:,}" in page.read_text()  # from Spark's marts
