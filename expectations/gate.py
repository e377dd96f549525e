"""The gate runner: validate one pandas DataFrame against one suite, report, and stop on
critical failures.

Flow of :func:`run_gate` (GX 1.x has no DuckDB datasource: callers read DuckDB/Parquet into
pandas first)::

    prepare (derived dq_* columns) -> pandas datasource -> dataframe asset
      -> whole-dataframe batch definition -> validation definition -> checkpoint
      (batch_parameters={"dataframe": df}) -> result names its data asset
      -> Data Docs pages of the result and the suite -> offline Data Docs + overview page -> GateResult, or GateFailed on critical failures

The GX file context is configured by ``expectations/gx/great_expectations.yml`` (in the repo)
and opened in ``<data_dir>/gx/``, a derived copy refreshed on every run: validation results
live under the data directory and the Data Docs site under ``<reports_dir>/data_docs/``.
Runs are serialised with a file lock (a gate takes a few seconds on 1M rows), so parallel
tasks never interleave writes to the stores or the site.

The caller routes a :class:`GateFailed` to the role that owns the asset, e.g. in a task body::

    try:
        run_gate("raw_events", df, n_quarantined=n_bad, run_name=run_id)
    except GateFailed as exc:
        notify(exc.owner_role, subject=f"GX gate {exc.suite} failed", error=str(exc),
               dag_id=dag_id, task_id=task_id, run_id=run_id, link=exc.docs_url,
               details=exc.details)
        raise

(``include.roles.on_failure`` already reads ``exc.docs_url`` and ``exc.details``.)
"""

from __future__ import annotations

import logging
import math
import re
import shutil
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from common.errors import DeterministicFailure
from common.locks import exclusive_lock
from expectations.overview import OVERVIEW_HTML, format_observed
from expectations.suites import CRITICAL, WARNING, get_spec, import_gx
from include.settings import Settings, get_settings

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger(__name__)

GX_CONFIG_TEMPLATE = Path(__file__).resolve().parent / "gx" / "great_expectations.yml"
DATASOURCE_NAME = "trasos_pandas"
BATCH_DEFINITION_NAME = "whole_dataframe"
SITE_NAME = "local_site"
DEFAULT_KEEP_RUNS = 30  # validation results (and their pages) kept per suite
MAX_EXAMPLES = 5  # unexpected values quoted per failed expectation
GATE_LOCK_TIMEOUT_S = 900.0  # a gate waits this long for another gate writing the GX context


# --- results -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class GateResult:
    """Outcome of one gate run.

    ``critical_failures`` and ``warnings`` hold one dict per failed expectation:
    ``expectation`` (GX type), ``column`` (or None), ``severity``, ``description`` (or None),
    ``observed_value`` (the figure GX observed, or "n of m rows unexpected (p%), e.g. [...]"),
    ``unexpected_count``, ``unexpected_percent`` and ``examples`` (for row-level rules).
    """

    suite: str
    asset: str
    owner_role: str
    success: bool
    n_expectations: int
    n_rows: int
    critical_failures: tuple[dict[str, Any], ...]
    warnings: tuple[dict[str, Any], ...]
    docs_path: Path | None
    docs_url: str | None
    overview_path: Path
    validated_at: str
    run_name: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """A small JSON-able dict (for XCom and the overview page)."""
        return {
            "suite": self.suite,
            "asset": self.asset,
            "owner_role": self.owner_role,
            "success": self.success,
            "n_expectations": self.n_expectations,
            "n_critical_failures": len(self.critical_failures),
            "n_warnings": len(self.warnings),
            "n_rows": self.n_rows,
            "validated_at": self.validated_at,
            "run_name": self.run_name,
            "docs_path": str(self.docs_path) if self.docs_path else None,
            "docs_url": self.docs_url,
            "overview_path": str(self.overview_path),
            "critical_failures": list(self.critical_failures),
            "warnings": list(self.warnings),
            "params": self.params,
        }


