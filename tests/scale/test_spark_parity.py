"""The same dbt project on DuckDB and on Spark (issue 23): same marts, same incremental result.

One small simulated input (3 days, 500 visitors, no faults) goes through ingestion into a raw
lake; dbt builds it on the DuckDB target and on the Spark target (``method: session``, local
pyspark, Parquet tables in a Derby metastore under the data directory). The Spark tables are
read back through :func:`include.warehouse.attach_spark_warehouse`, the reader every Python
consumer of marts uses on that target.

- every model table (fct_sessions, fct_events, ml_interactions, the metrics marts, ...) has the
  same columns and rows on both: compared after sorting, floats within 1e-9 relative;
  ``sessionized_at`` (the run's own time) is one value per full build on each;
- Spark runs and passes dbt's unit tests (``dbt build``);
- the incremental path on Spark (days 1-2, then day 3 through a second ingestion and an
  incremental ``dbt build``) gives the tables of a full build.

Spark's dbt is slow on tiny data (a few hundred ms of planning per statement, ~150 nodes):
this module runs two Spark builds (days 1-2 models only, then day 3 with every test) and two
DuckDB builds, shared by the tests.
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

# the builds run in the first test's setup: 7.7 min on 2 cores under a load average of ~10,
# over 25 min at 25-30 (3 Spark builds then): the default 900 s per test is too short
pytestmark = [pytest.mark.scale, pytest.mark.integration, pytest.mark.timeout(2400)]

DAYS = 3
MODELS_ONLY = ("--exclude-resource-type", "test", "unit_test")
# Models and dbt's unit tests. The ~120 data tests pass on Spark too (a full `dbt build`), but
# cost ~1 s each there: left out to keep `make test-scale` short.
WITH_UNIT_TESTS = ("--exclude-resource-type", "test")
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


class Scenario:
    """Spark: days 1-2 (a full build), then day 3 (incremental ``dbt build`` with unit tests);
    DuckDB: a full build of the same lake after each step. Folders and run results."""

    def __init__(self, root: Path, landing: Path) -> None:
        self.spark = root / "spark" / "data"
        _ingest(landing, self.spark, last_day=False)
        _build(self.spark, "spark", *MODELS_ONLY)
        self.first_spark = _copy_spark_tables(self.spark, root / "spark_first")
        self.first_duck = root / "duckdb_first" / "data"
        shutil.copytree(self.spark / "lake", self.first_duck / "lake")
        _build(self.first_duck, "dev", *MODELS_ONLY)

        _ingest(landing, self.spark, last_day=True)
        self.spark_output, self.spark_results = _build(self.spark, "spark", *WITH_UNIT_TESTS)
        self.duck = root / "duckdb" / "data"
        shutil.copytree(self.spark / "lake", self.duck / "lake")
        _, self.duck_results = _build(self.duck, "dev", *WITH_UNIT_TESTS)


def _copy_spark_tables(data_dir: Path, out: Path) -> Path:
    """A copy of the Spark warehouse's files (read later as of this point)."""
    shutil.copytree(data_dir / "spark" / "warehouse", out / "spark" / "warehouse")
    return out


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, landing: Path) -> Scenario:
    return Scenario(tmp_path_factory.mktemp("parity"), landing)


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
    left: duckdb.DuckDBPyConnection,
    right: duckdb.DuckDBPyConnection,
    table: str,
    rel_tol: float = 1e-9,
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
                ok = math.isclose(x, y, rel_tol=rel_tol, abs_tol=0.0) or (
                    math.isnan(x) and math.isnan(y)
                )
            else:
                ok = x == y
            assert ok, f"{table}.{column}: {x!r} != {y!r} in\n{row_a}\n{row_b}"
    return len(a)


