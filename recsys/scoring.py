"""Batch recommendations from a saved model version (no LightFM needed, just numpy).

Three list types, one published frame (:data:`recsys.columns.RECOMMENDATION_COLUMNS`):

``user``
    Top-k per known user, scored block by block with matrix products from the saved
    embeddings (plus the co-occurrence part for the blend); the user's known positives
    (bought items) are filtered out.
``also_bought``
    Top-k per item from the co-occurrence similarity, never the item itself, backfilled with
    the nearest items by embedding cosine when an item has fewer co-bought neighbours (cold
    items have none). Co-bought neighbours always rank before backfilled ones.
``cold_start``
    For unknown visitors: ``popular`` (recency-weighted popularity), ``trending`` (growth of
    the last days) and ``category:<category>`` (popular within each category).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from common.contracts import PUBLISHED_LIST_LENGTH
from common.fs import atomic_write_with
from recsys import columns as C
from recsys.models.cooccurrence import user_similarity
from recsys.ranking import blend_scores, factor_moments, factor_scores, top_k, top_k_for_users
from recsys.registry import SavedModel


class SavedScorer:
    """``score_block(users) -> (b, n_items)`` for a :class:`SavedModel`, same maths as in memory."""

    def __init__(self, model: SavedModel) -> None:
        self.model = model
        self.blend = model.kind == "factors+cooccurrence"
        if self.blend:
            if model.similarity is None or model.history is None:
                raise ValueError(f"{model.path}: blend model lacks similarity/history arrays")
            self.user_sim = user_similarity(model.similarity, model.self_weight)
            self.moments = factor_moments(model.item_embeddings, model.item_biases)

    def score_block(self, users: np.ndarray) -> np.ndarray:
        m = self.model
        if not self.blend:
            return factor_scores(
                m.user_embeddings[users], m.user_biases[users], m.item_embeddings, m.item_biases
            )
        return blend_scores(
            m.user_embeddings[users],
            m.user_biases[users],
            m.item_embeddings,
            m.item_biases,
            self.moments,
            m.history[users],
            self.user_sim,
            m.blend_weight,
        )


def _frame(
    list_type: str,
    keys: np.ndarray,
    idx: np.ndarray,
    vals: np.ndarray,
    model: SavedModel,
    generated_at: pd.Timestamp,
) -> pd.DataFrame:
    rows, ranks = np.nonzero(idx >= 0)
    return pd.DataFrame(
        {
            C.LIST_TYPE: list_type,
            C.KEY_ID: np.asarray(keys, dtype=object)[rows],
            C.RANK: (ranks + 1).astype(np.int32),
            C.ITEM_ID: model.items.ids[idx[rows, ranks]],
            C.SCORE: vals[rows, ranks].astype(np.float32),
            C.MODEL_VERSION: model.version,
            C.GENERATED_AT: generated_at,
        },
        columns=list(C.RECOMMENDATION_COLUMNS),
    )


def _now(generated_at: datetime | pd.Timestamp | None) -> pd.Timestamp:
    ts = pd.Timestamp(generated_at) if generated_at is not None else pd.Timestamp.now(tz=UTC)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.floor("s")


def user_top_k(
    model: SavedModel,
    k: int = PUBLISHED_LIST_LENGTH,
    user_ids: object = None,
    block_size: int = 4096,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index-space top-k for users: ``(users (n,), idx (n, k), scores (n, k))``."""
    users = (
        np.arange(len(model.users)) if user_ids is None else model.users.index(list(user_ids))  # type: ignore[arg-type]
    )
    scorer = SavedScorer(model)
    idx, vals = top_k_for_users(
        scorer.score_block, users, k, known=model.known_positives, block_size=block_size
    )
    return users, idx, vals


def recommend_users(
    model: SavedModel,
    k: int = PUBLISHED_LIST_LENGTH,
    user_ids: object = None,
    generated_at: datetime | None = None,
    block_size: int = 4096,
) -> pd.DataFrame:
    """``user`` lists: top-k per known user (default all), known positives filtered."""
    users, idx, vals = user_top_k(model, k, user_ids, block_size)
    return _frame(C.LIST_USER, model.users.ids[users], idx, vals, model, _now(generated_at))


