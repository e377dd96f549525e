"""Load one published model version into compact in-memory indexes, and follow ``CURRENT``.

A :class:`Snapshot` is immutable. Its recommendation rows are sorted by
``(list_type, key_id, rank)`` and rendered once, at load time, into JSON fragments
(``{"rank":1,"item_id":"I1","score":0.93},``) stored back to back in one ``bytes`` blob
with a numpy array of row offsets. A list is one ``dict`` lookup (key -> first and last
row), and its first ``k`` items are one slice of the blob: O(1), no per-item Python work
and no JSON encoding on the request path.

:class:`ModelStore` holds the current snapshot in a single attribute. A background thread
reads ``<published_dir>/CURRENT`` every ``poll_interval`` seconds; when it names another
version, that version is loaded *completely* (and validated) off to the side, then the
attribute is rebound in one assignment. Requests take the reference once, so they see either
the old or the new model, never a mix. A failed load logs the error and keeps the old one.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from common.contracts import RECOMMENDATION_COLUMNS
from common.fs import atomic_dir, atomic_write_text
from include.serving.session import SessionIndex, load_session_index
from include.settings import get_settings
from include.storage import Store

log = logging.getLogger("trasos.serving")

LIST_TYPES: tuple[str, ...] = ("user", "also_bought", "cold_start")
COLD_START_DEFAULT = "all"  # the global cold-start list; other segments: "category:<name>"
# Keys accepted as the global cold-start list, in order of preference. 'popular' is what
# recsys.scoring writes today (next to 'trending' and 'category:<name>').
GLOBAL_COLD_START_KEYS: tuple[str, ...] = (COLD_START_DEFAULT, "popular")
CURRENT_FILE = "CURRENT"
RECOMMENDATIONS_FILE = "recommendations.parquet"
MODEL_FILE = "model.json"

# Ids accepted on the API (user_id, item_id). The first character is never '.', so no id
# can be the path segment '.' or '..'.
ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}$"
# A model_version is a directory name under published_dir.
VERSION_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:+-]{0,127}$"
_VERSION_RE = re.compile(VERSION_PATTERN)


class ModelLoadError(Exception):
    """A published version is missing, unreadable or breaks the contract."""


def iso_utc(value: Any) -> str:
    """ISO-8601 in UTC with a ``Z`` (naive values are UTC by the platform's convention)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, datetime):
        raise ValueError(f"not a timestamp: {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def read_current(published_dir: Path) -> str | None:
    """The version named by ``CURRENT``, or None when nothing is published yet."""
    try:
        text = (published_dir / CURRENT_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if not text:
        return None
    if not _VERSION_RE.match(text):
        raise ModelLoadError(f"{published_dir / CURRENT_FILE} holds an invalid version {text!r}")
    return text


@dataclass(frozen=True, slots=True, eq=False)
class Snapshot:
    """One loaded model version. Immutable; shared by every request that picked it up."""

    model_version: str
    trained_at: str  # ISO-8601 UTC 'Z'
    generated_at: str  # ISO-8601 UTC 'Z'
    candidate: str
    metrics: dict[str, float]
    loaded_at: str
    path: Path
    blob: bytes  # JSON fragments of all rows, each ending with ','
    offsets: np.ndarray  # int64, len(rows) + 1: row i is blob[offsets[i]:offsets[i+1]]
    # list_type -> key_id -> first row << 32 | row count. Plain ints, not tuples: a dict of
    # str -> int is not tracked by the garbage collector, so 100k+ keys add no GC pauses.
    index: dict[str, dict[str, int]]
    load_seconds: float = 0.0
    cold_start_key: str = COLD_START_DEFAULT  # the list unknown users get
    kind: str = "candidate"  # or "baseline": no candidate ever passed (kind_reason says why)
    kind_reason: str = ""
    # b',"model_version":"...","generated_at":"..."', spliced into every list response.
    version_fields: bytes = field(default=b"")
    session: SessionIndex | None = None  # the session model, when the version has one

    @property
    def rows(self) -> int:
        return len(self.offsets) - 1

    def count(self, list_type: str) -> int:
        return len(self.index.get(list_type, ()))

    def has(self, list_type: str, key: str) -> bool:
        return key in self.index.get(list_type, {})

    def items_json(self, list_type: str, key: str, k: int) -> bytes | None:
        """The JSON array body (without brackets) of the first ``k`` items, or None."""
        span = self.index[list_type].get(key)
        if span is None:
            return None
        start = span >> 32
        stop = start + min(span & 0xFFFFFFFF, k)
        offsets = self.offsets
        return self.blob[int(offsets[start]) : int(offsets[stop]) - 1]

    def first_key(self, list_type: str) -> str | None:
        keys = self.index.get(list_type)
        return next(iter(keys)) if keys else None


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ModelLoadError(message)


_NUMPY_TYPES = {
    pa.int32(): np.int32,
    pa.int64(): np.int64,
    pa.float32(): np.float32,
    pa.float64(): np.float64,
}


def _numpy(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Zero-copy view of a null-free numeric array (Array.to_numpy would import pandas)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    dtype = np.dtype(_NUMPY_TYPES[values.type])
    return np.frombuffer(
        values.buffers()[1], dtype=dtype, count=len(values), offset=values.offset * dtype.itemsize
    )


def _dictionary(column: pa.ChunkedArray, name: str) -> tuple[np.ndarray, pa.StringArray]:
    """(codes, distinct values) of a string column read as dictionary (one dictionary)."""
    try:
        if not pa.types.is_dictionary(column.type):
            column = pc.dictionary_encode(pc.cast(column, pa.string()))
        column = column.unify_dictionaries() if column.num_chunks > 1 else column
        array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        array = pa.DictionaryArray.from_arrays(
            array.indices, pc.cast(array.dictionary, pa.string())
        )
    except pa.ArrowException as exc:
        raise ModelLoadError(
            f"{RECOMMENDATIONS_FILE}: {name} is not a string column: {exc}"
        ) from exc
    return _numpy(array.indices).astype(np.int64), array.dictionary


def _used(codes: np.ndarray, values: pa.StringArray) -> list[str]:
    return [values[int(i)].as_py() for i in np.flatnonzero(np.bincount(codes))]


def _json_strings(values: pa.StringArray) -> pa.StringArray:
    """JSON string literals (escape backslash and quote; control characters are refused)."""
    if pc.any(pc.match_substring_regex(values, "[\\x00-\\x1f]")).as_py():
        raise ModelLoadError(f"{RECOMMENDATIONS_FILE}: item_id values hold control characters")
    escaped = pc.replace_substring(pc.replace_substring(values, "\\", "\\\\"), '"', '\\"')
    return pc.binary_join_element_wise('"', escaped, '"', "")


def _read_model_json(vdir: Path, version: str) -> dict[str, Any]:
    try:
        info = json.loads((vdir / MODEL_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelLoadError(f"{vdir / MODEL_FILE} does not exist") from exc
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{vdir / MODEL_FILE} is not readable JSON: {exc}") from exc
    _check(isinstance(info, dict), f"{vdir / MODEL_FILE} is not a JSON object")
    named = info.get("model_version", info.get("version"))  # 'version': recsys.scoring
    _check(
        named == version,
        f"{vdir / MODEL_FILE} says model_version={named!r}, the directory is {version!r}",
    )
    _check("trained_at" in info, f"{vdir / MODEL_FILE} has no trained_at")
    return info


def load_version(published_dir: Path, version: str) -> Snapshot:
    """Read and validate ``<published_dir>/<version>`` into a :class:`Snapshot`.

    Raises :class:`ModelLoadError` when the files are missing or break the contract: a
    column missing, nulls in key columns, an unknown list_type, a model_version that is
    not ``version``, non-finite scores, ranks < 1 or repeated within a list, or no global
    cold-start list (``list_type='cold_start'``, ``key_id`` 'all' or else 'popular': unknown
    users need it). ``model.json`` may spell ``model_version``/``candidate`` as
    ``version``/``kind`` (what ``recsys.scoring.publish`` writes).
    """
    started = time.perf_counter()
    _check(bool(_VERSION_RE.match(version)), f"invalid model_version {version!r}")
    vdir = published_dir / version
    info = _read_model_json(vdir, version)
    try:
        # Strings as dictionaries: no per-row string objects, and integer codes for free.
        # One thread: the load runs beside live requests.
        # (ParquetFile, not read_table: no dataset machinery, 10x less CPU here.)
        parquet = pq.ParquetFile(
            vdir / RECOMMENDATIONS_FILE,
            read_dictionary=["list_type", "key_id", "item_id", "model_version"],
        )
        missing = [c for c in RECOMMENDATION_COLUMNS if c not in parquet.schema_arrow.names]
        _check(not missing, f"{RECOMMENDATIONS_FILE} lacks columns {missing}")
        table = parquet.read(columns=list(RECOMMENDATION_COLUMNS), use_threads=False)
    except FileNotFoundError as exc:
        raise ModelLoadError(f"{vdir / RECOMMENDATIONS_FILE} does not exist") from exc
    except (OSError, pa.ArrowException) as exc:
        raise ModelLoadError(f"{vdir / RECOMMENDATIONS_FILE} is not readable: {exc}") from exc

    _check(table.num_rows > 0, f"{RECOMMENDATIONS_FILE} has no rows")
    for name in ("list_type", "key_id", "rank", "item_id", "score", "model_version"):
        nulls = table[name].null_count
        _check(nulls == 0, f"{RECOMMENDATIONS_FILE}: {nulls} null values in {name}")
    list_codes, list_values = _dictionary(table["list_type"], "list_type")
    key_codes, key_values = _dictionary(table["key_id"], "key_id")
    item_codes, item_values = _dictionary(table["item_id"], "item_id")
    version_codes, version_values = _dictionary(table["model_version"], "model_version")
    bad_types = sorted(set(_used(list_codes, list_values)) - set(LIST_TYPES))
    _check(not bad_types, f"unknown list_type values {bad_types[:5]}")
    versions = _used(version_codes, version_values)
    _check(versions == [version], f"model_version column holds {versions[:5]}, not [{version!r}]")
    try:
        rank = _numpy(pc.cast(table["rank"], pa.int64()))
        score = table["score"]
        score = score if pa.types.is_float32(score.type) else pc.cast(score, pa.float64())
        score = _numpy(score)
        generated_max = pc.max(table["generated_at"]).as_py()
    except pa.ArrowException as exc:
        raise ModelLoadError(f"{RECOMMENDATIONS_FILE}: wrong column type: {exc}") from exc
    _check(bool(np.isfinite(score).all()), "score holds NaN or infinite values")
    _check(int(rank.min()) >= 1, "rank must start at 1")
    del table

    # One integer per list, (list_type, key_id); sort rows by it, then by rank.
    n = len(rank)
    group = list_codes * len(key_values) + key_codes
    order = np.lexsort((rank, group))
    group, rank, item_codes, score = group[order], rank[order], item_codes[order], score[order]
    new_group = np.empty(n, dtype=bool)
    new_group[0] = True
    np.not_equal(group[1:], group[:-1], out=new_group[1:])
    repeated = np.flatnonzero(~new_group[1:] & (rank[1:] == rank[:-1]))
    if len(repeated):
        row = int(repeated[0])
        lt, key = divmod(int(group[row]), len(key_values))
        raise ModelLoadError(
            f"rank {rank[row]} repeats in list ({list_values[lt]}, {key_values[key]})"
        )
    starts = np.flatnonzero(new_group)
    ends = np.append(starts[1:], n)

    item_json = _json_strings(item_values)
    fragments = pc.binary_join_element_wise(
        '{"rank":',
        pc.cast(pa.array(rank), pa.string()),
        ',"item_id":',
        pc.take(item_json, pa.array(item_codes)),
        ',"score":',
        pc.cast(pa.array(score), pa.string()),
        "},",
        "",
    )
    fragments = pc.cast(fragments, pa.large_string())
    _, offsets_buf, data_buf = fragments.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[
        fragments.offset : fragments.offset + n + 1
    ]
    base = int(offsets[0])
    blob = data_buf.to_pybytes()[base : int(offsets[-1])]
    offsets = (offsets - base).copy()
    del fragments, offsets_buf, data_buf

    index: dict[str, dict[str, int]] = {lt: {} for lt in LIST_TYPES}
    list_names, key_names = list_values.to_pylist(), key_values.to_pylist()
    for code, start, end in zip(
        group[starts].tolist(), starts.tolist(), ends.tolist(), strict=True
    ):
        lt, key = divmod(code, len(key_names))
        index[list_names[lt]][key_names[key]] = start << 32 | (end - start)
    cold_start_key = next((k for k in GLOBAL_COLD_START_KEYS if k in index["cold_start"]), None)
    _check(
        cold_start_key is not None,
        f"no global cold-start list (list_type='cold_start', key_id in {GLOBAL_COLD_START_KEYS})",
    )
    pa.default_memory_pool().release_unused()  # give the load's scratch memory back

    try:
        trained_at = iso_utc(info["trained_at"])
        if info.get("generated_at"):
            generated_at = iso_utc(info["generated_at"])
        else:
            generated_at = iso_utc(generated_max)
    except (ValueError, TypeError) as exc:
        raise ModelLoadError(f"bad timestamp in {vdir}: {exc}") from exc
    metrics = {
        str(name): float(value)
        for name, value in (info.get("metrics") or {}).items()
        if isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    }
    version_fields = (
        f',"model_version":{json.dumps(version)},"generated_at":"{generated_at}"'.encode()
    )
    try:
        session = load_session_index(vdir)
    except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
        raise ModelLoadError(f"{vdir}: the session model is not readable: {exc}") from exc
    return Snapshot(
        model_version=version,
        trained_at=trained_at,
        generated_at=generated_at,
        candidate=str(info.get("candidate") or info.get("kind") or "unknown"),
        metrics=metrics,
        loaded_at=iso_utc(datetime.now(UTC)),
        path=vdir,
        blob=blob,
        offsets=offsets,
        index=index,
        load_seconds=time.perf_counter() - started,
        version_fields=version_fields,
        cold_start_key=cold_start_key,
        session=session,
        kind="baseline" if info.get("kind") == "baseline" else "candidate",
        kind_reason=str(info.get("kind_reason") or ""),
    )


PUBLISHED_PREFIX = "published"


def sync_published(store: Store, cache: Path) -> str | None:
    """Make the local ``cache`` follow ``published/`` on the object store: the version
    ``published/CURRENT`` names is downloaded whole (into a staging folder, renamed into
    place), and only then the local ``CURRENT`` is replaced. Returns that version."""
    key = f"{PUBLISHED_PREFIX}/{CURRENT_FILE}"
    if not store.exists(key):
        return None
    version = store.read_text(key).strip()
    if not _VERSION_RE.match(version):
        raise ModelLoadError(f"{store.url(key)} holds an invalid version {version!r}")
    if not (cache / version).is_dir():
        with atomic_dir(cache / version, replace=False) as tmp:
            store.get_tree(f"{PUBLISHED_PREFIX}/{version}", tmp)
    local = cache / CURRENT_FILE
    if not local.exists() or local.read_text(encoding="utf-8").strip() != version:
        atomic_write_text(local, version + "\n")
    return version


def model_store_from_settings(poll_interval: float = 1.0) -> ModelStore:
    """The API's store: ``published/`` of the data directory, or with an object store
    (``TRASOS_STORE_URL``) this host's cache of it, synced on every poll."""
    s = get_settings()
    return ModelStore(s.published_dir, poll_interval=poll_interval, mirror=s.store)


class ModelStore:
    """The current :class:`Snapshot`, kept in step with ``<published_dir>/CURRENT``.

    ``current`` is read without a lock: it is one attribute, rebound in one assignment after
    the new version has been fully loaded. ``check()`` is what the watcher thread runs; tests
    may call it directly.
    """

    def __init__(
        self,
        published_dir: Path,
        *,
        poll_interval: float = 1.0,
        retry_after: float = 30.0,
        mirror: Store | None = None,
    ) -> None:
        self.published_dir = Path(published_dir)
        self.mirror = mirror if mirror is not None and mirror.remote else None
        self.poll_interval = poll_interval
        self.retry_after = retry_after
        self._current: Snapshot | None = None
        self._check_lock = threading.Lock()
        self._failed: tuple[str, float] | None = None  # (version, monotonic time of failure)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.swaps = 0
        self.load_failures = 0  # failed loads since start (GET /metrics)

    @property
    def current(self) -> Snapshot | None:
        return self._current

    def check(self) -> bool:
        """Load the version ``CURRENT`` names if it is new; True when the model was swapped."""
        with self._check_lock:
            try:
                if self.mirror is not None:
                    sync_published(self.mirror, self.published_dir)
                version = read_current(self.published_dir)
            except (OSError, ModelLoadError) as exc:
                self._record_failure("?", exc)
                return False
            if version is None:
                return False
            current = self._current
            if current is not None and current.model_version == version:
                self._failed = None  # CURRENT points back at the served version
                return False
            if self._failed is not None and self._failed[0] == version:
                if time.monotonic() - self._failed[1] < self.retry_after:
                    return False
            try:
                snapshot = load_version(self.published_dir, version)
            except Exception as exc:  # noqa: BLE001 - any failure keeps the old model
                self._record_failure(version, exc)
                return False
            self._current = snapshot  # the swap: one reference, rebound atomically
            self._failed = None
            self.last_error = None
            self.swaps += 1
            log.info(
                "serving model %s (%d rows, %d users, %d items, loaded in %.2f s)%s",
                version,
                snapshot.rows,
                snapshot.count("user"),
                snapshot.count("also_bought"),
                snapshot.load_seconds,
                f", replacing {current.model_version}" if current else "",
            )
            return True

    @property
    def load_failing(self) -> bool:
        """True while the version ``CURRENT`` names could not be loaded (last attempt)."""
        return self._failed is not None

    def _record_failure(self, version: str, exc: BaseException) -> None:
        self._failed = (version, time.monotonic())
        self.load_failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        serving = self._current.model_version if self._current else "nothing"
        log.error(
            "cannot load model version %s from %s: %s (still serving %s; retrying in %.0f s)",
            version,
            self.published_dir,
            self.last_error,
            serving,
            self.retry_after,
            exc_info=not isinstance(exc, ModelLoadError | OSError),
        )

    def start(self) -> None:
        """Load what ``CURRENT`` names now, then watch it in a daemon thread (idempotent)."""
        if self._thread is not None:
            return
        self.check()
        if self._current is None:
            log.warning(
                "no model loaded yet from %s (nothing published?); watching %s",
                self.published_dir,
                self.published_dir / CURRENT_FILE,
            )
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="model-watcher", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the watcher must never die
                log.exception("model watcher iteration failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
