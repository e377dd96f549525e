"""Top-level entry points for the training DAG: split, fit, evaluate, gate, save, score.

The DAG stays thin::

    summary = run_training(events, item_features, user_features,
                           models_dir=settings.models_dir, report_path=...)   # saves, no promote
    promote(settings.models_dir, summary["version"])       # raises if the DoD failed
    score_version(settings.models_dir, out_path)            # Parquet, atomically

``train_evaluate`` is the in-memory core (returns models and tables) for notebooks and tests.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys import columns as C
from recsys.config import DEFAULT_PIPELINE, LightFMConfig, PipelineConfig, config_to_dict
from recsys.data import (
    Dataset,
    SplitData,
    aggregate_events,
    build_dataset,
    clean_events,
    prepare_split,
)
from recsys.dod import DEFAULT_CONTRACT, DoDReport, candidates_of, choose_candidate, load_contract
from recsys.evaluate import Evaluation, evaluate
from recsys.models import LightFMBlend, LightFMRecommender, Recommender, make_model
from recsys.models.lightfm_model import LockstepRefit, refit_config

log = logging.getLogger("recsys")


@dataclass(eq=False)
class TrainResult:
    """Everything one training run produced (in memory)."""

    config: PipelineConfig
    split: SplitData
    models: dict[str, Recommender]
    metrics: pd.DataFrame
    dod: DoDReport
    final_model: Recommender
    final_dataset: Dataset
    item_table: pd.DataFrame
    snapshot: dict
    timings: dict[str, float] = field(default_factory=dict)
    learning_curve: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    blend_search: list[dict] = field(default_factory=list)
    #: what is published (:func:`recsys.dod.publish_decision`): set by :func:`run_training`
    publication: dict | None = None


def _hash_frame(frame: pd.DataFrame | None) -> str:
    if frame is None or frame.empty:
        return hashlib.sha256(b"").hexdigest()
    cols = sorted(frame.columns)
    h = pd.util.hash_pandas_object(frame[cols].astype(str), index=False).to_numpy()
    return hashlib.sha256(np.sort(h).tobytes() + ",".join(cols).encode()).hexdigest()


def data_snapshot(
    events: pd.DataFrame,
    item_features: pd.DataFrame,
    user_features: pd.DataFrame | None,
    split: SplitData,
) -> dict:
    """Row counts, time range, split facts and an order-independent content hash."""
    ev = split.split
    at = pd.concat([ev.train_events[C.EVENT_AT], ev.test_events[C.EVENT_AT]])
    hashes = [
        _hash_frame(events[list(C.EVENT_COLUMNS)]),
        _hash_frame(item_features),
        _hash_frame(user_features),
    ]
    return {
        "events_rows": int(len(events)),
        "train_events_rows": int(len(ev.train_events)),
        "test_events_rows": int(len(ev.test_events)),
        "item_rows": int(len(item_features)),
        "user_rows": int(0 if user_features is None else len(user_features)),
        "train_users": int(split.test.dataset.n_users),
        "items": int(split.test.dataset.n_items),
        "train_interactions": int(split.test.dataset.interactions.nnz),
        "cold_items": int(split.test.cold_items.sum()),
        "event_at_min": str(at.min()),
        "event_at_max": str(at.max()),
        "split_at": str(ev.split_at),
        "test_end": str(ev.test_end),
        **{f"test_{k}": v for k, v in split.test.stats.items()},
        "content_hash": hashlib.sha256("".join(hashes).encode()).hexdigest(),
    }


def item_table(
    dataset: Dataset,
    events: pd.DataFrame,
    end: pd.Timestamp,
    trending_days: int = 7,
) -> pd.DataFrame:
    """Per-item facts for cold-start lists, rows in ``dataset.items`` order.

    ``popularity`` = sum over users of the recency-weighted interaction (``decayed_score``);
    ``trending`` = ``log1p(n_recent) * (n_recent + 1) / (n_expected + 1)`` where ``n_recent``
    counts users who touched the item in the last ``trending_days`` and ``n_expected`` is the
    same rate over the four windows before.
    """
    ev = clean_events(events)
    t = ev[C.EVENT_AT]
    recent_start = end - pd.Timedelta(days=trending_days)
    prev_start = recent_start - pd.Timedelta(days=4 * trending_days)

    def users_per_item(mask: pd.Series) -> np.ndarray:
        sel = ev.loc[mask, [C.USER_ID, C.ITEM_ID]].drop_duplicates()
        idx = dataset.items.index(sel[C.ITEM_ID].to_numpy(), missing="ignore")
        return np.bincount(idx[idx >= 0], minlength=dataset.n_items).astype(np.float64)

    n_recent = users_per_item((t >= recent_start) & (t < end))
    n_prev = users_per_item((t >= prev_start) & (t < recent_start)) / 4.0
    trending = np.log1p(n_recent) * (n_recent + 1.0) / (n_prev + 1.0)
    popularity = np.asarray(dataset.recency.sum(axis=0)).ravel()
    cats = np.where(
        dataset.item_category >= 0,
        dataset.categories[np.maximum(dataset.item_category, 0)]
        if len(dataset.categories)
        else None,
        None,
    )
    return pd.DataFrame(
        {
            C.ITEM_ID: dataset.items.ids.astype(str),
            C.CATEGORY: pd.array(cats, dtype="string"),
            C.LAUNCH_DATE: pd.to_datetime(dataset.item_launch),
            "popularity": popularity.astype(np.float64),
            "trending": trending.astype(np.float64),
            "n_users": dataset.item_user_counts.astype(np.int64),
        }
    )


def _fixed_config(config: PipelineConfig, fitted: Recommender) -> PipelineConfig:
    """The candidate's config with tuned values frozen (epochs, blend weights): for refits."""
    lfm = getattr(fitted, "lightfm", fitted)
    cfg = config
    if isinstance(lfm, LightFMRecommender) and lfm.best_epoch_:
        cfg = dataclasses.replace(cfg, lightfm=refit_config(cfg.lightfm, lfm.best_epoch_))
    if isinstance(fitted, LightFMBlend):
        cfg = dataclasses.replace(
            cfg,
            blend=dataclasses.replace(
                cfg.blend,
                weight=fitted.weight_,
                self_weight=fitted.self_weight_,
                als_weight=fitted.als_weight_,
                als_factors=fitted.als_factors_,
            ),
        )
    return cfg


