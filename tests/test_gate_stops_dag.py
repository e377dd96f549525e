"""A failing GX gate stops its DAG run: no downstream Asset event, the owning role notified."""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from include.settings import REPO_ROOT

pytestmark = pytest.mark.integration


def test_bad_batch_fails_the_raw_gate_and_emits_no_asset(airflow_home: Path, data_dir) -> None:
    from include.simulator import SimulatorConfig, simulate

    simulate(SimulatorConfig(days=1, visitors=300, seed=3), data_dir)
    # a collector gone wrong: as many garbage lines as good ones, far above the raw gate's
    # 5 % quarantine-rate limit
    batches = sorted((data_dir / "landing" / "events").rglob("*.jsonl.gz"))
    n_good = sum(len(gzip.decompress(p.read_bytes()).splitlines()) for p in batches)
    (batches[0].parent / "batch-broken.jsonl.gz").write_bytes(
        gzip.compress(b"".join(b"<html>502 Bad Gateway</html>\n" for _ in range(n_good)))
    )
    db = sqlite3.connect(airflow_home / "airflow.db")
    before = db.execute(
        "select count(*) from asset_event where source_dag_id = 'events_ingest'"
    ).fetchall()[0][0]
    result = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "dags", "test", "events_ingest"],
        env={**os.environ, "TRASOS_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert "state=failed" in output, output[-3000:]
    assert "GateFailed" in output
    after = db.execute(
        "select count(*) from asset_event where source_dag_id = 'events_ingest'"
    ).fetchall()[0][0]
    # A failed gate is deterministic: the task fails on its first try, its retry is not used
    # (the DAG gives every task retries=1), and the run's tries are all in task_instance.
    run_id = db.execute(
        "select run_id from dag_run where dag_id = 'events_ingest' order by id desc limit 1"
    ).fetchall()[0][0]
    tries = db.execute(
        "select state, try_number, max_tries from task_instance where dag_id = 'events_ingest' "
        "and task_id = 'validate_raw_events' and run_id = ?",
        [run_id],
    ).fetchall()
    earlier_tries = db.execute(
        "select count(*) from task_instance_history where dag_id = 'events_ingest' "
        "and task_id = 'validate_raw_events' and run_id = ?",
        [run_id],
    ).fetchall()[0][0]
    db.close()
    assert after == before  # neither raw_events nor catalog was emitted
    assert tries == [("failed", 1, 1)] and earlier_tries == 0, (tries, earlier_tries)
    assert "FailedWithoutRetry" in output  # include.tasks.fail_fast: no retry

    notes = [
        json.loads(line)
        for line in (data_dir / "notifications.jsonl").read_text().split("\n")
        if line
    ]
    gate_notes = [n for n in notes if n["task_id"] == "validate_raw_events"]
    assert gate_notes, notes
    note = gate_notes[-1]
    assert note["role"] == "DE"
    assert "raw_events" in note["error"] and "quarantine" in note["error"]
    assert note["link"].startswith("file://") and "data_docs" in note["link"]
    failures = note["details"]["failures"]
    assert any(f.get("observed_value") is not None for f in failures)
