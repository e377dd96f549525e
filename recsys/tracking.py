"""Experiment tracking with MLflow: training runs, evaluations, research runs, the served history.

Where runs go (:func:`store`):

- ``MLFLOW_TRACKING_URI`` when set (MLflow's own variable: a team's tracking server,
  ``http://mlflow.internal:5000``, or any store URI MLflow understands);
- otherwise a local store under the data directory: ``<data>/mlflow/mlflow.db`` (SQLite, the
  backend MLflow 3 recommends; the file store is legacy) with artifacts in
  ``<data>/mlflow/artifacts/<experiment>/``. ``make mlflow`` serves its UI on loopback.

What a run holds (:func:`log_training`, :func:`log_evaluation`): the configuration as flat
parameters (``lightfm.no_components``...), every model's metrics on every segment
(``<model>/<metric>`` for all items, ``<model>/<segment>/<metric>`` for warm and cold; ``@`` is
written ``_at_`` because MLflow keys do not allow it: ``lightfm_blend/ndcg_at_10``), the
definition of done (``dod/passed`` 1 or 0, ``dod/<clause>/{observed,required,margin,ratio,
ci_low,ci_high}``), the evaluation report and the model files as artifacts, tagged with
``dataset``, ``snapshot``, ``git_commit`` and, for a saved version, ``model_version``.

The model registry (:mod:`recsys.registry`, ``models/current`` and ``promotions.json``) stays
the source of truth of what is served; :func:`sync_registry` mirrors it as versions of the
registered model ``trasos-recommender`` (one per saved version, tag ``registry_version``) whose
alias ``champion`` points at the served one, and writes the promotion / rollback history into
the registered model's description. It reconciles from ``promotions.json`` each time, so a
promotion made while MLflow was down shows up at the next one.

Tracking never fails a training run: when MLflow cannot be reached or refuses a write, a
warning says so (``experiment tracking failed ...; the run continues untracked``) and the
caller gets None. ``TRASOS_MLFLOW=off`` turns tracking off.

MLflow is imported inside the functions (about 4 s of CPU): importing this module is cheap.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("recsys.tracking")

#: the local store's folder under the data directory
STORE_DIR = "mlflow"
DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "artifacts"
URI_ENV = "MLFLOW_TRACKING_URI"
SWITCH_ENV = "TRASOS_MLFLOW"  # "off" disables tracking
#: experiments
TRAINING = "recommender_train"
EVALUATE = "recsys_evaluate"
RESEARCH = "research"
#: the registered model that mirrors recsys.registry, and the alias of the served version
REGISTERED_MODEL = "trasos-recommender"
CHAMPION = "champion"
#: tags
TAG_VERSION = "model_version"  # on runs: the recsys.registry version they saved
TAG_REGISTRY_VERSION = "registry_version"  # on model versions
MAX_PARAM_LENGTH = 6000  # MLflow's limit on a parameter value
BATCH = 100  # params / tags per log_batch call (MLflow's limit per request is 100)
DOD_FIELDS = ("observed", "required", "margin", "ratio", "ci_low", "ci_high")
#: an unreachable server fails fast instead of MLflow's default of 7 retries with backoff
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


@dataclass(frozen=True)
class Store:
    """Where runs are written: the tracking (and registry) URI and, for the local store, the
    folder experiments keep their artifacts in (a server chooses that itself)."""

    uri: str
    artifact_root: Path | None = None


def default_data_dir() -> Path:
    """``$TRASOS_DATA_DIR``, else ``data/`` in the repository: the rule of
    ``include.settings``, repeated here because the DS library does not import the platform."""
    value = os.environ.get("TRASOS_DATA_DIR")
    root = Path(__file__).resolve().parent.parent
    path = Path(value) if value else root / "data"
    return path if path.is_absolute() else root / path


def store(data_dir: str | Path | None = None) -> Store:
    """``MLFLOW_TRACKING_URI`` if set, else the local SQLite store under ``data_dir``."""
    uri = os.environ.get(URI_ENV)
    if uri:
        return Store(uri)
    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    folder = folder.resolve() / STORE_DIR
    return Store(f"sqlite:///{folder / DB_FILE}", folder / ARTIFACTS_DIR)


def enabled() -> bool:
    return os.environ.get(SWITCH_ENV, "on").strip().lower() not in ("off", "0", "false", "no")


def client(st: Store):
    """An ``MlflowClient`` on the store (creates the local folder and database if needed)."""
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    if st.artifact_root is not None:
        st.artifact_root.mkdir(parents=True, exist_ok=True)
    import warnings

    # MLflow 3.17's SQL store uses a loader SQLAlchemy 2.1 deprecates: MLflow's to fix, not ours
    warnings.filterwarnings("ignore", message=r".*``noload`` loader", category=DeprecationWarning)
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=st.uri, registry_uri=st.uri)


@contextmanager
def never_fails(what: str, st: Store) -> Iterator[list]:
    """Run the block; on any error log one clear warning instead of raising.

    Yields a one-element list the block may fill with its result (None on failure)."""
    out: list = [None]
    try:
        yield out
    except Exception as exc:  # tracking must never fail the run that is being tracked
        out[0] = None
        log.warning(
            "experiment tracking failed (%s at %s): %s: %s; the run continues untracked. "
            "Check %s (or unset it for the local store), or set %s=off.",
            what,
            st.uri,
            type(exc).__name__,
            exc,
            URI_ENV,
            SWITCH_ENV,
        )


def experiment_id(mlflow_client, name: str, st: Store) -> str:
    """The experiment's id, created on first use (artifacts under the local store's root)."""
    from mlflow.exceptions import MlflowException

    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = (st.artifact_root / name).as_uri() if st.artifact_root is not None else None
    try:
        return mlflow_client.create_experiment(name, artifact_location=location)
    except MlflowException:  # created meanwhile by another process
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


# --- what a run holds ------------------------------------------------------------------------
def metric_key(*parts: str) -> str:
    """MLflow-safe key: ``@`` -> ``_at_``, other characters MLflow refuses -> ``_``."""
    import re

    key = "/".join(str(p) for p in parts if p not in (None, "")).replace("@", "_at_")
    return re.sub(r"[^A-Za-z0-9_\-./ :]", "_", key)


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool | str):
        return float(value) if isinstance(value, bool) else None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) or math.isinf(value) else value


def table_metrics(rows: list[Mapping[str, Any]] | Any, all_segment: str = "all") -> dict:
    """Every numeric cell of the evaluation table (records or a DataFrame) as a metric:
    ``<model>/<metric>`` for the ``all`` segment, ``<model>/<segment>/<metric>`` otherwise."""
    if hasattr(rows, "to_dict"):
        rows = rows.to_dict(orient="records")
    out = {}
    for row in rows:
        model, segment = row.get("model"), row.get("segment", all_segment)
        for name, value in row.items():
            number = _number(value)
            if name in ("model", "segment") or number is None:
                continue
            seg = None if segment == all_segment else segment
            out[metric_key(model, seg, name)] = number
    return out


def dod_metrics(dod: Mapping[str, Any]) -> dict[str, float]:
    """``dod/passed`` (1 or 0) and each clause's observed / required / margin and, for the
    comparative clauses, ratio with its 95 % interval (``ci_low``, ``ci_high``)."""
    out = {"dod/passed": 1.0 if dod.get("passed") else 0.0}
    for clause in dod.get("clauses", []):
        for name in DOD_FIELDS:
            number = _number(clause.get(name))
            if number is not None:
                out[metric_key("dod", clause["id"], name)] = number
        out[metric_key("dod", clause["id"], "pass")] = (
            0.0 if clause.get("status") == "fail" else 1.0
        )
    return out


def flat_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested configuration as ``a.b.c`` -> text (values cut at MLflow's limit)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flat_params(value, name + "."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            out[metric_key(name)] = text[:MAX_PARAM_LENGTH]
    return out


def git_commit(repo: Path | None = None) -> str:
    """``HEAD`` of the repository this code runs from, ``+dirty`` with uncommitted changes;
    ``unknown`` outside a git checkout."""
    repo = repo or Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        head = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


@dataclass
class RunRecord:
    """One run to write: ``artifacts`` maps a folder in the run's artifacts (``""`` for the
    top) to the files or folders copied there."""

    experiment: str
    name: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: list[tuple[str, Path]] = field(default_factory=list)


def write_run(record: RunRecord, st: Store) -> str:
    """Create the run, write everything, finish it; returns the run id (raises on failure:
    callers wrap it in :func:`never_fails`)."""
    from mlflow.entities import Metric, Param, RunTag

    c = client(st)
    exp = experiment_id(c, record.experiment, st)
    tags = {"git_commit": git_commit(), **record.tags, "mlflow.runName": record.name}
    run = c.create_run(exp, run_name=record.name)
    run_id = run.info.run_id
    try:
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in sorted(record.metrics.items())]
        params = [Param(k, v) for k, v in sorted(record.params.items())]
        run_tags = [RunTag(k, str(v)) for k, v in sorted(tags.items()) if v is not None]
        for i in range(0, max(len(metrics), len(params), len(run_tags)), BATCH):
            c.log_batch(
                run_id,
                metrics=metrics[i : i + BATCH],
                params=params[i : i + BATCH],
                tags=run_tags[i : i + BATCH],
            )
        for folder, path in record.artifacts:
            path = Path(path)
            if path.is_dir():
                c.log_artifacts(run_id, str(path), folder or None)
            elif path.exists():
                c.log_artifact(run_id, str(path), folder or None)
    except BaseException:
        c.set_terminated(run_id, status="FAILED")
        raise
    c.set_terminated(run_id)
    return run_id


def log_run(record: RunRecord, data_dir: str | Path | None = None) -> str | None:
    """:func:`write_run` that never raises; None when tracking is off or failed."""
    if not enabled():
        return None
    st = store(data_dir)
    with never_fails(f"logging run {record.name!r} to experiment {record.experiment!r}", st) as out:
        out[0] = write_run(record, st)
        log.info("tracked run %s in experiment %s (%s)", out[0], record.experiment, st.uri)
    return out[0]


# --- training (a saved version) ----------------------------------------------------------------
def _read(folder: Path, name: str) -> Any:
    path = folder / name
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def training_record(
    version_dir: str | Path,
    *,
    dataset: str,
    snapshot_id: str,
    report_page: str | Path | None = None,
    experiment: str = TRAINING,
) -> RunRecord:
    """What a saved version (``models/<version>/``) tells MLflow: its config, its metrics
    table, its definition of done, the report (data and page) and the version's files."""
    folder = Path(version_dir)
    manifest = _read(folder, "manifest.json")
    metrics_json = _read(folder, "metrics.json")
    dod = _read(folder, "dod.json")
    snapshot = _read(folder, "snapshot.json")
    metrics = {**table_metrics(metrics_json.get("table", [])), **dod_metrics(dod)}
    for name, value in (metrics_json.get("timings") or {}).items():
        if _number(value) is not None:
            metrics[metric_key("timings", name)] = float(value)
    params = flat_params(_read(folder, "config.json"))
    for key in ("kind", "blend_weight", "self_weight", "n_users", "n_items"):
        if manifest.get(key) is not None:
            params[f"model.{key}"] = str(manifest[key])
    publication = dod.get("publication") or {}
    tags = {
        "dataset": dataset,
        "snapshot": snapshot_id,
        "snapshot_hash": str(snapshot.get("content_hash", ""))[:16],
        TAG_VERSION: folder.name,
        "candidate": dod.get("candidate", ""),
        "dod": "passed" if dod.get("passed") else "failed",
        "published_kind": publication.get("kind", ""),
        "published_model": publication.get("model", ""),
    }
    artifacts: list[tuple[str, Path]] = [("model", folder), ("report", folder / "report.json")]
    if report_page is not None:
        artifacts.append(("report", Path(report_page)))
    return RunRecord(experiment, folder.name, params, metrics, tags, artifacts)


