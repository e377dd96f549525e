"""The recommendations API (include/serving): contract, auth, validation, loading, hot swap."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from common.experiment import CONTROL, TREATMENT, Experiment, active_experiment
from include.serving import __main__ as cli
from include.serving.app import (
    MODEL_VERSION_HEADER,
    AlsoBought,
    Health,
    ModelInfo,
    Problem,
    UserRecommendations,
    create_app,
    render_openapi,
)
from include.serving.auth import API_KEY_HEADER, KeyRing, load_api_keys
from include.serving.loader import CURRENT_FILE, ModelLoadError, ModelStore, load_version
from include.serving.publish import fixture_frame, publish_fixture, set_current
from include.settings import REPO_ROOT, get_settings

KEY = "test-key-0123456789"
AUTH = {API_KEY_HEADER: KEY}
OPENAPI_PATH = REPO_ROOT / "docs" / "openapi.json"
FIXTURE = {"n_users": 30, "n_items": 60, "k": 20}


def expected_items(frame: pd.DataFrame, list_type: str, key: str, k: int) -> list[dict]:
    rows = frame[(frame.list_type == list_type) & (frame.key_id == key)].sort_values("rank")
    return [
        {"rank": int(r.rank), "item_id": r.item_id, "score": float(r.score)}
        for r in rows.head(k).itertuples()
    ]


@pytest.fixture
def published(data_dir: Path) -> Path:
    published_dir = get_settings().published_dir
    publish_fixture(published_dir, "v1", **FIXTURE)
    return published_dir


@pytest.fixture
def store(published: Path) -> ModelStore:
    store = ModelStore(published)
    assert store.check()
    return store


@pytest.fixture
def client(store: ModelStore) -> TestClient:
    return TestClient(create_app(store=store, api_keys=[KEY], start_watcher=False))


# --- the OpenAPI document --------------------------------------------------------------------
def test_openapi_document_is_generated_from_the_code() -> None:
    committed = OPENAPI_PATH.read_text(encoding="utf-8")
    assert committed == render_openapi(), (
        "docs/openapi.json is stale: python -m include.serving openapi > docs/openapi.json"
    )
    doc = json.loads(committed)
    assert doc["components"]["securitySchemes"]["ApiKeyAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": API_KEY_HEADER,
        "description": doc["components"]["securitySchemes"]["ApiKeyAuth"]["description"],
    }
    assert doc["paths"]["/v1/health"]["get"]["security"] == []
    for path in ("/v1/users/{user_id}/recommendations", "/v1/items/{item_id}/also-bought"):
        assert doc["paths"][path]["get"]["security"] == [{"ApiKeyAuth": []}]


class _AppUnderTest:
    """ASGI app that forwards to the app of the running test (set by `contract_app`)."""

    target = None

    async def __call__(self, scope, receive, send) -> None:
        await self.target(scope, receive, send)


# Generated from the committed document (not the live app), run in process against the app.
contract = schemathesis.openapi.from_path(OPENAPI_PATH)
contract.app = _AppUnderTest()
contract.config.update(base_url="http://testserver")


@pytest.fixture
def contract_app(client: TestClient):
    _AppUnderTest.target = client.app
    yield
    _AppUnderTest.target = None


# One pytest item per operation, parametrized here rather than by `contract.parametrize()`:
# under pytest-xdist schemathesis' lazy items collapse into one and the other operations
# silently never run (seen: 7 collected, 1 reported).
OPERATIONS = [result.ok() for result in contract.get_all_operations()]


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_contract_from_openapi_document(operation, contract_app) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    def check(case) -> None:
        case.call_and_validate(headers=AUTH)

    check()


def test_every_operation_of_the_document_is_checked() -> None:
    document = json.loads(OPENAPI_PATH.read_text())
    expected = {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert {op.label for op in OPERATIONS} == expected
    assert "POST /v1/sessions/recommendations" in expected and "GET /metrics" in expected


def test_serving_does_not_import_airflow() -> None:
    code = (
        "import sys, include.serving.app, include.serving.__main__, include.serving.publish;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'airflow');"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


# --- endpoints -------------------------------------------------------------------------------
def test_personal_recommendations(client: TestClient) -> None:
    frame = fixture_frame(**FIXTURE)
    response = client.get("/v1/users/U0000003/recommendations?k=5", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers[MODEL_VERSION_HEADER] == "v1"
    body = UserRecommendations.model_validate_json(response.content)
    assert (body.user_id, body.source, body.model_version) == ("U0000003", "personal", "v1")
    assert response.json()["items"] == expected_items(frame, "user", "U0000003", 5)
    assert body.generated_at.tzinfo is not None

    default = client.get("/v1/users/U0000003/recommendations", headers=AUTH).json()
    assert [i["rank"] for i in default["items"]] == list(range(1, 11))
    everything = client.get("/v1/users/U0000003/recommendations?k=20", headers=AUTH).json()
    assert len(everything["items"]) == 20  # the published list length is the largest k
    too_many = client.get("/v1/users/U0000003/recommendations?k=21", headers=AUTH)
    assert too_many.status_code == 422  # not silently fewer than asked


def test_assignment_is_stable_and_near_the_configured_share() -> None:
    exp = Experiment("exp-a", control_share=0.1, salt="s")
    ids = [f"U{n:07d}" for n in range(20_000)]
    first = [exp.assign(i) for i in ids]
    assert first == [exp.assign(i) for i in ids]  # stable: no state, same id same variant
    share = first.count(CONTROL) / len(ids)
    # binomial sd at n=20000, p=0.1 is 0.0021: 4 sd either side
    assert 0.0915 < share < 0.1085, share
    # another experiment (or salt) re-randomises: the two assignments are independent
    other = [Experiment("exp-b", control_share=0.1, salt="s").assign(i) for i in ids]
    both = sum(a == b == CONTROL for a, b in zip(first, other, strict=True)) / len(ids)
    assert 0.006 < both < 0.014, both  # about 0.1 * 0.1
    with pytest.raises(ValueError, match="control_share"):
        Experiment("bad", control_share=1.0)


def test_the_answer_carries_the_variant_and_control_gets_the_default_list(
    store: ModelStore,
) -> None:
    frame = fixture_frame(**FIXTURE)
    exp = Experiment("exp-t", control_share=0.5, salt="t")
    app = create_app(store=store, api_keys=[KEY], start_watcher=False, experiment=exp)
    client = TestClient(app)
    users = sorted(set(frame[frame.list_type == "user"].key_id))[:12]
    variants = {u: exp.assign(u) for u in users}
    assert set(variants.values()) == {CONTROL, TREATMENT}
    for user, variant in variants.items():
        for fast in ("", "?k=4"):  # the fast path (no query) and FastAPI answer alike
            body = client.get(f"/v1/users/{user}/recommendations{fast}", headers=AUTH).json()
            k = 4 if fast else 10
            assert (body["experiment_id"], body["variant"]) == ("exp-t", variant)
            if variant == CONTROL:
                assert body["source"] == "default"
                assert body["items"] == expected_items(frame, "cold_start", "all", k)
            else:
                assert body["source"] == "personal"
                assert body["items"] == expected_items(frame, "user", user, k)
    control = next(u for u, v in variants.items() if v == CONTROL)
    body = client.post(
        "/v1/sessions/recommendations",
        json={"events": [], "k": 3, "visitor_id": control},
        headers=AUTH,
    ).json()
    assert (body["variant"], [i["source"] for i in body["items"]]) == (CONTROL, ["default"] * 3)
    assert [i["item_id"] for i in body["items"]] == [
        i["item_id"] for i in expected_items(frame, "cold_start", "all", 3)
    ]
    # no visitor named: no assignment possible, so no answer (422), never a personal one
    no_visitor = client.post("/v1/sessions/recommendations", json={"events": []}, headers=AUTH)
    assert no_visitor.status_code == 422 and "name the visitor" in no_visitor.json()["detail"]


def test_one_assignment_key_no_bypass_by_hand(store: ModelStore) -> None:
    """The session endpoint assigns by user_id when given, else visitor_id: a signed-in control
    customer cannot get personal lists by leaving visitor_id out (the bypass this closes).

    Buckets by hand, experiment "exp-h", salt "h", control share 0.5: the first 8 bytes of
    sha256("h:exp-h:<id>") over 2**64:
      U0000001: 0x67a3bd14dd911447 -> 0.4048 < 0.5: control
      U0000000: 0x92fabd7474fc04dd -> 0.5741: treatment
      anon-1:   0xf1fdc317d8111bf3 -> 0.9453: treatment
      anon-2:   0x5c90a9ceae9fabc1 -> 0.3616: control
    """
    exp = Experiment("exp-h", control_share=0.5, salt="h")
    by_hand = {"U0000001": 0.4048, "U0000000": 0.5741, "anon-1": 0.9453, "anon-2": 0.3616}
    assert {i: round(exp.bucket(i), 4) for i in by_hand} == by_hand
    frame = fixture_frame(**FIXTURE)
    names = fixture_names()
    client = TestClient(
        create_app(store=store, api_keys=[KEY], start_watcher=False, experiment=exp)
    )
    default3 = [i["item_id"] for i in expected_items(frame, "cold_start", "all", 3)]

    def ask(**ids: str) -> dict:
        body = {"events": ev(names[0], names[2]), "k": 3, **ids}
        response = client.post(SESSION_URL, json=body, headers=AUTH)
        assert response.status_code == 200, response.text
        return response.json()

    def shown(answer: dict) -> tuple:
        items = answer["items"]
        return (
            answer["experiment_id"],
            answer["variant"],
            [i["item_id"] for i in items],
            sorted({i["source"] for i in items}),
        )

    control = ("exp-h", "control", default3, ["default"])
    # the bypass: user_id alone (a control customer) -> the default list, no personal fusion
    alone = ask(user_id="U0000001")
    assert shown(alone) == control and alone["personal_items"] == 0
    # the user decides, whatever device (anonymous id) they are on: anon-1 alone is treatment
    assert shown(ask(user_id="U0000001", visitor_id="anon-1")) == control
    # an anonymous control visitor: the default list too
    assert shown(ask(visitor_id="anon-2")) == control
    # treatment: session items [n0, n2] score n3, n4, n1 first (see the by-hand test below)
    anon = ask(visitor_id="anon-1")
    assert shown(anon) == ("exp-h", "treatment", [names[3], names[4], names[1]], ["session"])
    # a signed-in treatment customer on a control device: the user's variant, personal fusion
    fused = ask(user_id="U0000000", visitor_id="anon-2")
    assert fused["variant"] == "treatment" and fused["personal_items"] > 0
    # the user endpoint gives the same customer the same variant and list
    for user, variant in (("U0000001", "control"), ("U0000000", "treatment")):
        body = client.get(f"/v1/users/{user}/recommendations?k=3", headers=AUTH).json()
        assert (body["experiment_id"], body["variant"]) == ("exp-h", variant)
    assert [
        i["item_id"]
        for i in client.get("/v1/users/U0000001/recommendations?k=3", headers=AUTH).json()["items"]
    ] == default3


def test_unknown_user_gets_the_cold_start_list(client: TestClient) -> None:
    frame = fixture_frame(**FIXTURE)
    response = client.get("/v1/users/never-seen:42/recommendations?k=7", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert (body["user_id"], body["source"]) == ("never-seen:42", "cold_start")
    assert body["items"] == expected_items(frame, "cold_start", "all", 7)


def test_also_bought(client: TestClient) -> None:
    frame = fixture_frame(**FIXTURE)
    response = client.get("/v1/items/I000017/also-bought?k=3", headers=AUTH)
    assert response.status_code == 200
    body = AlsoBought.model_validate_json(response.content)
    assert body.item_id == "I000017"
    assert response.json()["items"] == expected_items(frame, "also_bought", "I000017", 3)

    missing = client.get("/v1/items/I999999/also-bought", headers=AUTH)
    assert missing.status_code == 404
    assert "unknown item_id 'I999999'" in Problem.model_validate_json(missing.content).detail


def test_model_and_health(client: TestClient) -> None:
    info = ModelInfo.model_validate_json(client.get("/v1/model", headers=AUTH).content)
    assert info.model_version == "v1"
    assert info.candidate == "fixture"
    assert info.metrics["ndcg@10"] == pytest.approx(0.1234)
    assert info.counts.users == 30 and info.counts.items == 60
    assert "all" in info.counts.cold_start_segments and info.cold_start_fallback == "all"
    assert info.trained_at < info.generated_at

    health = client.get("/v1/health")  # no key needed
    assert health.status_code == 200
    assert Health.model_validate_json(health.content).model_version == "v1"


def test_nothing_published_yet_is_503(data_dir: Path) -> None:
    store = ModelStore(get_settings().published_dir)
    assert not store.check()
    client = TestClient(create_app(store=store, api_keys=[KEY], start_watcher=False))
    assert client.get("/v1/health").status_code == 503
    response = client.get("/v1/users/U0000001/recommendations", headers=AUTH)
    assert response.status_code == 503
    assert "no model version is loaded" in response.json()["detail"]


def test_sample_with_nothing_published_prints_the_503(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["sample"]) == 1
    captured = capsys.readouterr()
    assert "no model is published" in captured.err
    head, body = captured.out.split("\n", 1)
    assert head == "GET /v1/users/unknown-user/recommendations?k=5 -> 503"
    assert "no model version is loaded" in json.loads(body)["detail"]


@pytest.mark.parametrize(
    "url",
    [
        "/v1/users/U0000003/recommendations",
        "/v1/users/U0000003/recommendations?k=1",
        "/v1/users/U0000003/recommendations?k=20",
        "/v1/users/a.b:c-d_e/recommendations?k=3",  # unknown user: cold start
        "/v1/users/U0000003/recommendations?k=010",  # not canonical: FastAPI answers
        "/v1/users/U0000003/recommendations?k=5&k=6",
        "/v1/users/U0000003/recommendations?k=0",
        "/v1/users/U0000003/recommendations?k=",
        "/v1/users/U0000003/recommendations?limit=5",
        "/v1/users/U0000003%0A/recommendations",  # a trailing newline is not a valid id
        "/v1/users/-x/recommendations",
        "/v1/items/I000017/also-bought?k=4",
        "/v1/items/I999999/also-bought",
        "/v1/items/I000017/also-bought/",
        "/v1/users/U0000003/recommendations/extra",
    ],
)
@pytest.mark.parametrize("key", [KEY, None, "wrong"])
def test_fast_path_answers_exactly_like_fastapi(store: ModelStore, url: str, key) -> None:
    headers = {API_KEY_HEADER: key} if key else {}
    answers = []
    for fast in (True, False):
        app = create_app(store=store, api_keys=[KEY], start_watcher=False, fast_path=fast)
        response = TestClient(app).get(url, headers=headers, follow_redirects=False)
        answers.append(
            (
                response.status_code,
                response.content,
                response.headers.get("content-type"),
                response.headers.get(MODEL_VERSION_HEADER),
            )
        )
    assert answers[0] == answers[1]


# --- auth ------------------------------------------------------------------------------------
def test_api_key_missing_is_401_wrong_is_403(client: TestClient) -> None:
    for path in (
        "/v1/users/U0000001/recommendations",
        "/v1/items/I000001/also-bought",
        "/v1/model",
    ):
        missing = client.get(path)
        assert missing.status_code == 401, path
        assert API_KEY_HEADER in missing.json()["detail"]
        wrong = client.get(path, headers={API_KEY_HEADER: KEY + "x"})
        assert wrong.status_code == 403, path
        assert wrong.json()["detail"] == "invalid API key"
        assert client.get(path, headers=AUTH).status_code == 200
    # Authentication comes before validation: no hints for anonymous callers.
    assert client.get("/v1/users/U1/recommendations?k=0").status_code == 401


def test_api_docs_are_public_on_purpose_and_hold_no_data(client: TestClient) -> None:
    """/docs, /redoc and /openapi.json answer without a key (documented in docs/serving.md
    and in the API description); the data endpoints they describe still need one."""
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code == 200, path
    document = client.get("/openapi.json").json()
    assert "public on purpose" in document["info"]["description"]
    assert "U0000001" not in client.get("/openapi.json").text  # no published data in it
    assert client.get("/v1/model").status_code == 401


def test_keyring_accepts_only_its_keys() -> None:
    ring = KeyRing(["alpha", "beta"])
    assert ring.accepts("beta") and ring.accepts("alpha")
    assert not ring.accepts("gamma") and not ring.accepts("") and not ring.accepts("alph")
    assert not KeyRing([]).accepts("anything")


def test_api_keys_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRASOS_API_KEYS", " k1, k2 ,,")
    assert load_api_keys() == (["k1", "k2"], "env TRASOS_API_KEYS")


def test_api_keys_file_generated_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TRASOS_API_KEYS", raising=False)
    monkeypatch.setenv("TRASOS_STATE_DIR", str(tmp_path / "state"))
    keys, source = load_api_keys()
    path = tmp_path / "state" / "api_keys.txt"
    assert source == str(path) and len(keys) == 1 and len(keys[0]) > 30
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert str(path) in capsys.readouterr().err
    assert load_api_keys() == (keys, str(path))  # reused, not regenerated


# --- validation ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "location", "words"),
    [
        ("/v1/users/U1/recommendations?k=0", "query.k", "greater than or equal to 1"),
        ("/v1/users/U1/recommendations?k=21", "query.k", "less than or equal to 20"),
        ("/v1/users/U1/recommendations?k=ten", "query.k", "valid integer"),
        ("/v1/users/bad%20id!/recommendations", "path.user_id", "must be 1 to 64 characters"),
        (f"/v1/users/{'u' * 65}/recommendations", "path.user_id", "must be 1 to 64 characters"),
        ("/v1/users/.hidden/recommendations", "path.user_id", "the first one a letter"),
        ("/v1/items/I%22x/also-bought?k=3", "path.item_id", "must be 1 to 64 characters"),
    ],
)
def test_bad_input_is_422_with_a_message(
    client: TestClient, url: str, location: str, words: str
) -> None:
    response = client.get(url, headers=AUTH)
    assert response.status_code == 422
    problem = Problem.model_validate_json(response.content)
    assert problem.detail.startswith("invalid request: ")
    assert location in problem.detail and words in problem.detail, problem.detail
    assert problem.errors[0].location == location


# --- loading and publishing ------------------------------------------------------------------
def test_snapshot_indexes(published: Path) -> None:
    snap = load_version(published, "v1")
    assert snap.rows == (30 + 60 + 4) * 20
    assert snap.count("user") == 30 and snap.count("also_bought") == 60
    assert set(snap.index["cold_start"]) == {
        "all",
        "category:dresses",
        "category:shoes",
        "category:knitwear",
    }
    assert snap.items_json("user", "nobody", 5) is None
    assert json.loads(b"[" + snap.items_json("user", "U0000000", 2) + b"]")[1]["rank"] == 2


def test_loader_escapes_ids_and_keeps_given_order(data_dir: Path) -> None:
    frame = pd.DataFrame(
        {
            "list_type": ["cold_start", "cold_start", "user", "user"],
            "key_id": ["all", "all", "u1", "u1"],
            "rank": [2, 1, 1, 3],  # unsorted, with a gap: the gap is fine
            "item_id": ['odd"item\\', "é", "a", "b"],
            "score": np.array([0.5, 0.75, 1e-7, 3.0], dtype=np.float32),
        }
    )
    published_dir = get_settings().published_dir
    publish_fixture(published_dir, "odd", frame=frame)
    snap = load_version(published_dir, "odd")
    cold = json.loads(b"[" + snap.items_json("cold_start", "all", 10) + b"]")
    assert cold == [
        {"rank": 1, "item_id": "é", "score": 0.75},
        {"rank": 2, "item_id": 'odd"item\\', "score": 0.5},
    ]
    assert json.loads(b"[" + snap.items_json("user", "u1", 10) + b"]")[0]["score"] == 1e-7


def test_loader_accepts_what_recsys_scoring_publishes(data_dir: Path) -> None:
    """model.json with version/kind and no metrics; cold start 'popular' + 'trending'."""
    frame = fixture_frame(**FIXTURE)
    frame.loc[(frame.list_type == "cold_start") & (frame.key_id == "all"), "key_id"] = "popular"
    frame.loc[(frame.list_type == "cold_start") & (frame.key_id == "category:shoes"), "key_id"] = (
        "trending"
    )
    published_dir = get_settings().published_dir
    folder = publish_fixture(published_dir, "20260301T0200-blend", frame=frame)
    (folder / "model.json").write_text(
        json.dumps(
            {
                "version": "20260301T0200-blend",
                "trained_at": "2026-03-01T02:00:00+00:00",
                "published_at": "2026-03-01T02:20:00+00:00",
                "kind": "factors+cooccurrence",
                "dod_passed": True,
            }
        )
    )
    store = ModelStore(published_dir)
    assert store.check(), store.last_error
    client = TestClient(create_app(store=store, api_keys=[KEY], start_watcher=False))
    body = client.get("/v1/users/someone-new/recommendations?k=3", headers=AUTH).json()
    assert body["source"] == "cold_start"
    assert body["items"] == expected_items(frame, "cold_start", "popular", 3)
    info = client.get("/v1/model", headers=AUTH).json()
    assert (info["candidate"], info["metrics"], info["cold_start_fallback"]) == (
        "factors+cooccurrence",
        {},
        "popular",
    )
    assert info["trained_at"] == "2026-03-01T02:00:00Z"


def _broken(frame: pd.DataFrame, case: str) -> pd.DataFrame:
    frame = frame.copy()
    if case == "no global cold start":
        frame = frame[~((frame.list_type == "cold_start") & (frame.key_id == "all"))]
    elif case == "repeated rank":
        frame.loc[1, "rank"] = frame.loc[0, "rank"]
    elif case == "infinite score":
        frame.loc[5, "score"] = np.inf
    elif case == "unknown list type":
        frame.loc[0, "list_type"] = "trending"
    elif case == "null item":
        frame["item_id"] = frame["item_id"].astype(object)
        frame.loc[3, "item_id"] = None
    elif case == "rank 0":
        frame.loc[0, "rank"] = 0
    elif case == "control character":
        frame.loc[0, "item_id"] = "I\n1"

    return frame


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no global cold start", "no global cold-start list"),
        ("repeated rank", "repeats in list"),
        ("infinite score", "NaN or infinite"),
        ("unknown list type", "unknown list_type"),
        ("null item", "null values in item_id"),
        ("rank 0", "rank must start at 1"),
        ("control character", "control characters"),
        ("missing column", r"lacks columns \['score'\]"),
    ],
)
def test_loader_rejects_contract_violations(data_dir: Path, case: str, message: str) -> None:
    published_dir = get_settings().published_dir
    publish_fixture(published_dir, "bad", frame=_broken(fixture_frame(**FIXTURE), case))
    if case == "missing column":  # the publisher refuses to write that: break it by hand
        path = published_dir / "bad" / "recommendations.parquet"
        pd.read_parquet(path).drop(columns="score").to_parquet(path)
    with pytest.raises(ModelLoadError, match=message):
        load_version(published_dir, "bad")


def test_loader_rejects_wrong_version_and_missing_files(published: Path) -> None:
    (published / "v1" / "model.json").rename(published / "model.json.bak")
    with pytest.raises(ModelLoadError, match="model.json does not exist"):
        load_version(published, "v1")
    info = json.loads((published / "model.json.bak").read_text())
    info["model_version"] = "v0"
    (published / "v1" / "model.json").write_text(json.dumps(info))
    with pytest.raises(ModelLoadError, match="says model_version='v0'"):
        load_version(published, "v1")
    with pytest.raises(ModelLoadError, match="invalid model_version"):
        load_version(published, "../etc")


def test_failed_load_keeps_serving_the_old_version(
    store: ModelStore, published: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = publish_fixture(published, "v2", make_current=True, **FIXTURE)
    (bad / "recommendations.parquet").write_bytes(b"not parquet")
    assert not store.check()
    assert store.current.model_version == "v1"
    assert "v2" in caplog.text and "still serving v1" in caplog.text
    assert "not readable" in store.last_error
    assert not store.check()  # not retried at once: no log storm
    (published / CURRENT_FILE).write_text("../../etc\n")
    assert not store.check() and store.current.model_version == "v1"

    publish_fixture(published, "v3", **FIXTURE)
    assert store.check()
    assert store.current.model_version == "v3" and store.last_error is None


def test_publish_is_immutable_and_atomic(published: Path) -> None:
    with pytest.raises(FileExistsError):
        publish_fixture(published, "v1", **FIXTURE)
    with pytest.raises(FileNotFoundError):
        set_current(published, "never-published")
    assert (published / CURRENT_FILE).read_text() == "v1\n"
    assert sorted(p.name for p in published.iterdir()) == [CURRENT_FILE, "v1"]  # no temp left


def test_sample_cli_prints_a_real_response(
    published: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["sample", "--k", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("GET /v1/users/U0000000/recommendations?k=3 -> 200")
    body = json.loads(out.split("\n", 1)[1])
    assert body["source"] == "personal" and len(body["items"]) == 3


# --- a real server -----------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Server:
    """uvicorn in a thread on loopback, with the real app and a fast-polling store."""

    def __init__(self, store: ModelStore) -> None:
        import uvicorn

        self.port = _free_port()
        app = create_app(store=store, api_keys=[KEY])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.mark.integration
def test_new_version_is_picked_up_under_traffic_without_errors(data_dir: Path) -> None:
    published_dir = get_settings().published_dir
    frames = {
        "v1": fixture_frame(n_users=400, n_items=300, k=20, seed=1),
        "v2": fixture_frame(n_users=800, n_items=300, k=20, seed=2),
    }
    publish_fixture(published_dir, "v1", frame=frames["v1"])
    users = [f"U{n:07d}" for n in range(0, 800, 37)]  # half of them are new in v2
    expected = {
        (version, user): expected_items(frame, "user", user, 5)
        # held-out visitors (about 10 %) get the default list, as unknown users do
        if user in set(frame.key_id) and active_experiment().assign(user) == "treatment"
        else expected_items(frame, "cold_start", "all", 5)
        for version, frame in frames.items()
        for user in users
    }
    stop = threading.Event()
    seen: list[list[str]] = [[], []]
    problems: list[str] = []

    def hammer(worker: int, base_url: str) -> None:
        with httpx.Client(base_url=base_url, headers=AUTH, timeout=5) as http:
            n = 0
            while not stop.is_set():
                user = users[(n * 7 + worker) % len(users)]
                n += 1
                try:
                    response = http.get(f"/v1/users/{user}/recommendations", params={"k": 5})
                except httpx.HTTPError as exc:
                    problems.append(f"{user}: {exc!r}")
                    continue
                if response.status_code != 200:
                    problems.append(f"{user}: {response.status_code} {response.text}")
                    continue
                body = response.json()
                version = body["model_version"]
                if response.headers[MODEL_VERSION_HEADER] != version:
                    problems.append(f"{user}: header/body versions differ")
                if body["items"] != expected[(version, user)]:
                    problems.append(f"{user}: items are not those of {version}")
                seen[worker].append(version)

    store = ModelStore(published_dir, poll_interval=0.1)
    with _Server(store) as base_url:
        workers = [threading.Thread(target=hammer, args=(w, base_url)) for w in range(2)]
        for worker in workers:
            worker.start()
        try:
            while min(len(s) for s in seen) < 50:
                assert not problems, problems[:5]
                time.sleep(0.05)
            publish_fixture(published_dir, "v2", frame=frames["v2"])  # flips CURRENT
            switched = time.monotonic()
            deadline = switched + 15
            while not all(s and s[-1] == "v2" for s in seen):
                assert time.monotonic() < deadline, "responses never moved to v2"
                time.sleep(0.02)
            took = time.monotonic() - switched
            mark = [len(s) for s in seen]
            while min(len(s) - m for s, m in zip(seen, mark, strict=True)) < 50:
                time.sleep(0.05)
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=10)
        model = httpx.get(f"{base_url}/v1/model", headers=AUTH).json()
    assert not problems, problems[:5]
    assert model["model_version"] == "v2"
    assert took < 5
    for versions in seen:
        first_v2 = versions.index("v2")
        assert set(versions[:first_v2]) == {"v1"} and set(versions[first_v2:]) == {"v2"}


# --- session recommendations (issue 19) -------------------------------------------------------
SESSION_URL = "/v1/sessions/recommendations"
# An anonymous visitor in the treatment of the seed's experiment (recs-holdout-1, salt
# trasos-holdout-2026: bucket 0.73, control below 0.1), so the session tests see the lists.
VISITOR = "anon-1"


def ev(*ids: str) -> list[dict]:
    return [{"item_id": i} for i in ids]


def fixture_names() -> list[str]:
    return sorted(set(fixture_frame(**FIXTURE)["item_id"]))


def test_session_recommendations_by_hand(client: TestClient) -> None:
    from include.serving.app import SessionRecommendations

    names = fixture_names()
    # fixture model: item n -> n+1..n+5 with weights 1, 1/2, .., 1/5; decay 1. Session
    # [n0, n2]: n2 is last (weight 1), n0 one event before (weight 1/2):
    # n3: 1 + 1/2 * 1/3, n4: 1/2 + 1/2 * 1/4, n1: 1/2 * 1, n5: 1/3 + 1/2 * 1/5, n6: 1/4, n7: 1/5
    body = {"events": ev(names[0], names[2]), "k": 6, "visitor_id": VISITOR}
    response = client.post(SESSION_URL, json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    got = SessionRecommendations.model_validate_json(response.content)
    assert response.headers[MODEL_VERSION_HEADER] == got.model_version == "v1"
    assert got.known_items == 2
    assert [i.item_id for i in got.items] == [names[j] for j in (3, 4, 1, 5, 6, 7)]
    assert [i.score for i in got.items] == pytest.approx(
        [1 + 1 / 6, 0.625, 0.5, 1 / 3 + 0.1, 0.25, 0.2], abs=1e-6
    )
    assert {i.source for i in got.items} == {"session"}
    assert [i.rank for i in got.items] == [1, 2, 3, 4, 5, 6]


def test_fuse_personal_by_hand() -> None:
    from include.serving.session import fuse_personal

    # FUSION_K = 10: a 1/11, b 1/12 + 1/11 (ranks 1st in the personal list: 'personal'),
    # c 1/13, d 1/12
    got = fuse_personal([("a", 0.9), ("b", 0.5), ("c", 0.1)], ["b", "d"], 4)
    assert [(i, src) for i, _, src in got] == [
        ("b", "personal"),
        ("a", "session"),
        ("d", "personal"),
        ("c", "session"),
    ]
    want = [1 / 12 + 1 / 11, 1 / 11, 1 / 12, 1 / 13]
    assert [v for _, v, _ in got] == pytest.approx(want, abs=1e-6)  # rounded to 6 places
    assert len(fuse_personal([("a", 1.0)], ["b", "c"], 2)) == 2


def test_session_with_a_known_user_merges_the_personal_list(client: TestClient) -> None:
    frame = fixture_frame(**FIXTURE)
    names = fixture_names()
    user = frame.loc[frame["list_type"] == "user", "key_id"].iloc[0]
    personal = [i["item_id"] for i in expected_items(frame, "user", user, 20)]
    body = {"events": ev(names[2]), "k": 20, "user_id": user}
    got = client.post(SESSION_URL, json=body, headers=AUTH).json()
    assert got["personal_items"] == len([i for i in personal if i != names[2]])
    ids = [i["item_id"] for i in got["items"]]
    # the session's best item and the user's best one share the top two places
    top_personal = next(i for i in personal if i != names[2])
    assert set(ids[:2]) == {names[3], top_personal} or ids[0] in (names[3], top_personal)
    assert {i["source"] for i in got["items"]} <= {"session", "personal"}
    assert len(ids) == 20 and len(set(ids)) == 20 and names[2] not in ids
    # an unknown user: the session answer alone
    body["user_id"] = "U9999999"
    alone = client.post(SESSION_URL, json=body, headers=AUTH).json()
    assert alone["personal_items"] == 0
    assert [i["source"] for i in alone["items"][:5]] == ["session"] * 5


def test_session_keeps_seen_items_when_asked(client: TestClient) -> None:
    names = fixture_names()
    body = {"events": ev(names[0], names[2]), "k": 20, "exclude_seen": False}
    body["visitor_id"] = VISITOR
    items = client.post(SESSION_URL, json=body, headers=AUTH).json()["items"]
    by_id = {i["item_id"]: i for i in items}
    assert by_id[names[2]]["score"] == pytest.approx(0.25)  # n0 -> n2 at rank 2, weight 1/2
    assert names[0] not in by_id  # no item points at n0 within this session


def test_session_backfills_category_then_popular(client: TestClient) -> None:
    frame = fixture_frame(**FIXTURE)
    names = fixture_names()
    # n2's category is FIXTURE_CATEGORIES[2] = knitwear: after its 5 neighbours, that list
    body = {"events": ev(names[2]), "k": 20, "visitor_id": VISITOR}
    items = client.post(SESSION_URL, json=body, headers=AUTH).json()["items"]
    assert [i["source"] for i in items[:5]] == ["session"] * 5
    knitwear = [
        i["item_id"]
        for i in expected_items(frame, "cold_start", "category:knitwear", 20)
        if i["item_id"] not in {names[j] for j in (2, 3, 4, 5, 6, 7)}
    ]
    fill = [i for i in items if i["source"] == "popular-in-category"]
    assert [i["item_id"] for i in fill] == knitwear[: len(fill)]
    assert len(items) == 20 and len({i["item_id"] for i in items}) == 20
    # a session of unknown items, or none: the global popular list, in its order
    popular = [i["item_id"] for i in expected_items(frame, "cold_start", "all", 5)]
    for ids in ([], ["NOT_AN_ITEM"]):
        body = {"events": ev(*ids), "k": 5, "visitor_id": VISITOR}
        got = client.post(SESSION_URL, json=body, headers=AUTH).json()
        assert [i["item_id"] for i in got["items"]] == popular
        assert {i["source"] for i in got["items"]} == {"popular"}
        assert got["known_items"] == 0


def test_session_without_a_session_model_answers_popular(data_dir: Path) -> None:
    published_dir = get_settings().published_dir
    publish_fixture(published_dir, "nosession", session=False, **FIXTURE)
    store = ModelStore(published_dir)
    assert store.check()
    client = TestClient(create_app(store=store, api_keys=[KEY], start_watcher=False))
    body = {"events": ev("I000001"), "k": 3, "visitor_id": VISITOR}
    got = client.post(SESSION_URL, json=body, headers=AUTH).json()
    assert {i["source"] for i in got["items"]} == {"popular"}


def test_session_auth(client: TestClient) -> None:
    body = {"events": ev("I000001"), "visitor_id": VISITOR}
    assert client.post(SESSION_URL, json=body).status_code == 401
    assert client.post(SESSION_URL, json=body, headers={API_KEY_HEADER: "nope"}).status_code == 403


@pytest.mark.parametrize(
    ("body", "location", "words"),
    [
        ({"events": ev("I 1")}, "body.events.0.item_id", "must be 1 to 64 characters"),
        ({"events": ev("I000001"), "k": 0}, "body.k", "greater than or equal to 1"),
        ({"events": ev("I000001"), "k": 21}, "body.k", "less than or equal to 20"),
        ({"events": ev("I000001"), "k": "5"}, "body.k", "valid integer"),
        (
            {"events": [{"item_id": "I000001", "event_type": "scroll"}]},
            "body.events.0.event_type",
            "product_view",
        ),
        ({"events": ev("I000001"), "limit": 3}, "body.limit", "Extra inputs"),
        ({"events": ev(*["I000001"] * 201)}, "body.events", "at most 200"),
        ({"item_ids": ["I000001"]}, "body.events", "Field required"),
        ({"events": [], "user_id": "U 1"}, "body.user_id", "must be 1 to 64 characters"),
        ({"events": ev("I000001")}, "body", "name the visitor: visitor_id"),
    ],
)
def test_session_bad_input_is_422_with_a_message(
    client: TestClient, body: dict, location: str, words: str
) -> None:
    response = client.post(SESSION_URL, json=body, headers=AUTH)
    assert response.status_code == 422
    problem = Problem.model_validate_json(response.content)
    assert location in problem.detail and words in problem.detail, problem.detail


def test_session_file_names_agree_with_recsys() -> None:
    from include.serving import session as served
    from recsys.session import publish as written

    assert served.SESSION_NEIGHBOURS_FILE == written.SESSION_NEIGHBOURS_FILE
    assert served.SESSION_MODEL_FILE == written.SESSION_MODEL_FILE
    assert served.SESSION_INDEX_FILE == written.SESSION_INDEX_FILE


def test_model_endpoint_says_when_a_baseline_is_served(data_dir: Path) -> None:
    """What recsys.scoring.publish writes for the fallback: kind baseline and the reason."""
    published_dir = get_settings().published_dir
    folder = publish_fixture(published_dir, "20260301T0200-als", frame=fixture_frame(**FIXTURE))
    reason = "no candidate passed its definition of done (lightfm_blend failed x)"
    (folder / "model.json").write_text(
        json.dumps(
            {
                "version": "20260301T0200-als",
                "candidate": "als",
                "trained_at": "2026-03-01T02:00:00+00:00",
                "kind": "baseline",
                "kind_reason": reason,
                "format": "factors",
            }
        )
    )
    store = ModelStore(published_dir)
    assert store.check(), store.last_error
    client = TestClient(create_app(store=store, api_keys=[KEY], start_watcher=False))
    info = client.get("/v1/model", headers=AUTH).json()
    assert (info["candidate"], info["kind"], info["kind_reason"]) == ("als", "baseline", reason)
    # a candidate's model.json (or one written before the field existed) reads as candidate
    (folder / "model.json").write_text(
        json.dumps({"version": "20260301T0200-als", "trained_at": "2026-03-01T02:00:00Z"})
    )
    store = ModelStore(published_dir)
    assert store.check(), store.last_error
    client = TestClient(create_app(store=store, api_keys=[KEY], start_watcher=False))
    assert client.get("/v1/model", headers=AUTH).json()["kind"] == "candidate"
