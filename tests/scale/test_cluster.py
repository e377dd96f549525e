"""The cluster profile for real (``include.cluster``): PostgreSQL, Redis, SeaweedFS, Airflow
with the CeleryExecutor and two workers in their own directories, all on loopback.

One ingestion DAG run: the writer worker is SIGKILLed in the middle of ``load_new_files``
(after the first load's Parquet reached the object store, before the last load), the
scheduler fails the lost task instance and retries it, and the run ends in exactly the state
of one clean run on local disk (the embedded profile's counts and rows). Task instances ran on
both workers (the writer-pool tasks on ``writer``, the others on ``worker``); the lake and the
quarantine are on the object store and nothing of them is under any local data folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from include import cluster
from include.ingest import ingest
from include.storage import Store
from tests.scale.conftest import traversable_dir
from tests.scale.helpers import lake_state, local_files, small_chunk

pytestmark = pytest.mark.scale

DAG = "events_ingest"


@pytest.fixture(scope="module")
def running_cluster(simulated_landing: Path):
    root = traversable_dir("trasos-cluster-")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRASOS_CLUSTER_DIR", str(root))
        chunk = small_chunk(simulated_landing)
        try:
            state = cluster.up(
                extra_env={"TRASOS_INGEST_CHUNK_BYTES": chunk, "TRASOS_RETRY_DELAY_SECONDS": "2"}
            )
            yield state
        finally:
            cluster.down()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def embedded_reference(simulated_landing: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The same input through the embedded default's ingestion (local disk)."""
    data = tmp_path_factory.mktemp("embedded") / "data"
    shutil.copytree(simulated_landing, data / "landing")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRASOS_DATA_DIR", str(data))
        for key in ("TRASOS_STORE_URL", "TRASOS_WAREHOUSE", "TRASOS_LOCK_DSN"):
            mp.delenv(key, raising=False)
        mp.setenv("TRASOS_INGEST_CHUNK_BYTES", small_chunk(simulated_landing))
        summary = ingest()
        return {"summary": summary.as_dict(), "state": lake_state()}


def test_worker_killed_mid_ingestion_then_retried_equals_a_clean_run(
    running_cluster: dict,
    simulated_landing: Path,
    embedded_reference: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = running_cluster
    env = cluster.cluster_env(state, "writer")
    for key in ("TRASOS_DATA_DIR", "TRASOS_STORE_URL", "TRASOS_S3_ENDPOINT_URL", "TRASOS_LOCK_DSN"):
        monkeypatch.setenv(key, env[key])
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.delenv("TRASOS_WAREHOUSE", raising=False)
    writer_data = Path(env["TRASOS_DATA_DIR"])
    shutil.copytree(simulated_landing, writer_data / "landing")
    store = Store(env["TRASOS_STORE_URL"])
    assert store.files("lake") == []  # an empty store

    api = cluster.ClusterApi(state)
    run_id = api.unpause_and_first_run(DAG)  # the latest hour's scheduled run
    # Kill the writer worker once the first load's objects are on the store.
    api.wait("the first lake object", lambda: store.files("lake"), timeout_s=300)
    cluster.kill_worker(state, "writer")
    cluster.start_worker(state, "writer")

    run = api.wait_run(DAG, run_id, timeout_s=420)
    tis = run["tasks"]
    assert run["state"] == "success", tis
    load = tis["load_new_files"]
    assert load["try_number"] >= 2  # the killed try, then the retry
    hosts = {t: ti["hostname"] for t, ti in tis.items()}
    assert hosts == {
        "load_new_files": "writer",
        "validate_raw_events": "writer",
        "publish_raw_events": "worker",
        "publish_catalog": "worker",
    }, hosts
    # The retry reports the loads the killed try committed (same run id: include.ingest's
    # batch), so its gate checks the whole batch and both Asset events are emitted.
    assert {t: ti["state"] for t, ti in tis.items()} == dict.fromkeys(hosts, "success")
    entry = api.get(
        f"/dags/{DAG}/dagRuns/{run_id}/taskInstances/publish_raw_events/xcomEntries/return_value"
        "?stringify=false"
    )
    announced = entry["value"] if isinstance(entry["value"], dict) else json.loads(entry["value"])
    clean = embedded_reference["summary"]
    for key in ("lines_in", "loaded", "quarantined", "duplicates", "events_loaded", "loads"):
        assert announced[key] == clean[key], key

    assert lake_state() == embedded_reference["state"]  # the state of one clean run
    for role in cluster.WORKERS:
        data = Path(cluster.cluster_env(state, role)["TRASOS_DATA_DIR"])
        assert local_files(data) == [], role
