"""Where the lake, the quarantine, the models and the published files live: one interface over
a local folder (the default, ``TRASOS_DATA_DIR``) or an S3-compatible object store
(``TRASOS_STORE_URL=s3://bucket/prefix``).

Everything is addressed by a *key* relative to the store's root (``lake/events/event_date=
2026-01-01/part-<load_id>.parquet``, ``published/CURRENT``), so tasks hand each other keys and
versions, never local paths, and any worker can run any task.

Object stores have no rename, so a commit never relies on one: data objects are written first
under names nobody lists yet, and the commit is the last write (a manifest row in the
warehouse, a ``CURRENT`` pointer object). One PUT is atomic: a reader sees the whole object or
none. A crash between the two leaves objects that no manifest or pointer names; the next run
of the same writer removes them. On the local default every write stays what it was
(:mod:`common.fs`: temp file, fsync, ``os.replace``).

The S3 endpoint and credentials come from the environment, never from the repository:
``TRASOS_S3_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL``; unset for AWS itself), and the standard
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_REGION`` (or an instance role).
"""

from __future__ import annotations

import os
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any

from common.fs import atomic_write_bytes, replace_durably

STORE_ENV = "TRASOS_STORE_URL"
ENDPOINT_ENV = "TRASOS_S3_ENDPOINT_URL"
#: URL schemes the store accepts (s3fs registers both)
REMOTE_SCHEMES = ("s3", "s3a")


class StorageConfigError(ValueError):
    """A storage setting is unusable (names the variable and what to set instead)."""


def scheme_of(url: str) -> str | None:
    """``"s3"`` for ``s3://bucket/x``, None for a local path."""
    head, sep, _ = url.partition("://")
    return head.lower() if sep else None


@lru_cache(maxsize=8)
def _s3_filesystem(endpoint: str | None, key_id: str | None) -> Any:
    """One client per endpoint and key (credentials themselves come from the environment)."""
    try:
        import s3fs
    except ImportError as exc:  # the scale extra is not installed
        raise StorageConfigError(
            f"{STORE_ENV} points at an object store, but s3fs is not installed: "
            "run `make setup-scale`"
        ) from exc
    # other processes write too: no listing cache; our own instance per endpoint and key
    kwargs: dict[str, Any] = {"use_listings_cache": False, "skip_instance_cache": True}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    return s3fs.S3FileSystem(**kwargs)


def s3_endpoint() -> str | None:
    return os.environ.get(ENDPOINT_ENV) or os.environ.get("AWS_ENDPOINT_URL") or None


