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

Called by the DE DAG ``simulator_land_day`` and by ``make land DAYS=n``
(``python -m include.airflowctl land``), which triggers that DAG when Airflow answers and
lands the files itself otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import fields
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from include.settings import get_settings

TRUTH = Path("_simulator") / "ground_truth" / "truth.json"
LANDED_LOG = Path("_simulator") / "landed.jsonl"


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


def land_experiment_week(
    days: int | None = None, effect: float | None = None, seed: int | None = None
) -> dict[str, Any]:
    """Land the holdout experiment's week after the last landed date (the closed loop).

    The world's people and taste come from its ground truth, the lists shown from the published
    version via the API's code (:mod:`include.simulator.experiment`); the experiment is the
    active one (``common.experiment``). Its planted effect's ground truth goes next to the
    simulator's (``_simulator/ground_truth/experiment-<id>.json``). Returns what was landed.
    """
    from common.experiment import active_experiment
    from include.simulator.experiment import ExperimentWeekConfig, simulate_experiment_week

    s = get_settings()
    landing = s.landing_dir
    experiment = active_experiment()
    done = landing / TRUTH.parent / f"experiment-{experiment.experiment_id}.json"
    if done.exists():  # idempotent: an experiment's week is landed once
        truth = json.loads(done.read_text())
        return {
            "dates": [truth["start"], truth["end"]],
            "files": 0,
            "experiment_id": experiment.experiment_id,
            "planted": truth["planted"],
            "already_landed": True,
        }
    last = last_landed_date(landing)
    if last is None:
        raise FileNotFoundError(
            f"no landed days in {landing}: the experiment week follows the first period "
            "(`make run` simulates it)"
        )
    defaults = ExperimentWeekConfig()
    cfg = ExperimentWeekConfig(
        days=days or defaults.days,
        effect=defaults.effect if effect is None else effect,
        seed=defaults.seed if seed is None else seed,
    )
    start = last + timedelta(days=1)
    truth = simulate_experiment_week(landing, s.published_dir, experiment, start, cfg)
    result = {
        "dates": [(start + timedelta(days=i)).isoformat() for i in range(cfg.days)],
        "files": truth["files"],
        "experiment_id": truth["experiment"]["experiment_id"],
        "planted": truth["planted"],
        "landed_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    with (landing / LANDED_LOG).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(result) + "\n")
    return result
