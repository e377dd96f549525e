"""Glue between the warehouse, the GX gates and the DS library for ``recommender_train``.

``recsys`` is a plain library (no settings, no warehouse, no Airflow); this module gives it
DataFrames read from the ML marts and puts its outputs where the platform expects them:

- training inputs: ``models/_snapshots/<run>/{events,items,users,interactions}.parquet``
  (one read of the warehouse, in the writer pool; training never holds the DuckDB lock);
- models: ``models/<version>/`` and the ``models/current`` pointer (:mod:`recsys.registry`);
- lists: ``published/<version>/recommendations.parquet`` and ``published/CURRENT``;
- report: ``reports/evaluation/<version>.html`` and ``reports/evaluation/latest.html``.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.contracts import PRODUCT_EVENT_TYPES
from include.settings import get_settings

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

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
    "interactions": "select * from ml_interactions",
}


def read_training_frames(
    con: duckdb.DuckDBPyConnection, names: tuple[str, ...] = tuple(SNAPSHOT_QUERIES)
) -> dict[str, Any]:
    """The ML marts ``names`` of :data:`SNAPSHOT_QUERIES` as DataFrames (``con``: DuckDB)."""
    frames = {}
    for name in names:
        params = list(PRODUCT_EVENT_TYPES) if name == "events" else []
        frames[name] = con.execute(SNAPSHOT_QUERIES[name], params).df()
    return frames


def _safe(run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)[:120]


def extract_training_data(run_id: str) -> dict[str, Any]:
    """Snapshot the ML marts to Parquet, then gate the training set (raises GateFailed)."""
    import pandas as pd

    from expectations.gate import run_gate
    from include.warehouse import connect

    settings = get_settings()
    out = settings.models_dir / "_snapshots" / _safe(run_id)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    counts = {}
    with connect(read_only=True) as con:
        for name, frame in read_training_frames(con).items():
            frame.to_parquet(tmp / f"{name}.parquet", index=False)
            counts[name] = len(frame)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)  # a snapshot folder is complete or absent
    interactions = pd.read_parquet(out / "interactions.parquet")
    gate = run_gate("training_set", interactions, run_name=run_id)
    return {"snapshot": str(out), "rows": counts, "gate": gate.summary()}


def train(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Train every candidate and baseline on the snapshot and save a (not yet current) version."""
    import pandas as pd

    from recsys.pipeline import run_training

    settings = get_settings()
    folder = Path(snapshot["snapshot"])
    events = pd.read_parquet(folder / "events.parquet")
    config, split_at = training_plan(events)
    summary = run_training(
        events,
        pd.read_parquet(folder / "items.parquet"),
        pd.read_parquet(folder / "users.parquet"),
        models_dir=settings.models_dir,
        config=config,
        split_at=split_at,
        contract=settings.definition_of_done,
    )
    reports = settings.reports_dir / "evaluation"
    reports.mkdir(parents=True, exist_ok=True)
    source = Path(summary["report_path"])
    if source.exists():
        shutil.copyfile(source, reports / f"{summary['version']}.html")
        shutil.copyfile(source, reports / "latest.html")
        summary["report_path"] = str(reports / f"{summary['version']}.html")
    return summary


#: Histories shorter than this many days (real samples of hours) are split by event quantile.
QUANTILE_SPLIT_BELOW_DAYS = 4.0


def quantile_split(event_at, test_share: float = 0.2) -> tuple[Any, float]:
    """``T`` at the ``1 - test_share`` quantile of the event times, and the test window in
    days (``T`` to just past the last event), for histories too short for whole-day windows.
    """
    t_max = event_at.max()
    split_at = event_at.quantile(1.0 - test_share)
    return split_at, (t_max - split_at).total_seconds() / 86400 + 1e-6


def training_plan(events) -> tuple[Any, Any]:
    """The pipeline configuration and split time ``T`` (None: derived from the config) for
    a training snapshot's events.

    The default test window (14 days, validation 7) needs about six weeks of events. A
    shorter history of at least :data:`QUANTILE_SPLIT_BELOW_DAYS` days (a small simulation)
    gets whole-day windows of a quarter (test) and an eighth (validation) of its span; a
    history of hours (a real sample) gets ``T`` at the quantile of its last 20 % of events
    and a validation slice half as long in time, the split ``make evaluate`` uses. Training
    always has the larger part.

    Relevant test interactions are carts and purchases (the default); in data without any
    (views or clicks only: the RetailRocket and YOOCHOOSE samples) every product interaction
    is relevant, otherwise no user could be evaluated.
    """
    import dataclasses

    from recsys import columns as C
    from recsys.config import DEFAULT_PIPELINE

    split = DEFAULT_PIPELINE.split
    if events.empty:
        return DEFAULT_PIPELINE, None
    changes: dict[str, Any] = {}
    split_at = None
    span_days = (events["event_at"].max() - events["event_at"].min()).total_seconds() / 86400
    if span_days < 2 * (split.test_days + split.validation_days):
        if span_days >= QUANTILE_SPLIT_BELOW_DAYS:
            test_days, validation_days = int(span_days // 4), int(span_days // 8)
        else:
            split_at, test_days = quantile_split(events["event_at"])
            validation_days = test_days / 2
        changes.update(test_days=test_days, validation_days=validation_days)
        log.warning(
            "history spans %.2f days: time split shortened to test %.3g d, validation %.3g d%s",
            span_days,
            test_days,
            validation_days,
            f" (T = {split_at})" if split_at is not None else "",
        )
    if split.relevance == "cart_or_purchase" and not (
        events["event_type"].isin((C.CART, C.PURCHASE)).any()
    ):
        changes["relevance"] = "any"
        log.warning("no cart or purchase event: every test interaction counts as relevant")
    if not changes:
        return DEFAULT_PIPELINE, None
    config = dataclasses.replace(DEFAULT_PIPELINE, split=dataclasses.replace(split, **changes))
    return config, split_at


class DefinitionOfDoneFailed(RuntimeError):
    """The trained model failed its definition of done; it is not published."""

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


def score(summary: dict[str, Any]) -> dict[str, Any]:
    """Batch-score the version into ``published/<version>/recommendations.parquet``."""
    from recsys.scoring import score_version

    settings = get_settings()
    version = summary["version"]
    out = settings.published_dir / version / "recommendations.parquet"
    scored = score_version(settings.models_dir, out, version=version)
    return {**scored, "version": version, "report_path": summary["report_path"]}


def validate_recommendations(scored: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
    """GX gate on the lists: known purchases are excluded, ranks and scores are sane."""
    import pandas as pd

    from expectations.gate import run_gate
    from expectations.suites import RecommendationsParams

    recs = pd.read_parquet(scored["path"])
    events = pd.read_parquet(Path(snapshot["snapshot"]) / "events.parquet")
    purchases = events.loc[events["event_type"] == "purchase", ["user_id", "item_id"]]
    n_items = len(pd.read_parquet(Path(snapshot["snapshot"]) / "items.parquet"))
    gate = run_gate(
        "recommendations",
        recs,
        params=RecommendationsParams(k=scored["k"]),  # the k the lists were scored with
        purchases=purchases.drop_duplicates(),
        catalog_size=n_items,
        run_name=scored["version"],
    )
    return {**scored, "gate": gate.summary()}


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
    return {"version": version, "published": str(folder), "rows": validated["rows"]}


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
    log.info("rolled back from %s to %s (published/CURRENT and models/current)", now, target)
    return {"version": target, "from": now, "published": str(folder)}


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m include.training", description="Operate the published recommender."
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