@dataclass(eq=False)
class Fitted:
    """Candidates and baselines fitted on a split's training data, evaluated and gated."""

    models: dict[str, Recommender]
    evaluation: Evaluation
    dod: DoDReport
    timings: dict[str, float]

    @property
    def metrics(self) -> pd.DataFrame:
        return self.evaluation.table


def fit_and_evaluate(
    split: SplitData,
    config: PipelineConfig = DEFAULT_PIPELINE,
    contract: dict | None = None,
    progress: Callable[[str], None] | None = None,
    on_model: Callable[[str, Recommender], object] | None = None,
) -> Fitted:
    """Fit every baseline and candidate on ``split.test.dataset`` (tuning on
    ``split.validation``), evaluate them on ``split.test`` and check the definition of done.

    The core shared by :func:`train_evaluate` (time split of events) and the command line
    (``python -m recsys evaluate``, any split that yields a :class:`recsys.data.SplitData`).
    ``timings`` holds ``fit_<model>_s``, ``fit_<model>_cpu_s``, ``fit_s`` (all models),
    ``evaluate_s`` and ``dod_s``. ``on_model(name, model)`` is called with each model of the
    config before it is fitted.
    """
    say = progress or log.info
    contract = contract if contract is not None else load_contract(None)
    timings: dict[str, float] = {}
    ds = split.test.dataset
    candidate_name = config.candidate
    models: dict[str, Recommender] = {}
    fit_s: dict[str, float] = {}
    names = list(dict.fromkeys([*config.baselines, candidate_name]))
    for name in names:
        t0, c0 = time.perf_counter(), time.process_time()
        model = make_model(name, config)
        if on_model is not None:
            on_model(name, model)
        model.fit(ds, split.validation)
        fit_s[name] = time.perf_counter() - t0
        timings[f"fit_{name}_cpu_s"] = time.process_time() - c0  # all threads of this process
        models[name] = model
        say(f"fitted {name} in {fit_s[name]:.1f}s (CPU {timings[f'fit_{name}_cpu_s']:.1f}s)")
    cand = models[candidate_name]
    shared = set()
    if isinstance(cand, LightFMBlend) and LightFMRecommender.name not in models:
        models[LightFMRecommender.name] = cand.lightfm  # evaluated on its own too
        fit_s[LightFMRecommender.name] = float(cand.lightfm.fit_s_ or float("nan"))
        shared.add(LightFMRecommender.name)  # fitted inside the blend: not fitted twice
    for name in candidates_of(contract):  # other candidates the contract names
        if name not in models:
            t0 = time.perf_counter()
            models[name] = make_model(name, config).fit(ds, split.validation)
            fit_s[name] = time.perf_counter() - t0
            say(f"fitted candidate {name} in {fit_s[name]:.1f}s")
    timings.update({f"fit_{k}_s": v for k, v in fit_s.items()})
    timings["fit_s"] = float(sum(v for k, v in fit_s.items() if k not in shared))

    t0 = time.perf_counter()
    evaluation = evaluate(models, split.test, config.evaluation, fit_s)
    timings["evaluate_s"] = time.perf_counter() - t0
    say(f"evaluated {len(models)} models in {timings['evaluate_s']:.1f}s")
    # every candidate is gated the same way (paired bootstrap intervals over the test users);
    # the best that passes is the one refit and saved
    t0 = time.perf_counter()
    dod = choose_candidate(evaluation.table, contract, evaluation.per_user)
    timings["dod_s"] = time.perf_counter() - t0
    say(dod.summary())
    return Fitted(models=models, evaluation=evaluation, dod=dod, timings=timings)


