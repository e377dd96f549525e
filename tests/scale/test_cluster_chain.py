"""The whole DAG chain on the cluster profile, from an empty object store to a 200 from the API.

PostgreSQL, Redis, SeaweedFS and Airflow with the CeleryExecutor and two workers in their own
directories (``include.cluster``, what ``make up-cluster`` starts). A simulated week lands in
the writer host's landing zone; ``events_ingest``, ``events_transform`` and
``recommender_train`` are unpaused and run by themselves, each started by the previous one's
Asset event. Each run succeeds with task instances on both workers (the writer pool's on
``writer``, the rest on ``worker``). The lake, the models and the published lists are on the
object store and nothing of them is under either worker's data folder. An API on a third
"host" (its own state directory, so its own cache of the store) serves the version that
``published/CURRENT`` on the store names, and answers a known user with a 200.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from include import cluster
from include.simulator import SimulatorConfig, simulate
from include.storage import Store
from tests.scale.conftest import traversable_dir
from tests.scale.helpers import local_files

pytestmark = pytest.mark.scale

CHAIN = ("events_ingest", "events_transform", "recommender_train")
WEEK = SimulatorConfig(days=7, visitors=1500, seed=11)
CONTRACT = Path(__file__).resolve().parent.parent / "fixtures" / "small_sample_dod.yaml"


@pytest.fixture(scope="module")
def chain():
    """The cluster, the week landed, the chain run; the cluster's state and the runs."""
    root = traversable_dir("trasos-chain-")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRASOS_CLUSTER_DIR", str(root))
        try:
            state = cluster.up(
                extra_env={
                    "TRASOS_DEFINITION_OF_DONE": str(CONTRACT),
                    "TRASOS_MLFLOW": "off",
                    "TRASOS_RETRY_DELAY_SECONDS": "2",
                }
            )
            simulate(WEEK, Path(cluster.cluster_env(state, "writer")["TRASOS_DATA_DIR"]))
            runs = cluster.ClusterApi(state).run_chain(CHAIN, timeout_s=1800)
            yield state, runs
        finally:
            cluster.down()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def store_env(chain, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This process as a client of the cluster's store (its URL, endpoint and keys)."""
    env = cluster.cluster_env(chain[0], "writer")
    for key, value in env.items():
        if key.startswith(("TRASOS_", "AWS_")):
            monkeypatch.setenv(key, value)
    return env


def test_the_chain_runs_on_both_workers_through_the_object_store(chain, store_env) -> None:
    state, runs = chain
    assert list(runs) == list(CHAIN)
    for dag, run in runs.items():
        assert run["state"] == "success", (dag, run["tasks"])
        assert run["workers"] == ["worker", "writer"], (dag, run["workers"])
    assert set(runs["events_ingest"]["tasks"].values()) == {"success"}  # nothing skipped
    assert runs["recommender_train"]["tasks"]["publish_recommendations"] == "success"

    store = Store(store_env["TRASOS_STORE_URL"])
    assert store.files("lake/events") and store.files("lake/catalog")
    current = store.read_text("published/CURRENT").strip()
    assert store.files("models") and current
    # one training, one version: nothing of an older cluster's cache was pushed to this store
    versions = {k.split("/")[1] for k in store.files("published") if k != "published/CURRENT"}
    assert versions == {current}, versions
    for role in cluster.WORKERS:
        data = Path(cluster.cluster_env(state, role)["TRASOS_DATA_DIR"])
        assert local_files(data) == [], role  # no lake, models or lists on a worker's disk


def test_an_api_on_another_host_serves_the_published_version(
    store_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRASOS_STATE_DIR", str(tmp_path / "api-host"))  # its own cache
    monkeypatch.setenv("TRASOS_DATA_DIR", str(tmp_path / "api-data"))
    from fastapi.testclient import TestClient

    from include.serving.app import create_app
    from include.serving.auth import API_KEY_HEADER
    from include.serving.loader import model_store_from_settings

    published = Store(store_env["TRASOS_STORE_URL"]).read_text("published/CURRENT").strip()
    models = model_store_from_settings()
    models.check()
    assert models.current is not None and models.current.model_version == published
    client = TestClient(create_app(store=models, api_keys=["k"], start_watcher=False))
    user = models.current.first_key("user")
    got = client.get(f"/v1/users/{user}/recommendations?k=5", headers={API_KEY_HEADER: "k"})
    assert got.status_code == 200, got.text
    assert got.headers["X-Model-Version"] == published
    assert 1 <= len(got.json()["items"]) <= 5
    assert client.get(f"/v1/users/{user}/recommendations?k=5").status_code == 401
