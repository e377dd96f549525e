"""dbt-duckdb reads the lake on the object store (profiles.yml target ``object_store``: an
fsspec S3 filesystem on dbt's connections) and builds the same marts as from local disk, also
with an object of a load killed before its commit on the store (dbt reads committed files only)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from include import dbt_runner
from include.ingest import ingest
from include.settings import get_settings
from include.transform import DE_SELECT
from include.warehouse import connect
from tests.scale.helpers import local_files

pytestmark = pytest.mark.scale

#: mart -> its key (count and distinct count must match)
MARTS = {
    "fct_events": "event_id",
    "fct_sessions": "session_id",
    "dim_items": "item_id",
    "dim_customers": "user_id",
    "ml_interactions": "item_id",
}


def build_and_count(data_dir: Path, orphan: bool = False) -> dict[str, list[tuple]]:
    ingest()
    if orphan:  # a load killed before its commit: an object under a final name, not listed
        store = get_settings().store
        key = next(k for k in store.files("lake/events") if k.endswith(".parquet"))
        store.write_bytes(
            key.rsplit("/", 1)[0] + "/part-uncommitted.parquet", store.read_bytes(key)
        )
    dbt_runner.run_dbt(["build", "--select", *DE_SELECT], data_dir.parent / "target")
    with connect(read_only=True) as con:
        return {
            m: con.execute(f"select count(*), count(distinct {key}) from {m}").fetchall()
            for m, key in MARTS.items()
        }


@pytest.fixture(scope="module")
def local_marts(simulated_landing: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    data = tmp_path_factory.mktemp("dbt-local") / "data"
    shutil.copytree(simulated_landing, data / "landing")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRASOS_DATA_DIR", str(data))
        for key in ("TRASOS_STORE_URL", "TRASOS_WAREHOUSE", "TRASOS_DBT_TARGET"):
            mp.delenv(key, raising=False)
        return build_and_count(data)


def test_dbt_builds_the_same_marts_from_the_object_store(
    data_dir: Path, simulated_landing: Path, on_s3: dict, local_marts: dict
) -> None:
    shutil.copytree(simulated_landing, data_dir / "landing")
    marts = build_and_count(data_dir, orphan=True)
    assert marts == local_marts  # the uncommitted object's events are not read twice
    assert all(n > 0 for ((n, _),) in marts.values())
    assert local_files(data_dir) == []  # the lake was read from the store only
