"""The user's view of the whole: Airflow in a real browser, day one and day two.

Starts Airflow as ``make up`` does (scheduler, DAG processor, triggerer, API server) on a free
loopback port with its own home, on a small simulated landing zone. Headless Chromium
(Debian's, driven by Playwright) checks that the DA user cannot trigger a DE DAG; the DAGs
are unpaused as ``make up`` does (``include.airflowctl.unpause_when_parsed``); the DE user
sees every DAG with its role tag. Day one: the hourly ``events_ingest`` loads the landing
zone and the Asset-scheduled DAGs downstream run by themselves. Day two: DE triggers
``simulator_land_day`` in the UI (what ``make land`` does while Airflow is up), the next
simulated day lands and the whole chain runs again on its own, monitors included. Then it
opens the Data Docs index and the business report, and every report page through
``tests/report_pages.py`` (no console error, failed local request, NaN/None or float count).
Screenshots are kept under ``$TRASOS_ARTIFACTS`` (default ``.state/test-artifacts/``;
``reports/`` holds one per report page).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import CHROMIUM, CHROMIUM_FLAGS
from report_pages import check_report_pages

from include.airflowctl import (
    PASSWORDS_FILE,
    airflow_env,
    init,
    services_command,
    unpause_when_parsed,
)
from include.settings import REPO_ROOT

# Two whole chains (day one, day two) through the one-slot writer pool: allow an hour.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(3600)]

ARTIFACTS = Path(os.environ.get("TRASOS_ARTIFACTS", REPO_ROOT / ".state" / "test-artifacts"))
CHAIN = ("events_ingest", "events_transform", "recommender_train", "business_metrics")
ROLE_OF = {
    "events_ingest": "DE",
    "events_transform": "DE",
    "data_monitor": "DE",
    "recommender_train": "DS",
    "model_monitor": "DS",
    "recommender_rollback": "DS",
    "business_metrics": "DA",
    "simulator_land_day": "DE",
}
#: Day two: after the landing, each of these runs again by itself (Asset-triggered).
DAY_TWO = ("events_ingest", "events_transform", "recommender_train", "business_metrics",
           "data_monitor")  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed (make browser installs Debian's)")
    root = tmp_path_factory.mktemp("e2e")
    data, state = root / "data", root / "state"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "include.simulator",
            "--days",
            "10",
            "--visitors",
            "2500",
            "--seed",
            "11",
            "--fault-rate",
            "0.01",
            "--out",
            str(data),
            "--no-progress",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    home = state / "airflow"
    saved = {k: os.environ.get(k) for k in ("TRASOS_DATA_DIR", "TRASOS_STATE_DIR")}
    os.environ.update(TRASOS_DATA_DIR=str(data), TRASOS_STATE_DIR=str(state))
    try:
        init(home=home)
        env = airflow_env(port=port, home=home)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    env.update(
        TRASOS_DATA_DIR=str(data),
        TRASOS_STATE_DIR=str(state),
        AIRFLOW__COSMOS__CACHE_DIR=str(state / "cosmos"),
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
        AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="2",
        # the log servers of the scheduler and triggerer on free ports, not 8793/8794: another
        # Airflow on this machine (`make up`, another worker's test) must not clash with this one
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
    )
    log = (root / "airflow.log").open("w")
    proc = subprocess.Popen(
        services_command(),  # what `make up` runs
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # 300 s: under `-n 2` the API server starts beside another worker's tests
        wait_for(lambda: _healthy(base), 300, f"Airflow did not come up; see {log.name}")
        passwords = json.loads((home / PASSWORDS_FILE).read_text())
        yield {
            "base": base, "passwords": passwords, "data": data, "log": log.name, "home": home
        }  # fmt: skip
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/api/v2/monitor/health", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(predicate, timeout: float, message: str, every: float = 3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(message)


class Api:
    def __init__(self, base: str, user: str, password: str):
        r = httpx.post(f"{base}/auth/token", json={"username": user, "password": password})
        r.raise_for_status()
        self.client = httpx.Client(
            base_url=f"{base}/api/v2",
            headers={"Authorization": f"Bearer {r.json()['access_token']}"},
            timeout=30,
        )

    def dags(self) -> dict[str, dict]:
        return {
            d["dag_id"]: d for d in self.client.get("/dags", params={"limit": 100}).json()["dags"]
        }

    def runs(self, dag_id: str) -> list[dict]:
        r = self.client.get(f"/dags/{dag_id}/dagRuns", params={"order_by": "-run_after"})
        return r.json().get("dag_runs", [])


def browser():
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    home = ARTIFACTS / "chromium-home"
    home.mkdir(parents=True, exist_ok=True)
    os.environ["HOME"] = str(home)
    b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
    return pw, b


def login(page, base: str, user: str, password: str) -> None:
    """The FAB auth manager's login form, then Airflow's UI."""
    page.goto(base)
    page.wait_for_selector("input[name=username]", timeout=120_000)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.locator("input[type=submit], button[type=submit]").first.click()
    page.wait_for_url(lambda url: "login" not in url, timeout=60_000)


def trigger_in_ui(page, base: str, dag_id: str, timeout: float = 30_000) -> None:
    page.goto(f"{base}/dags/{dag_id}")
    page.get_by_role("button", name="Trigger").first.click(timeout=timeout)
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Trigger").click(timeout=timeout)


def test_ui_day_one_and_day_two(stack) -> None:
    from playwright.sync_api import Error as PlaywrightError

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base, passwords = stack["base"], stack["passwords"]
    api = Api(base, "admin", passwords["admin"])
    dags = wait_for(
        lambda: (d := api.dags()) and set(ROLE_OF) <= set(d) and d,
        300,
        "not every DAG was parsed by the DAG processor",
    )

    def runs_of(dag_id: str, run_type: str) -> list[dict]:
        return [r for r in api.runs(dag_id) if r["run_type"] == run_type]

    def finished(dag_id: str, run_type: str, must_succeed: bool, count: int = 1):
        states = [r["state"] for r in runs_of(dag_id, run_type)]
        if must_succeed:
            assert "failed" not in states, f"{dag_id} failed; see {stack['log']}"
            return states.count("success") >= count
        return sum(s in ("success", "failed") for s in states) >= count

    pw, b = browser()
    try:
        # DA does not own the landing DAG: whatever the UI offers, no run may appear.
        da_page = b.new_context(viewport={"width": 1400, "height": 1200}).new_page()
        login(da_page, base, "da", passwords["da"])
        try:
            trigger_in_ui(da_page, base, "simulator_land_day", timeout=15_000)
            da_page.get_by_text("Access Denied").first.wait_for(timeout=30_000)  # the toast
        except PlaywrightError:
            pass  # no Trigger button for DA: refused as well; the API decides below
        da_page.screenshot(path=ARTIFACTS / "airflow-trigger-refused.png")
        assert not api.runs("simulator_land_day"), "DA could trigger a DE DAG"

        unpause_when_parsed(base, timeout=120, home=stack["home"])  # what `make up` does
        dags = api.dags()
        assert not [d for d in ROLE_OF if dags[d]["is_paused"]], "make up leaves no DAG paused"

        page = b.new_context(viewport={"width": 1400, "height": 2200}).new_page()
        login(page, base, "de", passwords["de"])
        page.goto(f"{base}/dags")
        for dag_id in ROLE_OF:
            page.get_by_text(dag_id, exact=True).first.wait_for(timeout=60_000)
        page.screenshot(path=ARTIFACTS / "airflow-dags.png")
        for dag_id, role in ROLE_OF.items():  # the list shows each DAG's one role tag
            assert role in {t["name"] for t in dags[dag_id]["tags"]}
        body = page.inner_text("body")
        assert all(role in body for role in ("DE", "DS", "DA"))

        # Day one: unpaused, the hourly events_ingest runs for its latest hour and loads the
        # landing zone; the Asset-scheduled DAGs follow by themselves. recommender_train must
        # run; on this small sample its definition of done may stop it (a designed outcome,
        # reported to DS), so only the others must succeed.
        wait_for(
            lambda: finished("events_ingest", "scheduled", True),
            900,
            f"day one: events_ingest did not run on its schedule; see {stack['log']}",
        )
        for dag_id in (*CHAIN[1:], "data_monitor"):
            wait_for(
                lambda d=dag_id: finished(d, "asset_triggered", d != "recommender_train"),
                1200,
                f"day one: {dag_id} did not finish in time; see {stack['log']}",
            )
        day_one = {d: len(runs_of(d, "asset_triggered")) for d in DAY_TWO}

        # Day two: DE lands the next simulated day from the UI (as `make land` does while
        # Airflow is up); the whole chain runs again by itself, events_ingest included.
        events = stack["data"] / "landing" / "events"
        landed_before = sorted(p.name for p in events.iterdir())
        trigger_in_ui(page, base, "simulator_land_day")
        page.get_by_role("dialog").wait_for(state="hidden", timeout=30_000)
        page.screenshot(path=ARTIFACTS / "airflow-triggered.png")
        wait_for(
            lambda: finished("simulator_land_day", "manual", True),
            600,
            f"simulator_land_day did not finish; see {stack['log']}",
        )
        landed = sorted(p.name for p in events.iterdir())
        assert len(landed) == len(landed_before) + 1 and landed[-1] > landed_before[-1]
        for dag_id in DAY_TWO:
            wait_for(
                lambda d=dag_id: finished(
                    d, "asset_triggered", d != "recommender_train", day_one[d] + 1
                ),
                1200,
                f"day two: {dag_id} did not run by itself; see {stack['log']}",
            )
        page.goto(f"{base}/dags/events_transform")
        page.screenshot(path=ARTIFACTS / "airflow-day-two.png")

        reports = stack["data"] / "reports"
        docs = page.context.new_page()
        docs.goto((reports / "data_docs" / "index.html").as_uri())
        docs.wait_for_load_state("load")
        text = docs.inner_text("body")
        assert "raw_events" in text and "sessions" in text and "training_set" in text
        docs.screenshot(path=ARTIFACTS / "data-docs.png", full_page=True)
        docs.goto((reports / "business" / "index.html").as_uri())
        docs.wait_for_load_state("load")
        assert "Conversion" in docs.inner_text("body")
        docs.screenshot(path=ARTIFACTS / "business-report.png", full_page=True)
        # every report page (owners and dbt docs made as by hand): screenshots, no errors
        check_report_pages(
            docs.context, reports, ARTIFACTS / "reports", on_demand_from=stack["data"]
        )
    finally:
        b.close()
        pw.stop()
