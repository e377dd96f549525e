"""Ingestion with the lake and the quarantine on an S3 object store (SeaweedFS, real): the same
counts and rows as on local disk, nothing written under the local data folder, and a process
SIGKILLed in the middle of a load leaves nothing visible; the next run ends in exactly the
state of one clean run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from include.ingest import ingest
from include.settings import REPO_ROOT, get_settings
from include.storage import StorageConfigError, Store
from include.warehouse import connect
from tests.scale.helpers import lake_state, local_files, small_chunk

pytestmark = pytest.mark.scale


@pytest.fixture
def landed(data_dir: Path, simulated_landing: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(simulated_landing, data_dir / "landing")
    monkeypatch.setenv("TRASOS_INGEST_CHUNK_BYTES", small_chunk(data_dir / "landing"))
    return data_dir


@pytest.fixture(scope="module")
def local_reference(simulated_landing: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The same input ingested on local disk (the embedded default)."""
    data = tmp_path_factory.mktemp("local") / "data"
    shutil.copytree(simulated_landing, data / "landing")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRASOS_DATA_DIR", str(data))
        for key in ("TRASOS_STORE_URL", "TRASOS_WAREHOUSE"):
            mp.delenv(key, raising=False)
        mp.setenv("TRASOS_INGEST_CHUNK_BYTES", small_chunk(data / "landing"))
        summary = ingest()
        state = lake_state()
    return {"summary": summary.as_dict(), "state": state}


def test_a_url_as_data_dir_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRASOS_DATA_DIR", "s3://trasos-lake")
    with pytest.raises(ValueError, match="TRASOS_DATA_DIR must be a local folder.*TRASOS_STORE"):
        get_settings()
    with pytest.raises(StorageConfigError, match="only s3://"):
        Store("gs://bucket/lake")


def test_ingestion_on_the_object_store_equals_local_disk(
    landed: Path, on_s3: dict, local_reference: dict
) -> None:
    summary = ingest()
    assert summary.reconciles
    ref = local_reference["summary"]
    for key in ("files_loaded", "lines_in", "loaded", "quarantined", "duplicates", "loads"):
        assert summary.as_dict()[key] == ref[key], key
    state = lake_state()
    assert state == local_reference["state"]  # same keys, rows, manifest, ids, outputs
    assert state["files"] and all(k.startswith(("lake/", "quarantine/")) for k in state["files"])
    assert local_files(landed) == []  # nothing of the lake or quarantine on local disk
    assert not (landed / ".lake_staging").exists() or not any(
        (landed / ".lake_staging").rglob("*.parquet")
    )
    again = ingest()  # idempotent: nothing new
    assert (again.loads, again.loaded) == (0, 0)
    assert lake_state() == state


@pytest.mark.parametrize(("point", "load_no"), [("staged", 5), ("moved", 6)])
def test_sigkill_in_the_middle_then_rerun_equals_a_clean_run(
    landed: Path, on_s3: dict, local_reference: dict, point: str, load_no: int
) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tests" / "ingest_crash.py"), point, str(load_no)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    store = get_settings().store
    with connect(read_only=True) as con:
        committed = {r[0] for r in con.execute("select path from raw.ingest_outputs").fetchall()}
    on_store = set(store.files("lake")) | set(store.files("quarantine"))
    if point == "moved":  # uploaded, not committed: on the store, but no view lists them
        assert on_store - committed
    rerun = ingest()
    assert rerun.reconciles
    assert (rerun.orphans_removed > 0) == (point == "moved")
    assert lake_state() == local_reference["state"]
    assert local_files(landed) == []
