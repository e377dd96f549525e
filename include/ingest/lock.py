"""One ingestion at a time, even outside Airflow's pool (CLI, tests, a second scheduler)."""

from __future__ import annotations

from contextlib import AbstractContextManager

from common.locks import exclusive_lock
from include.ingest.model import IngestLockedError
from include.settings import Settings


def ingest_lock(settings: Settings, timeout_s: float) -> AbstractContextManager[None]:
    """Exclusive lock on ``<data>/.ingest.lock`` (released when the holder dies, even on
    SIGKILL); raises :class:`IngestLockedError` naming the holder after ``timeout_s``."""
    return exclusive_lock(
        settings.data_dir / ".ingest.lock",
        timeout_s=timeout_s,
        what="another ingestion",
        error=IngestLockedError,
    )
