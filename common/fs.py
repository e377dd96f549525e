"""Atomic writes: a reader sees the old file (or folder) or the new one, never half of one.

Every writer of the platform goes through these: a temp name in the same directory, flushed,
then ``os.replace`` (files) or a rename (folders). A process killed halfway leaves at most a
dot-prefixed temp entry, which the next write of the same target removes or ignores.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | Path, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temp path next to ``path``; on success it replaces ``path`` atomically.

    The caller writes the temp path with any writer (``df.to_parquet(tmp)``, DuckDB's
    ``COPY ... TO``, ``open(tmp, "wb")``). On an exception the temp file is removed and
    ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_with(path: str | Path, write: Callable[[Path], Any], suffix: str = ".tmp") -> Path:
    """Call ``write(tmp)`` and move ``tmp`` onto ``path`` atomically (e.g. ``df.to_parquet``)."""
    with atomic_path(path, suffix=suffix) as tmp:
        write(tmp)
    return Path(path)


@contextmanager
def atomic_dir(path: str | Path, *, replace: bool = True) -> Iterator[Path]:
    """Yield an empty staging folder; on success it becomes ``path`` (complete or absent).

    With ``replace`` an existing ``path`` is swapped out (renamed aside, then removed), so a
    crash between the two renames leaves either the old or the new folder under a known name.
    Without it, an existing ``path`` raises ``FileExistsError`` and the staging is dropped.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield staging
        if path.exists():
            if not replace:
                raise FileExistsError(f"{path} exists already; it is never overwritten")
            aside = path.with_name(f".{path.name}.old")
            shutil.rmtree(aside, ignore_errors=True)
            path.rename(aside)
            staging.rename(path)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            staging.rename(path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
