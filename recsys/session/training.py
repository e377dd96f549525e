"""The training DAG's entry to the session model: events in, model + figures + clause out.

:func:`train_session_model` sessionises the snapshot's product events (a new session after
30 minutes of inactivity, the rule of ``int_events_sessionized``), evaluates the protocol on
the sessions of visitors unknown at ``T``, checks the session clause of the definition of
done, and refits the model on all events for publishing. :func:`save_session_model` and
:func:`publish_session_files` put it where the serving layer reads it.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.fs import atomic_write_text, atomic_write_with
from recsys import columns as C
from recsys.dod import DEFAULT_CONTRACT, load_contract
from recsys.session.data import (
    ITEM_ID,
    SESSION_ID,
    SPLIT,
    SPLIT_TEST,
    SPLIT_TRAIN,
    check_session_frame,
    last_item_cases,
    subsample_cases,
    to_sessions,
)
from recsys.session.evaluation import CANDIDATE, SessionEvaluation, evaluate_cases
from recsys.session.knn import SessionStan, StanConfig
from recsys.session.models import COOCCURRENCE, SessionKNNConfig
from recsys.session.protocol import HR, MRR
from recsys.session.publish import (
    SESSION_INDEX_FILE,
    SESSION_MODEL_FILE,
    SESSION_NEIGHBOURS_FILE,
    write_session_model,
)
from recsys.session.tuning import tune

log = logging.getLogger(__name__)

INACTIVITY_MINUTES = 30  # dbt var sessions__inactivity_minutes (copied: recsys never reads dbt)
SESSION_EVENT_TYPES: tuple[str, ...] = (C.VIEW, C.CART, C.PURCHASE)
METRICS_FILE = "session_metrics.json"
UNUSED = "unused"  # split of the events after T of visitors known before T
SUBDIR = "session"
#: the clause used when the contract has no ``session_clauses`` (same as the YAML's)
DEFAULT_CLAUSE = {
    "id": "session_hr_vs_cooccurrence",
    "owner": "DS",
    "description": "Session model HR@20 is at least 1.1x cosine co-occurrence's.",
    "metric": HR,
    "compare_to": COOCCURRENCE,
    "factor": 1.1,
    "min_test_sessions": 100,
}


def sessionize(events: pd.DataFrame, gap_minutes: float = INACTIVITY_MINUTES) -> pd.DataFrame:
    """Session frame (``session_id, item_id, timestamp, user_id``) from product events.

    ``events`` has ``user_id`` (the visitor), ``item_id``, ``event_type``, ``event_at``. Only
    views, carts and purchases count; a visitor's new session starts after ``gap_minutes``
    without events. Vectorised (one sort).
    """
    ev = events[events[C.EVENT_TYPE].isin(SESSION_EVENT_TYPES)].dropna(
        subset=[C.USER_ID, C.ITEM_ID, C.EVENT_AT]
    )
    at = pd.to_datetime(ev[C.EVENT_AT], utc=True)
    frame = pd.DataFrame(
        {
            "user": ev[C.USER_ID].astype(str).to_numpy(),
            ITEM_ID: ev[C.ITEM_ID].astype(str).to_numpy(),
            "t": (at - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds().to_numpy(),
        }
    ).sort_values(["user", "t"], kind="stable")
    user = frame["user"].to_numpy()
    t = frame["t"].to_numpy()
    new = np.ones(len(frame), dtype=bool)
    new[1:] = (user[1:] != user[:-1]) | (t[1:] - t[:-1] > gap_minutes * 60.0)
    frame[SESSION_ID] = np.cumsum(new).astype(str)
    return pd.DataFrame(
        {
            SESSION_ID: frame[SESSION_ID].to_numpy(),
            ITEM_ID: frame[ITEM_ID].to_numpy(),
            "timestamp": t,
            C.USER_ID: user,
        }
    )


def session_split(sessions: pd.DataFrame, split_at: float) -> pd.Series:
    """``train`` for events before ``T``; ``test`` for the sessions starting at or after ``T``
    of visitors with no event before ``T``; ``unused`` for the rest."""
    start = sessions.groupby(SESSION_ID)["timestamp"].transform("min")
    first_seen = sessions.groupby(C.USER_ID)["timestamp"].transform("min")
    split = np.where(sessions["timestamp"] < split_at, SPLIT_TRAIN, UNUSED)
    unknown = (start >= split_at) & (first_seen >= split_at)
    return pd.Series(np.where(unknown, SPLIT_TEST, split), index=sessions.index, name=SPLIT)


@dataclass
class SessionTraining:
    """What the DAG needs: the fitted model, its figures and the clause's verdict."""

    model: SessionStan
    items: pd.Index
    evaluation: SessionEvaluation | None
    clause: dict[str, Any]
    split_at: str | None

    @property
    def passed(self) -> bool:
        return self.clause["status"] == "pass"

    def metrics(self) -> dict[str, Any]:
        """JSON-able figures (``session_metrics.json``; the report and docs read it)."""
        ev = self.evaluation
        return {
            "protocol": "session-last-item",
            "split_at": self.split_at,
            "candidate": CANDIDATE,
            "n_test_sessions": ev.n_test_sessions if ev else 0,
            "models": ev.summary()["models"] if ev else {},
            "hr_ratio_vs_cooccurrence": _finite(ev.ratio(HR)) if ev else None,
            "mrr_ratio_vs_cooccurrence": _finite(ev.ratio(MRR)) if ev else None,
            "config": self.model.table_config.__dict__,
            "hybrid": self.model.config.__dict__,
            "clause": self.clause,
        }


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def session_clause(contract: dict[str, Any] | None = None) -> dict[str, Any]:
    """The session clause of the definition of done (``session_clauses[0]`` of the YAML)."""
    clauses = (contract or {}).get("session_clauses") or [DEFAULT_CLAUSE]
    return {**DEFAULT_CLAUSE, **clauses[0]}


