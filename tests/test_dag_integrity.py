"""DAG integrity over the real DagBag: the house rules of STYLE.md, for every DAG."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from include.dag_rules import dag_violations, orphan_assets
from include.settings import REPO_ROOT

DAGS_DIR = REPO_ROOT / "dags"
BAD_DAGS_DIR = Path(__file__).parent / "fixtures" / "bad_dags"


def load(folder: Path):
    from airflow.dag_processing.dagbag import DagBag

    from include.assets import WRITER_POOL

    return DagBag(dag_folder=str(folder), known_pools={"default_pool", WRITER_POOL})


@pytest.fixture(scope="module")
def dagbag():
    return load(DAGS_DIR)


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}


def test_every_dag_follows_the_house_rules(dagbag) -> None:
    problems = [p for dag in dagbag.dags.values() for p in dag_violations(dag)]
    assert problems == []


def test_every_scheduled_asset_is_produced(dagbag) -> None:
    assert orphan_assets(dagbag.dags) == []


def test_every_dag_file_defines_its_dag(dagbag) -> None:
    files = {p.stem for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_")}
    assert files == set(dagbag.dags)


def test_the_rules_catch_a_bad_dag() -> None:
    bag = load(BAD_DAGS_DIR)
    assert bag.import_errors == {}
    problems = dag_violations(bag.dags["untagged_dag"])
    assert any("exactly one role tag" in p for p in problems)
    assert any("retries must be >= 1" in p for p in problems)
    assert any("on_failure_callback" in p for p in problems)


def test_dags_folder_parses_fast() -> None:
    """Cold parse of our DAG files in a fresh interpreter that has Airflow loaded (as the
    DAG processor has): only our modules and their imports are timed, in CPU seconds of that
    process (wall time doubles when the other pytest worker is busy; the imports do not)."""
    code = (
        "import time\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "import airflow.sdk\n"
        "t = time.process_time()\n"
        f"bag = DagBag(dag_folder={str(DAGS_DIR)!r})\n"
        "print('PARSE', len(bag.dags), time.process_time() - t)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    ).stdout
    _, n, took = next(line for line in out.splitlines() if line.startswith("PARSE")).split()
    print(f"\nparsed {n} DAGs from dags/ in {float(took):.2f} s (cold, Airflow preloaded, CPU s)")
    assert float(took) < 2.0, f"dags/ took {took} s to parse: move heavy imports into tasks"


def test_tasks_on_our_assets_emit_them_as_lineage_datasets(dagbag) -> None:
    """include.lineage turns each @task's trasos:// inlets and outlets into OpenLineage
    datasets (namespace trasos://<authority>, name <path>); tests/test_dbt.py reads them from
    a real run of events_transform."""
    from include.lineage import AssetTaskExtractor

    found = {}
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            if task.inlets or task.outlets:
                lineage = AssetTaskExtractor(task).extract()
                found[f"{dag.dag_id}.{task.task_id}"] = (
                    {f"{d.namespace} {d.name}" for d in lineage.inputs},
                    {f"{d.namespace} {d.name}" for d in lineage.outputs},
                )
    lake, warehouse = "trasos://lake", "trasos://warehouse"
    landing, published = "trasos://landing events", "trasos://published recommendations"
    marts = {f"{warehouse} fct_sessions", f"{warehouse} ml_interactions"}
    report = "trasos://reports business"
    assert found == {  # by hand, from dags/*.py
        "simulator_land_day.land_next_days": (set(), {landing}),
        "simulator_experiment_week.land_experiment_week": ({published}, {landing}),
        "events_ingest.load_new_files": ({landing}, set()),
        "events_ingest.publish_raw_events": (set(), {f"{lake} events"}),
        "events_ingest.publish_catalog": (set(), {f"{lake} catalog"}),
        "events_transform.validate_marts": (marts, set()),
        "events_transform.publish_analyst_copy": (marts, set()),
        "events_transform.publish_marts": (set(), marts),
        "business_metrics.build_metrics_marts": ({f"{warehouse} fct_sessions"}, set()),
        "business_metrics.render_report": (set(), {report}),
        "recommender_train.extract_training_data": ({f"{warehouse} ml_interactions"}, set()),
        "recommender_train.publish_recommendations": (set(), {published}),
        "recommender_rollback.roll_back": (set(), {published}),
        "model_monitor.check_model": ({published}, set()),
        "data_monitor.check_data": (
            {f"{lake} events", f"{lake} catalog", *marts, published, report},
            set(),
        ),
    }