def _describe(failure: dict[str, Any]) -> str:
    column = f"({failure['column']})" if failure.get("column") else ""
    text = f"{failure['expectation']}{column}"
    if failure.get("description"):
        text += f" [{failure['description']}]"
    return f"{text}: observed {format_observed(failure['observed_value'])}"


def failed_headline(suite: str) -> str:
    """The first words of a failed gate's message (logs, notifications; ``make run`` looks
    for them in a DAG's log)."""
    return f"GX gate '{suite}' failed"


class GateFailed(DeterministicFailure):
    """Critical expectations failed. Carries what a notifier needs to route and link it.

    Attributes
    ----------
    suite, owner_role, docs_url
        The suite, the role that owns the asset ("DE" or "DS"), the Data Docs page (file URL).
    failures
        The critical failures, dicts with ``expectation``, ``column``, ``observed_value`` (+ more,
        see :class:`GateResult`).
    result
        The full :class:`GateResult` (warnings included).
    """

    def __init__(self, result: GateResult) -> None:
        self.result = result
        self.suite = result.suite
        self.owner_role = result.owner_role
        self.failures = [dict(f) for f in result.critical_failures]
        self.docs_url = result.docs_url
        lines = [
            f"{failed_headline(result.suite)}: {len(self.failures)} critical expectation(s) "
            f"failed on {result.n_rows:,} rows of {result.asset} (owner: {result.owner_role}).",
            *(f"  - {_describe(f)}" for f in self.failures),
        ]
        if result.warnings:
            lines.append(f"  ({len(result.warnings)} warning(s) as well, see the report)")
        lines += [
            f"Data Docs: {result.docs_url}",
            f"Overview: {result.overview_path.as_uri()}",
            "Fix the upstream data, or if the rule is wrong change its threshold in "
            "expectations/suites.py, then re-run the task.",
        ]
        super().__init__("\n".join(lines))

    @property
    def details(self) -> dict[str, Any]:
        """JSON-able details for notifiers (``include.roles.on_failure`` records them)."""
        summary = self.result.summary()
        keep = ("suite", "owner_role", "docs_url", "overview_path", "n_rows", "run_name")
        return {**{k: summary[k] for k in keep}, "failures": self.failures}

    def __reduce__(self):  # keeps the exception picklable (custom __init__ signature)
        return (type(self), (self.result,))


# --- GX context --------------------------------------------------------------------------------
def gx_root(settings: Settings | None = None) -> Path:
    """The derived GX project folder under the data directory."""
    return (settings or get_settings()).data_dir / "gx"


def data_docs_dir(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).reports_dir / "data_docs"


def open_context(settings: Settings | None = None):
    """Refresh ``<data_dir>/gx/great_expectations.yml`` from the repo and open the file context."""
    settings = settings or get_settings()
    gx = import_gx()
    root = gx_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(GX_CONFIG_TEMPLATE, root / "great_expectations.yml")
    docs = data_docs_dir(settings)
    docs.mkdir(parents=True, exist_ok=True)
    return gx.get_context(
        mode="file",
        context_root_dir=str(root),
        runtime_environment={"trasos_data_docs_dir": f"{docs}/"},
    )


def _locked(root: Path) -> AbstractContextManager[None]:
    """One gate writer of the GX file context at a time (bounded wait, names the holder)."""
    return exclusive_lock(
        root / ".gate.lock", timeout_s=GATE_LOCK_TIMEOUT_S, what="another gate run"
    )


def _prune_runs(suite: str, keep: int, validations_dir: Path, docs_dir: Path) -> None:
    """Keep the newest ``keep`` runs of ``suite`` (results and pages) so the site stays small."""
    runs = sorted(
        (p for p in (validations_dir / suite).glob("*/*") if p.is_dir()),
        key=lambda p: p.name,  # run_time, e.g. 20240101T000000.000000Z: sorts by time
    )
    for old in runs[: max(len(runs) - keep, 0)]:
        run_name_dir = old.parent.name
        for base in (validations_dir, docs_dir / "validations"):
            target = base / suite / run_name_dir / old.name
            shutil.rmtree(target, ignore_errors=True)
            try:
                target.parent.rmdir()  # the run_name folder, once empty
            except OSError:
                pass


