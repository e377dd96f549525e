"""Task bodies of the ``events_ingest`` DAG: load the new landing files, then gate the batch."""

from __future__ import annotations

from typing import Any

from common.errors import DeterministicFailure
from include.ingest import ReconciliationError
from include.tasks import fail_fast


def load_new_files(batch: str | None = None) -> dict[str, Any]:
    """Ingest every new landing file; returns the batch summary (counts only, XCom-sized).

    ``batch`` (the DAG run's id) makes a retry report the loads a killed try of the same run
    committed, so they are gated and announced by this run's Asset event, not left unannounced.
    Failures keep their retries: a lock held by another run or a file that did not reconcile
    (left ``failed`` in the manifest and retried) may pass on the next try.
    """
    from include.ingest import ingest

    return ingest(batch=batch).as_dict()


@fail_fast
def validate_raw_events(summary: dict[str, Any], run_name: str | None = None) -> dict[str, Any]:
    """The gate between ingestion and everything downstream; returns the batch summary.

    First the batch's own bookkeeping (every line loaded, quarantined or a counted
    duplicate), then the Great Expectations ``raw_events`` suite on every event partition the
    batch touched, with the batch's quarantine rate. When the gate fails no Asset event is
    emitted: a ``ReconciliationError`` or ``expectations.gate.GateFailed`` is deterministic
    (the same batch fails the same way), so it fails the task without retries
    (``AirflowFailException`` carrying the original's details and Data Docs link).
    """
    return _gate(summary, run_name)


class BatchNotReconciled(ReconciliationError, DeterministicFailure):
    """The batch's own counts do not add up; the same batch fails the same way on a retry."""


def _gate(summary: dict[str, Any], run_name: str | None) -> dict[str, Any]:
    lost = summary["lines_in"] - summary["loaded"] - summary["quarantined"] - summary["duplicates"]
    if lost != 0:
        raise BatchNotReconciled(
            f"the ingestion batch does not reconcile: {lost} line(s) neither loaded, "
            f"quarantined nor counted as duplicates ({summary})",
            details={"lost": lost},
        )
    if not summary["event_dates"]:
        return summary
    from datetime import date, datetime

    from expectations.gate import run_gate
    from expectations.suites import RawEventsParams
    from include.warehouse import connect, frame

    dates = [date.fromisoformat(d) for d in summary["event_dates"]]
    with connect(read_only=True) as con:
        batch = frame(
            con, "select * from raw.events where event_date in (select unnest(?::date[]))", [dates]
        )
    # Real datasets go back to 2015; the ingestion already enforced each batch's late window.
    params = RawEventsParams(event_time_min=datetime(2000, 1, 1))
    gate = run_gate(
        "raw_events",
        batch,
        params=params,
        n_quarantined=summary["quarantined"],
        n_loaded=summary["loaded"],
        run_name=run_name,
    )
    return {**summary, "gate": gate.summary()}
