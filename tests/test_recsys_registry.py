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
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]
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


def test_csr_files_are_plain_arrays(tmp_path):
    m = sp.random(6, 9, density=0.3, random_state=0, format="csr", dtype=np.float32)
    R.save_csr(tmp_path / "m.npz", m)
    with np.load(tmp_path / "m.npz", allow_pickle=False) as z:
        assert set(z.files) == {"indptr", "indices", "data", "shape"}
    assert (R.load_csr(tmp_path / "m.npz") != m).nnz == 0