_RUN_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def name_data_asset(validation_result) -> bool:
    """Write the data asset's name where GX's validation page reads it; True if it changed.

    A dataframe asset's batch spec holds only the frame, and the page header takes
    ``meta.batch_spec.data_asset_name`` (the site index falls back to the batch definition's
    name, the page does not): without this every page says "Data asset: None".
    """
    meta = validation_result.meta
    batch_spec = meta.get("batch_spec")
    name = validation_result.asset_name or (meta.get("active_batch_definition") or {}).get(
        "data_asset_name"
    )
    if not isinstance(batch_spec, dict) or not name or batch_spec.get("data_asset_name"):
        return False
    batch_spec["data_asset_name"] = name
    return True


def _suite_identifier(name: str):
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    return ExpectationSuiteIdentifier(name=name)


def rebuild_data_docs() -> list[str]:
    """Rebuild the whole Data Docs site from the stored validation results and make it
    offline-ready (e.g. after a GX upgrade or a deleted reports dir). Returns the external
    loads left (empty when all is well)."""
    from expectations.docs import localize_site

    settings = get_settings()
    with _locked(gx_root(settings)):
        context = open_context(settings)
        store = context.validation_results_store
        for key in store.list_keys():  # results stored before their asset was named
            result = store.get(key)
            if name_data_asset(result):
                store.set(key, result)
        context.build_data_docs(site_names=[SITE_NAME])
        return localize_site(data_docs_dir(settings))


# --- result parsing ----------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    """Make a GX observed value JSON-able and short."""
    if type(value).__module__ == "numpy" and hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    if hasattr(value, "isoformat"):  # pandas Timestamp
        return value.isoformat()
    return str(value)


def _exception_message(info: Any) -> str | None:
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "exception")
    for nested in info.values():  # {metric_id: {raised_exception, exception_message, ...}}
        message = _exception_message(nested)
        if message:
            return message
    return None


def _domain_column(expectation_type: str, kwargs: dict[str, Any]) -> str | list[str] | None:
    """The column(s) an expectation is about; None for table-level ones."""
    if expectation_type.startswith("expect_table_"):
        return None
    return kwargs.get("column") or kwargs.get("column_list") or kwargs.get("column_A")


def _failure(er) -> dict[str, Any]:
    config = er.expectation_config
    kwargs = config.kwargs or {}
    result = er.result or {}
    severity = getattr(config, "severity", None) or (config.meta or {}).get("severity", CRITICAL)
    severity = getattr(severity, "value", severity)
    failure: dict[str, Any] = {
        "expectation": config.type,
        "column": _domain_column(config.type, kwargs),
        "severity": str(severity),
        "description": getattr(config, "description", None),
        "unexpected_count": None,
        "unexpected_percent": None,
        "examples": [],
    }
    error = _exception_message(er.exception_info)
    details = (result.get("details") or {}).get("mismatched") if isinstance(result, dict) else None
    if error:
        observed: Any = f"error: {error}"
    elif details:
        observed = _jsonable(details)
    elif "observed_value" in result:
        observed = _jsonable(result["observed_value"])
        if observed is None:
            observed = "no value (no non-null rows)"
    elif "unexpected_count" in result:
        count, total = result.get("unexpected_count") or 0, result.get("element_count") or 0
        pct = result.get("unexpected_percent") or 0.0
        examples = _jsonable(list(result.get("partial_unexpected_list") or [])[:MAX_EXAMPLES])
        failure.update(unexpected_count=count, unexpected_percent=pct, examples=examples)
        observed = f"{count:,} of {total:,} rows unexpected ({pct:.3g}%), e.g. {examples}"
    else:
        observed = _jsonable(result) or None
    failure["observed_value"] = observed
    return failure


def _docs_path(context, identifier) -> tuple[Path | None, str | None]:
    try:
        urls = context.get_docs_sites_urls(resource_identifier=identifier, site_names=[SITE_NAME])
    except Exception:  # a missing page must not hide the validation outcome
        log.exception("could not resolve the Data Docs page of %s", identifier)
        return None, None
    url = next((u.get("site_url") for u in urls if u.get("site_url")), None)
    if not url:
        return None, None
    parsed = urlparse(url)
    return (Path(unquote(parsed.path)) if parsed.scheme == "file" else None), url


