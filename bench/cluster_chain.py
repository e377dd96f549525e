"""The whole DAG chain on the cluster profile, from an empty object store to a 200 from the API.

Starts ``make up-cluster``'s stack in a scratch folder, lands 10 simulated days (2,500
visitors) in the writer's landing zone, unpauses ``events_ingest``, ``events_transform`` and
``recommender_train`` (each follows the previous one's Asset), waits for each run, then asks
the API (another state directory: its own cache of ``published/`` on the store) for one
user's list. The definition of done is the small-sample contract of the chain tests
(``tests/fixtures/small_sample_dod.yaml``; the shipped one refuses samples this small).
``tests/scale/test_cluster_chain.py`` runs the same chain on a smaller week; the figures are
in docs/scale-out.md.

Last line: one JSON object with each DAG's state, wall time and the workers its task
instances ran on, the API status and served version, and what is on the object store.

Usage: ``python bench/cluster_chain.py`` (needs ``make setup-scale``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DAGS = ("events_ingest", "events_transform", "recommender_train")
#: the small-sample definition of done of the chain tests
SMALL_SAMPLE_CONTRACT = (
    Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "small_sample_dod.yaml"
)


def log(msg: str) -> None:
    print(f"[bench/cluster_chain {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main() -> int:
    from include import cluster
    from include.simulator import SimulatorConfig, simulate

    work = Path(tempfile.mkdtemp(prefix="trasos-chain-"))
    work.chmod(0o755)  # PostgreSQL runs as nobody under root
    os.environ["TRASOS_CLUSTER_DIR"] = str(work / "cluster")
    result: dict = {"dags": {}}
    try:
        t0 = time.perf_counter()
        state = cluster.up(
            extra_env={
                "TRASOS_DEFINITION_OF_DONE": str(SMALL_SAMPLE_CONTRACT),
                "TRASOS_MLFLOW": "off",
                "TRASOS_RETRY_DELAY_SECONDS": "2",
            }
        )
        result["cluster_up_s"] = round(time.perf_counter() - t0, 1)
        env = cluster.cluster_env(state, "writer")
        simulate(SimulatorConfig(days=10, visitors=2500, seed=11), Path(env["TRASOS_DATA_DIR"]))
        api = cluster.ClusterApi(state)
        chain = api.run_chain(DAGS, timeout_s=3600)
        for dag, got in chain.items():
            result["dags"][dag] = {k: v for k, v in got.items() if k != "tasks"}
            log(f"{dag}: {result['dags'][dag]}")
        # the API host: the cluster's store, its own state directory (cache)
        os.environ.update({k: v for k, v in env.items() if k.startswith(("TRASOS_", "AWS_"))})
        os.environ["TRASOS_STATE_DIR"] = str(work / "api-host")
        from fastapi.testclient import TestClient

        from include.serving.app import create_app
        from include.serving.auth import API_KEY_HEADER
        from include.serving.loader import model_store_from_settings
        from include.settings import get_settings

        models = model_store_from_settings()
        models.check()
        client = TestClient(create_app(store=models, api_keys=["k"], start_watcher=False))
        user = models.current.first_key("user") if models.current else "nobody"
        got = client.get(f"/v1/users/{user}/recommendations?k=5", headers={API_KEY_HEADER: "k"})
        store = get_settings().store
        result["api_status"] = got.status_code
        result["served_version"] = got.headers.get("X-Model-Version")
        result["objects"] = {p: len(store.files(p)) for p in ("lake", "quarantine", "models")}
        result["objects"]["published"] = len(store.files("published"))
    finally:
        cluster.down()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))
    return 0 if result.get("api_status") == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
