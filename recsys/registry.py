"""Versioned, pickle-free model store with an atomically moved ``current`` pointer.

Layout under ``models_dir`` (``<data>/models``)::

    <version>/                 immutable once written (a temp dir renamed into place)
        manifest.json          format, version, kind, created_at, files with sha256
        config.json            the PipelineConfig used
        metrics.json           evaluation table, learning curve, blend search, timings
        dod.json               definition-of-done result (clauses, margins, passed)
        snapshot.json          data snapshot: row counts, time range, split, content hash
        users.parquet          user_id, user_index
        items.parquet          item_id, item_index, category, launch_date, popularity, trending
        user_features.json / item_features.json   feature names, in embedding-row order
        user_embeddings.npy (n_users, d) float32   user_biases.npy (n_users,)
        item_embeddings.npy (n_items, d) float32   item_biases.npy (n_items,)
        *_feature_embeddings.npy / *_feature_biases.npy  (LightFM per-feature parameters)
        known_positives.npz / history.npz / similarity.npz   CSR: indptr, indices, data, shape
    current                    text file holding the promoted version (replaced atomically)
    promotions.json            promotion / rollback history (replaced atomically)

Everything is numpy ``.npy``/``.npz`` (a documented, language-neutral format), Parquet or
JSON: a Scala service can read it without Python. Versions are ``YYYYmmddTHHMMSSZ-<hash8>``
so they sort by creation time.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from common.fs import atomic_dir, atomic_write_text
from recsys import columns as C
from recsys.data import IdMap
from recsys.models.base import ExportedModel

FORMAT_VERSION = 1
CURRENT = "current"
PROMOTIONS = "promotions.json"


class DefinitionOfDoneError(RuntimeError):
    """Raised when promoting a version whose definition of done failed (pointer unchanged)."""


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return None if np.isnan(obj) else float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, pd.Timestamp | datetime):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _clean_nan(obj: Any) -> Any:
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    if isinstance(obj, dict):
        return {k: _clean_nan(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean_nan(v) for v in obj]
    return obj


def json_safe(obj: Any) -> Any:
    """Plain JSON values (NaN/inf become None) with numpy / pandas values converted."""
    return _clean_nan(json.loads(json.dumps(obj, default=_json_default)))


def to_json(obj: Any) -> str:
    """Strict JSON text of :func:`json_safe`."""
    return json.dumps(json_safe(obj), indent=2)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_csr(path: Path, m: sp.csr_matrix) -> None:
    """CSR as plain arrays ``indptr``, ``indices``, ``data``, ``shape`` in an ``.npz``."""
    m = sp.csr_matrix(m)
    with open(path, "wb") as fh:
        np.savez(
            fh,
            indptr=m.indptr.astype(np.int64),
            indices=m.indices.astype(np.int32),
            data=m.data.astype(np.float32),
            shape=np.asarray(m.shape, dtype=np.int64),
        )


def load_csr(path: Path) -> sp.csr_matrix:
    with np.load(path, allow_pickle=False) as z:
        return sp.csr_matrix(
            (z["data"], z["indices"], z["indptr"]), shape=tuple(int(x) for x in z["shape"])
        )


def make_version(content_hash: str, now: datetime | None = None) -> str:
    """Sortable version id: UTC timestamp + the first 8 hex digits of a content hash."""
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{content_hash[:8]}"


# --- saving ------------------------------------------------------------------------------------
def save_version(
    models_dir: str | Path,
    exported: ExportedModel,
    *,
    users: IdMap,
    items: pd.DataFrame,
    known_positives: sp.csr_matrix,
    user_feature_names: np.ndarray,
    item_feature_names: np.ndarray,
    config: dict,
    metrics: dict,
    dod: dict,
    snapshot: dict,
    version: str | None = None,
    now: datetime | None = None,
    extra_files: dict[str, Path] | None = None,
) -> Path:
    """Write a new immutable version directory and return its path (does not promote).

    Parameters
    ----------
    exported
        Arrays of the fitted model (:meth:`Recommender.export`).
    users
        User id map, rows of the user arrays.
    items
        One row per item in index order: ``item_id`` and the columns cold-start lists need
        (``category``, ``launch_date``, ``popularity``, ``trending``).
    known_positives
        CSR ``(n_users, n_items)`` of items never to recommend to a user.
    """
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    if version is None:
        h = hashlib.sha256(
            (
                snapshot.get("content_hash", "") + json.dumps(config, sort_keys=True, default=str)
            ).encode()
        ).hexdigest()
        version = make_version(h, now)
    final = models_dir / version
    if final.exists():
        raise FileExistsError(f"model version {version} exists already; versions are immutable")
    # A version folder appears complete or not at all, and is never overwritten.
    with atomic_dir(final, replace=False) as tmp:
        arrays = {
            "user_embeddings": exported.user_embeddings,
            "user_biases": exported.user_biases,
            "item_embeddings": exported.item_embeddings,
            "item_biases": exported.item_biases,
            **exported.extra,
        }
        for name, arr in arrays.items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(arr, dtype=np.float32))
        save_csr(tmp / "known_positives.npz", known_positives)
        if exported.similarity is not None:
            save_csr(tmp / "similarity.npz", exported.similarity)
        if exported.history is not None:
            save_csr(tmp / "history.npz", exported.history)
        pd.DataFrame(
            {C.USER_ID: users.ids.astype(str), "user_index": np.arange(len(users), dtype=np.int64)}
        ).to_parquet(tmp / "users.parquet", index=False)
        items.assign(item_index=np.arange(len(items), dtype=np.int64)).to_parquet(
            tmp / "items.parquet", index=False
        )
        (tmp / "user_features.json").write_text(to_json(list(map(str, user_feature_names))))
        (tmp / "item_features.json").write_text(to_json(list(map(str, item_feature_names))))
        (tmp / "config.json").write_text(to_json(config))
        (tmp / "metrics.json").write_text(to_json(metrics))
        (tmp / "dod.json").write_text(to_json(dod))
        (tmp / "snapshot.json").write_text(to_json(snapshot))
        for name, src in (extra_files or {}).items():
            shutil.copyfile(src, tmp / name)
        manifest = {
            "format_version": FORMAT_VERSION,
            "version": version,
            "owner": "DS",  # the ownership map (make owners): model artefacts belong to DS
            "kind": exported.kind,
            "blend_weight": exported.blend_weight,
            "self_weight": exported.self_weight,
            "params": exported.params,
            "created_at": datetime.now(UTC).isoformat(),
            "n_users": len(users),
            "n_items": len(items),
            "dod_passed": bool(dod.get("passed", False)),
            "files": {p.name: _sha256(p) for p in sorted(tmp.iterdir())},
        }
        (tmp / "manifest.json").write_text(to_json(manifest))
    return final


# --- listing, promotion, rollback --------------------------------------------------------------
def list_versions(models_dir: str | Path) -> list[str]:
    """Complete versions (with a manifest), oldest first."""
    d = Path(models_dir)
    if not d.exists():
        return []
    return sorted(
        p.name
        for p in d.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / "manifest.json").exists()
    )


def current_version(models_dir: str | Path) -> str | None:
    """The promoted version, or None before the first promotion."""
    p = Path(models_dir) / CURRENT
    if not p.exists():
        return None
    return p.read_text(encoding="utf-8").strip() or None


def _history(models_dir: Path) -> list[dict]:
    p = models_dir / PROMOTIONS
    return json.loads(p.read_text(encoding="utf-8")) if p.exists() else []


def read_json(models_dir: str | Path, version: str, name: str) -> Any:
    return json.loads((Path(models_dir) / version / name).read_text(encoding="utf-8"))


def promote(models_dir: str | Path, version: str, *, require_dod: bool = True) -> str:
    """Point ``current`` at ``version`` if its definition of done passed.

    Raises
    ------
    DefinitionOfDoneError
        The version's ``dod.json`` says it failed; ``current`` is left untouched.
    FileNotFoundError
        No such complete version.
    """
    models_dir = Path(models_dir)
    if version not in list_versions(models_dir):
        raise FileNotFoundError(f"no complete model version {version!r} in {models_dir}")
    if require_dod:
        dod = read_json(models_dir, version, "dod.json")
        # a baseline published because no candidate ever passed (recsys.dod.publish_decision)
        baseline = (dod.get("publication") or {}).get("kind") == "baseline"
        if not dod.get("passed", False) and not baseline:
            failed = [c["id"] for c in dod.get("clauses", []) if c.get("status") == "fail"]
            raise DefinitionOfDoneError(
                f"model {version} failed its definition of done ({', '.join(failed)}); "
                f"'current' stays at {current_version(models_dir)}. See dod.json and report.json "
                "in the version directory."
            )
    previous = current_version(models_dir)
    if previous == version:  # a retried promotion: already current, history unchanged
        return version
    history = _history(models_dir)
    history.append(
        {
            "action": "promote",
            "version": version,
            "previous": previous,
            "at": datetime.now(UTC).isoformat(),
        }
    )
    atomic_write_text(models_dir / PROMOTIONS, to_json(history))
    atomic_write_text(models_dir / CURRENT, version + "\n")
    return version


def rollback_target(models_dir: str | Path) -> str:
    """The version :func:`rollback` would make current (nothing is moved).

    Raises
    ------
    RuntimeError
        Nothing was ever promoted, or no earlier promoted version is left.
    """
    models_dir = Path(models_dir)
    now = current_version(models_dir)
    if now is None:
        raise RuntimeError("nothing to roll back: no version was ever promoted")
    # The promotion that made `now` current is the last one that did; it records its previous.
    target = None
    for entry in reversed(_history(models_dir)):
        if entry["version"] == now and entry["action"] in ("promote", "rollback"):
            target = entry.get("previous")
            break
    if not target or target not in list_versions(models_dir):
        raise RuntimeError(f"no earlier promoted version to roll back to from {now}")
    return target


def rollback(models_dir: str | Path) -> str:
    """Move ``current`` back to the version promoted before it; returns that version."""
    models_dir = Path(models_dir)
    now = current_version(models_dir)
    target = rollback_target(models_dir)
    history = _history(models_dir)
    prior = None
    for entry in reversed(history):
        if entry["version"] == target:
            prior = entry.get("previous")
            break
    history.append(
        {
            "action": "rollback",
            "version": target,
            "previous": prior,
            "from": now,
            "at": datetime.now(UTC).isoformat(),
        }
    )
    atomic_write_text(models_dir / PROMOTIONS, to_json(history))
    atomic_write_text(models_dir / CURRENT, target + "\n")
    return target


# --- loading -------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SavedModel:
    """A loaded version: everything :mod:`recsys.scoring` needs, as arrays."""

    version: str
    path: Path
    manifest: dict
    kind: str
    users: IdMap
    items: IdMap
    item_table: pd.DataFrame
    user_embeddings: np.ndarray
    user_biases: np.ndarray
    item_embeddings: np.ndarray
    item_biases: np.ndarray
    known_positives: sp.csr_matrix
    similarity: sp.csr_matrix | None
    history: sp.csr_matrix | None
    blend_weight: float
    self_weight: float


def load_version(
    models_dir: str | Path, version: str | None = None, verify: bool = True
) -> SavedModel:
    """Load ``version`` (default: ``current``); ``verify`` checks the manifest's sha256 sums."""
    models_dir = Path(models_dir)
    version = version or current_version(models_dir)
    if version is None:
        raise FileNotFoundError(f"no current model in {models_dir}; promote a version first")
    path = models_dir / version
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {manifest.get('format_version')} unsupported")
    if verify:
        for name, digest in manifest["files"].items():
            if _sha256(path / name) != digest:
                raise ValueError(f"{path / name} does not match its manifest checksum")
    users = pd.read_parquet(path / "users.parquet")
    items = pd.read_parquet(path / "items.parquet")

    def npy(name: str) -> np.ndarray:
        return np.load(path / f"{name}.npy", allow_pickle=False)

    def csr(name: str) -> sp.csr_matrix | None:
        p = path / f"{name}.npz"
        return load_csr(p) if p.exists() else None

    return SavedModel(
        version=version,
        path=path,
        manifest=manifest,
        kind=manifest["kind"],
        users=IdMap(users[C.USER_ID].to_numpy(dtype=object)),
        items=IdMap(items[C.ITEM_ID].to_numpy(dtype=object)),
        item_table=items,
        user_embeddings=npy("user_embeddings"),
        user_biases=npy("user_biases"),
        item_embeddings=npy("item_embeddings"),
        item_biases=npy("item_biases"),
        known_positives=csr("known_positives"),
        similarity=csr("similarity"),
        history=csr("history"),
        blend_weight=float(manifest.get("blend_weight") or 0.0),
        self_weight=float(manifest.get("self_weight") or 0.0),
    )
