"""Model registry: immutable versions, checksums, the gated `current` pointer, rollback."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys import registry as R
from recsys.data import IdMap
from recsys.models.base import ExportedModel


def exported(seed: int = 0) -> ExportedModel:
    rng = np.random.default_rng(seed)
    return ExportedModel(
        kind="factors",
        user_embeddings=rng.standard_normal((4, 3)).astype(np.float32),
        user_biases=np.zeros(4, np.float32),
        item_embeddings=rng.standard_normal((5, 3)).astype(np.float32),
        item_biases=rng.standard_normal(5).astype(np.float32),
    )


def save(models_dir, passed: bool, minute: int, seed: int = 0) -> str:
    path = R.save_version(
        models_dir,
        exported(seed),
        users=IdMap(np.array(["u1", "u2", "u3", "u4"], dtype=object)),
        items=pd.DataFrame({"item_id": list("abcde"), "category": list("xxyyz")}),
        known_positives=sp.csr_matrix(np.eye(4, 5, dtype=np.float32)),
        user_feature_names=np.array(["user=u1"], dtype=object),
        item_feature_names=np.array(["category=x"], dtype=object),
        config={"seed": seed},
        metrics={"ndcg@10": 0.1},
        dod={"passed": passed, "clauses": [{"id": "c", "status": "pass" if passed else "fail"}]},
        snapshot={"content_hash": f"{seed:064d}"},
        now=datetime(2025, 3, 1, 12, minute, tzinfo=UTC),
    )
    return path.name


def test_versions_sort_by_time_and_are_immutable(tmp_path):
    v1 = save(tmp_path, True, 1, seed=1)
    v2 = save(tmp_path, True, 2, seed=2)
    assert v1.startswith("20250301T120100Z-") and R.list_versions(tmp_path) == [v1, v2]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left
    with pytest.raises(FileExistsError):
        save(tmp_path, True, 1, seed=1)


def test_round_trip_is_pickle_free_and_exact(tmp_path):
    v = save(tmp_path, True, 1)
    m = R.load_version(tmp_path, v)
    e = exported(0)
    np.testing.assert_array_equal(m.user_embeddings, e.user_embeddings)
    np.testing.assert_array_equal(m.item_biases, e.item_biases)
    assert m.known_positives.toarray().tolist() == np.eye(4, 5).tolist()
    assert list(m.users.ids) == ["u1", "u2", "u3", "u4"] and list(m.items.ids) == list("abcde")
    names = {p.name for p in (tmp_path / v).iterdir()}
    assert not any(n.endswith((".pkl", ".pickle", ".joblib")) for n in names)
    assert {"manifest.json", "config.json", "metrics.json", "snapshot.json", "dod.json"} <= names


def test_checksums_catch_a_corrupted_file(tmp_path):
    v = save(tmp_path, True, 1)
    np.save(tmp_path / v / "item_biases.npy", np.ones(5, np.float32))
    with pytest.raises(ValueError, match="checksum"):
        R.load_version(tmp_path, v)


def test_failed_definition_of_done_never_moves_current(tmp_path):
    good = save(tmp_path, True, 1, seed=1)
    R.promote(tmp_path, good)
    assert R.current_version(tmp_path) == good
    bad = save(tmp_path, False, 2, seed=2)
    with pytest.raises(R.DefinitionOfDoneError, match="failed its definition of done"):
        R.promote(tmp_path, bad)
    assert R.current_version(tmp_path) == good
    assert R.load_version(tmp_path).version == good  # readers still get the good model
    with pytest.raises(FileNotFoundError):
        R.promote(tmp_path, "20990101T000000Z-deadbeef")


def test_rollback_to_the_previous_promotion(tmp_path):
    v1, v2 = save(tmp_path, True, 1, seed=1), save(tmp_path, True, 2, seed=2)
    with pytest.raises(RuntimeError, match="nothing to roll back"):
        R.rollback(tmp_path)
    R.promote(tmp_path, v1)
    R.promote(tmp_path, v2)
    assert R.rollback(tmp_path) == v1
    assert R.current_version(tmp_path) == v1
    with pytest.raises(RuntimeError, match="no earlier promoted version"):
        R.rollback(tmp_path)
    # pointer and history files were replaced atomically: no temp files linger
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".current")]


def test_a_retried_promotion_keeps_the_rollback_target(tmp_path):
    v1, v2 = save(tmp_path, True, 1, seed=1), save(tmp_path, True, 2, seed=2)
    R.promote(tmp_path, v1)
    R.promote(tmp_path, v2)
    R.promote(tmp_path, v2)  # the publish task retried after promoting
    assert R.rollback_target(tmp_path) == v1 and R.current_version(tmp_path) == v2
    assert R.rollback(tmp_path) == v1


def promoted_and_published(data_dir, seeds=(1, 2)) -> tuple[str, ...]:
    """Versions saved, promoted and published in turn under ``data_dir`` (the last is live)."""
    from include.serving.publish import publish_fixture

    versions = tuple(save(data_dir / "models", True, i + 1, seed=s) for i, s in enumerate(seeds))
    for i, v in enumerate(versions):
        R.promote(data_dir / "models", v)
        publish_fixture(data_dir / "published", v, seed=i)
    return versions


def test_the_rollback_command_moves_what_the_api_serves(data_dir, capsys):
    from include.serving.loader import load_version, read_current
    from include.tasks import training

    models, published = data_dir / "models", data_dir / "published"
    v1, v2 = promoted_and_published(data_dir)
    assert read_current(published) == v2
    assert training.main(["rollback"]) == 0
    assert f"rolled back from {v2} to {v1}" in capsys.readouterr().out
    # the API follows published/CURRENT: moving models/current alone would change nothing
    assert read_current(published) == v1 and R.current_version(models) == v1
    assert load_version(published, v1).model_version == v1
    # nothing earlier to go back to: a clear message, exit code 2, pointers untouched
    assert training.main(["rollback"]) == 2
    assert "no earlier promoted version" in capsys.readouterr().out
    assert read_current(published) == v1 and R.current_version(models) == v1


def test_a_rollback_without_the_old_lists_moves_nothing(data_dir):
    import shutil

    from include.serving.loader import read_current
    from include.tasks import training

    v1, v2 = promoted_and_published(data_dir)
    shutil.rmtree(data_dir / "published" / v1)
    with pytest.raises(FileNotFoundError, match=f"cannot roll back from {v2} to {v1}"):
        training.rollback()
    assert read_current(data_dir / "published") == v2
    assert R.current_version(data_dir / "models") == v2


@pytest.mark.integration
def test_the_rollback_dag_runs_in_airflow(airflow_home, data_dir, tmp_path):
    from conftest import run_dagrunner

    v1, _ = promoted_and_published(data_dir)
    code, results = run_dagrunner("recommender_rollback", log_dir=tmp_path)
    assert (code, results[-1]["state"]) == (0, "success"), results
    assert (data_dir / "published" / "CURRENT").read_text().strip() == v1
    assert R.current_version(data_dir / "models") == v1


def test_csr_files_are_plain_arrays(tmp_path):
    m = sp.random(6, 9, density=0.3, random_state=0, format="csr", dtype=np.float32)
    R.save_csr(tmp_path / "m.npz", m)
    with np.load(tmp_path / "m.npz", allow_pickle=False) as z:
        assert set(z.files) == {"indptr", "indices", "data", "shape"}
    assert (R.load_csr(tmp_path / "m.npz") != m).nnz == 0