def log_training(
    version_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    dataset: str,
    snapshot_id: str,
    report_page: str | Path | None = None,
) -> str | None:
    """Log a saved version's training run and register it as a model version (not champion:
    :func:`sync_registry` moves the alias when the registry promotes). None when untracked."""
    if not enabled():
        return None
    folder = Path(version_dir)
    st = store(data_dir)
    with never_fails(f"logging the training of {folder.name}", st) as out:
        record = training_record(
            folder, dataset=dataset, snapshot_id=snapshot_id, report_page=report_page
        )
        out[0] = write_run(record, st)
        log.info("tracked run %s in experiment %s (%s)", out[0], record.experiment, st.uri)
    if out[0] is not None:
        with never_fails(f"registering {folder.name}", st):
            _model_version(client(st), folder.name, run_id=out[0], source_dir=folder)
    return out[0]


# --- the registry mirror ------------------------------------------------------------------------
def _registered_model(c) -> None:
    from mlflow.exceptions import MlflowException

    try:
        c.get_registered_model(REGISTERED_MODEL)
    except MlflowException:
        try:
            c.create_registered_model(
                REGISTERED_MODEL,
                description="Mirror of recsys.registry: alias `champion` = the served version.",
            )
        except MlflowException:  # created meanwhile
            c.get_registered_model(REGISTERED_MODEL)


