"""Airflow for this repo: its environment, first-time setup, the UI, and the pipeline run.

The one place Airflow is configured. Every value is an environment variable with a
default, so the same code runs on Postgres, Celery or Kubernetes by exporting other
values (an exported variable always wins over the defaults here). No airflow.cfg is
edited by hand.

Usage::

    python -m include.airflowctl init     # idempotent: secrets, users, metadata DB, pool
    python -m include.airflowctl up       # Airflow (scheduler, DAG processor, UI) on 127.0.0.1:8080
    python -m include.airflowctl run      # every DAG in data order, then where results are
    python -m include.airflowctl env      # the environment as `export` lines
    python -m include.airflowctl users    # the UI credentials
    python -m include.airflowctl land --days 1  # the next simulated day (make land)
    python -m include.airflowctl sync-access  # Airflow roles and users (init runs it)
    python -m include.airflowctl init-metadata  # metadata DB, pool, roles and users (init's)
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

from common.fs import atomic_write_with
from expectations.gate import failed_headline
from include.settings import REPO_ROOT, get_settings

#: The FAB auth manager: users and roles in the metadata DB, DAG-level permissions.
AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
#: Users: username -> Airflow role. One per team role; a team's Airflow role has the name of
#: its tag (include.roles.Role) and may act only on its own DAGs (include.roles.access_control).
USERS: dict[str, str] = {"admin": "Admin", "de": "DE", "ds": "DS", "da": "DA"}
#: What the team roles may NOT do although Airflow's "User" role may: edit or delete every DAG
#: (they edit their own, DAG by DAG) and create Asset events by hand (that would start other
#: roles' DAGs). Connections, variables, pools and config are in neither role.
TEAM_EXCLUDED_PERMISSIONS: frozenset[tuple[str, str]] = frozenset(
    {("can_edit", "DAGs"), ("can_delete", "DAGs"), ("can_create", "Assets")}
)
#: Bumped when the roles or users change shape: `init` then syncs them again.
ACCESS_VERSION = "fab-1"
#: DAGs in the order data flows through them; `run` triggers those that exist.
DAG_ORDER: tuple[str, ...] = (
    "events_ingest",
    "events_transform",
    "recommender_train",
    "business_metrics",
    "data_monitor",
    "model_monitor",
)
PASSWORDS_FILE = "passwords.json.generated"
SECRETS_FILE = "secrets.json"


def venv_bin() -> Path:
    return Path(sys.executable).parent


def _secrets(home: Path) -> dict[str, str]:
    """Per-installation secrets, generated once into a git-ignored file (mode 600)."""
    path = home / SECRETS_FILE
    if path.exists():
        return json.loads(path.read_text())
    home.mkdir(parents=True, exist_ok=True)
    values = {"jwt_secret": secrets.token_urlsafe(32), "api_secret_key": secrets.token_urlsafe(32)}
    _write_private(path, values)
    return values


def _write_private(path: Path, payload: dict[str, str]) -> None:
    def write(tmp: Path) -> None:
        tmp.chmod(0o600)  # before the secrets go in
        tmp.write_text(json.dumps(payload, indent=2))

    atomic_write_with(path, write)


def ensure_passwords(home: Path) -> dict[str, str]:
    """Generate one password per user on first setup; keep existing ones."""
    path = home / PASSWORDS_FILE
    current = json.loads(path.read_text()) if path.exists() else {}
    missing = [user for user in USERS if user not in current]
    if missing:
        current.update({user: secrets.token_urlsafe(12) for user in missing})
        home.mkdir(parents=True, exist_ok=True)
        _write_private(path, current)
    return {user: current[user] for user in USERS}


HOME_KEYS = (
    "AIRFLOW_HOME",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
)
PORT_KEYS = (
    "AIRFLOW__API__PORT",
    "AIRFLOW__API__BASE_URL",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
)


#: ``[openlineage] extractors``: our @task tasks' ``trasos://`` inlets and outlets as datasets.
LINEAGE_EXTRACTORS = "include.lineage.AssetTaskExtractor"

#: ``[openlineage] emission_policy``: no events from the Cosmos watcher sensors (one per dbt
#: seed, model, model's tests and source), which read their node's state from the producer
#: and move no data; the producer's events name every model with its inputs and outputs.
#: Their START and COMPLETE events cost ~0.2 s per sensor, ~8 s of each events_transform run.
LINEAGE_EMISSION_POLICY = json.dumps(
    [
        {"scope": {"operator": f"cosmos.operators.watcher.{name}"}, "controls": {"emit": False}}
        for name in (
            "DbtRunWatcherOperator",
            "DbtTestWatcherOperator",
            "DbtSeedWatcherOperator",
            "DbtSourceWatcherOperator",
        )
    ]
)


def lineage_file() -> Path:
    """Where OpenLineage events go by default: one JSON event per line."""
    return get_settings().state_dir / "lineage" / "openlineage.jsonl"


def lineage_transport() -> dict[str, object]:
    """The OpenLineage transport: HTTP to ``TRASOS_OPENLINEAGE_URL`` (e.g. Marquez,
    ``http://host:5000``; ``TRASOS_OPENLINEAGE_API_KEY`` for a bearer key), else the file
    :func:`lineage_file` (its folder is created here: the transport does not)."""
    url = os.environ.get("TRASOS_OPENLINEAGE_URL")
    if url:
        transport: dict[str, object] = {"type": "http", "url": url, "endpoint": "api/v1/lineage"}
        key = os.environ.get("TRASOS_OPENLINEAGE_API_KEY")
        if key:
            transport["auth"] = {"type": "api_key", "apiKey": key}
        return transport
    path = lineage_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    return {"type": "file", "log_file_path": str(path), "append": True}


def airflow_env(port: int | None = None, home: Path | None = None) -> dict[str, str]:
    """The environment Airflow, dbt and the tasks run with.

    Values are defaults: an exported variable wins, except that an explicit ``home`` or
    ``port`` argument sets everything derived from it (a second Airflow beside the first).
    """
    settings = get_settings()
    forced = (HOME_KEYS if home else ()) + (PORT_KEYS if port else ())
    home = home or settings.airflow_home
    port = port or int(os.environ.get("AIRFLOW__API__PORT", "8080"))
    sec = _secrets(home)
    defaults = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGER,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__SECRET_KEY": sec["api_secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": sec["jwt_secret"],
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        # OpenLineage (provider apache-airflow-providers-openlineage): every task run (but the
        # dbt sensors: LINEAGE_EMISSION_POLICY), every dbt model through Cosmos and every @task's
        # trasos:// Assets (include.lineage), with their input and output datasets
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "trasos",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(lineage_transport()),
        "AIRFLOW__OPENLINEAGE__EXTRACTORS": LINEAGE_EXTRACTORS,
        "AIRFLOW__OPENLINEAGE__EMISSION_POLICY": LINEAGE_EMISSION_POLICY,
        # emit from a thread of the task's process, not from a forked copy of it: a fork of
        # make run's DAG runner (GBs of heap) cost ~0.17 s per event, ~10 s per make run, and
        # a forked child can leave the task's supervisor connection stranded (provider docs)
        "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "True",
        "AIRFLOW__COSMOS__CACHE_DIR": str(settings.state_dir / "cosmos"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
        "DBT_PROFILES_DIR": str(REPO_ROOT / "dbt_project"),
        "GX_ANALYTICS_ENABLED": "False",
        "TRASOS_DATA_DIR": str(settings.data_dir),
        "TRASOS_STATE_DIR": str(settings.state_dir),
        # The warehouse as an Airflow connection (generic type: no DuckDB provider needed).
        "AIRFLOW_CONN_DUCKDB_WAREHOUSE": json.dumps(
            {"conn_type": "generic", "host": str(settings.warehouse_path)}
        ),
        "PATH": f"{venv_bin()}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env = dict(os.environ)
    # The repo's packages for every process (make setup also adds a .pth file to the venv).
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    for key, value in defaults.items():
        if key == "PATH" or key in forced or key not in os.environ:
            env[key] = value
    return env


def init(home: Path | None = None) -> None:
    """Idempotent first-time setup. A second call returns in well under a second."""
    settings = get_settings()
    home = home or settings.airflow_home
    env = airflow_env(home=home)
    ensure_passwords(home)
    settings.ensure_dirs()
    stamp = home / ".initialised"
    airflow_version = metadata.version("apache-airflow")

    wanted = f"{airflow_version} {ACCESS_VERSION}"
    if stamp.exists() and stamp.read_text() == wanted:
        return
    print(f"initialising Airflow {airflow_version} in {home} ...", flush=True)
    quiet = {**env, "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}  # one line per permission else
    subprocess.run(
        [sys.executable, "-m", "include.airflowctl", "init-metadata"], env=quiet, check=True
    )
    stamp.write_text(wanted)


def init_metadata() -> None:
    """``airflow db migrate``, the writer pool, then the roles and users (:func:`sync_access`)
    in this one process (configured by :func:`airflow_env`), through Airflow's own CLI
    functions: three CLI processes paid Airflow's start-up three times (~5 s each here).
    Roles and users come before any DAG is parsed: a DAG's access_control names its team's role.
    """
    from airflow.cli.cli_parser import get_parser

    from include.assets import WRITER_POOL, WRITER_POOL_DESCRIPTION  # imports Airflow

    parser = get_parser()
    for argv in (
        ["db", "migrate"],
        ["pools", "set", WRITER_POOL, "1", WRITER_POOL_DESCRIPTION],
    ):
        args = parser.parse_args(argv)
        args.func(args)
    sync_access()


def sync_access() -> None:
    """Create or update the Airflow roles and users (FAB auth manager); idempotent.

    Runs in a process configured by :func:`airflow_env` (``init`` starts it). Each team role
    (DE, DS, DA) gets Airflow's "Viewer" and "User" permissions minus
    :data:`TEAM_EXCLUDED_PERMISSIONS`: it sees every DAG, run, task and log, may trigger and
    clear where the DAG's ``access_control`` lets it (its own DAGs), and never sees
    connections, variables, pools or config (those are Admin's). Passwords come from the
    generated passwords file; a user whose password or role drifted is reset to it.
    """
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    from include.roles import Role

    passwords = ensure_passwords(get_settings().airflow_home)
    with get_application_builder() as appbuilder:
        sm = appbuilder.sm
        sm.sync_roles()  # Airflow's own roles (Admin, Viewer, ...) and their permissions
        team = [
            p
            for p in dict.fromkeys(sm.VIEWER_PERMISSIONS + sm.USER_PERMISSIONS)
            if p not in TEAM_EXCLUDED_PERMISSIONS
        ]
        sm.bulk_sync_roles([{"role": r.value, "perms": team} for r in Role])
        for r in Role:  # drop what an earlier version granted (DAG-level ones are the DAGs')
            role = sm.find_role(r.value)
            for perm in list(role.permissions):
                key = (perm.action.name, perm.resource.name)
                if ":" not in key[1] and key not in team:
                    sm.remove_permission_from_role(role, perm)
        for username, role_name in USERS.items():
            role = sm.find_role(role_name)
            user = sm.find_user(username=username)
            if user is None:
                created = sm.add_user(
                    username, username, role_name, f"{username}@trasos.invalid", role,
                    passwords[username],
                )  # fmt: skip
                if not created:
                    raise SystemExit(f"could not create the Airflow user {username!r}")
                continue
            if [r.name for r in user.roles] != [role_name]:
                user.roles = [role]
                sm.update_user(user)
            if not sm.check_password(username, passwords[username]):
                sm.reset_password(user.id, passwords[username])


def print_credentials(url: str) -> None:
    passwords = ensure_passwords(get_settings().airflow_home)
    print(f"\nAirflow UI: {url}")
    for user, role in USERS.items():
        print(f"  {user:<6} ({role:<5})  password: {passwords[user]}")
    print(f"  (passwords: {get_settings().airflow_home / PASSWORDS_FILE})")


#: What `airflow standalone` runs, minus what it forces: standalone switches every install to
#: the simple auth manager (global roles, no DAG-level access), so `up` runs the components.
SERVICES: tuple[str, ...] = ("scheduler", "dag-processor", "triggerer", "api-server")


def services_command() -> list[str]:
    """One shell that runs Airflow's components and stops them all when one ends or on TERM.

    Start it with ``start_new_session=True`` and stop it by signalling its process group.
    """
    airflow = shlex.quote(str(venv_bin() / "airflow"))
    starts = " ".join(f"{airflow} {name} &" for name in SERVICES)
    stop_all = "trap - TERM INT; kill 0"
    return ["bash", "-c", f"trap '{stop_all}' TERM INT; {starts} wait -n; {stop_all}"]


def up() -> int:
    """Run Airflow (:data:`SERVICES`) in its own process group; Ctrl-C stops the whole group."""
    init()
    env = airflow_env()
    url = env["AIRFLOW__API__BASE_URL"]
    proc = subprocess.Popen(
        services_command(),
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL if os.environ.get("TRASOS_QUIET") else None,
    )
    print_credentials(url)
    print_report_locations()
    print("\nCtrl-C stops Airflow.", flush=True)
    threading.Thread(target=unpause_when_parsed, args=(url,), daemon=True).start()

    def stop(*_: object) -> None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)

    signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(0)))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        print("\nstopping Airflow ...", flush=True)
        stop()
        return 0


def dag_files() -> list[str]:
    """The DAG ids of ``dags/`` (file name = dag_id, a house rule)."""
    return sorted(p.stem for p in (REPO_ROOT / "dags").glob("*.py") if not p.stem.startswith("_"))


def unpause_when_parsed(
    base_url: str, timeout: float = 600.0, user: str = "admin", home: Path | None = None
) -> list[str]:
    """Unpause every DAG of ``dags/`` once Airflow has parsed it (as ``user``, through the API).

    DAGs start paused in Airflow, and ``make run`` leaves them so (its Asset events must not
    start a second chain when the scheduler comes up). ``make up`` is where the platform
    runs by itself: ingestion hourly and on new landing files, the Asset-scheduled DAGs on
    their Assets, the monitors daily and after each chain. Manual DAGs (``schedule=None``)
    only run when triggered, unpaused or not. Returns the DAG ids unpaused by this call.
    """
    import httpx

    wanted = set(dag_files())
    password = ensure_passwords(home or get_settings().airflow_home)[user]
    deadline = time.monotonic() + timeout
    done: list[str] = []
    api = None
    while time.monotonic() < deadline and wanted:
        try:
            if api is None:
                r = httpx.post(
                    f"{base_url}/auth/token", json={"username": user, "password": password}
                )
                r.raise_for_status()
                api = httpx.Client(
                    base_url=f"{base_url}/api/v2",
                    headers={"Authorization": f"Bearer {r.json()['access_token']}"},
                    timeout=30,
                )
            dags = api.get("/dags", params={"limit": 100}).json().get("dags", [])
            for d in dags:
                if d["dag_id"] in wanted:
                    if d["is_paused"]:
                        api.patch(
                            f"/dags/{d['dag_id']}", json={"is_paused": False}
                        ).raise_for_status()
                        done.append(d["dag_id"])
                    wanted.discard(d["dag_id"])
        except httpx.HTTPError:
            pass  # not up yet
        if wanted:
            time.sleep(5)
    if done:
        print(f"\nunpaused {', '.join(sorted(done))}", flush=True)
    if wanted:
        print(f"\nnot parsed in {timeout:.0f} s, still paused: {', '.join(sorted(wanted))} "
              "(see the DAG import errors in the UI)", flush=True)  # fmt: skip
    return done


#: The DE DAG that lands the next simulated day(s) (include.tasks.landing).
LAND_DAG = "simulator_land_day"


def land(days: int = 1, here: bool = False) -> int:
    """``make land``: the next ``days`` simulated days into the landing zone.

    When Airflow answers (``make up``), trigger :data:`LAND_DAG` as ``de`` (the landing and the
    chain it starts are runs in the UI); otherwise, or with ``here``, land the files in this
    process and ``events_ingest`` loads them on its next run.
    """
    from include.tasks.landing import land_next_days

    if not here:
        run_id = _trigger_landing(days)
        if run_id:
            print(f"Airflow is up: triggered {LAND_DAG} ({run_id}) as de; it lands {days} "
                  "day(s) and events_ingest -> events_transform -> ... follow by themselves "
                  "(watch them in the UI)")  # fmt: skip
            return 0
    try:
        result = land_next_days(days)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"landed {', '.join(result['dates'])}: {result['files']} files in "
          f"{get_settings().landing_dir}")  # fmt: skip
    print("events_ingest loads them on its next run (hourly once `make up` runs, or trigger "
          "it in the UI); the DAGs downstream follow by themselves")  # fmt: skip
    return 0


def _trigger_landing(days: int) -> str | None:
    """Trigger :data:`LAND_DAG` as ``de`` when Airflow answers; its run id, else None."""
    import httpx

    base = airflow_env()["AIRFLOW__API__BASE_URL"]
    try:
        if httpx.get(f"{base}/api/v2/monitor/health", timeout=3).status_code != 200:
            return None
    except httpx.HTTPError:
        return None
    password = ensure_passwords(get_settings().airflow_home)["de"]
    token = httpx.post(f"{base}/auth/token", json={"username": "de", "password": password})
    if token.status_code not in (200, 201):
        raise SystemExit(
            f"the Airflow at {base} refuses this installation's `de` password "
            f"({token.status_code}): is it another installation on that port? Stop it, or "
            "land the files without Airflow: python -m include.airflowctl land --here"
        )
    api = httpx.Client(
        base_url=f"{base}/api/v2",
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        timeout=30,
    )
    r = api.post(f"/dags/{LAND_DAG}/dagRuns", json={"logical_date": None, "conf": {"days": days}})
    if r.status_code == 404:
        raise SystemExit(
            f"Airflow at {base} does not know {LAND_DAG} yet (the DAG processor parses new "
            "files within 30 s): try again in a minute"
        )
    r.raise_for_status()
    return r.json()["dag_run_id"]


def existing_dags() -> list[str]:
    dags_dir = REPO_ROOT / "dags"
    return [d for d in DAG_ORDER if (dags_dir / f"{d}.py").exists()]


def fill_landing_zone(dataset: str, env: dict[str, str]) -> None:
    """Put events into an empty landing zone: the simulator, or a real dataset's loader."""
    landing = get_settings().landing_events_dir
    if landing.exists() and any(landing.rglob("*.jsonl*")):
        print(f"landing zone {landing} already has events: using them", flush=True)
        return
    module = "include.simulator" if dataset == "simulator" else "include.loaders"
    if (
        not (REPO_ROOT / module.replace(".", "/")).with_suffix(".py").exists()
        and not (REPO_ROOT / module.replace(".", "/")).is_dir()
    ):
        print(f"{module} does not exist yet: the landing zone stays empty", flush=True)
        return
    args = [] if dataset == "simulator" else [dataset]
    subprocess.run([sys.executable, "-m", module, *args], env=env, check=True)


#: A training set too small or malformed to learn from stops recommender_train (nothing is
#: trained or published), like a failed definition of done; `make run` goes on to the DA DAGs.
TRAINING_GATE_FAILED = failed_headline("training_set")


def run_pipeline(dataset: str = "simulator") -> int:
    """Fill the landing zone, run every existing DAG in data order, print a summary.

    Each DAG runs through Airflow (``airflow dags test``: real task instances and Asset
    events in the metadata DB). A model that fails its definition of done, or a training set
    that fails its gate (a real sample too small to learn from), is a result, not a crash: the
    run goes on, the summary says what failed, nothing is published.
    """
    env = airflow_env()  # writes the secrets file (first run) before init's thread reads it
    get_settings().ensure_dirs()
    notifications = get_settings().notifications_file
    alerts_from = notifications.stat().st_size if notifications.exists() else 0
    started: list[float] = []

    def prepare() -> None:
        # Airflow's metadata DB (~10 s after `make clean`, one core) beside the simulation,
        # while the DAG runner warms up (include.dagrunner --wait-for-go)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="init") as pool:
            initialised = pool.submit(init)
            fill_landing_zone(dataset, env)
            initialised.result()
        started.append(time.monotonic())

    dags = existing_dags()
    if not dags:
        prepare()
        print("no DAGs yet: nothing to run")
        return 0
    log_dir = get_settings().state_dir / "logs"
    # the experiment week (the closed loop) runs in the same DAG-runner process, after the
    # first round, when a version is published
    then: tuple[str, ...] = ()
    otherwise: tuple[str, ...] = ()
    if dataset == "simulator" and (REPO_ROOT / "dags" / f"{EXPERIMENT_DAG}.py").exists():
        otherwise = tuple(d for d in dags if d in AFTER_TRAINING)
        dags = [d for d in dags if d not in AFTER_TRAINING]
        then = EXPERIMENT_CHAIN + otherwise
    owners: list[subprocess.Popen] = []  # the ownership map, started when round 1 is done
    rc = run_dags_in_order(
        dags,
        env,
        log_dir,
        then=then,
        then_log_dir=log_dir / "experiment_week",
        otherwise=otherwise,
        on_round=lambda: owners.append(start_owners_map(env)),
        prepare=prepare,
    )
    if rc:
        return rc
    print(f"\nall DAGs ran in {time.monotonic() - started[0]:.0f} s")
    print_summary()
    print_alerts_and_owners(alerts_from, env, owners[0] if owners else None)
    print_report_locations()
    return 0


#: The closed loop of the holdout experiment (issue 21): once the first period's DAGs up to
#: ``recommender_train`` have published, this DAG lands an experiment week against what was
#: published, and the DAGs that its ``landing`` Asset starts run again (ingest -> transform;
#: retraining waits for the next cycle).
EXPERIMENT_DAG = "simulator_experiment_week"
EXPERIMENT_CHAIN: tuple[str, ...] = (EXPERIMENT_DAG, "events_ingest", "events_transform")
#: The DAGs after ``recommender_train`` in DAG_ORDER read what the others wrote and feed nothing
#: back: with an experiment week they run once, after it (the business report then covers the
#: first period and the experiment, the monitors see the served week), not also before it; a
#: scheduler would run them after each transform, which changes nothing at the end.
AFTER_TRAINING: tuple[str, ...] = DAG_ORDER[DAG_ORDER.index("recommender_train") + 1 :]


def run_dags_in_order(
    dags: list[str],
    env: dict[str, str],
    log_dir: Path,
    then: Sequence[str] = (),
    then_log_dir: Path | None = None,
    otherwise: Sequence[str] = (),
    on_round: Callable[[], object] | None = None,
    prepare: Callable[[], object] | None = None,
) -> int:
    """Run ``dags`` in one ``include.dagrunner`` process, printing one line per DAG; then, in
    the same process, ``then`` (the experiment week) when a version is published, else
    ``otherwise``. ``on_round`` is called when the first round is done (whatever follows).
    ``prepare`` (Airflow's init, the landing zone) runs while the runner warms up; the runner
    starts on its return and exits without running anything if it raises."""
    # One process runs every DAG as `airflow dags test` would (include.dagrunner): Airflow's
    # start-up and the heavy imports are paid once, not once per DAG or round.
    extra = []
    if then:
        extra = ["--then-log-dir", str(then_log_dir or log_dir / "then"), "--then-if-published",
                 *then]  # fmt: skip
        if otherwise:
            extra += ["--otherwise", *otherwise]
        extra.append("--")
    if prepare is not None:
        extra = ["--wait-for-go", *extra]
    proc = subprocess.Popen(
        [sys.executable, "-m", "include.dagrunner", "--log-dir", str(log_dir),
         "--tolerate", "DefinitionOfDoneFailed", "--tolerate", TRAINING_GATE_FAILED, *extra,
         *dags],
        env=env,
        stdin=subprocess.PIPE if prepare is not None else None,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    if prepare is not None:
        assert proc.stdin is not None
        try:
            prepare()
        except BaseException:
            proc.stdin.close()  # EOF: the runner exits without running a DAG
            proc.wait()
            raise
        proc.stdin.write("go\n")
        proc.stdin.close()
    print(f"\n=== {dags[0]} ===", flush=True)
    assert proc.stdout is not None
    expected = list(dags)  # the DAGs still to report, in order
    for line in proc.stdout:
        result = json.loads(line)
        if "round" in result:  # the first round is done: the experiment week or not
            if on_round is not None:
                on_round()
            if result["run"]:
                print(
                    "\n##### experiment week: the holdout experiment against what was "
                    "published #####"
                )
                expected = list(then)
                print(f"\n=== {expected[0]} ===", flush=True)
            else:
                print("\nnothing was published: no experiment week (it needs served lists)")
                expected = list(otherwise)
                if expected:
                    print(f"\n=== {expected[0]} ===", flush=True)
            continue
        dag_id, took, log_path = result["dag_id"], result["seconds"], result["log"]
        expected = expected[1:]
        if result["state"] == "success":
            print(f"{dag_id} succeeded in {took:.0f} s (log: {log_path})", flush=True)
        elif dag_id == "recommender_train" and result["tolerated"]:
            if result["tolerated_by"] == TRAINING_GATE_FAILED:
                print(
                    f"{dag_id}: the training set FAILED its GX gate, nothing was trained "
                    f"({took:.0f} s); see the data-quality report and {log_path}",
                    flush=True,
                )
            else:
                print(
                    f"{dag_id}: the model FAILED its definition of done and was not published "
                    f"({took:.0f} s); see the evaluation report",
                    flush=True,
                )
        else:
            print(
                f"{dag_id} FAILED after {took:.0f} s (state {result['state']}); log: {log_path}",
                flush=True,
            )
            proc.wait()
            return 1
        if expected:
            print(f"\n=== {expected[0]} ===", flush=True)
    if proc.wait() not in (0, 1) or expected:
        print(f"the DAG runner exited with {proc.returncode}; logs in {log_dir}", flush=True)
        return proc.returncode or 1
    return 0


def alerts_since(offset: int) -> list[dict]:
    """The notifications appended to ``notifications.jsonl`` after byte ``offset`` (this run)."""
    path = get_settings().notifications_file
    if not path.exists():
        return []
    with path.open("rb") as fh:
        fh.seek(offset if offset <= path.stat().st_size else 0)  # truncated meanwhile: all
        lines = fh.read().decode("utf-8", errors="replace").splitlines()
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a crash is not an alert
    return records


def start_owners_map(env: dict[str, str]) -> subprocess.Popen:
    """``python -m include.tasks.owners`` in the background (~10 s: it parses every DAG). It
    needs the trained model's manifest, so ``make run`` starts it once the first round of
    DAGs is done, beside the experiment week."""
    return subprocess.Popen(
        [sys.executable, "-m", "include.tasks.owners"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def print_alerts_and_owners(
    offset: int, env: dict[str, str], owners: subprocess.Popen | None = None
) -> None:
    """What the monitors and gates raised in this run, and the ownership map (written by
    ``owners``, a :func:`start_owners_map` process, or now)."""
    s = get_settings()
    alerts = alerts_since(offset)
    print(f"\nAlerts raised by this run: {len(alerts) or 'none'} (in {s.notifications_file})")
    for a in alerts:
        where = ".".join(x for x in (a.get("dag_id"), a.get("task_id")) if x)
        print(f"  [{a.get('role')}] {a.get('subject')}" + (f" ({where})" if where else ""))
        error = str(a.get("error") or "").splitlines()
        if error:
            print(f"      {error[0][:160]}")
    proc = owners or start_owners_map(env)
    _, stderr = proc.communicate()
    owners_page = s.reports_dir / "owners.html"
    print(f"\nOwnership map (who owns each DAG, dbt model, GX suite, model): {owners_page}")
    if proc.returncode != 0:
        for line in (stderr or "").splitlines():
            if line.startswith("PROBLEM"):
                print(f"  {line}")
        if not owners_page.exists():
            print(f"  not written: `make owners` shows why ({(stderr or '').strip()[-300:]})")


def print_summary() -> None:
    """Events, sessions, the model against its baselines, and one real API response."""
    s = get_settings()
    if not s.warehouse_path.exists():
        return
    # the API's answer is asked for now (a process of its own, ~3 s) and printed last
    sample = subprocess.Popen(
        [sys.executable, "-m", "include.serving", "sample"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    import duckdb

    from include.tasks.training import clause_text, fmt_number

    con = duckdb.connect(str(s.warehouse_path), read_only=True)

    def one(sql: str) -> object:
        try:
            return con.execute(sql).fetchall()[0][0]
        except duckdb.Error:
            return None

    print("\nSummary:")
    print(f"  events loaded        {one('select count(*) from raw.events')}")
    print(f"  lines quarantined    {one('select count(*) from raw.quarantine')}")
    print(f"  duplicates dropped   {one('select sum(duplicates) from raw.ingest_manifest')}")
    print(f"  sessions             {one('select count(*) from fct_sessions')}")
    print(f"  customers            {one('select count(*) from dim_customers')}")
    print_experiment_verdict(con)
    con.close()
    versions = sorted(p for p in s.models_dir.glob("2*") if (p / "metrics.json").exists())
    if versions:
        latest = versions[-1]
        table = json.loads((latest / "metrics.json").read_text()).get("table", [])
        dod = json.loads((latest / "dod.json").read_text())
        print(
            f"\n  model {latest.name}: definition of done "
            f"{'PASSED' if dod.get('passed') else 'FAILED'} (candidate {dod.get('candidate')})"
        )
        print(f"  {'model':<22} {'nDCG@10':>8} {'recall@20':>10} {'coverage@20':>12}")
        for row in table:
            if row.get("segment") == "all":
                ndcg, recall, coverage = (
                    fmt_number(row.get(k), ".4f") for k in ("ndcg@10", "recall@20", "coverage@20")
                )
                print(f"  {row['model']:<22} {ndcg:>8} {recall:>10} {coverage:>12}")
        for clause in dod.get("clauses", []):  # every clause, with its 95 % interval
            print(f"  [{clause.get('status', '?'):>7}] {clause_text(clause)}")
        pub = dod.get("publication") or {}
        if pub:  # candidate | baseline (nothing ever passed) | none (the served version stays)
            print(f"  publishes: kind {pub.get('kind')} ({pub.get('model')}): {pub.get('reason')}")
        others = [c for c in dod.get("considered", []) if c["candidate"] != dod.get("candidate")]
        for c in others:  # the other candidates the definition of done gated
            verdict = "passed" if c["passed"] else "failed " + ", ".join(c["failed"])
            print(f"  candidate {c['candidate']} {verdict}")
    print("\nOne real response of the recommendations API (python -m include.serving sample):")
    print(sample.communicate()[0], end="", flush=True)


def print_experiment_verdict(con: Any) -> None:
    """Did it work? The holdout experiment's uplift rows (metrics_experiment_uplift)."""
    import duckdb

    try:
        srm = con.execute(
            "select experiment_id, n_control, n_treatment, observed_control_share, "
            "configured_control_share, srm_flagged from metrics_experiment_srm order by 1"
        ).fetchall()
        rows = con.execute(
            "select experiment_id, metric, control_value, treatment_value, uplift_abs, "
            "uplift_abs_ci_low, uplift_abs_ci_high, is_significant "
            "from metrics_experiment_uplift order by experiment_id, metric_order"
        ).fetchall()
    except duckdb.Error:
        return
    for experiment_id, n_c, n_t, observed, configured, flagged in srm:
        print(
            f"\n  holdout experiment {experiment_id}: {n_c} control / {n_t} treatment visitors "
            f"(control share {observed:.1%}, configured {configured or 0:.0%}): "
            + ("SAMPLE-RATIO MISMATCH, results not trustworthy" if flagged else "split OK")
        )
        print(f"  {'metric':<32} {'control':>9} {'treatment':>9} {'uplift [95 % CI]':>30}")
        for exp, metric, c, t, d, lo, hi, sig in rows:
            if exp != experiment_id or c is None or t is None:
                continue
            verdict = "significant" if sig else "no detectable effect"
            print(f"  {metric:<32} {c:>9.4f} {t:>9.4f} {d:>+9.4f} [{lo:+.4f}, {hi:+.4f}] {verdict}")


def tracking_store_dir() -> str:
    from recsys.tracking import STORE_DIR  # a constant; MLflow itself is not imported

    return STORE_DIR


def print_report_locations() -> None:
    s = get_settings()
    print("\nResults:")
    for label, path in (
        ("data directory", s.data_dir),
        ("raw lake", s.lake_dir),
        ("quarantine", s.quarantine_dir),
        ("warehouse", s.warehouse_path),
        ("data-quality report", s.reports_dir / "data_quality.html"),
        ("Data Docs", s.reports_dir / "data_docs" / "index.html"),
        ("evaluation report", s.reports_dir / "evaluation" / "latest.html"),
        ("business report", s.reports_dir / "business" / "index.html"),
        ("monitoring", s.reports_dir / "monitoring" / "index.html"),
        ("reports", s.reports_dir),
        ("models", s.models_dir),
        ("published recommendations", s.published_dir / "CURRENT"),
        ("MLflow store (make mlflow)", s.data_dir / tracking_store_dir()),
        ("notifications", s.notifications_file),
    ):
        mark = "" if path.exists() else "  (not produced yet)"
        print(f"  {label:<26} {path}{mark}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m include.airflowctl",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "command",
        choices=[
            *("init", "up", "run", "land", "env", "users", "clean", "sync-access"),
            "init-metadata",
            *("up-cluster", "down-cluster"),
        ],
    )
    parser.add_argument("--days", type=int, default=1, help="land: how many days (default 1)")
    parser.add_argument(
        "--here", action="store_true", help="land: write the files here even if Airflow is up"
    )
    parser.add_argument(
        "--dataset", default="simulator", help="run: simulator (default) or a real dataset loader"
    )
    args = parser.parse_args(argv)
    if args.command == "init":
        init()
    elif args.command == "up":
        return up()
    elif args.command == "run":
        return run_pipeline(args.dataset)
    elif args.command == "env":
        for key, value in sorted(airflow_env().items()):
            if key.startswith(("AIRFLOW", "DBT_", "TRASOS_", "GX_")):
                print(f"export {key}={json.dumps(value)}")
    elif args.command == "land":
        return land(args.days, args.here)
    elif args.command == "sync-access":
        sync_access()
    elif args.command == "init-metadata":
        init_metadata()
    elif args.command == "users":
        print_credentials(airflow_env()["AIRFLOW__API__BASE_URL"])
    elif args.command in ("up-cluster", "down-cluster"):
        from include import cluster  # the cluster profile (make up-cluster)

        return cluster.main(["up" if args.command == "up-cluster" else "down"])
    elif args.command == "clean":
        shutil.rmtree(get_settings().airflow_home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
