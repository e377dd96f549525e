"""Fixtures of the scale-out tests: real SeaweedFS, PostgreSQL, Redis and Celery on loopback,
each stopped at the end of its scope, also when a test fails."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from include.simulator import SimulatorConfig, simulate

#: the simulated input of every scale test: 2 days, 200 visitors, 5 % faults (~6k lines)
SIMULATION = SimulatorConfig(days=2, visitors=200, seed=7, fault_rate=0.05)


def traversable_dir(prefix: str) -> Path:
    """A fresh folder every user can traverse (PostgreSQL runs as ``nobody`` under root)."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    d.chmod(0o755)
    return d


@pytest.fixture(scope="session")
def simulated_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scale-sim")
    simulate(SIMULATION, out)
    return out / "landing"


@pytest.fixture(scope="module")
def s3_env() -> Iterator[dict[str, str]]:
    """A SeaweedFS S3 server for this module; yields the client environment."""
    from include.cluster import object_store

    with object_store(traversable_dir("trasos-s3-")) as env:
        yield env


@pytest.fixture
def on_s3(s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This test's store: a fresh prefix of the bucket (so tests do not see each other)."""
    env = {**s3_env, "TRASOS_STORE_URL": f"{s3_env['TRASOS_STORE_URL']}/{os.urandom(4).hex()}"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