def model_versions(c) -> dict[str, Any]:
    """registry version -> MLflow ``ModelVersion`` of :data:`REGISTERED_MODEL`."""
    out = {}
    token = None
    while True:
        page = c.search_model_versions(
            f"name='{REGISTERED_MODEL}'", max_results=1000, page_token=token
        )
        for mv in page:
            key = (mv.tags or {}).get(TAG_REGISTRY_VERSION)
            if key:
                out[key] = mv
        token = page.token
        if not token:
            return out


def _model_version(c, version: str, *, run_id: str | None, source_dir: Path):
    """The model version mirroring ``version``, created when missing: from its training run's
    ``model`` artifacts when it has one, else from the version folder itself."""
    _registered_model(c)
    existing = model_versions(c).get(version)
    if existing is not None:
        return existing
    if run_id is None:  # trained before tracking, or while MLflow was down: find its run
        exp = c.get_experiment_by_name(TRAINING)
        runs = (
            c.search_runs([exp.experiment_id], f"tags.{TAG_VERSION} = '{version}'", max_results=1)
            if exp is not None
            else []
        )
        run_id = runs[0].info.run_id if runs else None
    source = f"{c.get_run(run_id).info.artifact_uri}/model" if run_id else Path(source_dir).as_uri()
    dod = _read(Path(source_dir), "dod.json")
    return c.create_model_version(
        REGISTERED_MODEL,
        source,
        run_id=run_id,
        tags={TAG_REGISTRY_VERSION: version, "dod": "passed" if dod.get("passed") else "failed"},
        description=f"recsys.registry version {version}",
    )