def also_bought(
    model: SavedModel,
    k: int = PUBLISHED_LIST_LENGTH,
    item_ids: object = None,
    generated_at: datetime | None = None,
    block_size: int = 2048,
    co_viewed: object = None,
) -> pd.DataFrame:
    """``also_bought`` lists: co-bought neighbours, then (``co_viewed``, the session model's
    item-to-item table over this model's items: views, carts and purchases within sessions)
    co-viewed ones, then embedding cosine; no self.

    Scores are the co-occurrence similarity, then the backfills' capped by the score ranked
    above them, so they never increase with rank. With few purchases (views-only data) the
    co-viewed neighbours make the lists useful.
    """
    n = len(model.items)
    items = np.arange(n) if item_ids is None else model.items.index(list(item_ids))  # type: ignore[arg-type]
    emb = model.item_embeddings.astype(np.float32)
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-9)
    parts = []
    sim = model.similarity
    for start in range(0, len(items), block_size):
        ib = items[start : start + block_size]
        rows_all = np.arange(len(ib))
        # co-occurrence neighbours (priority 0), then cosine backfill (priority 1)
        if sim is not None:
            block = np.asarray(sim[ib].todense(), dtype=np.float32)
            block[block <= 0] = -np.inf
            block[rows_all, ib] = -np.inf
            ci, cv = top_k(block, k)
        else:
            ci = np.full((len(ib), k), -1, dtype=np.int64)
            cv = np.full((len(ib), k), np.nan, dtype=np.float32)
        cos = unit[ib] @ unit.T
        cos[rows_all, ib] = -np.inf
        ei, ev = top_k(cos, 2 * k)
        if co_viewed is not None:  # issue 19: co-viewed within sessions, before embeddings
            view = np.asarray(co_viewed[ib].todense(), dtype=np.float32)  # type: ignore[index]
            view[view <= 0] = -np.inf
            view[rows_all, ib] = -np.inf
            vi, vv = top_k(view, k)
            ci, cv = np.hstack([ci, vi]), np.hstack([cv, vv])
            first = np.hstack([np.zeros_like(ci[:, :-k]), np.full_like(vi, 1)])
        else:
            first = np.zeros_like(ci)
        cand_i = np.hstack([ci, ei])
        cand_v = np.hstack([cv, ev])
        prio = np.hstack([first, np.full_like(ei, 2)])
        r, c = np.nonzero(cand_i >= 0)
        frame = pd.DataFrame(
            {"row": r, "pos": c, "item": cand_i[r, c], "score": cand_v[r, c], "prio": prio[r, c]}
        ).sort_values(["row", "prio", "pos"], kind="stable")
        frame = frame.drop_duplicates(["row", "item"], keep="first")
        frame = frame[frame.groupby("row").cumcount() < k]
        out_i = np.full((len(ib), k), -1, dtype=np.int64)
        out_v = np.full((len(ib), k), np.nan, dtype=np.float32)
        rank = frame.groupby("row").cumcount().to_numpy()
        out_i[frame["row"].to_numpy(), rank] = frame["item"].to_numpy()
        out_v[frame["row"].to_numpy(), rank] = frame["score"].to_numpy()
        # a cosine backfill can exceed the co-occurrence scores above it: the published score
        # never increases with rank (the list contract), so each is capped by the one above
        out_v = np.where(out_i >= 0, np.fmin.accumulate(out_v, axis=1), np.nan)
        parts.append((ib, out_i, out_v.astype(np.float32)))
    ib = np.concatenate([p[0] for p in parts]) if parts else np.array([], dtype=np.int64)
    idx = np.vstack([p[1] for p in parts]) if parts else np.empty((0, k), dtype=np.int64)
    vals = np.vstack([p[2] for p in parts]) if parts else np.empty((0, k), dtype=np.float32)
    return _frame(C.LIST_ALSO_BOUGHT, model.items.ids[ib], idx, vals, model, _now(generated_at))


def cold_start(
    model: SavedModel, k: int = PUBLISHED_LIST_LENGTH, generated_at: datetime | None = None
) -> pd.DataFrame:
    """``cold_start`` lists for unknown visitors: popular, trending, popular per category."""
    items = model.item_table
    ts = _now(generated_at)
    keys, lists, scores = [], [], []
    for key, col in ((C.COLD_KEY_POPULAR, "popularity"), (C.COLD_KEY_TRENDING, "trending")):
        if col in items:
            v = items[col].to_numpy(np.float64)
            order = np.lexsort((np.arange(len(v)), -v))[:k]
            order = order[v[order] > 0]
            keys.append(key)
            lists.append(order)
            scores.append(v[order])
    if C.CATEGORY in items and "popularity" in items:
        frame = pd.DataFrame(
            {
                "cat": items[C.CATEGORY].to_numpy(),
                "pop": items["popularity"].to_numpy(np.float64),
                "idx": np.arange(len(items)),
            }
        ).dropna(subset=["cat"])
        frame = frame.sort_values(["cat", "pop", "idx"], ascending=[True, False, True])
        frame = frame[frame.groupby("cat").cumcount() < k]
        for cat, g in frame.groupby("cat", sort=True):
            keys.append(f"{C.COLD_KEY_CATEGORY_PREFIX}{cat}")
            lists.append(g["idx"].to_numpy())
            scores.append(g["pop"].to_numpy())
    idx = np.full((len(keys), k), -1, dtype=np.int64)
    vals = np.full((len(keys), k), np.nan, dtype=np.float32)
    for r, (lst, sc) in enumerate(zip(lists, scores, strict=True)):
        idx[r, : len(lst)] = lst
        vals[r, : len(lst)] = sc
    return _frame(C.LIST_COLD_START, np.asarray(keys, dtype=object), idx, vals, model, ts)


