"""The same dbt project on DuckDB and on Spark (issue 23): same marts, same incremental result.

One small simulated input (3 days, 500 visitors, no faults) goes through ingestion into a raw
lake; dbt builds it on the DuckDB target and on the Spark target (``method: session``, local
pyspark, Parquet tables in a Derby metastore under the data directory). The Spark tables are
read back through :func:`include.warehouse.attach_spark_warehouse`, the reader every Python
consumer of marts uses on that target.

- every model table (fct_sessions, fct_events, ml_interactions, the metrics marts, ...) has the
  same columns and rows on both: compared after sorting, floats within 1e-9 relative;
  ``sessionized_at`` (the run's own time) is one value per full build on each;
- Spark runs the unit tests and data tests of ``dbt build`` (none fails or is skipped);
- the incremental path on Spark (days 1-2, then day 3 through a second ingestion and an
  incremental ``dbt build``) gives the tables of the full build.

Spark's dbt is slow on tiny data (a few hundred ms of planning per statement, ~150 nodes):
this module runs three Spark builds (~4-6 min on 2 shared cores) and shares them between tests.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import duckdb
import pytest

from include import dbt_runner
from include.settings import Settings
from include.warehouse import attach_spark_warehouse

pytestmark = [pytest.mark.scale, pytest.mark.integration]

DAYS = 3
MODELS_ONLY = ("--exclude-resource-type", "test", "unit_test")
# the tables compared; every model table of the project is checked in the first test too
KEY_TABLES = (
    "main.fct_sessions",
    "main.fct_events",
    "main.ml_interactions",
    "main.ml_user_features",
    "main.dim_customers",
    "intermediate.int_events_sessionized",
    "intermediate.int_interactions_aggregated",
)
RUN_STAMP = "sessionized_at"  # when the run happened: differs between any two builds


# --- inputs and builds --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from include.simulator import SimulatorConfig, simulate

    out = tmp_path_factory.mktemp("simulated")
    simulate(SimulatorConfig(days=DAYS, visitors=500, seed=11, fault_rate=0.0), out)
    return out / "landing"


def _ingest(landing: Path, data_dir: Path, *, last_day: bool) -> None:
    """Copy the landing zone (without the last day's event files unless ``last_day``) and
    ingest the new files, as the events_ingest DAG does."""
    from include.ingest import ingest

    days = sorted(p.name for p in (landing / "events").iterdir())
    for path in sorted(landing.rglob("*")):
        rel = path.relative_to(landing)
        if path.is_dir() or rel.parts[0] == "_simulator":
            continue
        if rel.parts[0] == "events" and rel.parts[1] == days[-1] and not last_day:
            continue
        target = data_dir / "landing" / rel
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    ingest(settings=Settings(data_dir=data_dir, state_dir=data_dir.parent / "state"))


def _build(data_dir: Path, target: str, *args: str) -> tuple[str, list[dict]]:
    """``dbt build`` on ``target``; dbt's output and the results of run_results.json."""
    target_path = data_dir.parent / f"dbt_{target}"
    env_target = {"TRASOS_DBT_TARGET": target}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env_target.items():
            mp.setenv(key, value)
        proc = dbt_runner.run_dbt(["build", *args], target_path, data_dir=data_dir, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    results = json.loads((target_path / "run_results.json").read_text())["results"]
    return out, results


@pytest.fixture(scope="module")
def duck(tmp_path_factory: pytest.TempPathFactory, landing: Path) -> tuple[Path, list[dict]]:
    data_dir = tmp_path_factory.mktemp("duckdb") / "data"
    _ingest(landing, data_dir, last_day=True)
    _, results = _build(data_dir, "dev")
    return data_dir, results


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory, duck) -> tuple[Path, list[dict]]:
    """The DuckDB build's lake (the same files, the same received_at), built on Spark."""
    data_dir = tmp_path_factory.mktemp("spark") / "data"
    shutil.copytree(duck[0] / "lake", data_dir / "lake")
    _, results = _build(data_dir, "spark")
    return data_dir, results


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """dbt's tables (DuckDB file) or the views on them (Spark warehouse), not staging views."""
    return {
        f"{schema}.{name}"
        for schema, name in con.execute(
            "select table_schema, table_name from information_schema.tables"
        ).fetchall()
        if schema in ("main", "intermediate", "reference")
    }


def _open_duck(data_dir: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)


def _open_spark(data_dir: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    attach_spark_warehouse(con, data_dir / "spark" / "warehouse")
    return con


def _rows(con: duckdb.DuckDBPyConnection, table: str, columns: list[str]) -> list[tuple]:
    """The table's rows in a canonical order: by every non-float column, then the floats."""
    rows = con.execute(f"select {', '.join(columns)} from {table}").fetchall()

    def key(row: tuple) -> tuple:
        exact = [(v is None, str(v)) for v in row if not isinstance(v, float)]
        floats = [v for v in row if isinstance(v, float)]
        return (*exact, *floats)

    return sorted(rows, key=key)


def assert_same_table(
    left: duckdb.DuckDBPyConnection, right: duckdb.DuckDBPyConnection, table: str
) -> int:
    """Same columns (names, order) and rows; floats within 1e-9 relative; the run stamp is
    left out. Returns the row count."""
    columns = [c[0] for c in left.execute(f"select * from {table} limit 0").description]
    right_columns = [c[0] for c in right.execute(f"select * from {table} limit 0").description]
    assert right_columns == columns, table
    compared = [c for c in columns if c != RUN_STAMP]
    a, b = _rows(left, table, compared), _rows(right, table, compared)
    assert len(a) == len(b), (table, len(a), len(b))
    for row_a, row_b in zip(a, b, strict=True):
        for column, x, y in zip(compared, row_a, row_b, strict=True):
            if isinstance(x, float) and isinstance(y, float):
                ok = math.isclose(x, y, rel_tol=1e-9, abs_tol=0.0) or (
                    math.isnan(x) and math.isnan(y)
                )
            else:
                ok = x == y
            assert ok, f"{table}.{column}: {x!r} != {y!r} in\n{row_a}\n{row_b}"
    return len(a)


# --- tests --------------------------------------------------------------------------------------
def test_spark_build_runs_every_unit_test_and_data_test(duck, spark) -> None:
    """dbt build on Spark passes the same unit tests and data tests as on DuckDB."""
    _, duck_results = duck
    _, spark_results = spark

    def by_status(results: list[dict]) -> dict[str, str]:
        return {r["unique_id"]: r["status"] for r in results}

    spark_status = by_status(spark_results)
    assert set(spark_status) == set(by_status(duck_results))
    unit_tests = [uid for uid in spark_status if uid.startswith("unit_test.")]
    assert len(unit_tests) >= 12
    assert {spark_status[uid] for uid in unit_tests} == {"pass"}
    data_tests = [uid for uid in spark_status if uid.startswith("test.")]
    assert len(data_tests) > 100
    assert {spark_status[uid] for uid in data_tests} == {"pass"}


def test_every_model_table_is_identical_on_duckdb_and_spark(duck, spark) -> None:
    duck_dir, _ = duck
    spark_dir, _ = spark
    left, right = _open_duck(duck_dir), _open_spark(spark_dir)
    try:
        tables = _tables(left)
        assert set(KEY_TABLES) <= tables
        assert {t for t in tables if t.startswith("main.metrics_")} >= {
            "main.metrics_visitors",
            "main.metrics_headline",
            "main.metrics_conversion_daily",
            "main.metrics_retention_cohorts",
        }
        assert tables == _tables(right)
        counts = {table: assert_same_table(left, right, table) for table in sorted(tables)}
        # the input is not trivial: thousands of events, hundreds of sessions
        assert counts["main.fct_events"] > 2000 and counts["main.fct_sessions"] > 300, counts
        assert counts["main.ml_interactions"] > 100, counts
        for con in (left, right):  # a full build stamps every row with its run time
            assert con.execute(
                "select count(distinct sessionized_at) from main.fct_events"
            ).fetchall() == [(1,)]
    finally:
        left.close()
        right.close()


def test_incremental_run_on_spark_equals_full_rebuild(
    tmp_path_factory: pytest.TempPathFactory, landing: Path
) -> None:
    """Days 1-2 ingested and built on Spark, then day 3 ingested and built incrementally: the
    tables equal a full build of the same lake (on DuckDB, which the test above shows equal
    to a full Spark build)."""
    data_dir = tmp_path_factory.mktemp("spark_incremental") / "data"
    _ingest(landing, data_dir, last_day=False)
    _build(data_dir, "spark", *MODELS_ONLY)
    first = _open_spark(data_dir)
    n_first = first.execute("select count(*) from main.fct_events").fetchall()[0][0]
    first.close()

    _ingest(landing, data_dir, last_day=True)
    out, _ = _build(data_dir, "spark", *MODELS_ONLY)
    assert "incremental model intermediate.int_events_sessionized" in out

    full_dir = tmp_path_factory.mktemp("duckdb_full") / "data"
    shutil.copytree(data_dir / "lake", full_dir / "lake")
    _build(full_dir, "dev", *MODELS_ONLY)
    left, right = _open_duck(full_dir), _open_spark(data_dir)
    try:
        n_all = left.execute("select count(*) from main.fct_events").fetchall()[0][0]
        assert 0 < n_first < n_all  # day 3 really came in the second run
        for table in KEY_TABLES:
            assert_same_table(left, right, table)
        # incremental, not rebuilt: visitors without day-3 events keep the first run's stamp
        assert right.execute(
            "select count(distinct sessionized_at) from intermediate.int_events_sessionized"
        ).fetchall() == [(2,)]
    finally:
        left.close()
        right.close()