def history_markdown(history: list[dict], current: str | None, limit: int = 50) -> str:
    """The promotion / rollback history, newest first, as the registered model's description."""
    lines = [
        "Mirror of `recsys.registry` (`models/promotions.json`). Alias `champion` = the "
        f"served version: **{current or 'none'}**.",
        "",
        "| at (UTC) | action | version | previous |",
        "|---|---|---|---|",
    ]
    for entry in list(reversed(history))[:limit]:
        previous = entry.get("from") or entry.get("previous") or ""
        lines.append(
            f"| {entry.get('at', '')[:19]} | {entry['action']} | {entry['version']} | {previous} |"
        )
    return "\n".join(lines)


def sync_registry(models_dir: str | Path, data_dir: str | Path | None = None) -> str | None:
    """Mirror ``models/promotions.json`` into MLflow: a model version for every version ever
    promoted, alias ``champion`` on ``models/current``, tags ``last_<action>_at``, and the
    history in the registered model's description. Returns the champion's MLflow version
    number (None when there is nothing to mirror, tracking is off or it failed)."""
    from recsys.registry import PROMOTIONS, current_version

    models_dir = Path(models_dir)
    current = current_version(models_dir)
    if not enabled() or current is None:
        return None
    path = models_dir / PROMOTIONS
    history = json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
    st = store(data_dir)
    with never_fails(f"mirroring the registry (champion {current})", st) as out:
        c = client(st)
        versions = list(dict.fromkeys([e["version"] for e in history] + [current]))
        mirrored = {
            v: _model_version(c, v, run_id=None, source_dir=models_dir / v)
            for v in versions
            if (models_dir / v).exists()
        }
        for entry in history:
            mv = mirrored.get(entry["version"])
            if mv is not None:
                c.set_model_version_tag(
                    REGISTERED_MODEL, mv.version, f"last_{entry['action']}_at", entry.get("at", "")
                )
        champion = mirrored[current]
        c.set_registered_model_alias(REGISTERED_MODEL, CHAMPION, champion.version)
        c.update_registered_model(REGISTERED_MODEL, history_markdown(history, current))
        out[0] = str(champion.version)
        log.info(
            "MLflow alias %s -> %s version %s (%s)", CHAMPION, REGISTERED_MODEL, out[0], current
        )
    return out[0]


