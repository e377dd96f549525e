"""`make land`: the next simulated day of the same world, deterministic, nothing rewritten."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from include.airflowctl import land
from include.simulator import SimulatorConfig, simulate
from include.tasks.landing import land_next_days, last_landed_date

SMALL = SimulatorConfig(seed=11, days=3, visitors=400, n_items=600, fault_rate=0.01)


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "_simulator" not in p.parts
    }


def customer_ids(path: Path) -> set[str]:
    with gzip.open(path, "rt") as fh:
        return {json.loads(line)["user_id"] for line in fh}


def test_lands_the_next_day_of_the_same_world(data_dir: Path) -> None:
    simulate(SMALL, data_dir)
    landing = data_dir / "landing"
    before = digests(landing)
    assert str(last_landed_date(landing)) == "2026-10-03"

    result = land_next_days(1)

    assert result["dates"] == ["2026-10-04"] and result["files"] > 0
    after = digests(landing)
    assert {k: after[k] for k in before} == before, "an earlier file was rewritten"
    new = sorted(set(after) - set(before))
    assert all("2026-10-04" in k for k in new), new
    assert any(k.startswith("events/date=2026-10-04/") for k in new)
    # The world's last day has snapshots: same catalog, and every customer of day three is
    # still a customer with the same id (the population is the same, not re-drawn).
    snap = "snapshot_date=2026-10-0{}"
    old = customer_ids(landing / "customers" / snap.format(3) / "customers.jsonl.gz")
    now = customer_ids(landing / "customers" / snap.format(4) / "customers.jsonl.gz")
    assert old and old <= now
    assert (landing / "catalog" / snap.format(4) / "items.jsonl.gz").exists()
    log = (landing / "_simulator" / "landed.jsonl").read_text().splitlines()
    assert [json.loads(line)["dates"] for line in log] == [["2026-10-04"]]

    assert land_next_days(2)["dates"] == ["2026-10-05", "2026-10-06"]  # it continues


def test_landing_is_deterministic(tmp_path: Path) -> None:
    """Two fresh processes (as two `make land` calls on two machines would be) simulate the
    same world and land the same next day: byte-identical landing zones."""
    import os
    import subprocess
    import sys

    script = (
        "import sys; from pathlib import Path; "
        "sys.path.insert(0, sys.argv[2]); "
        "from test_landing import SMALL; "
        "from include.simulator import simulate; "
        "from include.tasks.landing import land_next_days; "
        "simulate(SMALL, Path(sys.argv[1])); land_next_days(1)"
    )
    trees = []
    for name in ("a", "b"):
        root = tmp_path / name
        subprocess.run(
            [sys.executable, "-c", script, str(root), str(Path(__file__).parent)],
            env={**os.environ, "TRASOS_DATA_DIR": str(root)},
            check=True,
            capture_output=True,
            timeout=600,
        )
        trees.append(digests(root / "landing"))
    assert len(trees[0]) > 10 and any("date=2026-10-04" in k for k in trees[0])
    assert trees[0] == trees[1]


def test_no_world_to_continue_says_what_to_do(data_dir: Path, capsys) -> None:
    with pytest.raises(FileNotFoundError, match="make run"):
        land_next_days(1)
    assert land(1, here=True) == 2
    assert "make simulate" in capsys.readouterr().err
