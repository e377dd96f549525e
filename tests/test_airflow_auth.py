"""The Airflow API requires credentials: generated passwords work, no token gets 401."""

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

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def api_server(airflow_home: Path):
    port = free_port()
    env = airflow_env(port=port, home=airflow_home)
    env["AIRFLOW__API__PORT"] = str(port)
    env["AIRFLOW__API__BASE_URL"] = f"http://127.0.0.1:{port}"
    log = (airflow_home / f"api-{port}.log").open("w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "airflow"), "api-server", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
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
        raise RuntimeError(f"api-server not up in 120 s; see {log.name}")
    yield base
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)


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


def test_login_with_generated_credential(api_server: str, airflow_home: Path) -> None:
    password = json.loads((airflow_home / PASSWORDS_FILE).read_text())["de"]
    r = httpx.post(f"{api_server}/auth/token", json={"username": "de", "password": password})
    assert r.status_code in (200, 201), r.text
    token = r.json()["access_token"]
    dags = httpx.get(
        f"{api_server}/api/v2/dags", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert dags.status_code == 200, dags.text