def champion(data_dir: str | Path | None = None) -> dict[str, str] | None:
    """``{"mlflow_version", "registry_version", "run_id"}`` of the alias, None if unset."""
    from mlflow.exceptions import MlflowException

    c = client(store(data_dir))
    try:
        mv = c.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION)
    except MlflowException:
        return None
    return {
        "mlflow_version": str(mv.version),
        "registry_version": (mv.tags or {}).get(TAG_REGISTRY_VERSION, ""),
        "run_id": mv.run_id or "",
    }


# --- evaluations and research runs --------------------------------------------------------------
def log_evaluation(
    *,
    experiment: str,
    name: str,
    config: Mapping[str, Any],
    table: Any,
    dod: Mapping[str, Any] | None,
    tags: Mapping[str, str],
    report_text: str | None = None,
    summary: Mapping[str, Any] | None = None,
    model: Any = None,
    data_dir: str | Path | None = None,
    extra_params: Mapping[str, Any] | None = None,
) -> str | None:
    """Log an in-memory evaluation (``python -m recsys evaluate``, a notebook): parameters,
    the table's metrics, the definition of done, the report (``report.txt``, ``metrics.csv``,
    ``dod.json``, ``summary.json``) and the candidate's arrays (``model/*.npy``, from
    ``model.export()``) as artifacts. None when untracked."""
    if not enabled():
        return None
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="trasos-track-") as tmp:
        folder = Path(tmp)
        artifacts: list[tuple[str, Path]] = []
        report = folder / "report"
        report.mkdir()
        if hasattr(table, "to_csv"):
            table.to_csv(report / "metrics.csv", index=False)
        if dod is not None:
            (report / "dod.json").write_text(json.dumps(dod, indent=2, default=str))
        if report_text is not None:
            (report / "report.txt").write_text(report_text)
        if summary is not None:
            (report / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        artifacts.append(("report", report))
        if model is not None:
            try:
                exported = model.export()
                arrays = {
                    "user_embeddings": exported.user_embeddings,
                    "user_biases": exported.user_biases,
                    "item_embeddings": exported.item_embeddings,
                    "item_biases": exported.item_biases,
                    **(exported.extra or {}),
                }
                out = folder / "model"
                out.mkdir()
                for key, arr in arrays.items():
                    if arr is not None:
                        np.save(out / f"{key}.npy", np.asarray(arr, dtype=np.float32))
                (out / "params.json").write_text(
                    json.dumps({"kind": exported.kind, **(exported.params or {})}, default=str)
                )
                artifacts.append(("model", out))
            except Exception as exc:  # a model without export(): the run is still logged
                log.warning("model files not logged (%s: %s)", type(exc).__name__, exc)
        params = flat_params(config)
        params.update({metric_key(k): str(v) for k, v in (extra_params or {}).items()})
        record = RunRecord(
            experiment,
            name,
            params=params,
            metrics={**table_metrics(table), **(dod_metrics(dod) if dod is not None else {})},
            tags=dict(tags),
            artifacts=artifacts,
        )
        if dod is not None:
            record.tags.setdefault("candidate", str(dod.get("candidate", "")))
            record.tags["dod"] = "passed" if dod.get("passed") else "failed"
        return log_run(record, data_dir)


def file_digest(path: str | Path, length: int = 16) -> str:
    """The first ``length`` hex digits of the file's sha256: the snapshot id of an input file."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


def log_cli_evaluation(
    args: Any, config: Any, fitted: Any, summary: Mapping[str, Any], text: str | None = None
) -> str | None:
    """``python -m recsys evaluate``'s run in the experiment ``recsys_evaluate``: ``fitted`` is
    :class:`recsys.pipeline.Fitted` (interactions protocols) or the session protocol's
    evaluation (``table()``, no definition of done); ``dataset`` = the file's name,
    ``snapshot`` = its sha256 prefix."""
    if not enabled():
        return None
    path = Path(args.path)
    extra = {k: v for k, v in vars(args).items() if k not in ("command", "path") and v is not None}
    extra["path"] = str(path.resolve())
    tags = {"dataset": path.name, "protocol": args.protocol}
    try:
        tags["snapshot"] = file_digest(path)
    except OSError:
        tags["snapshot"] = "unreadable"
    if hasattr(fitted, "dod"):  # leave-last-out / time: recsys.pipeline.Fitted
        from recsys.config import config_to_dict

        dod = fitted.dod.to_dict()
        table = fitted.metrics
        model = fitted.models.get(summary.get("candidate") or dod["candidate"])
        cfg = config_to_dict(config)
        text = text or (table.to_string(index=False) + "\n\n" + fitted.dod.summary())
    else:  # session-last-item
        dod, table, model, cfg = None, fitted.table(), None, {}
        text = text or table.to_string(index=False)
    return log_evaluation(
        experiment=EVALUATE,
        name=f"{path.name} {args.protocol}",
        config=cfg,
        table=table,
        dod=dod,
        tags=tags,
        report_text=text,
        summary=summary,
        model=model,
        extra_params=extra,
    )


def ui_command(data_dir: str | Path | None = None, port: int = 5000) -> list[str]:
    """``mlflow server`` on the local store, on loopback only (what ``make mlflow`` runs)."""
    import sys

    st = store(data_dir)
    if st.artifact_root is None:
        raise ValueError(
            f"{URI_ENV}={st.uri}: runs go to that server; open its UI instead of `make mlflow`"
        )
    st.artifact_root.mkdir(parents=True, exist_ok=True)
    return [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--backend-store-uri",
        st.uri,
        "--default-artifact-root",
        st.artifact_root.as_uri(),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]


#: the server's environment: no GenAI job runner (not used here, slow to start)
UI_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m recsys.tracking", description="The MLflow UI on the local store."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    ui = sub.add_parser("ui", help="serve the MLflow UI on 127.0.0.1 (Ctrl-C stops)")
    ui.add_argument("--port", type=int, default=int(os.environ.get("TRASOS_MLFLOW_PORT", 5000)))
    args = parser.parse_args(argv)
    try:
        command = ui_command(port=args.port)
    except ValueError as exc:
        print(exc)
        return 2
    print(f"MLflow UI on http://127.0.0.1:{args.port} (store {store().uri}); Ctrl-C stops")
    return subprocess.call(command, env={**os.environ, **UI_ENV})


if __name__ == "__main__":
    raise SystemExit(main())