def check_session_clause(ev: SessionEvaluation | None, clause: dict[str, Any]) -> dict[str, Any]:
    """``status`` pass/fail with observed and required values (fail: too few test sessions)."""
    n = ev.n_test_sessions if ev else 0
    out = {**clause, "n_test_sessions": n}
    if ev is None or n < int(clause["min_test_sessions"]):
        return {
            **out,
            "status": "fail",
            "observed": None,
            "required": None,
            "reason": f"{n} test sessions, fewer than {clause['min_test_sessions']}",
        }
    metric = "hr" if clause["metric"] == HR else "mrr"
    observed = getattr(ev.results[CANDIDATE], metric)
    required = float(clause["factor"]) * getattr(ev.results[clause["compare_to"]], metric)
    status = "pass" if observed >= required else "fail"
    return {**out, "status": status, "observed": observed, "required": required}


def train_session_model(
    events: pd.DataFrame,
    split_at: Any = None,
    test_days: float = 14.0,
    contract: str | Path | dict[str, Any] | None = None,
    max_test_sessions: int | None = 20000,
    seed: int = 42,
) -> SessionTraining:
    """Evaluate on the time split, check the clause, refit on every event.

    Parameters
    ----------
    events
        The snapshot's product events: ``user_id, item_id, event_type, event_at``.
    split_at
        ``T``; None: ``test_days`` before the last event.
    contract
        The definition of done (path or loaded dict); its ``session_clauses`` gate the model.
    """
    sessions = sessionize(events)
    if sessions.empty:
        raise ValueError("no product view, cart or purchase events: nothing to train on")
    if split_at is None:
        t_split = sessions["timestamp"].max() - float(test_days) * 86400.0
    else:
        ts = pd.Timestamp(split_at)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        t_split = (ts - pd.Timestamp("1970-01-01", tz="UTC")).total_seconds()
    sessions[SPLIT] = session_split(sessions, t_split)
    frame = check_session_frame(sessions.drop(columns=[SPLIT]), "session events")
    frame[SPLIT] = sessions[SPLIT].to_numpy()
    train = frame[frame[SPLIT] == SPLIT_TRAIN]
    test = frame[frame[SPLIT] == SPLIT_TEST]
    loaded = contract if isinstance(contract, dict) else load_contract(contract or DEFAULT_CONTRACT)
    clause = session_clause(loaded)
    evaluation = None
    config = SessionKNNConfig()
    hybrid = StanConfig()
    if not train.empty:
        items = pd.Index(np.unique(train[ITEM_ID].to_numpy()))
        cases = last_item_cases(to_sessions(test, items))
        if max_test_sessions is not None and cases.n > max_test_sessions:
            cases = subsample_cases(cases, max_test_sessions, seed)
        evaluation = evaluate_cases(to_sessions(train, items), cases, len(items), items)
        config, hybrid = evaluation.tuning.config, evaluation.tuning.hybrid
    verdict = check_session_clause(evaluation, clause)
    # the published model: the chosen config, refitted on every event (re-tuned on all of them
    # when the split left too little to tune on)
    all_items = pd.Index(np.unique(frame[ITEM_ID].to_numpy()))
    everything = to_sessions(frame, all_items)
    if evaluation is None or not evaluation.tuning.tuned:
        tuning = tune(everything, len(all_items), config)
        config, hybrid = tuning.config, tuning.hybrid
    model = SessionStan(hybrid, config).fit(everything, len(all_items))
    split_text = pd.Timestamp(t_split, unit="s", tz="UTC").isoformat()
    log.info("session model: %s, %s; clause %s", config, hybrid, verdict["status"])
    return SessionTraining(model, all_items, evaluation, verdict, split_text)


