"""Task bodies of ``recommender_train`` and ``recommender_rollback``: the warehouse, the GX
gates and the DS library glued together.

``recsys`` is a plain library (no settings, no warehouse, no Airflow); this module gives it
DataFrames read from the ML marts and puts its outputs where the platform expects them:

- training inputs: ``models/_snapshots/<run>/{events,items,users,interactions}.parquet``
  (one read of the warehouse, in the writer pool; training never holds the DuckDB lock);
- models: ``models/<version>/`` and the ``models/current`` pointer (:mod:`recsys.registry`);
- lists: ``published/<version>/recommendations.parquet`` and ``published/CURRENT``;
- report: ``reports/evaluation/<version>.html`` and ``reports/evaluation/latest.html``, rendered
  from ``models/<version>/report.json`` (:mod:`include.reporting.evaluation`).
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from common.contracts import PRODUCT_EVENT_TYPES
from common.errors import DeterministicFailure
from include.settings import get_settings
from include.tasks import fail_fast

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def working_copy() -> Iterator[None]:
    """With the models and published files on an object store (``TRASOS_STORE_URL``): pull
    them into this host's cache first, push what the task wrote after it succeeded (data
    objects, then the ``current`` / ``promotions.json`` / ``CURRENT`` pointers last: a reader
    never follows a pointer to a missing object). A no-op on the local default. Tasks hand
    each other versions and store keys, so any worker can run any of them."""
    from include.serving.loader import CURRENT_FILE
    from include.storage import pull_tree, push_tree
    from recsys.registry import CURRENT, PROMOTIONS

    s = get_settings()
    if not s.store.remote:
        yield
        return
    trees = (
        ("models", s.models_dir, (CURRENT, PROMOTIONS)),
        ("published", s.published_dir, (CURRENT_FILE,)),
    )
    for prefix, local, pointers in trees:
        pull_tree(s.store, prefix, local, pointers)
    yield
    for prefix, local, pointers in trees:
        push_tree(s.store, local, prefix, pointers)


def synced(fn: F) -> F:
    """Run ``fn`` inside :func:`working_copy`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with working_copy():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


SNAPSHOT_QUERIES: dict[str, str] = {
    # recsys expects user_id, item_id, event_type, event_at (one row per product event)
    "events": f"""
        select visitor_id as user_id, item_id, event_type, event_at
        from fct_events
        where item_id is not null
          and event_type in ({", ".join("?" for _ in PRODUCT_EVENT_TYPES)})
    """,
    "items": "select * from ml_item_features",
    "users": "select * from ml_user_features",
}
#: The interactions the model trains on, aggregated from the snapshot's events (gated).
TRAINED_INTERACTIONS_FILE = "interactions.parquet"


def read_training_frames(
    con: duckdb.DuckDBPyConnection, names: tuple[str, ...] = tuple(SNAPSHOT_QUERIES)
) -> dict[str, Any]:
    """The ML marts ``names`` of :data:`SNAPSHOT_QUERIES` as DataFrames (``con``: DuckDB)."""
    from include.warehouse import frame

    frames = {}
    for name in names:
        params = list(PRODUCT_EVENT_TYPES) if name == "events" else []
        frames[name] = frame(con, SNAPSHOT_QUERIES[name], params)
    return frames


def _safe(run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)[:120]


@fail_fast
@synced
def extract_training_data(run_id: str) -> dict[str, Any]:
    """Snapshot the ML marts to Parquet, then gate the training set (fails without retry).

    The gate checks the interactions the model trains on: the snapshot's events aggregated
    by :func:`recsys.data.aggregate_events` with the training plan's feature config (the same
    call :func:`recsys.pipeline.run_training` makes), written to the snapshot as
    ``interactions.parquet``. ``ml_interactions`` is DA's and the monitors' view of the same
    events and is not what LightFM fits on.
    """
    import pandas as pd

    from common.fs import atomic_dir
    from expectations.gate import run_gate
    from include.warehouse import read_marts
    from recsys.data import aggregate_events
    from recsys.plan import training_plan

    settings = get_settings()
    key = f"models/_snapshots/{_safe(run_id)}"  # what the next tasks get: a key, not a path
    out = settings.local_copy(key)
    counts = {}
    with atomic_dir(out) as tmp:  # a snapshot folder is complete or absent
        with read_marts() as con:
            frames = read_training_frames(con)
        for name, frame in frames.items():
            frame.to_parquet(tmp / f"{name}.parquet", index=False)
            counts[name] = len(frame)
        config, _ = training_plan(frames["events"])
        interactions = aggregate_events(frames["events"], config.features)
        interactions.to_parquet(tmp / TRAINED_INTERACTIONS_FILE, index=False)
        counts["interactions"] = len(interactions)
    gate = run_gate(
        "training_set", pd.read_parquet(out / TRAINED_INTERACTIONS_FILE), run_name=run_id
    )
    return {"snapshot": key, "rows": counts, "gate": gate.summary()}