class Store:
    """A root (local folder or ``s3://bucket/prefix``) and the few operations the pipeline
    needs on it. Keys are relative POSIX paths (``lake/events/...``)."""

    def __init__(self, root: str | Path):
        root = str(root)
        scheme = scheme_of(root)
        if scheme is not None and scheme not in REMOTE_SCHEMES:
            raise StorageConfigError(
                f"{STORE_ENV}={root!r}: only s3:// object stores (S3, SeaweedFS, MinIO, ...) or "
                "a local folder are supported"
            )
        self.remote = scheme is not None
        self.root = root.rstrip("/") if self.remote else str(Path(root))
        self.fs: Any = (
            _s3_filesystem(s3_endpoint(), os.environ.get("AWS_ACCESS_KEY_ID"))
            if self.remote
            else None
        )

    def __repr__(self) -> str:
        return f"Store({self.root!r})"

    # addresses -----------------------------------------------------------------------------

    def url(self, key: str) -> str:
        """What DuckDB (with :meth:`register` done) and fsspec read: ``s3://...`` or a path."""
        return f"{self.root}/{key}" if self.remote else str(Path(self.root) / key)

    def local_path(self, key: str) -> Path:
        """The file of ``key`` on the local default (an error on an object store)."""
        if self.remote:
            raise StorageConfigError(f"{key} lives on the object store {self.root}, not on disk")
        return Path(self.root) / key

    def _bucket_path(self, key: str) -> str:
        return self.url(key).split("://", 1)[1]

    def key_of(self, url: str) -> str:
        """Inverse of :meth:`url` for anything under the root."""
        url = str(url)
        if self.remote:
            url = url.split("://", 1)[-1]
            root = self.root.split("://", 1)[1]
        else:
            root = self.root
        return Path(url).relative_to(root).as_posix()

    # reads ---------------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        if self.remote:
            return bool(self.fs.exists(self._bucket_path(key)))
        return (Path(self.root) / key).exists()

    def read_bytes(self, key: str) -> bytes:
        if self.remote:
            try:
                return bytes(self.fs.cat_file(self._bucket_path(key)))
            except FileNotFoundError:
                raise FileNotFoundError(self.url(key)) from None
        return (Path(self.root) / key).read_bytes()

    def size(self, key: str) -> int:
        if self.remote:
            return int(self.fs.size(self._bucket_path(key)))
        return (Path(self.root) / key).stat().st_size

    def read_text(self, key: str) -> str:
        return self.read_bytes(key).decode("utf-8")

    def files(self, prefix: str) -> list[str]:
        """Every object (file) under ``prefix``, as sorted keys (no directories)."""
        if self.remote:
            base = self._bucket_path(prefix)
            if not self.fs.exists(base):
                return []
            bucket_root = self.root.split("://", 1)[1]
            return sorted(Path(p).relative_to(bucket_root).as_posix() for p in self.fs.find(base))
        folder = Path(self.root) / prefix
        if not folder.exists():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in folder.rglob("*") if p.is_file())

    # writes --------------------------------------------------------------------------------

    def write_bytes(self, key: str, data: bytes) -> str:
        """All or nothing: one PUT on an object store, temp file + rename on disk."""
        if self.remote:
            self.fs.pipe_file(self._bucket_path(key), data)
        else:
            atomic_write_bytes(Path(self.root) / key, data)
        return key

    def write_text(self, key: str, text: str) -> str:
        return self.write_bytes(key, text.encode("utf-8"))

    def put_file(self, local: str | Path, key: str, *, sync_dir: bool = True) -> str:
        """Move a finished local file to ``key`` (upload on an object store, then the local
        file is removed; a durable rename on disk)."""
        if self.remote:
            self.fs.put_file(str(local), self._bucket_path(key))
            Path(local).unlink(missing_ok=True)
        else:
            replace_durably(local, Path(self.root) / key, sync_dir=sync_dir)
        return key

    def put_bytes_from(self, local: str | Path, key: str) -> str:
        """Copy a local file to ``key`` (the local file stays)."""
        if self.remote:
            self.fs.put_file(str(local), self._bucket_path(key))
        else:
            atomic_write_bytes(Path(self.root) / key, Path(local).read_bytes())
        return key

    def put_tree(self, local_dir: str | Path, prefix: str) -> list[str]:
        """Copy every file under ``local_dir`` to ``prefix/<relative path>`` (uploads; the local
        folder is kept). Returns the keys written."""
        local_dir = Path(local_dir)
        keys = []
        for p in sorted(local_dir.rglob("*")):
            if p.is_file():
                key = f"{prefix}/{p.relative_to(local_dir).as_posix()}"
                if self.remote:
                    self.fs.put_file(str(p), self._bucket_path(key))
                else:
                    target = Path(self.root) / key
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(p, target)
                keys.append(key)
        return keys

    def get_tree(self, prefix: str, local_dir: str | Path) -> list[Path]:
        """Download every object under ``prefix`` into ``local_dir`` (same relative names)."""
        local_dir = Path(local_dir)
        out = []
        for key in self.files(prefix):
            rel = Path(key).relative_to(prefix)
            target = local_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if self.remote:
                self.fs.get_file(self._bucket_path(key), str(target))
            else:
                shutil.copyfile(Path(self.root) / key, target)
            out.append(target)
        return out

    def remove(self, key: str) -> None:
        if self.remote:
            try:
                self.fs.rm_file(self._bucket_path(key))
            except FileNotFoundError:
                pass
        else:
            (Path(self.root) / key).unlink(missing_ok=True)

    def ensure(self) -> None:
        """The bucket (object store) exists; local folders are made by their writers."""
        if self.remote:
            bucket = self.root.split("://", 1)[1].split("/", 1)[0]
            if not self.fs.exists(bucket):
                self.fs.mkdir(bucket)

    # DuckDB --------------------------------------------------------------------------------

    def register(self, con: Any) -> Any:
        """Let DuckDB connection ``con`` read and write ``s3://`` URLs of this store (fsspec;
        DuckDB's httpfs extension cannot be installed offline). A no-op on disk."""
        if self.remote and not con.filesystem_is_registered(self.fs.protocol[0]):
            con.register_filesystem(self.fs)
        return con


def pull_tree(store: Store, prefix: str, local_dir: Path, pointers: tuple[str, ...] = ()) -> int:
    """Bring ``local_dir`` up to date with ``prefix`` on the store: download every object
    that is missing locally or has another size, and always the ``pointers`` (small files
    rewritten in place, e.g. ``CURRENT``), each atomically. Returns the number downloaded."""
    if not store.remote:
        return 0
    n = 0
    for key in store.files(prefix):
        rel = key[len(prefix) + 1 :]
        target = local_dir / rel
        if rel in pointers or not target.exists() or target.stat().st_size != store.size(key):
            atomic_write_bytes(target, store.read_bytes(key))
            n += 1
    return n


def push_tree(store: Store, local_dir: Path, prefix: str, pointers: tuple[str, ...] = ()) -> int:
    """Upload what changed under ``local_dir`` to ``prefix``: data objects first, then the
    ``pointers`` (the commit: a reader following a pointer finds every object it names).
    Returns the number uploaded."""
    if not store.remote or not local_dir.exists():
        return 0
    remote = {k[len(prefix) + 1 :]: k for k in store.files(prefix)}
    files = [p for p in sorted(local_dir.rglob("*")) if p.is_file() and not p.name.startswith(".")]
    data = [p for p in files if p.relative_to(local_dir).as_posix() not in pointers]
    marks = [p for p in files if p.relative_to(local_dir).as_posix() in pointers]
    n = 0
    for p in data:
        rel = p.relative_to(local_dir).as_posix()
        if rel not in remote or store.size(remote[rel]) != p.stat().st_size:
            store.put_bytes_from(p, f"{prefix}/{rel}")
            n += 1
    for p in marks:
        rel = p.relative_to(local_dir).as_posix()
        if rel not in remote or store.read_bytes(remote[rel]) != p.read_bytes():
            store.write_bytes(f"{prefix}/{rel}", p.read_bytes())
            n += 1
    return n


def store_from_env(data_dir: Path) -> Store:
    """``TRASOS_STORE_URL`` if set, else the local data directory."""
    value = os.environ.get(STORE_ENV)
    if value and scheme_of(value) is None:
        value = str(Path(value).resolve())
    return Store(value or data_dir)
