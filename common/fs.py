"""Atomic writes: a reader sees the old file (or folder) or the new one, never half of one.

Every writer of the platform goes through these: a temp name in the same directory, flushed,
then ``os.replace`` (files) or a rename (folders). A process killed halfway leaves at most a
dot-prefixed temp entry, which the next write of the same target removes or ignores.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _temp_name(path: Path, suffix: str) -> Path:
    """A fresh dot-prefixed name next to ``path`` (ignored by the landing scan and globbing)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{suffix}")


def fsync_file(path: str | Path) -> None:
    """Flush a file's bytes to disk (before it is renamed into place)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | Path) -> None:
    """Flush a folder's entries (so a rename into it survives a power cut)."""
    fsync_file(path)


def replace_durably(
    tmp: str | Path, path: str | Path, *, fsync: bool = True, sync_dir: bool = True
) -> Path:
    """Move the finished file ``tmp`` onto ``path``: fsync, ``os.replace``, fsync the folder.

    For a writer that stages many files and commits them together (ingestion), pass
    ``sync_dir=False`` and call :func:`fsync_dir` once per folder afterwards. ``fsync=False``
    (generated test data: the simulator, the dataset loaders) keeps the all-or-nothing
    rename for other processes but not durability across a power cut.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fsync:
        fsync_file(tmp)
    os.replace(tmp, path)
    if fsync and sync_dir:
        fsync_dir(path.parent)
    return path


@contextmanager
def atomic_path(path: str | Path, *, suffix: str = ".tmp", fsync: bool = True) -> Iterator[Path]:
    """Yield a temp path next to ``path``; on success it replaces ``path`` atomically.

    The caller writes the temp path with any writer (``df.to_parquet(tmp)``, DuckDB's
    ``COPY ... TO``, ``open(tmp, "wb")``). On an exception the temp file is removed and
    ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _temp_name(path, suffix)
    os.close(os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # umask applies
    try:
        yield tmp_path
        replace_durably(tmp_path, path, fsync=fsync)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path, fsync=fsync) as tmp:
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
    staging = _temp_name(path, ".tmp")
    staging.mkdir()  # umask applies (tempfile.mkdtemp would make it 0700)
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
