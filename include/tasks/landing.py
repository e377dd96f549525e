"""Land the next simulated day(s) in the landing zone: day two, day three ... of the same world.

The simulated world is the one the landing zone already holds (``make run`` / ``make simulate``
wrote it, with its config in ``landing/_simulator/ground_truth/truth.json``). Landing ``n``
more days re-simulates that world, same seed, start, population and catalog sizes, fault rate,
up to ``n`` days after the last date already landed, and copies only the files of the new
dates into ``landing/``: event batches (``events/date=.../``) and the catalog and customer
snapshots of those dates (the world's last day always has one). Files already landed are never
rewritten. Deterministic: the same landing zone and ``n`` give the same bytes. Each landing is
one line of ``landing/_simulator/landed.jsonl`` (ingestion ignores ``_`` paths).

The registered customers and the catalog come from the same seed; a longer world differs only
in what depends on its length (new visitors' arrival days, collection drop days).

Usage::

    python -m include.tasks.landing --days 1   # `make land DAYS=1`

When Airflow answers (``make up``), the command triggers the DE DAG ``simulator_land_day``
as the ``de`` user instead, so the landing and the chain it starts (``events_ingest`` ->
``events_transform`` -> ...) are runs in the UI; otherwise it lands the files itself and
``events_ingest`` loads them on its next run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from dataclasses import fields
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from include.settings import get_settings

TRUTH = Path("_simulator") / "ground_truth" / "truth.json"
LANDED_LOG = Path("_simulator") / "landed.jsonl"
LAND_DAG = "simulator_land_day"


def last_landed_date(landing: Path) -> date | None:
    """The latest ``events/date=YYYY-MM-DD`` folder that holds a file, or None."""
    dates = [
        date.fromisoformat(d.name.removeprefix("date="))
        for d in (landing / "events").glob("date=*")
        if d.is_dir() and any(p.is_file() for p in d.rglob("*"))
    ]
    return max(dates) if dates else None


def _copy_new(src: Path, dst: Path) -> int:
    """Copy every file under ``src`` to the same place under ``dst``; each appears atomically.

    A file is written under a hidden temporary name and renamed, as the simulator does, so
    an ingestion running meanwhile never reads half a file. Returns the number of files.
    """
    n = 0
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        target = dst / path.relative_to(src)
        if target.exists():
            raise FileExistsError(f"{target} was already landed; nothing is rewritten")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)
        n += 1
    return n


def land_next_days(days: int = 1) -> dict[str, Any]:
    """Land the next ``days`` simulated days after the last date in the landing zone.

    Returns what was landed: ``{"dates": [...], "files": n, "world_days": n}``.
    Raises FileNotFoundError when the landing zone holds no simulated world to continue.
    """
    from include.simulator import SimulatorConfig, simulate

    if days < 1:
        raise ValueError(f"days must be >= 1, not {days}")
    s = get_settings()
    landing = s.landing_dir
    truth = landing / TRUTH
    last = last_landed_date(landing)
    if not truth.exists() or last is None:
        raise FileNotFoundError(
            f"no simulated world to continue in {landing} (no {TRUTH} or no event files): "
            "`make run` or `make simulate` starts one; `make land` adds days to it"
        )
    config = json.loads(truth.read_text())["config"]
    known = {f.name for f in fields(SimulatorConfig)}
    config = {k: v for k, v in config.items() if k in known}
    start = date.fromisoformat(config["start"])
    world_days = (last - start).days + 1 + days
    new_dates = [last + timedelta(days=i) for i in range(1, days + 1)]
    cfg = SimulatorConfig(
        **{
            **config,
            "start": start,
            "days": world_days,
            "conversion_band": tuple(config["conversion_band"]),
            "workers": 1,
        }
    )
    s.state_dir.mkdir(parents=True, exist_ok=True)
    n_files = 0
    with tempfile.TemporaryDirectory(prefix="land-", dir=s.state_dir) as tmp:
        simulate(cfg, Path(tmp))
        sim = Path(tmp) / "landing"
        for day in new_dates:
            stamp = day.isoformat()
            for src, dst in (
                (sim / "events" / f"date={stamp}", landing / "events" / f"date={stamp}"),
                (sim / "catalog" / f"snapshot_date={stamp}", landing / "catalog" / f"snapshot_date={stamp}"),
                (sim / "customers" / f"snapshot_date={stamp}", landing / "customers" / f"snapshot_date={stamp}"),
            ):  # fmt: skip
                if src.is_dir():
                    n_files += _copy_new(src, dst)
    result = {
        "dates": [d.isoformat() for d in new_dates],
        "files": n_files,
        "world_days": world_days,
        "landed_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    with (landing / LANDED_LOG).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(result) + "\n")
    return result


def _trigger_in_airflow(days: int) -> str | None:
    """Trigger ``simulator_land_day`` as ``de`` when Airflow answers; its run id, else None."""
    import httpx

    from include.airflowctl import airflow_env, ensure_passwords

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
            "land the files without Airflow: python -m include.tasks.landing --here"
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m include.tasks.landing", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--days", type=int, default=1, help="how many days to land (default 1)")
    p.add_argument("--here", action="store_true",
                   help="land the files in this process even when Airflow is up")  # fmt: skip
    args = p.parse_args(argv)
    if not args.here:
        run_id = _trigger_in_airflow(args.days)
        if run_id:
            print(f"Airflow is up: triggered {LAND_DAG} ({run_id}) as de; it lands "
                  f"{args.days} day(s) and events_ingest -> events_transform -> ... follow "
                  "by themselves (watch them in the UI)")  # fmt: skip
            return 0
    try:
        result = land_next_days(args.days)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"landed {', '.join(result['dates'])}: {result['files']} files in "
          f"{get_settings().landing_dir}")  # fmt: skip
    print("events_ingest loads them on its next run (hourly once `make up` runs it, or "
          "trigger it in the UI); the DAGs downstream follow by themselves")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