@synced
def train(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Train every candidate and baseline on the snapshot and save a (not yet current) version."""
    import pandas as pd

    from include.reporting.evaluation import publish_report
    from recsys.pipeline import run_training
    from recsys.plan import training_plan
    from recsys.session.training import (
        save_session_model,
        train_session_model,
        user_model_item_embeddings,
    )

    settings = get_settings()
    folder = settings.local_copy(snapshot["snapshot"])
    events = pd.read_parquet(folder / "events.parquet")
    config, split_at = training_plan(events)
    # The session model for anonymous visitors (its own clause, published by score() only
    # when it passes) needs nothing from the user model until it is saved, so it trains in a
    # second thread meanwhile: LightFM fits on one thread (determinism, issue 20) and numpy/
    # scipy release the GIL, so the two use both cores. Its own copy of the events: pandas
    # frames are not safe to share between threads. MLflow's import and store set-up wait
    # for the session model in that thread, off the tracking at the end.
    from include.tasks.tracking import track_training, warm_store

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="session-model") as pool:
        session_future = pool.submit(
            train_session_model,
            events.copy(),
            split_at,
            config.split.test_days,
            settings.definition_of_done,
        )
        warmed = pool.submit(warm_store)
        summary = run_training(
            events,
            pd.read_parquet(folder / "items.parquet"),
            pd.read_parquet(folder / "users.parquet"),
            models_dir=settings.models_dir,
            config=config,
            split_at=split_at,
            contract=settings.definition_of_done,
        )
        session = session_future.result()
        warmed.result()
    items = pd.read_parquet(folder / "items.parquet")
    version_dir = settings.models_dir / summary["version"]
    summary["session"] = save_session_model(
        session, version_dir, items, embeddings=user_model_item_embeddings(version_dir)
    )
    reports = settings.reports_dir / "evaluation"
    page = publish_report(
        summary["report_data"], reports, summary["version"], session=session.metrics()
    )
    summary["report_path"] = str(page)
    summary["mlflow_run_id"] = track_training(summary, snapshot)  # never fails the run
    return summary


class DefinitionOfDoneFailed(DeterministicFailure):
    """The trained model failed its definition of done; it is not published (no retry)."""

    def __init__(self, message: str, owner_role: str, details: dict[str, Any], docs_url: str):
        super().__init__(message)
        self.owner_role = owner_role
        self.details = details
        self.docs_url = docs_url


def fmt_number(value: float | None, spec: str = ".4g") -> str:
    """A metric for people; ``undefined`` when it could not be measured (null in the JSON)."""
    return "undefined" if value is None else format(value, spec)


def clause_text(c: dict[str, Any]) -> str:
    """One failed clause of ``dod.json`` for a message: observed, required, by how much."""
    text = (
        f"{c['id']} ({c['owner']}): observed {fmt_number(c['observed'])}, "
        f"required {fmt_number(c['required'])}"
    )
    if c.get("margin") is not None and c.get("margin_pct") is not None:
        if c["margin"] < 0:
            text += f" (short by {-c['margin']:.4g}, {c['margin_pct']:+.1f}%)"
        else:
            text += f" (margin {c['margin_pct']:+.1f}%)"
    if c.get("ratio") is not None:
        ci = (
            f" [{c['ci_low']:.3g}, {c['ci_high']:.3g}]"
            if c.get("ci_low") is not None and c.get("ci_high") is not None
            else ""
        )
        text += f"; ratio {c['ratio']:.3g}{ci} vs {c['factor']:g}x {c['reference']} ({c['rule']})"
    return text


@fail_fast
@synced
def check_dod(summary: dict[str, Any]) -> dict[str, Any]:
    """Stop the run when the version failed its definition of done; say which clause, by how
    much, and notify every owner of a failed clause."""
    from include.roles import notify
    from recsys.registry import read_json

    if summary["dod_passed"]:
        return summary
    if summary.get("kind") == "baseline":  # nothing was ever published: serve the baseline
        log.warning("publishing a baseline: %s", summary.get("kind_reason"))
        return summary
    dod = read_json(get_settings().models_dir, summary["version"], "dod.json")
    failed = [c for c in dod["clauses"] if c["status"] == "fail"]
    lines = [clause_text(c) for c in failed]
    message = f"model {summary['version']} failed its definition of done: " + "; ".join(lines)
    owners = sorted({c["owner"] for c in failed}) or ["DS"]
    for owner in owners[1:]:  # the task's failure callback notifies the first
        notify(
            owner,
            subject="definition of done failed",
            error=message,
            dag_id="recommender_train",
            link=summary["report_path"],
            details={"clauses": failed},
        )
    raise DefinitionOfDoneFailed(message, owners[0], {"clauses": failed}, summary["report_path"])


@synced
def score(summary: dict[str, Any]) -> dict[str, Any]:
    """Batch-score the version into ``published/<version>/recommendations.parquet``, with the
    session model's files beside it when its clause passed."""
    from recsys.scoring import score_version
    from recsys.session.training import publish_session_files

    settings = get_settings()
    version = summary["version"]
    out = settings.published_dir / version / "recommendations.parquet"
    scored = score_version(settings.models_dir, out, version=version)
    scored["session_published"] = publish_session_files(settings.models_dir / version, out.parent)
    return {**scored, "version": version, "report_path": summary["report_path"]}


@fail_fast
@synced
def validate_recommendations(scored: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
    """GX gate on the lists: known purchases are excluded, ranks and scores are sane."""
    import pandas as pd

    from expectations.gate import run_gate
    from expectations.suites import RecommendationsParams

    settings = get_settings()
    recs = pd.read_parquet(settings.published_dir / scored["version"] / "recommendations.parquet")
    folder = settings.local_copy(snapshot["snapshot"])
    events = pd.read_parquet(folder / "events.parquet")
    purchases = events.loc[events["event_type"] == "purchase", ["user_id", "item_id"]]
    n_items = len(pd.read_parquet(folder / "items.parquet"))
    gate = run_gate(
        "recommendations",
        recs,
        params=RecommendationsParams(k=scored["k"]),  # the k the lists were scored with
        purchases=purchases.drop_duplicates(),
        catalog_size=n_items,
        run_name=scored["version"],
    )
    return {**scored, "gate": gate.summary()}


@synced
def publish(validated: dict[str, Any]) -> dict[str, Any]:
    """Promote the version (models/current) and publish its lists (published/CURRENT)."""
    from recsys.registry import promote
    from recsys.scoring import publish as publish_lists

    settings = get_settings()
    version = validated["version"]
    promote(settings.models_dir, version)
    folder = publish_lists(settings.models_dir, settings.published_dir, version)
    meta = json.loads((folder / "model.json").read_text())
    log.info("published %s: %s", version, meta)
    from include.tasks.tracking import track_registry  # MLflow alias `champion`

    track_registry()
    return {"version": version, "published": str(folder), "rows": validated["rows"]}


@synced
def rollback() -> dict[str, Any]:
    """Serve the previously promoted model again: ``published/CURRENT`` and ``models/current``.

    The API follows ``published/CURRENT``, so moving the registry pointer alone would change
    nothing the shop sees. The lists of the version rolled back to must still be in
    ``published/<version>/`` (published versions are immutable and kept); when they are not,
    nothing moves. ``published/CURRENT`` moves first: a rollback killed between the two
    writes is finished by running it again (the registry still names the same target).
    """
    from include.serving.loader import MODEL_FILE, RECOMMENDATIONS_FILE
    from include.serving.publish import set_current
    from recsys.registry import current_version, rollback_target
    from recsys.registry import rollback as registry_rollback

    settings = get_settings()
    models_dir, published_dir = settings.models_dir, settings.published_dir
    now = current_version(models_dir)
    target = rollback_target(models_dir)
    folder = published_dir / target
    missing = [n for n in (RECOMMENDATIONS_FILE, MODEL_FILE) if not (folder / n).exists()]
    if missing:
        raise FileNotFoundError(
            f"cannot roll back from {now} to {target}: {folder} lacks {', '.join(missing)}; "
            "nothing was moved. Publish a new model instead (trigger recommender_train)."
        )
    set_current(published_dir, target)
    registry_rollback(models_dir)
    from include.tasks.tracking import track_registry  # MLflow alias `champion`

    track_registry()
    log.info("rolled back from %s to %s (published/CURRENT and models/current)", now, target)
    return {"version": target, "from": now, "published": str(folder)}


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m include.tasks.training", description="Operate the published recommender."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("rollback", help="serve the previously promoted model version again")
    parser.parse_args(argv)
    try:
        done = rollback()
    except (RuntimeError, FileNotFoundError) as exc:
        print(f"rollback: {exc}")
        return 2
    print(f"rolled back from {done['from']} to {done['version']}; the API follows within seconds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