def _split_failures(validation_result) -> tuple[tuple[dict, ...], tuple[dict, ...]]:
    failures = [_failure(er) for er in validation_result.results if not er.success]
    critical = tuple(f for f in failures if f["severity"] != WARNING)
    return critical, tuple(f for f in failures if f["severity"] == WARNING)


def _prepare(suite_name: str, df: pd.DataFrame, params: Any, inputs: dict[str, Any]):
    spec = get_spec(suite_name)
    params = params if params is not None else spec.params_type()
    if not isinstance(params, spec.params_type):
        raise TypeError(
            f"params for suite {suite_name!r} must be {spec.params_type.__name__}, "
            f"got {type(params).__name__}"
        )
    try:
        frame = spec.prepare(df, params, **inputs)
    except TypeError as exc:
        raise TypeError(
            f"suite {suite_name!r} needs other inputs than {sorted(inputs)}: {exc}. "
            f"See expectations.suites.{spec.prepare.__name__}."
        ) from exc
    return spec, params, frame


def _result_format(spec, frame) -> dict[str, Any]:
    result_format: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": 20}
    if spec.id_column and spec.id_column in frame.columns:
        result_format["unexpected_index_column_names"] = [spec.id_column]
    return result_format


def _skip_batch_fingerprint() -> None:
    from great_expectations.execution_engine import pandas_execution_engine

    # GX fingerprints in-memory batches below HASH_THRESHOLD bytes (an md5 over every value,
    # only stored as a batch marker): 1-4 s per 1M rows for nothing the gates use.
    pandas_execution_engine.HASH_THRESHOLD = 0


_EPHEMERAL: dict[str, Any] = {}


def evaluate(
    suite_name: str, df: pd.DataFrame, *, params: Any | None = None, **inputs: Any
) -> tuple[tuple[dict[str, Any], ...], tuple[dict[str, Any], ...]]:
    """Validate like :func:`run_gate` but store nothing, build no Data Docs and never raise.

    For tests, notebooks and trying out thresholds. Returns ``(critical_failures, warnings)``,
    dicts as in :class:`GateResult`.
    """
    spec, params, frame = _prepare(suite_name, df, params, inputs)
    suite = spec.build(params)
    import_gx()
    _skip_batch_fingerprint()
    if "asset" not in _EPHEMERAL:
        import great_expectations as gx

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = {"globally": False, "metric_calculations": False}
        _EPHEMERAL["asset"] = context.data_sources.add_pandas(
            "trasos_evaluate"
        ).add_dataframe_asset("frame")
        _EPHEMERAL["batch_definition"] = _EPHEMERAL["asset"].add_batch_definition_whole_dataframe(
            BATCH_DEFINITION_NAME
        )
    batch = _EPHEMERAL["batch_definition"].get_batch(batch_parameters={"dataframe": frame})
    # BASIC (observed values and up to 20 unexpected values) is a third cheaper than SUMMARY
    result_format = {"result_format": "BASIC", "partial_unexpected_count": 20}
    return _split_failures(batch.validate(suite, result_format=result_format))


