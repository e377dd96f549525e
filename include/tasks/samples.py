"""Task bodies of ``data_samples`` (DE) and ``make sample``: a sample on request, gated.

:func:`take` turns the DAG's params (or the command line) into a
:class:`include.samples.sampler.SampleRequest`, writes the sample and, before its folder
appears, runs the GX suite ``sample`` on every file (:func:`gate_sample`): exact columns, no
raw id of the sampled rows, keys that look like keys, the sampled share of units within
tolerance. A refused request (bad parameters, raw ids without admin rights) or a failed gate
fails at once, without retries.

Command line (``make sample ARGS="..."``)::

    python -m include.tasks.samples --sources fct_sessions ml_interactions \\
        --from 2024-03-01 --to 2024-03-14 --unit visitor --fraction 0.1 --seed 7 \\
        [--stratify-by country] [--size N] [--id NAME] [--purpose TEXT] \\
        [--keep-raw-ids]   # admins only: TRASOS_SAMPLE_USER must name an admin
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from datetime import date
from pathlib import Path
from typing import Any

from include.tasks import DeterministicFailure

log = logging.getLogger(__name__)

#: Defaults of the DAG params and the command line.
DEFAULT_SOURCES: tuple[str, ...] = ("fct_sessions", "ml_interactions", "ml_user_features")
DEFAULT_FRACTION = 0.1
DEFAULT_SEED = 42
#: Tolerance of the sampled share of units, on top of the rounding per stratum.
FRACTION_TOLERANCE = 0.01


def _date(value: Any) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise ValueError(f"date {value!r} must be YYYY-MM-DD") from exc


def request_from_params(params: dict[str, Any], user: str | None):
    """A :class:`SampleRequest` from the DAG's params (or the CLI's) and the requesting user."""
    from include.samples.sampler import SampleRequest

    def optional(key: str) -> Any:
        value = params.get(key)
        return None if value in (None, "") else value

    fraction, size = optional("fraction"), optional("size")
    if size is not None:  # the DAG form always carries the default fraction: size wins
        fraction = None
    return SampleRequest(
        sources=tuple(params.get("sources") or DEFAULT_SOURCES),
        date_from=_date(params.get("date_from")),
        date_to=_date(params.get("date_to")),
        unit=str(params.get("unit") or "visitor"),
        fraction=float(fraction) if fraction is not None else None,
        size=int(size) if size is not None else None,
        stratify_by=optional("stratify_by"),
        seed=int(params.get("seed", DEFAULT_SEED)),
        keep_raw_ids=bool(params.get("keep_raw_ids", False)),
        requested_by=user,
        sample_id=optional("sample_id"),
        purpose=str(params.get("purpose") or ""),
    )


def gate_sample(folder: Path, result, run_name: str | None = None) -> list[dict[str, Any]]:
    """GX suite ``sample`` on every file of a (staged) sample; raises ``GateFailed``."""
    import duckdb

    from expectations.gate import run_gate
    from expectations.suites import SampleParams

    population = result.card["population"]
    pseudonymised = result.card["privacy"]["ids"] == "pseudonymised"
    # exact per-stratum rounding moves the share by at most half a unit per stratum
    rounding = 0.5 * len(population["strata"]) / population["units"]
    summaries = []
    for f in result.files:
        con = duckdb.connect()
        try:
            df = con.execute("select * from read_parquet(?)", [str(f.path)]).df()
        finally:
            con.close()
        params = SampleParams(
            expected_columns=tuple(f.columns),
            id_columns=tuple(f.id_columns),
            pseudonymised=pseudonymised,
            expected_fraction=population["requested_fraction"] if f.is_primary else None,
            fraction_tolerance=FRACTION_TOLERANCE + rounding,
        )
        gate = run_gate(
            "sample",
            df,
            params=params,
            run_name=run_name or result.sample_id,
            raw_ids=f.raw_ids,
            n_units=f.units if f.is_primary else None,
            n_population=population["units"] if f.is_primary else None,
        )
        summaries.append({"file": f.path.name, "success": gate.success, "rows": gate.n_rows})
    return summaries


def take(params: dict[str, Any], user: str | None, run_name: str | None = None) -> dict[str, Any]:
    """Write and gate one sample; a small summary for XCom (its path, id, counts)."""
    from expectations.gate import GateFailed
    from include.samples.access import NotAuthorised
    from include.samples.sampler import SampleError, take_sample

    try:
        request = request_from_params(params, user)
        result = take_sample(
            request, check=lambda folder, staged: gate_sample(folder, staged, run_name)
        )
    except (SampleError, NotAuthorised, ValueError) as exc:
        raise DeterministicFailure(f"sample request refused: {exc}", "DE") from exc
    except GateFailed as exc:
        raise DeterministicFailure(
            f"sample not published: {exc}", exc.owner_role, exc.details, exc.docs_url
        ) from exc
    population = result.card["population"]
    return {
        "sample_id": result.sample_id,
        "path": str(result.path),
        "card": str(result.path / "README.md"),
        "units": population["sampled_units"],
        "population": population["units"],
        "files": {f.path.name: f.rows for f in result.files},
        "ids": result.card["privacy"]["ids"],
    }


def triggering_user(context: dict[str, Any]) -> str | None:
    """The user who triggered the DAG run (Airflow 3.3: ``dag_run.triggering_user_name``;
    ``airflow dags test`` gives ``"dag_test"``, a scheduled run None)."""
    dag_run = context.get("dag_run")
    return getattr(dag_run, "triggering_user_name", None)


def main(argv: list[str] | None = None) -> int:
    """``make sample``: the same sample as the DAG, from the command line."""
    from include.samples.access import cli_user
    from include.samples.sampler import SOURCES, UNITS

    parser = argparse.ArgumentParser(
        prog="python -m include.tasks.samples",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sources", nargs="+", default=list(DEFAULT_SOURCES), choices=list(SOURCES)
    )
    parser.add_argument("--from", dest="date_from", help="first day, YYYY-MM-DD (inclusive)")
    parser.add_argument("--to", dest="date_to", help="last day, YYYY-MM-DD (inclusive)")
    parser.add_argument("--unit", choices=UNITS, default="visitor")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument(
        "--fraction", type=float, help=f"share of units (default {DEFAULT_FRACTION})"
    )
    amount.add_argument("--size", type=int, help="number of units")
    parser.add_argument("--stratify-by", dest="stratify_by")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--id", dest="sample_id")
    parser.add_argument("--purpose", default="")
    parser.add_argument(
        "--keep-raw-ids",
        action="store_true",
        help="admins only: keep visitor/user ids (TRASOS_SAMPLE_USER must be an admin)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    params = vars(args)
    if params["fraction"] is None and params["size"] is None:
        params["fraction"] = DEFAULT_FRACTION
    user = cli_user() or os.environ.get("USER")
    if args.keep_raw_ids:
        user = cli_user()  # an explicit name, checked against the admins; never $USER
    try:
        summary = take(params, user)
    except DeterministicFailure as exc:
        print(str(exc))
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