# --- tests --------------------------------------------------------------------------------------
def test_spark_build_passes_every_unit_test(scenario: Scenario) -> None:
    """dbt build on Spark runs and passes the same unit tests (and models) as on DuckDB."""

    def by_status(results: list[dict]) -> dict[str, str]:
        return {r["unique_id"]: r["status"] for r in results}

    spark_status = by_status(scenario.spark_results)
    duck_status = by_status(scenario.duck_results)
    assert set(spark_status) == set(duck_status)
    unit_tests = [uid for uid in spark_status if uid.startswith("unit_test.")]
    assert len(unit_tests) >= 12
    assert {spark_status[uid] for uid in unit_tests} == {"pass"}
    assert {duck_status[uid] for uid in unit_tests} == {"pass"}
    models = [uid for uid in spark_status if uid.startswith("model.")]
    assert len(models) >= 25
    assert {spark_status[uid] for uid in models} == {"success"}


def _assert_all_tables_identical(
    duck_dir: Path, spark_dir: Path, rel_tol: float = 1e-9
) -> dict[str, int]:
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
        return {t: assert_same_table(left, right, t, rel_tol) for t in sorted(tables)}
    finally:
        left.close()
        right.close()


def test_a_full_build_is_identical_on_duckdb_and_spark(scenario: Scenario) -> None:
    """Days 1-2, a first (full) build on both: every table the same."""
    counts = _assert_all_tables_identical(scenario.first_duck, scenario.first_spark)
    # the input is not trivial: thousands of events, hundreds of sessions
    assert counts["main.fct_events"] > 1000 and counts["main.fct_sessions"] > 200, counts
    assert counts["main.ml_interactions"] > 100, counts
    con = _open_spark(scenario.first_spark)
    try:  # a full build stamps every row with its run time
        assert con.execute(
            "select count(distinct sessionized_at) from main.fct_events"
        ).fetchall() == [(1,)]
    finally:
        con.close()


def test_incremental_run_on_spark_equals_full_rebuild(scenario: Scenario) -> None:
    """Day 3 ingested and built incrementally on Spark: every table equals a full build of
    the whole lake (on DuckDB, which the test above shows equal to Spark's full build)."""
    assert "incremental model intermediate.int_events_sessionized" in scenario.spark_output
    counts = _assert_all_tables_identical(scenario.duck, scenario.spark)
    first = _open_spark(scenario.first_spark)
    right = _open_spark(scenario.spark)
    try:
        n_first = first.execute("select count(*) from main.fct_events").fetchall()[0][0]
        assert 0 < n_first < counts["main.fct_events"]  # day 3 came in the second run
        # incremental, not rebuilt: visitors without day-3 events keep the first run's stamp
        assert right.execute(
            "select count(distinct sessionized_at) from intermediate.int_events_sessionized"
        ).fetchall() == [(2,)]
    finally:
        first.close()
        right.close()


def test_dbt_through_the_spark_thrift_server_builds_the_same_tables(
    landing: Path, tmp_path: Path
) -> None:
    """``spark_thrift``: dbt reaches Spark through the Thrift Server that the pyspark wheel
    ships (PyHive), as it reaches a cluster. The whole lake (days 1-3), models only: every
    table equals DuckDB's build of the same lake."""
    from include.cluster import spark_thrift_server

    data = tmp_path / "thrift" / "data"
    _ingest(landing, data, last_day=True)
    duck = tmp_path / "duckdb" / "data"
    shutil.copytree(data / "lake", duck / "lake")
    _build(duck, "dev", *MODELS_ONLY)
    with spark_thrift_server(data / "spark") as env, pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        _, results = _build(data, "spark_thrift", *MODELS_ONLY)
    models = {r["status"] for r in results if r["unique_id"].startswith("model.")}
    assert models == {"success"}
    # Known, not explained yet: through the server, revenue sums come out of the 32-bit
    # prices of fct_events (e.g. 205.96000481 vs DuckDB's 205.96000099, 2e-8 relative),
    # where the session target matches DuckDB to 1e-9. Every other value is equal.
    counts = _assert_all_tables_identical(duck, data, rel_tol=1e-7)
    assert counts["main.fct_sessions"] > 200, counts