def build_recommendations(
    model: SavedModel,
    k: int = PUBLISHED_LIST_LENGTH,
    generated_at: datetime | None = None,
    co_viewed: object = None,
) -> pd.DataFrame:
    """All three list types in one frame with :data:`RECOMMENDATION_COLUMNS`."""
    ts = _now(generated_at)
    frames = [
        recommend_users(model, k, generated_at=ts),
        also_bought(model, k, generated_at=ts, co_viewed=co_viewed),
        cold_start(model, k, generated_at=ts),
    ]
    return pd.concat(frames, ignore_index=True)


def write_parquet_atomic(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` to ``path`` as Parquet, all or nothing (``common.fs.atomic_write_with``)."""
    return atomic_write_with(path, lambda tmp: frame.to_parquet(tmp, index=False))


def score_version(
    models_dir: str | Path,
    out_path: str | Path,
    version: str | None = None,
    k: int = PUBLISHED_LIST_LENGTH,
    generated_at: datetime | None = None,
) -> dict:
    """Load a version (default ``current``), build every list, write Parquet atomically.

    Returns a small JSON-able summary (rows per list type, path, version, seconds).
    """
    from recsys.registry import load_version
    from recsys.session.publish import read_neighbour_matrix

    t0 = time.perf_counter()
    model = load_version(models_dir, version)
    co_viewed = read_neighbour_matrix(Path(models_dir) / model.version / "session", model.items.ids)
    frame = build_recommendations(model, k, generated_at, co_viewed=co_viewed)
    path = write_parquet_atomic(frame, out_path)
    return {
        "version": model.version,
        "path": str(path),
        "k": k,
        "rows": int(len(frame)),
        "rows_by_list_type": {
            str(k_): int(v) for k_, v in frame[C.LIST_TYPE].value_counts().items()
        },
        "seconds": time.perf_counter() - t0,
    }


def publish(
    models_dir: str | Path,
    published_dir: str | Path,
    version: str,
    *,
    recommendations: str | Path | None = None,
) -> Path:
    """Make ``published_dir/<version>/`` the live recommendation set (call after its GX gate).

    Expects ``published_dir/<version>/recommendations.parquet`` (e.g. written by
    :func:`score_version`); writes ``model.json`` next to it (version, ``trained_at``, kind,
    definition-of-done result, sizes) and then replaces ``published_dir/CURRENT`` atomically.
    Readers (API, monitoring) only ever see complete, immutable version folders.
    """
    import json

    from common.fs import atomic_write_text
    from recsys.registry import read_json, to_json

    published_dir = Path(published_dir)
    folder = published_dir / version
    reco = Path(recommendations) if recommendations else folder / "recommendations.parquet"
    if not reco.exists():
        raise FileNotFoundError(f"{reco} missing: run score_version for {version} first")
    manifest = read_json(models_dir, version, "manifest.json")
    dod = read_json(models_dir, version, "dod.json")
    table = read_json(models_dir, version, "metrics.json").get("table", [])
    publication = dod.get("publication") or {}
    kind = publication.get("kind") or ("candidate" if dod.get("passed") else "none")
    candidate = publication.get("model") or dod.get("candidate", manifest["kind"])
    headline = next(
        (r for r in table if r.get("model") == candidate and r.get("segment") == "all"), {}
    )
    meta = {
        "version": version,
        "model_version": version,  # the spelling of the serving contract (docs/openapi.json)
        "candidate": candidate,
        "generated_at": datetime.now(UTC).isoformat(),
        "metrics": {
            k: float(v)
            for k, v in headline.items()
            if k
            in (
                "ndcg@10",
                "recall@20",
                "precision@10",
                "map@10",
                "hit_rate@10",
                "auc",
                "coverage@20",
            )
            and isinstance(v, int | float)
        },
        "trained_at": manifest["created_at"],
        "published_at": datetime.now(UTC).isoformat(),
        # candidate: passed its definition of done; baseline: published because no candidate
        # passed and nothing was ever published (kind_reason says which clauses failed)
        "kind": kind,
        "kind_reason": publication.get("reason", ""),
        "format": manifest["kind"],
        "n_users": manifest["n_users"],
        "n_items": manifest["n_items"],
        "dod_passed": dod.get("passed", False),
        "recommendations": reco.name,
    }
    atomic_write_text(folder / "model.json", to_json(meta))
    atomic_write_text(published_dir / "CURRENT", version + "\n")
    json.loads((folder / "model.json").read_text())  # fail loudly if unreadable
    return folder
