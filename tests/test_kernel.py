"""The kernel (common/) and the task-failure rule: atomic writes, locks, no retry on a
deterministic failure."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.errors import DeterministicFailure
from common.fs import atomic_dir, atomic_path, atomic_write_text
from common.locks import LockTimeout, exclusive_lock


def test_atomic_file_keeps_umask_permissions_and_leaves_nothing_on_failure(tmp_path: Path):
    target = tmp_path / "a" / "f.json"
    atomic_write_text(target, "one")
    old = os.umask(0o022)
    os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~old  # not mkstemp's 0600
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed halfway")
    assert target.read_text() == "one"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.json"]


def test_atomic_dir_is_complete_or_absent_and_never_overwritten_without_replace(tmp_path: Path):
    final = tmp_path / "v1"
    with pytest.raises(RuntimeError), atomic_dir(final, replace=False) as tmp:
        (tmp / "part").write_text("x")
        raise RuntimeError("killed halfway")
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(final, replace=False) as tmp:
        (tmp / "part").write_text("first")
    with pytest.raises(FileExistsError), atomic_dir(final, replace=False) as tmp:
        (tmp / "part").write_text("second")
    assert (final / "part").read_text() == "first"
    with atomic_dir(final) as tmp:  # replace: swapped in whole
        (tmp / "other").write_text("new")
    assert [p.name for p in final.iterdir()] == ["other"]
    assert [p.name for p in tmp_path.iterdir()] == ["v1"]


class Busy(RuntimeError):
    pass


def test_lock_timeout_names_the_holder_and_raises_the_callers_error(tmp_path: Path):
    lock = tmp_path / ".x.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from common.locks import exclusive_lock\n"
            f"with exclusive_lock({str(lock)!r}):\n"
            "    print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        with pytest.raises(Busy, match=f"another writer \\(pid {holder.pid}\\) holds"):
            with exclusive_lock(lock, timeout_s=0.5, what="another writer", error=Busy):
                pass
        assert 0.4 < time.monotonic() - t0 < 5
        with pytest.raises(LockTimeout):
            with exclusive_lock(lock, timeout_s=0.2):
                pass
    finally:
        holder.kill()  # SIGKILL: the OS releases the lock
        holder.wait()
    with exclusive_lock(lock, timeout_s=5):
        assert lock.exists()


def test_deterministic_failures_fail_without_retry_with_their_details():
    from airflow.sdk.exceptions import AirflowFailException

    from expectations.gate import GateFailed
    from include.tasks import fail_fast
    from include.tasks.ingest import BatchNotReconciled
    from include.tasks.training import DefinitionOfDoneFailed

    assert issubclass(GateFailed, DeterministicFailure)
    assert issubclass(DefinitionOfDoneFailed, DeterministicFailure)
    assert issubclass(BatchNotReconciled, DeterministicFailure)

    class DodFailed(DeterministicFailure):
        details = {"clauses": ["ndcg"]}
        docs_url = "file:///report.html"
        owner_role = "DS"

    @fail_fast
    def below_the_bar():
        raise DodFailed("below the bar")

    with pytest.raises(AirflowFailException, match="DodFailed: below the bar") as info:
        below_the_bar()
    err = info.value
    assert (err.details, err.docs_url, err.owner_role) == (
        {"clauses": ["ndcg"]},
        "file:///report.html",
        "DS",
    )
    assert isinstance(err.__cause__, DodFailed)

    @fail_fast
    def disk_full():
        raise OSError("disk full")

    with pytest.raises(OSError):  # transient: keeps its retries
        disk_full()