def train_evaluate(
    events: pd.DataFrame,
    item_features: pd.DataFrame,
    user_features: pd.DataFrame | None = None,
    config: PipelineConfig = DEFAULT_PIPELINE,
    split_at: pd.Timestamp | str | None = None,
    contract: dict | str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrainResult:
    """Time split -> fit candidates and baselines -> evaluate -> definition of done for each
    candidate (the best passing one is chosen, :func:`recsys.dod.choose_candidate`) -> final fit.

    Parameters
    ----------
    events
        ``user_id, item_id, event_type, event_at`` (see :mod:`recsys.data`).
    item_features, user_features
        ``ml_item_features`` and ``ml_user_features``.
    config
        Pipeline configuration (models, split, evaluation).
    split_at
        Split time ``T``; default ``config.split.test_days`` before the latest event.
    contract
        Definition of done (parsed, path, or None for ``recsys/definition_of_done.yaml``).
    progress
        Called with a line of text per step (default: ``logging.getLogger("recsys").info``).

    Returns
    -------
    TrainResult
        ``final_model`` is refit on all events (train + test windows) with the tuned
        hyperparameters frozen when ``config.refit_on_all``; otherwise the evaluated candidate.
    """
    say = progress or log.info
    timings: dict[str, float] = {}
    contract = contract if isinstance(contract, dict) else load_contract(contract)
    candidate_name = config.candidate
    if contract.get("candidate") and contract["candidate"] != candidate_name:
        raise ValueError(
            f"config.candidate={candidate_name!r} but the definition of done gates "
            f"{contract['candidate']!r}; make them agree"
        )

    t0 = time.perf_counter()
    split = prepare_split(
        events, item_features, user_features, config.features, config.split, split_at
    )
    timings["prepare_split_s"] = time.perf_counter() - t0
    ds = split.test.dataset
    say(
        f"split at {split.split.split_at}: {ds.n_users} users x {ds.n_items} items, "
        f"{ds.interactions.nnz} train pairs, {split.test.stats['eval_users']} test users, "
        f"{int(split.test.cold_items.sum())} cold items ({timings['prepare_split_s']:.1f}s)"
    )

    if config.refit_on_all:
        t0 = time.perf_counter()
        all_events = pd.concat(
            [split.split.train_events, split.split.test_events], ignore_index=True
        )
        end = split.split.test_end
        inter = aggregate_events(all_events, config.features, reference_at=end)
        final_ds = build_dataset(
            inter,
            item_features,
            user_features,
            config.features,
            known_positives=config.split.known_positives,
            reference_at=end,
            available_before=end,
        )
        timings["final_dataset_s"] = time.perf_counter() - t0
    # The refit's LightFM (from scratch, the best epoch count, on all data) needs nothing but
    # that count: it trains in a second thread beside early stopping, up to its best epoch so
    # far (LockstepRefit), while the candidate fits and everything is evaluated (LightFM fits
    # on one thread, without the GIL). Used when the definition of done chooses that candidate
    # (the usual case); the same model as a refit afterwards: its own seed, data and epochs.
    refits = ThreadPoolExecutor(max_workers=1, thread_name_prefix="refit")
    early: dict[str, tuple[LightFMConfig, Future]] = {}  # candidate -> (config, its fit)
    trails: list[LockstepRefit] = []

    def start_refit(name: str, model: Recommender) -> None:
        lfm = getattr(model, "lightfm", model)
        if config.refit_on_all and name == config.candidate and isinstance(lfm, LightFMRecommender):
            trail = LockstepRefit(config.lightfm, final_ds)
            trails.append(trail)
            fit = refits.submit(trail.run)
            lfm.on_epoch = trail.seen

            def stopped(best_epoch: int) -> None:
                trail.stopped(best_epoch)
                early[name] = refit_config(config.lightfm, best_epoch), fit

            lfm.on_stopped = stopped

    try:
        fitted = fit_and_evaluate(split, config, contract, say, on_model=start_refit)
        models, metrics, dod = fitted.models, fitted.metrics, fitted.dod
        timings.update(fitted.timings)
        candidate_name = dod.candidate
        cand = models[candidate_name]

        lfm = getattr(cand, "lightfm", cand)
        learning_curve = list(getattr(lfm, "learning_curve_", []) or [])
        best_epoch = getattr(lfm, "best_epoch_", None)
        blend_search = list(getattr(cand, "weight_curve_", []) or [])

        if config.refit_on_all:
            t0 = time.perf_counter()
            fixed = _fixed_config(config, cand)
            final_model = make_model(candidate_name, fixed)
            started = early.get(candidate_name)
            used = started is not None and started[0] == fixed.lightfm
            if used and isinstance(final_model, LightFMBlend):
                final_model.lightfm_prefit = started[1]
                final_model.fit(final_ds)
            elif used:
                final_model = started[1].result()
            else:
                final_model.fit(final_ds)
            timings["refit_all_s"] = time.perf_counter() - t0
            say(
                f"refit {candidate_name} on all {final_ds.interactions.nnz} pairs in "
                f"{timings['refit_all_s']:.1f}s after the evaluation"
                + (" (its LightFM trained beside early stopping)" if used else "")
            )
        else:
            all_events = split.split.train_events
            end = split.split.split_at
            final_ds, final_model = ds, cand
    finally:
        for trail in trails:  # a refit early stopping never fed (or that failed) stops here
            trail.cancel()
        refits.shutdown(wait=True)
    items = item_table(final_ds, all_events, end, config.trending_days)
    snapshot = data_snapshot(events, item_features, user_features, split)
    snapshot["final_interactions"] = int(final_ds.interactions.nnz)
    snapshot["final_users"] = int(final_ds.n_users)
    return TrainResult(
        config=config,
        split=split,
        models=models,
        metrics=metrics,
        dod=dod,
        final_model=final_model,
        final_dataset=final_ds,
        item_table=items,
        snapshot=snapshot,
        timings=timings,
        learning_curve=learning_curve,
        best_epoch=best_epoch,
        blend_search=blend_search,
    )


def save_result(
    result: TrainResult,
    models_dir: str | Path,
    report_path: str | Path | None = None,
    now: datetime | None = None,
) -> tuple[str, Path]:
    """Save the final model as a new (unpromoted) version with the evaluation report's data.

    The report data (:func:`recsys.report.report_data`, JSON) is saved in the version directory
    as ``report.json`` and written to ``report_path`` too (if given); the page is rendered from
    it by ``include.reporting.evaluation``. Returns ``(version, version_dir)``.
    """
    import tempfile

    from recsys.registry import atomic_write_text, make_version, save_version, to_json
    from recsys.report import REPORT_DATA, report_data

    cfg = config_to_dict(result.config)
    h = hashlib.sha256(
        (result.snapshot["content_hash"] + repr(sorted(cfg.items()))).encode()
    ).hexdigest()
    version = make_version(h, now)
    dod_dict = result.dod.to_dict()
    if result.publication is not None:
        dod_dict["publication"] = result.publication
    report = report_data(
        result.metrics,
        dod_dict,
        learning_curve=result.learning_curve,
        best_epoch=result.best_epoch,
        blend_search=result.blend_search,
        snapshot=result.snapshot,
        timings=result.timings,
        version=version,
    )
    report_json = to_json(report)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_report = Path(tmp) / REPORT_DATA
        tmp_report.write_text(report_json, encoding="utf-8")
        ds = result.final_dataset
        path = save_version(
            models_dir,
            result.final_model.export(),
            users=ds.users,
            items=result.item_table,
            known_positives=ds.known_positives,
            user_feature_names=ds.user_feature_names,
            item_feature_names=ds.item_feature_names,
            config=cfg,
            metrics={
                "table": result.metrics.to_dict(orient="records"),
                "learning_curve": result.learning_curve,
                "best_epoch": result.best_epoch,
                "blend_search": result.blend_search,
                "timings": result.timings,
            },
            dod=dod_dict,
            snapshot=result.snapshot,
            version=version,
            extra_files={REPORT_DATA: tmp_report},
        )
    if report_path is not None:
        atomic_write_text(Path(report_path), report_json)
    return version, path


def run_training(
    events: pd.DataFrame,
    item_features: pd.DataFrame,
    user_features: pd.DataFrame | None,
    *,
    models_dir: str | Path,
    report_path: str | Path | None = None,
    config: PipelineConfig = DEFAULT_PIPELINE,
    split_at: pd.Timestamp | str | None = None,
    contract: dict | str | Path | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Train, evaluate, gate and save a version; returns a small JSON-able summary for XCom.

    Does not promote: call :func:`recsys.registry.promote` with ``summary["version"]`` (it
    raises :class:`recsys.registry.DefinitionOfDoneError` when ``dod_passed`` is false).
    """
    from recsys.dod import BASELINE, publish_decision
    from recsys.registry import current_version, json_safe

    result = train_evaluate(events, item_features, user_features, config, split_at, contract)
    served = current_version(models_dir)
    decision = publish_decision(result.dod, result.metrics, ever_published=served is not None)
    decision["served_version"] = served
    result.publication = decision
    if decision["kind"] == BASELINE:  # the baseline's lists, refit like a candidate would be
        t0 = time.perf_counter()
        result.final_model = make_model(decision["model"], config).fit(result.final_dataset)
        result.timings["refit_baseline_s"] = time.perf_counter() - t0
        log.warning("publishing baseline %s: %s", decision["model"], decision["reason"])
    version, path = save_result(result, models_dir, report_path, now)
    cand = result.metrics[
        (result.metrics[C.MODEL] == result.dod.candidate)
        & (result.metrics[C.SEGMENT] == C.SEGMENT_ALL)
    ]
    # strict JSON (an XCom): an undefined metric (no evaluated user) is null, not NaN
    summary = {
        "version": version,
        "model_dir": str(path),
        "report_data": str(report_path) if report_path else str(path / "report.json"),
        "dod_passed": result.dod.passed,
        "candidate": result.dod.candidate,
        # candidate | baseline | none, the model published, why, and the version served before
        "kind": decision["kind"],
        "published_model": decision["model"],
        "kind_reason": decision["reason"],
        "served_version": served,
        "contract": None if isinstance(contract, dict) else str(contract or DEFAULT_CONTRACT),
        "failed_clauses": [c.id for c in result.dod.failed],
        "failed_owners": sorted({c.owner for c in result.dod.failed}),
        "candidate_ndcg@10": float(cand["ndcg@10"].iloc[0]) if len(cand) else None,
        "split_at": result.snapshot["split_at"],
        "timings": result.timings,
    }
    return json_safe(summary)
