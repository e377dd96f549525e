"""`make run`'s closing summary: the alerts of THIS run, and the ownership map it writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from include.airflowctl import airflow_env, alerts_since, print_alerts_and_owners
from include.settings import get_settings

pytestmark = pytest.mark.slow  # the ownership map parses the DAG folder and dbt


def record(subject: str, role: str = "DE", **extra) -> str:
    return json.dumps({"role": role, "subject": subject, "error": "z=4.2 > 3", **extra}) + "\n"


def test_lists_only_this_runs_alerts_and_writes_the_owners_page(data_dir: Path, capsys) -> None:
    notifications = get_settings().notifications_file
    notifications.write_text(record("an old alert of an earlier run"))
    offset = notifications.stat().st_size
    with notifications.open("a") as fh:
        fh.write(record("data monitor: volume product_view", dag_id="data_monitor",
                        task_id="check_data"))  # fmt: skip
        fh.write(record("model monitor: ctr", role="DS"))
        fh.write('{"role": "DE", "subj')  # a line cut by a crash is not an alert

    assert [a["subject"] for a in alerts_since(offset)] == [
        "data monitor: volume product_view",
        "model monitor: ctr",
    ]
    print_alerts_and_owners(offset, airflow_env())
    out = capsys.readouterr().out
    assert "Alerts raised by this run: 2" in out
    assert "[DE] data monitor: volume product_view (data_monitor.check_data)" in out
    assert "[DS] model monitor: ctr" in out
    assert "an old alert" not in out
    owners = get_settings().reports_dir / "owners.html"
    assert owners.exists() and "Ownership map" in out and str(owners) in out


def test_no_alerts_says_none(data_dir: Path) -> None:
    assert alerts_since(0) == []  # no notifications file yet
