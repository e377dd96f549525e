"""The API serves the published files of the object store: a training host publishes through
its working copy (data objects first, ``published/CURRENT`` last), the API host (another state
directory: another cache) follows ``published/CURRENT`` on the store and switches versions."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from include.serving.app import MODEL_VERSION_HEADER, create_app
from include.serving.auth import API_KEY_HEADER
from include.serving.loader import model_store_from_settings
from include.serving.publish import publish_fixture
from include.settings import get_settings
from include.tasks.training import working_copy
from tests.scale.helpers import local_files

pytestmark = pytest.mark.scale

KEY = "scale-test-key-0123456789"


def publish_on(host_state: Path, version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Publish ``version`` as the training tasks do, from the host with state ``host_state``."""
    monkeypatch.setenv("TRASOS_STATE_DIR", str(host_state))
    with working_copy():
        publish_fixture(get_settings().published_dir, version, n_users=30, n_items=60, k=20)


def test_the_api_follows_published_current_on_the_object_store(
    data_dir: Path, on_s3: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_on(tmp_path / "trainer", "v1", monkeypatch)
    store = get_settings().store
    assert store.read_text("published/CURRENT") == "v1\n"
    assert "published/v1/recommendations.parquet" in store.files("published")

    monkeypatch.setenv("TRASOS_STATE_DIR", str(tmp_path / "api"))  # the API host
    models = model_store_from_settings()
    assert models.check()
    client = TestClient(create_app(store=models, api_keys=[KEY], start_watcher=False))
    got = client.get("/v1/users/U0000003/recommendations?k=5", headers={API_KEY_HEADER: KEY})
    assert got.status_code == 200, got.text
    assert got.headers[MODEL_VERSION_HEADER] == "v1"
    assert len(got.json()["items"]) == 5

    publish_on(tmp_path / "trainer", "v2", monkeypatch)
    monkeypatch.setenv("TRASOS_STATE_DIR", str(tmp_path / "api"))
    assert models.check()  # the next poll swaps
    got = client.get("/v1/users/U0000003/recommendations?k=5", headers={API_KEY_HEADER: KEY})
    assert got.headers[MODEL_VERSION_HEADER] == "v2"
    assert not models.check()  # nothing new

    assert store.read_text("published/CURRENT") == "v2\n"
    assert local_files(data_dir) == []  # nothing published under the data folder
    assert (tmp_path / "api" / "store_cache" / "published" / "v2").is_dir()  # the API's cache
