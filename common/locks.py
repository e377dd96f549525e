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


#: A PostgreSQL DSN: with it set, :func:`exclusive_lock` holds across hosts (an advisory lock
#: in that database) instead of a ``flock`` that only one host sees (Celery workers).
LOCK_DSN_ENV = "TRASOS_LOCK_DSN"


@contextmanager
def cluster_lock(
    path: str | Path,
    *,
    name: str | None = None,
    timeout_s: float = -1,
    what: str = "another process",
    error: type[Exception] = LockTimeout,
    dsn: str | None = None,
) -> Iterator[None]:
    """Hold the lock ``name`` (default: ``path``) for every host that shares the PostgreSQL
    database ``dsn`` (default ``$TRASOS_LOCK_DSN``): a session advisory lock, which the server
    releases when the holder's connection ends, also when its process is SIGKILLed or its host
    is lost. Without a DSN it is :func:`exclusive_lock` on the file ``path``."""
    dsn = dsn or os.environ.get(LOCK_DSN_ENV)
    if not dsn:
        with exclusive_lock(path, timeout_s=timeout_s, what=what, error=error):
            yield
        return
    name = name or str(path)
    import hashlib
    import time

    import psycopg2

    key = int.from_bytes(hashlib.sha256(str(name).encode()).digest()[:8], "big", signed=True)
    con = psycopg2.connect(dsn, application_name=f"trasos-lock pid {os.getpid()}")
    con.autocommit = True
    try:
        deadline = None if timeout_s < 0 else time.monotonic() + timeout_s
        with con.cursor() as cur:
            while True:
                cur.execute("select pg_try_advisory_lock(%s)", (key,))
                if cur.fetchone()[0]:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    cur.execute(
                        "select a.application_name, a.client_addr from pg_locks l "
                        "join pg_stat_activity a using (pid) where l.locktype = 'advisory' "
                        "and l.granted and l.classid::bigint = %s and l.objid::bigint = %s",
                        ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF),
                    )
                    row = cur.fetchone()
                    holder = f"{row[0]} at {row[1] or 'local'}" if row else "?"
                    raise error(
                        f"{what} ({holder}) holds the cluster lock {name} for more than "
                        f"{timeout_s:.0f} s; let it finish, or stop that process"
                    )
                time.sleep(0.2)
        yield
    finally:
        con.close()  # ends the session: the server drops the advisory lock
