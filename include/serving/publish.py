"""Write a published model version and flip ``CURRENT``; synthetic versions for tests and benches.

The layout the API reads (``docs/serving.md``)::

    <published_dir>/<model_version>/recommendations.parquet   common.contracts.RECOMMENDATION_COLUMNS
    <published_dir>/<model_version>/model.json
    <published_dir>/CURRENT                                    one line: the model_version

:func:`publish_version` writes the version into a temporary sibling directory and renames it
into place (a version directory is complete or absent, never half-written, and never
overwritten), then replaces ``CURRENT`` with :func:`os.replace`. The training DAG may call it;
readers only ever see a finished version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.contracts import PUBLISHED_LIST_LENGTH, RECOMMENDATION_COLUMNS
from common.fs import atomic_dir, atomic_write_text
from include.serving.loader import (
    COLD_START_DEFAULT,
    CURRENT_FILE,
    MODEL_FILE,
    RECOMMENDATIONS_FILE,
    iso_utc,
)
from include.serving.session import (
    SESSION_INDEX_FILE,
    SESSION_MODEL_FILE,
    SESSION_NEIGHBOURS_FILE,
)

FIXTURE_CATEGORIES: tuple[str, ...] = ("dresses", "shoes", "knitwear")


def user_id(n: int) -> str:
    """The synthetic user id ``n`` (the bench's load generator builds the same strings)."""
    return f"U{n:07d}"


def item_id(n: int) -> str:
    return f"I{n:06d}"


def set_current(published_dir: Path, model_version: str) -> None:
    """Point ``CURRENT`` at ``model_version`` atomically (write a temp file, ``os.replace``)."""
    published_dir = Path(published_dir)
    if not (published_dir / model_version).is_dir():
        raise FileNotFoundError(f"{published_dir / model_version} is not a published version")
    atomic_write_text(published_dir / CURRENT_FILE, model_version + "\n")


def publish_version(
    published_dir: Path,
    recommendations: pd.DataFrame,
    *,
    model_version: str,
    trained_at: datetime | str,
    candidate: str,
    metrics: Mapping[str, float],
    generated_at: datetime | str | None = None,
    extra: Mapping[str, Any] | None = None,
    make_current: bool = True,
    session_neighbours: pd.DataFrame | None = None,
    session_model: Mapping[str, Any] | None = None,
    session_index: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Publish ``recommendations`` (RECOMMENDATION_COLUMNS) as ``model_version``; returns its dir.

    With ``session_neighbours`` (item_id, rank, neighbour_id, weight) and ``session_model``
    (decay, max_session_items, item_categories, hybrid) the version also carries a session
    model (``include/serving/session.py``); ``session_index`` are the hybrid's arrays.

    ``model_version``/``generated_at`` columns are filled in when absent. Raises
    ``FileExistsError`` if that version was already published (versions are immutable).
    """
    published_dir = Path(published_dir)
    published_dir.mkdir(parents=True, exist_ok=True)
    final = published_dir / model_version
    if final.exists():
        raise FileExistsError(f"{final} already exists: published versions are immutable")
    generated = generated_at or datetime.now(UTC).replace(microsecond=0)
    frame = recommendations.copy()
    if "model_version" not in frame:
        frame["model_version"] = model_version
    if "generated_at" not in frame:
        frame["generated_at"] = pd.Timestamp(iso_utc(generated)).tz_convert(None)
    missing = [c for c in RECOMMENDATION_COLUMNS if c not in frame]
    if missing:
        raise ValueError(f"recommendations lack columns {missing}")
    frame = frame[list(RECOMMENDATION_COLUMNS)]
    model = {
        "model_version": model_version,
        "trained_at": iso_utc(trained_at),
        "generated_at": iso_utc(generated),
        "candidate": candidate,
        "metrics": dict(metrics),
        **(extra or {}),
    }
    with atomic_dir(final, replace=False) as tmp:  # complete or absent, never overwritten
        frame.to_parquet(tmp / RECOMMENDATIONS_FILE, index=False)
        (tmp / MODEL_FILE).write_text(json.dumps(model, indent=2) + "\n", encoding="utf-8")
        if session_neighbours is not None:
            session_neighbours.to_parquet(tmp / SESSION_NEIGHBOURS_FILE, index=False)
            text = json.dumps(dict(session_model or {}), indent=1) + "\n"
            (tmp / SESSION_MODEL_FILE).write_text(text, encoding="utf-8")
        if session_index is not None:
            with open(tmp / SESSION_INDEX_FILE, "wb") as fh:
                np.savez(fh, **session_index)
    if make_current:
        set_current(published_dir, model_version)
    return final


def fixture_frame(
    *,
    n_users: int = 50,
    n_items: int = 200,
    k: int = PUBLISHED_LIST_LENGTH,
    also_bought_items: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Synthetic recommendations: ``n_users`` personal lists ``U0000000..``, ``also_bought``
    lists for the first ``also_bought_items`` items (default all), a global cold-start list
    ``all`` and one per :data:`FIXTURE_CATEGORIES`; ``k`` distinct items each, scores falling.
    Columns: list_type, key_id, rank, item_id, score (the publisher adds the rest).
    """
    if k >= n_items:
        raise ValueError("k must be smaller than n_items")
    rng = np.random.default_rng(seed)
    n_ab = n_items if also_bought_items is None else also_bought_items
    segments = [COLD_START_DEFAULT, *(f"category:{c}" for c in FIXTURE_CATEGORIES)]
    list_types = ["user"] * n_users + ["also_bought"] * n_ab + ["cold_start"] * len(segments)
    keys = [user_id(i) for i in range(n_users)] + [item_id(i) for i in range(n_ab)] + segments
    n_lists = len(keys)
    # k distinct items per list: a random start plus strictly increasing steps, mod n_items.
    max_step = max(1, (n_items - 1) // k)
    steps = rng.integers(1, max_step + 1, size=(n_lists, k))
    steps[:, 0] = rng.integers(0, n_items, size=n_lists)
    items = np.cumsum(steps, axis=1) % n_items
    scores = -np.sort(-rng.random((n_lists, k)), axis=1).round(6)
    item_names = np.array([item_id(i) for i in range(n_items)], dtype=object)
    return pd.DataFrame(
        {
            "list_type": np.repeat(np.array(list_types, dtype=object), k),
            "key_id": np.repeat(np.array(keys, dtype=object), k),
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), n_lists),
            "item_id": item_names[items.ravel()],
            "score": scores.ravel(),
        }
    )


def publish_fixture(
    published_dir: Path,
    model_version: str = "fixture-v1",
    *,
    frame: pd.DataFrame | None = None,
    make_current: bool = True,
    trained_at: datetime | str | None = None,
    metrics: Mapping[str, float] | None = None,
    session: bool = True,
    session_width: int = 5,
    session_sessions: int = 0,
    **frame_kwargs: Any,
) -> Path:
    """Publish a synthetic version (``frame`` or :func:`fixture_frame(**frame_kwargs)`),
    with the session model of :func:`fixture_session` unless ``session`` is False (the
    hybrid, with :func:`fixture_session_index`, when ``session_sessions`` > 0)."""
    if frame is None:
        frame = fixture_frame(**frame_kwargs)
    neighbours, session_model = fixture_session(frame, session_width) if session else (None, None)
    index = None
    if session and session_sessions > 0 and session_model is not None:
        index = fixture_session_index(frame, session_sessions)
        session_model = {**session_model, "hybrid": dict(FIXTURE_HYBRID)}
    trained = trained_at or datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    return publish_version(
        published_dir,
        frame,
        model_version=model_version,
        trained_at=trained,
        candidate="fixture",
        metrics=metrics or {"ndcg@10": 0.1234, "recall@20": 0.2345, "coverage": 0.5},
        make_current=make_current,
        session_neighbours=neighbours,
        session_model=session_model,
        session_index=index,
    )


#: the hybrid's weights in the fixture (the defaults of ``recsys.session.knn.StanConfig``)
FIXTURE_HYBRID: dict[str, float] = {
    "k": 100,
    "l1": 2.0,
    "l3": 4.0,
    "knn": 1.0,
    "mix": 1.0,
    "prior": 0.15,
}


def fixture_session_index(
    frame: pd.DataFrame, n_sessions: int, sample: int = 1000, seed: int = 0
) -> dict[str, np.ndarray]:
    """Synthetic training sessions for the hybrid: 2..10 items each, drawn with a Zipf-like
    popularity (so popular items fill their ``sample`` posting slots, the API's worst case)
    near a random start; posting lists of the ``sample`` most recent sessions per item."""
    names = sorted({i for i in frame["item_id"] if isinstance(i, str)})
    n = len(names)
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 11, size=n_sessions)
    pop = 1.0 / (np.arange(n) + 10.0)
    starts = rng.choice(n, size=n_sessions, p=pop / pop.sum())
    items = (np.repeat(starts, lengths) + rng.integers(0, 20, size=int(lengths.sum()))) % n
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    sess = np.repeat(np.arange(n_sessions), lengths)
    # one posting per (item, session), the most recent (highest) sessions first to keep
    key = np.unique(items * n_sessions + sess)
    p_item, p_sess = key // n_sessions, key % n_sessions
    counts = np.bincount(p_item, minlength=n)
    rank_from_end = np.repeat(np.cumsum(counts), counts) - 1 - np.arange(len(key))
    keep = rank_from_end < sample
    p_item, p_sess = p_item[keep], p_sess[keep]
    counts = np.bincount(p_item, minlength=n)
    prior = np.zeros(n, np.float32)
    prior[:200] = 1.0 / (1.0 + np.arange(min(200, n)))
    return {
        "item_ids": np.asarray(names, dtype=str),
        "sess_indptr": indptr,
        "sess_items": items.astype(np.int32),
        "post_indptr": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "post_sessions": p_sess.astype(np.int32),
        "post_weights": (1.0 / np.sqrt(lengths[p_sess])).astype(np.float32),
        "item_factor": np.ones(n, np.float32),
        "prior": prior,
    }


def fixture_session(
    frame: pd.DataFrame, width: int = 5, decay: float = 1.0
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A synthetic session model over the items of ``frame``: item ``n`` has neighbours
    ``n+1 .. n+width`` (mod the item count) with weights ``1/1 .. 1/width``; item ``n``'s
    category is ``FIXTURE_CATEGORIES[n % 3]``."""
    names = sorted({i for i in frame["item_id"] if isinstance(i, str)})
    n = len(names)
    src = np.repeat(np.arange(n), width)
    rank = np.tile(np.arange(1, width + 1), n)
    neighbours = pd.DataFrame(
        {
            "item_id": np.array(names, dtype=object)[src],
            "rank": rank.astype(np.int32),
            "neighbour_id": np.array(names, dtype=object)[(src + rank) % n],
            "weight": (1.0 / rank).astype(np.float32),
        }
    )
    categories = {
        name: FIXTURE_CATEGORIES[i % len(FIXTURE_CATEGORIES)] for i, name in enumerate(names)
    }
    model = {
        "model": "fixture",
        "decay": decay,
        "max_session_items": 50,
        "item_categories": categories,
    }
    return neighbours, model
