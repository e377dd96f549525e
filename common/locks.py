"""Cross-process locks on one host (``filelock``): one ingestion, one gate writer, one dbt ls.

A lock file is released when its holder exits, even on SIGKILL (the OS drops the ``flock``).
Waiting is bounded: after ``timeout_s`` a :class:`LockTimeout` names the lock, the holder's pid
when known, and what to do.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock
from filelock import Timeout as _Timeout


class LockTimeout(RuntimeError):
    """Raised when a lock could not be taken within its timeout."""


@contextmanager
def exclusive_lock(
    path: str | Path,
    *,
    timeout_s: float = -1,
    what: str = "another process",
    error: type[Exception] = LockTimeout,
) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (``timeout_s`` < 0: wait forever).

    The holder's pid is written next to the lock (``<path>.pid``) so a timeout can name it;
    the timeout raises ``error`` (a caller's own exception type, e.g. ``IngestLockedError``).
    The lock file itself is kept: deleting it on release would let a waiter that opened the
    old file and a newcomer that creates a new one both "hold" the lock.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pid_file = path.with_name(path.name + ".pid")
    lock = FileLock(str(path), preserve_lock_file=True, fallback_to_soft=False)
    try:
        lock.acquire(timeout=timeout_s, poll_interval=0.2)
    except _Timeout:
        holder = pid_file.read_text().strip() if pid_file.exists() else ""
        raise error(
            f"{what} (pid {holder or '?'}) holds {path} for more than {timeout_s:.0f} s; "
            "let it finish, or stop that process"
        ) from None
    try:
        pid_file.write_text(str(os.getpid()))
        yield
    finally:
        lock.release()