# --- the gate ----------------------------------------------------------------------------------
def run_gate(
    suite_name: str,
    df: pd.DataFrame,
    *,
    params: Any | None = None,
    owner_role: str | None = None,
    run_name: str | None = None,
    raise_on_failure: bool = True,
    keep_runs: int = DEFAULT_KEEP_RUNS,
    **inputs: Any,
) -> GateResult:
    """Validate ``df`` against suite ``suite_name``; rebuild the report; raise on critical failures.

    Parameters
    ----------
    suite_name
        ``raw_events``, ``sessions``, ``training_set``, ``recommendations`` or ``sample``
        (see :data:`expectations.suites.SUITES`).
    df
        The batch, one row per record of the asset (e.g. shape (n_events, 23) for raw events).
    params
        The suite's params dataclass (``RawEventsParams``, ...); defaults to its defaults.
    owner_role
        Role notified on failure; defaults to the asset's owner ("DE" or "DS").
    run_name
        Shown in the Data Docs and the overview, e.g. the Airflow ``run_id``.
    raise_on_failure
        Raise :class:`GateFailed` when a critical expectation fails (after the report is
        rebuilt). Warnings never raise; they are logged.
    keep_runs
        Validation results (and pages) kept per suite.
    **inputs
        Batch figures the suite needs besides ``df``:
        raw_events: ``n_quarantined`` (int, default 0), ``n_loaded`` (default ``len(df)``);
        recommendations: ``purchases`` (DataFrame [user_id, item_id]), ``catalog_size`` (int);
        sample: ``raw_ids`` (set of str), ``n_units`` and ``n_population`` (ints).

    Returns
    -------
    GateResult
    """
    spec, params, frame = _prepare(suite_name, df, params, inputs)
    suite = spec.build(params)
    settings = get_settings()
    root = gx_root(settings)
    docs = data_docs_dir(settings)
    validated_at = datetime.now(UTC)
    safe_run_name = _RUN_NAME_UNSAFE.sub("_", run_name) if run_name else None

    with _locked(root):
        gx = import_gx()
        from great_expectations.core.run_identifier import RunIdentifier

        _skip_batch_fingerprint()

        context = open_context(settings)
        asset = context.data_sources.add_or_update_pandas(DATASOURCE_NAME).add_dataframe_asset(
            spec.name
        )
        batch_definition = asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION_NAME)
        suite = context.suites.add_or_update(suite)
        validation = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=spec.name, data=batch_definition, suite=suite)
        )
        # no UpdateDataDocsAction: the pages are built below, once the result names its asset
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=spec.name,
                validation_definitions=[validation],
                actions=[],
                result_format=_result_format(spec, frame),
            )
        )
        _prune_runs(spec.name, max(keep_runs - 1, 0), root / "uncommitted" / "validations", docs)
        checkpoint_result = checkpoint.run(
            batch_parameters={"dataframe": frame},
            run_id=RunIdentifier(run_name=safe_run_name, run_time=validated_at),
        )
        identifier, validation_result = next(iter(checkpoint_result.run_results.items()))
        if name_data_asset(validation_result):
            context.validation_results_store.set(identifier, validation_result)
        context.build_data_docs(
            site_names=[SITE_NAME],
            resource_identifiers=[identifier, _suite_identifier(suite.name)],
        )
        docs_path, docs_url = _docs_path(context, identifier)
        from expectations.docs import localize_site
        from expectations.overview import record_result

        localize_site(docs)

        critical, warned = _split_failures(validation_result)
        result = GateResult(
            suite=spec.name,
            asset=spec.description,
            owner_role=owner_role or spec.owner_role,
            success=not critical,
            n_expectations=len(validation_result.results),
            n_rows=len(df),
            critical_failures=critical,
            warnings=warned,
            docs_path=docs_path,
            docs_url=docs_url,
            overview_path=settings.reports_dir / OVERVIEW_HTML,
            validated_at=validated_at.strftime("%Y-%m-%d %H:%M:%S"),
            run_name=run_name,
            params=_jsonable(asdict(params)),
        )
        record_result(settings.reports_dir, result.summary())

    for warning in warned:
        log.warning("GX gate %s warning: %s", spec.name, _describe(warning))
    log.info(
        "GX gate %s: %s (%d expectations, %d critical failures, %d warnings) on %d rows; %s",
        spec.name,
        "passed" if result.success else "FAILED",
        result.n_expectations,
        len(critical),
        len(warned),
        result.n_rows,
        docs_url,
    )
    if critical and raise_on_failure:
        raise GateFailed(result)
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m expectations.gate build``: rebuild the Data Docs site from stored results
    (offline-ready). It lived in ``expectations.docs``, which the gate imports."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m expectations.gate")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="rebuild the Data Docs site from stored results (offline-ready)")
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    left = rebuild_data_docs()
    print(f"{get_settings().reports_dir / 'data_docs'}: {len(left)} external loads left")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