def user_model_item_embeddings(version_dir: str | Path) -> tuple[pd.Index, np.ndarray] | None:
    """The saved user model's item ids and item embeddings (``items.parquet``,
    ``item_embeddings.npy`` of :mod:`recsys.registry`), or None when the version has none."""
    folder = Path(version_dir)
    if not (folder / "item_embeddings.npy").exists() or not (folder / "items.parquet").exists():
        return None
    meta = pd.read_parquet(folder / "items.parquet", columns=[C.ITEM_ID, "item_index"])
    emb = np.load(folder / "item_embeddings.npy", allow_pickle=False)
    order = meta.sort_values("item_index")
    if len(order) != len(emb) or (order["item_index"].to_numpy() != np.arange(len(emb))).any():
        log.warning("%s: items.parquet and item_embeddings.npy disagree; no embeddings", folder)
        return None
    return pd.Index(order[C.ITEM_ID].astype(str).to_numpy()), emb.astype(np.float32)


def save_session_model(
    result: SessionTraining,
    folder: str | Path,
    items: pd.DataFrame | None = None,
    embeddings: tuple[pd.Index, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Write ``<folder>/session/`` (neighbour table, model json, metrics); returns a summary.

    ``items`` (``item_id``, ``category``) feeds the popular-in-category fallback;
    ``embeddings`` (:func:`user_model_item_embeddings`) give items without co-occurrence
    neighbours their nearest items by the user model's (LightFM) item embeddings.
    """
    out = Path(folder) / SUBDIR
    categories = None
    if items is not None and C.CATEGORY in items.columns:
        known = items.dropna(subset=[C.CATEGORY])
        categories = dict(
            zip(known[C.ITEM_ID].astype(str), known[C.CATEGORY].astype(str), strict=True)
        )
        wanted = set(result.items) | (set(embeddings[0]) if embeddings is not None else set())
        categories = {k: v for k, v in categories.items() if k in wanted}
    metrics = result.metrics()
    headline = metrics["models"].get(CANDIDATE, {})
    summary = write_session_model(
        out,
        result.model.table,
        result.items,
        result.model.table_config,
        headline,
        categories,
        index=result.model.index,
        hybrid=result.model.config,
        embeddings=embeddings,
    )
    atomic_write_text(out / METRICS_FILE, json.dumps(metrics, indent=1, default=float) + "\n")
    return {**summary, "passed": result.passed, "metrics": str(out / METRICS_FILE)}


def publish_session_files(model_folder: str | Path, published_folder: str | Path) -> bool:
    """Copy a version's session model next to its lists, if it passed its clause.

    Returns whether it was published. A failed clause keeps the files out: the API then
    answers sessions from the popular lists.
    """
    src = Path(model_folder) / SUBDIR
    if not (src / METRICS_FILE).exists():
        return False
    metrics = json.loads((src / METRICS_FILE).read_text(encoding="utf-8"))
    if metrics["clause"]["status"] != "pass":
        log.warning("session model not published: clause %s", metrics["clause"])
        return False
    dst = Path(published_folder)
    dst.mkdir(parents=True, exist_ok=True)
    # the arrays first, the json last: the loader keys on the json
    for name in (SESSION_NEIGHBOURS_FILE, SESSION_INDEX_FILE, SESSION_MODEL_FILE):
        if (src / name).exists():
            atomic_write_with(dst / name, lambda tmp, name=name: shutil.copyfile(src / name, tmp))
        elif (dst / name).exists():
            (dst / name).unlink()
    return True
