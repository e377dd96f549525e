"""One ingestion at a time, even outside Airflow's pool (CLI, tests, a second scheduler), and
across hosts when ``TRASOS_LOCK_DSN`` names a PostgreSQL database (Celery workers)."""

from __future__ import annotations

from contextlib import AbstractContextManager

from common.locks import cluster_lock
from include.ingest.model import IngestLockedError
from include.settings import Settings


def ingest_lock(settings: Settings, timeout_s: float) -> AbstractContextManager[None]:
    """Exclusive lock on ``<data>/.ingest.lock`` (released when the holder dies, even on
    SIGKILL), or the same name as a PostgreSQL advisory lock with ``TRASOS_LOCK_DSN``; raises
    :class:`IngestLockedError` naming the holder after ``timeout_s``."""
    return cluster_lock(
        settings.data_dir / ".ingest.lock",
        name=f"trasos ingest {settings.store.root}",  # one per lake, whichever host runs it
        timeout_s=timeout_s,
        what="another ingestion",
        error=IngestLockedError,
    )
