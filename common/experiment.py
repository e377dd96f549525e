"""The holdout experiment: its configuration and the assignment of visitors to variants.

One home for the configuration: dbt's seed :data:`EXPERIMENTS_SEED` (one row per experiment:
``experiment_id``, ``control_share``, ``salt``, ``return_window_days``), parsed here, so the API,
the simulator and the DA marts (which join the seed for the sample-ratio check) read the same
values. The active experiment is the seed's last row, or the row named by
``TRASOS_EXPERIMENT_ID``.

Assignment is a salted hash of the stitched visitor id (``coalesce(user_id, anonymous_id)``,
as dbt's ``int_identities_stitched`` defines it): the first 8 bytes of
``sha256("<salt>:<experiment_id>:<visitor_id>")`` as a fraction of 2**64; below
``control_share`` is ``control`` (sees the shop's non-personal default list), the rest
``treatment`` (sees recommendations). Stable (no state, the same id always gets the same
variant), independent between experiments (the id and salt are hashed in), and uniform.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

EXPERIMENTS_SEED = Path(__file__).resolve().parent.parent / "dbt_project/seeds/experiments.csv"
EXPERIMENT_ENV = "TRASOS_EXPERIMENT_ID"

CONTROL = "control"
TREATMENT = "treatment"
VARIANTS: tuple[str, ...] = (CONTROL, TREATMENT)
#: Event fields (under ``context``) that carry the experiment on every event of a visit.
EXPERIMENT_ID_FIELD = "experiment_id"
VARIANT_FIELD = "variant"

_SCALE = float(1 << 64)


@dataclass(frozen=True)
class Experiment:
    """One experiment of the seed. ``return_window_days`` is N of "returned within N days"."""

    experiment_id: str
    control_share: float = 0.1
    salt: str = ""
    return_window_days: int = 3

    def __post_init__(self) -> None:
        if not 0.0 < self.control_share < 1.0:
            raise ValueError(
                f"experiment {self.experiment_id!r}: control_share must be in (0, 1), "
                f"not {self.control_share} (fix {EXPERIMENTS_SEED.name})"
            )
        if self.return_window_days < 1:
            raise ValueError(
                f"experiment {self.experiment_id!r}: return_window_days must be >= 1 "
                f"(fix {EXPERIMENTS_SEED.name})"
            )

    def bucket(self, visitor_id: str) -> float:
        """The visitor's uniform position in [0, 1) for this experiment."""
        key = f"{self.salt}:{self.experiment_id}:{visitor_id}".encode()
        return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / _SCALE

    def assign(self, visitor_id: str) -> str:
        """``control`` or ``treatment`` for the stitched visitor id (stable)."""
        return CONTROL if self.bucket(visitor_id) < self.control_share else TREATMENT


def read_experiments(path: Path = EXPERIMENTS_SEED) -> tuple[Experiment, ...]:
    """Every experiment of the seed, in its order."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{path} names no experiment: add a row (experiment_id, control_share...)")
    return tuple(
        Experiment(
            experiment_id=r["experiment_id"],
            control_share=float(r["control_share"]),
            salt=r["salt"],
            return_window_days=int(r["return_window_days"]),
        )
        for r in rows
    )


def active_experiment(path: Path = EXPERIMENTS_SEED) -> Experiment:
    """The running experiment: ``TRASOS_EXPERIMENT_ID``'s row, else the seed's last row."""
    experiments = read_experiments(path)
    wanted = os.environ.get(EXPERIMENT_ENV)
    if not wanted:
        return experiments[-1]
    for e in experiments:
        if e.experiment_id == wanted:
            return e
    raise ValueError(
        f"{EXPERIMENT_ENV}={wanted!r} is not in {path}: use one of "
        f"{[e.experiment_id for e in experiments]} or add it to the seed"
    )
