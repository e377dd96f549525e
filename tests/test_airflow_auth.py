"""Airflow access: generated credentials, and per-role rights through the REST API.

A real API server (FAB auth manager) over a metadata DB whose DAGs were serialized by
``airflow dags reserialize`` (which also syncs each DAG's ``access_control``). Every team user
(``de``, ``ds``, ``da``) sees every DAG, but triggers, clears and pauses only the DAGs
tagged with its own role; only ``admin`` reads connections and variables.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from include.airflowctl import PASSWORDS_FILE, USERS, airflow_env
from include.roles import ROLE_TAGS

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TEAM_USERS = {"de": "DE", "ds": "DS", "da": "DA"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def api_server(airflow_home: Path):
    port = free_port()
    env = airflow_env(port=port, home=airflow_home)
    airflow = str(Path(sys.executable).parent / "airflow")
    # The DAGs (and their DAG-level permissions) into the metadata DB, as the DAG processor does.
    done = subprocess.run(
        [airflow, "dags", "reserialize"], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    log = (airflow_home / f"api-{port}.log").open("w")
    proc = subprocess.Popen(
        [airflow, "api-server", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/api/v2/monitor/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"api-server exited early; see {log.name}")
            time.sleep(1)
        else:
            raise RuntimeError(f"api-server not up in 180 s; see {log.name}")
        yield base
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def client(base: str, home: Path, user: str) -> httpx.Client:
    password = json.loads((home / PASSWORDS_FILE).read_text())[user]
    r = httpx.post(f"{base}/auth/token", json={"username": user, "password": password})
    assert r.status_code in (200, 201), r.text
    return httpx.Client(
        base_url=f"{base}/api/v2",
        headers={"Authorization": f"Bearer {r.json()['access_token']}"},
        timeout=30,
    )


def test_passwords_are_generated_per_user(airflow_home: Path) -> None:
    passwords = json.loads((airflow_home / PASSWORDS_FILE).read_text())
    assert set(passwords) == set(USERS)
    assert len(set(passwords.values())) == len(USERS)  # no shared or default password
    assert all(len(p) >= 12 for p in passwords.values())
    assert oct((airflow_home / PASSWORDS_FILE).stat().st_mode)[-3:] == "600"


def test_unauthenticated_call_gets_401(api_server: str) -> None:
    assert httpx.get(f"{api_server}/api/v2/dags", timeout=10).status_code == 401


def test_wrong_password_is_refused(api_server: str) -> None:
    r = httpx.post(f"{api_server}/auth/token", json={"username": "de", "password": "nope"})
    assert r.status_code == 401


def test_only_admin_reads_connections_and_variables(api_server: str, airflow_home: Path) -> None:
    for user in USERS:
        api = client(api_server, airflow_home, user)
        expected = 200 if user == "admin" else 403
        for path in ("/connections", "/variables", "/config"):
            status = api.get(path).status_code
            if path == "/config" and user == "admin":
                continue  # exposing the config is off by default, even for Admin
            assert status == expected, f"{user} GET {path}: {status}, expected {expected}"


def test_each_role_acts_only_on_its_own_dags(api_server: str, airflow_home: Path) -> None:
    admin = client(api_server, airflow_home, "admin")
    dags = admin.get("/dags", params={"limit": 100}).json()["dags"]
    role_of = {d["dag_id"]: min(ROLE_TAGS & {t["name"] for t in d["tags"]}) for d in dags}
    assert set(role_of.values()) == ROLE_TAGS, role_of  # every role owns some DAG
    for user, role in TEAM_USERS.items():
        api = client(api_server, airflow_home, user)
        visible = {d["dag_id"] for d in api.get("/dags", params={"limit": 100}).json()["dags"]}
        assert visible == set(role_of), f"{user} does not see every DAG"
        for dag_id, owner in role_of.items():
            want = 200 if owner == role else 403
            results = {
                "pause": api.patch(f"/dags/{dag_id}", json={"is_paused": True}).status_code,
                "trigger": api.post(
                    f"/dags/{dag_id}/dagRuns", json={"logical_date": None}
                ).status_code,
                "clear": api.post(
                    f"/dags/{dag_id}/clearTaskInstances", json={"dry_run": True}
                ).status_code,
                "read runs": api.get(f"/dags/{dag_id}/dagRuns").status_code,
            }
            expected = {"pause": want, "trigger": want, "clear": want, "read runs": 200}
            assert results == expected, f"{user} ({role}) on {dag_id} ({owner}): {results}"


def test_make_land_with_airflow_up_triggers_the_landing_dag_as_de(
    api_server: str, airflow_home: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from include.airflowctl import LAND_DAG, land

    monkeypatch.setenv("AIRFLOW__API__BASE_URL", api_server)
    assert land(2) == 0
    out = capsys.readouterr().out
    assert f"triggered {LAND_DAG}" in out and "as de" in out
    admin = client(api_server, airflow_home, "admin")
    runs = admin.get(f"/dags/{LAND_DAG}/dagRuns").json()["dag_runs"]
    assert [r["dag_run_id"] for r in runs if r["conf"] == {"days": 2}], runs
