"""The API for the platform: GET /metrics (Prometheus) and RFC 7807 problem documents."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from include.serving.app import create_app
from include.serving.auth import API_KEY_HEADER
from include.serving.loader import ModelStore
from include.serving.problems import PROBLEM_MEDIA_TYPE
from include.serving.publish import publish_fixture, set_current
from include.settings import REPO_ROOT, get_settings

KEY = "ops-key-0123456789"
AUTH = {API_KEY_HEADER: KEY}
USERS = "/v1/users/{user_id}/recommendations"
ALSO = "/v1/items/{item_id}/also-bought"


@pytest.fixture
def published(data_dir: Path) -> Path:
    published_dir = get_settings().published_dir
    publish_fixture(published_dir, "v1", n_users=30, n_items=60, k=20)
    return published_dir


@pytest.fixture
def store(published: Path) -> ModelStore:
    store = ModelStore(published)
    assert store.check()
    return store


def scrape(client: TestClient) -> dict[tuple[str, tuple], float]:
    """GET /metrics parsed by prometheus_client's own text parser: (sample, labels) -> value."""
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse_metrics(response.text)


def parse_metrics(text: str) -> dict[tuple[str, tuple], float]:
    """Prometheus text parsed by prometheus_client's parser: (sample, labels) -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def requests_counted(samples: dict, route: str, status: int, method: str = "GET") -> float:
    labels = (("method", method), ("route", route), ("status", str(status)))
    return samples.get(("trasos_api_requests_total", labels), 0.0)


# --- /metrics --------------------------------------------------------------------------------
def test_metrics_count_requests_by_route_and_status(store: ModelStore, published: Path) -> None:
    client = TestClient(create_app(store=store, api_keys=[KEY], start_watcher=False))
    calls = [
        ("GET", "/v1/users/U0000001/recommendations", AUTH, 200),  # fast path
        ("GET", "/v1/users/U0000002/recommendations?k=3", AUTH, 200),  # fast path
        ("GET", "/v1/users/U0000001/recommendations", {}, 401),
        ("GET", "/v1/users/U0000001/recommendations?k=21", AUTH, 422),
        ("GET", "/v1/items/I000001/also-bought", AUTH, 200),
        ("GET", "/v1/items/I999999/also-bought", AUTH, 404),
        ("POST", "/v1/items/I000001/also-bought", AUTH, 405),
        ("BREW", "/v1/items/I000001/also-bought", AUTH, 405),  # no series per invented method
        ("GET", "/v1/nothing-here", AUTH, 404),
        ("GET", "/metrics", {}, 401),
        ("GET", "/metrics", {API_KEY_HEADER: "wrong"}, 403),
        ("GET", "/metrics?format=json", AUTH, 422),  # unknown query parameter, as elsewhere
    ]
    for method, url, headers, status in calls:
        assert client.request(method, url, headers=headers).status_code == status, url

    samples = scrape(client)
    # by hand from the calls above; the scrape itself is counted after it answered
    expected = {
        (USERS, "GET", 200): 2,
        (USERS, "GET", 401): 1,
        (USERS, "GET", 422): 1,
        (ALSO, "GET", 200): 1,
        (ALSO, "GET", 404): 1,
        (ALSO, "POST", 405): 1,
        (ALSO, "other", 405): 1,
        ("unmatched", "GET", 404): 1,
        ("/metrics", "GET", 401): 1,
        ("/metrics", "GET", 403): 1,
        ("/metrics", "GET", 422): 1,
    }
    counted = {
        (dict(labels)["route"], dict(labels)["method"], int(dict(labels)["status"])): value
        for (name, labels), value in samples.items()
        if name == "trasos_api_requests_total"
    }
    assert counted == expected
    # the latency histogram: one observation per request of the route, cumulative buckets
    users = (("route", USERS),)
    assert samples[("trasos_api_request_duration_seconds_count", users)] == 4
    assert samples[("trasos_api_request_duration_seconds_bucket", (("le", "+Inf"), *users))] == 4
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in samples.items()
        if name == "trasos_api_request_duration_seconds_bucket" and dict(labels)["route"] == USERS
    )
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    assert 0 < samples[("trasos_api_request_duration_seconds_sum", users)] < 4 * 10

    # the served model, from what was published
    model = json.loads((published / "v1" / "model.json").read_text())
    rows = len(pd.read_parquet(published / "v1" / "recommendations.parquet"))
    info = (("candidate", model["candidate"]), ("kind", "candidate"), ("model_version", "v1"))
    assert samples[("trasos_api_model_info", info)] == 1
    assert samples[("trasos_api_model_loaded", ())] == 1
    assert samples[("trasos_api_model_rows", ())] == rows
    trained = datetime.fromisoformat(model["trained_at"].replace("Z", "+00:00")).timestamp()
    assert samples[("trasos_api_model_trained_timestamp_seconds", ())] == trained
    assert samples[("trasos_api_model_swaps_total", ())] == 1
    assert samples[("trasos_api_model_load_failures_total", ())] == 0
    assert samples[("trasos_api_model_load_failing", ())] == 0
    assert ("process_resident_memory_bytes", ()) in samples

    again = scrape(client)  # now the first scrape is counted too
    assert requests_counted(again, "/metrics", 200) == 1
    assert requests_counted(again, USERS, 200) == 2


def test_metrics_count_failed_loads_and_keep_the_served_version(
    store: ModelStore, published: Path
) -> None:
    client = TestClient(create_app(store=store, api_keys=[KEY], start_watcher=False))
    (published / "v2").mkdir()  # a version folder without its files
    set_current(published, "v2")
    assert not store.check()
    samples = scrape(client)
    assert samples[("trasos_api_model_load_failures_total", ())] == 1
    assert samples[("trasos_api_model_load_failing", ())] == 1
    info = [labels for name, labels in samples if name == "trasos_api_model_info"]
    assert [dict(labels)["model_version"] for labels in info] == ["v1"]  # still serving v1

    set_current(published, "v1")  # rolled back: nothing is failing any more
    assert not store.check()
    samples = scrape(client)
    assert samples[("trasos_api_model_load_failures_total", ())] == 1
    assert samples[("trasos_api_model_load_failing", ())] == 0


def test_metrics_before_any_model_is_loaded(data_dir: Path) -> None:
    store = ModelStore(get_settings().published_dir)
    assert not store.check()
    client = TestClient(create_app(store=store, api_keys=[KEY], start_watcher=False))
    samples = scrape(client)
    assert samples[("trasos_api_model_loaded", ())] == 0
    assert not [name for name, _ in samples if name == "trasos_api_model_info"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.integration
def test_cli_serve_process(published: Path, tmp_path: Path) -> None:
    """`python -m include.serving serve` with two workers (moved here from test_serving.py):
    it answers, and /metrics sums the request counters over both workers."""
    port = _free_port()
    state = tmp_path / "state"
    env = {**os.environ, "TRASOS_API_KEYS": KEY, "TRASOS_STATE_DIR": str(state)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "include.serving", "serve", "--port", str(port), "--workers", "2"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90  # start-up on a loaded 2-core machine
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not become healthy"
            time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/v1/users/U0000001/recommendations"
        assert httpx.get(url, headers=AUTH).json()["source"] == "personal"
        assert httpx.get(url).status_code == 401
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base) as one, httpx.Client(base_url=base) as other:
            for i in range(20):  # two connections, so that both workers answer some
                client = one if i % 2 else other
                response = client.get(f"/v1/users/U{i:07d}/recommendations", headers=AUTH)
                assert response.status_code == 200
        for _ in range(3):  # whichever worker answers the scrape: the sums over both
            samples = parse_metrics(httpx.get(f"{base}/metrics", headers=AUTH).text)
            assert requests_counted(samples, "/v1/users/{user_id}/recommendations", 200) == 21
            assert requests_counted(samples, "/v1/users/{user_id}/recommendations", 401) == 1
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    assert f"http://127.0.0.1:{port}" in output and "env TRASOS_API_KEYS" in output
    assert "serving model v1" in output
    assert any((state / "prometheus" / f"port-{port}").iterdir())  # multiprocess mode


# --- problem documents -----------------------------------------------------------------------
class _BrokenStore(ModelStore):
    broken = True

    @property
    def current(self):  # type: ignore[override]
        if self.broken:
            raise RuntimeError("secret internals")
        return None


def _problem_cases(data_dir: Path, store: ModelStore) -> list[tuple]:
    client = TestClient(create_app(store=store, api_keys=[KEY], start_watcher=False))
    empty = ModelStore(get_settings().published_dir / "nowhere")
    no_model = TestClient(create_app(store=empty, api_keys=[KEY], start_watcher=False))
    broken = TestClient(
        create_app(store=_BrokenStore(data_dir), api_keys=[KEY], start_watcher=False),
        raise_server_exceptions=False,
    )
    session = "/v1/sessions/recommendations"
    return [
        (client, "GET", "/v1/model", {}, None, 401, "missing-api-key"),
        (client, "GET", "/v1/model", {API_KEY_HEADER: "nope"}, None, 403, "invalid-api-key"),
        (client, "GET", "/v1/items/I999999/also-bought", AUTH, None, 404, "not-found"),
        (client, "GET", "/v1/cold-start/nosuch", AUTH, None, 404, "not-found"),
        (client, "GET", "/v2/anything", AUTH, None, 404, "not-found"),
        (client, "DELETE", "/v1/model", AUTH, None, 405, "method-not-allowed"),
        (client, "GET", "/v1/users/-x/recommendations", AUTH, None, 422, "invalid-request"),
        (client, "POST", session, AUTH, {"events": [], "k": 0}, 422, "invalid-request"),
        (no_model, "GET", "/v1/model", AUTH, None, 503, "model-not-loaded"),
        (no_model, "GET", "/v1/health", {}, None, 503, "model-not-loaded"),
        (broken, "GET", "/v1/model", AUTH, None, 500, "internal-error"),
    ]


def test_every_error_is_a_problem_document(data_dir: Path, store: ModelStore) -> None:
    for client, method, path, headers, body, status, kind in _problem_cases(data_dir, store):
        response = client.request(method, path, headers=headers, json=body)
        where = f"{method} {path} -> {response.status_code}"
        assert response.status_code == status, where
        assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE, where
        problem = response.json()
        assert set(problem) == {"type", "title", "status", "detail", "instance", "errors"}, where
        assert problem["type"] == f"urn:trasos:api:problem:{kind}", where
        assert problem["status"] == status and problem["instance"] == path, where
        assert problem["title"] and problem["detail"], where
        assert bool(problem["errors"]) == (status == 422), where
        assert "secret internals" not in response.text, where
        if status == 405:
            assert response.headers["allow"] == "GET"


def test_an_unexpected_error_is_counted_as_500(data_dir: Path) -> None:
    store = _BrokenStore(data_dir)
    app = create_app(store=store, api_keys=[KEY], start_watcher=False)
    client = TestClient(app, raise_server_exceptions=False)
    assert client.get("/v1/model", headers=AUTH).status_code == 500
    store.broken = False  # the scrape reads the store too
    samples = parse_metrics(app.state.metrics.render().decode())
    assert requests_counted(samples, "/v1/model", 500) == 1


def test_openapi_declares_every_error_as_a_problem_document() -> None:
    doc = json.loads((REPO_ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    required = set(doc["components"]["schemas"]["Problem"]["required"])
    assert required == {"type", "title", "status", "detail", "instance"}
    errors = 0
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "500" in responses, (path, method)
            for code, response in responses.items():
                if code[0] in "45":
                    errors += 1
                    assert response["content"] == {
                        PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
                    }, (path, method, code)
    assert errors > 20
    metrics = doc["paths"]["/metrics"]["get"]
    assert metrics["security"] == [{"ApiKeyAuth": []}]
    assert {"401", "403"} <= set(metrics["responses"])


def test_a_route_that_declares_no_errors_still_documents_problems() -> None:
    """A new endpoint (FastAPI adds its own 422) is documented with problem documents too."""
    from fastapi import FastAPI, Query

    from include.serving import problems

    app = FastAPI()
    problems.install(app, lambda e: problems.FieldError(location="x", message=str(e)))

    @app.get("/x")
    async def x(k: int = Query(1)) -> dict:
        return {"k": k}

    doc = app.openapi()
    responses = doc["paths"]["/x"]["get"]["responses"]
    ref = {"schema": {"$ref": "#/components/schemas/Problem"}}
    assert responses["422"]["content"] == {PROBLEM_MEDIA_TYPE: ref}
    assert responses["500"]["content"] == {PROBLEM_MEDIA_TYPE: ref}
    assert {"Problem", "FieldError"} <= set(doc["components"]["schemas"])
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    answer = TestClient(app).get("/x?k=notanumber")
    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM_MEDIA_TYPE
