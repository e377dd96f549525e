"""The landing zone: which files are there, and the lines of one file.

Reading a file is the only Python step per file (never per line): read the bytes, hash
them, gunzip them (ISA-L's inflate, a few times faster than zlib's, releases the GIL, so a
thread pool reads files in parallel while DuckDB works), find the newlines with numpy and
hand DuckDB a zero-copy Arrow array of lines. Invalid UTF-8 is found by Arrow's validator;
only a file that fails it is searched for its bad lines (one C-level decode per bad line),
and those lines are blanked in a copy and reported separately so that DuckDB only ever sees
valid UTF-8.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
from isal import isal_zlib

from include.contracts import RAW_LINE_MAX_CHARS

#: Top-level folders of landing/ and the dataset each holds.
DATASETS: tuple[str, ...] = ("events", "catalog", "customers")

_BATCH_RE = re.compile(r"(?:^|/)date=(\d{4}-\d{2}-\d{2})/hour=(\d{1,2})(?:/|$)")
_SNAPSHOT_RE = re.compile(r"(?:^|/)snapshot_date=(\d{4}-\d{2}-\d{2})(?:/|$)")
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
#: Name endings of files still being written (collectors write under such a name, or a name
#: starting with '.', and rename when done): never taken.
IN_PROGRESS_SUFFIXES: tuple[str, ...] = (".tmp", ".part", ".partial", ".inprogress", ".filepart")
#: Reasons that quarantine a whole file (it could not be read to its end). Its manifest status
#: is ``unreadable``: a later complete delivery under the same name loads normally.
FILE_REASONS: tuple[str, ...] = ("truncated_gzip", "not_gzip", "unreadable_file")


@dataclass(frozen=True)
class LandingFile:
    """One file found under landing/ (stat only; nothing read yet)."""

    path: str  # relative to landing/, with '/' separators
    abs_path: Path
    dataset: str
    size: int
    mtime_ns: int

    @property
    def batch_hour(self) -> datetime | None:
        """Start of the collector's batch hour from ``date=YYYY-MM-DD/hour=HH`` (UTC, naive)."""
        m = _BATCH_RE.search(self.path)
        if not m:
            return None
        return datetime.fromisoformat(m.group(1)) + timedelta(hours=int(m.group(2)))

    @property
    def snapshot_date(self) -> date | None:
        m = _SNAPSHOT_RE.search(self.path)
        return date.fromisoformat(m.group(1)) if m else None

    @property
    def mtime(self) -> datetime:
        return datetime.fromtimestamp(self.mtime_ns / 1e9, UTC).replace(tzinfo=None)

    def sort_key(self) -> tuple:
        """Receive order: the batch hour (the file's mtime when the path has none), then the
        path in natural order (``batch-2`` before ``batch-10``)."""
        received = self.batch_hour or self.mtime
        parts = re.split(r"(\d+)", self.path)
        return (received, [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts])


def is_ignored(relative: str) -> bool:
    """Paths with a component starting with '_' (simulator manifests, rejects) or '.'
    (hidden files, uploads in progress), and names of files still being written
    (:data:`IN_PROGRESS_SUFFIXES`) are not landing files."""
    return any(part.startswith(("_", ".")) for part in relative.split("/")) or relative.endswith(
        IN_PROGRESS_SUFFIXES
    )


def scan_landing(landing_dir: Path) -> tuple[list[LandingFile], list[str]]:
    """All ingestible files under ``landing_dir``, and the paths that were skipped because
    they are in no known dataset folder (reported, never silently dropped)."""
    files: list[LandingFile] = []
    unknown: list[str] = []
    if not landing_dir.exists():
        return files, unknown
    for root, dirs, names in os.walk(landing_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))
        for name in sorted(names):
            if name.startswith(("_", ".")) or name.endswith(IN_PROGRESS_SUFFIXES):
                continue
            abs_path = Path(root) / name
            rel = abs_path.relative_to(landing_dir).as_posix()
            dataset = rel.split("/", 1)[0] if "/" in rel else ""
            if dataset not in DATASETS:
                unknown.append(rel)
                continue
            st = abs_path.stat()
            files.append(LandingFile(rel, abs_path, dataset, st.st_size, st.st_mtime_ns))
    return files, unknown


@dataclass
class BadLine:
    """A line DuckDB never sees: invalid UTF-8, longer than the maximum, or the cut-off tail
    of a file that could not be read to its end."""

    line_no: int
    reason: str
    raw_line: str
    line_bytes: int


@dataclass
class FileContent:
    """The lines of one landing file, ready for DuckDB.

    ``lines`` is a large_string Arrow array of ``n_lines`` physical lines. Line i > 1 starts
    with the '\\n' that ended line i - 1 (so the array is a zero-copy view of the
    decompressed bytes); JSON parsing ignores that whitespace, and a trailing '\\r' too.
    Lines listed in ``bad_lines`` are blanked in ``lines``.
    """

    content_hash: str
    lines: pa.Array
    n_lines: int  # physical lines in the decompressed data (a final '\n' ends a line)
    bad_lines: list[BadLine] = field(default_factory=list)
    problem: str | None = None  # why the file could not be fully read, if it could not
    #: one of FILE_REASONS when the whole file is quarantined, else None
    file_reason: str | None = None
    blanked: int = 0  # bad lines blanked in ``lines`` (the rest is the cut-off tail)
    size: int = 0  # bytes read from disk

    @property
    def lines_total(self) -> int:
        """Lines including a cut-off tail (which is not in ``lines``)."""
        return self.n_lines + len(self.bad_lines) - self.blanked


def gunzip(raw: bytes) -> tuple[bytes, str | None]:
    """Decompress gzip (any number of members); plain bytes pass through.

    A truncated or corrupt stream returns the bytes that decompressed and a description of
    the problem that starts with its reason (``truncated_gzip: ...``, ``unreadable_file: ...``).
    """
    if raw[:2] != _GZIP_MAGIC:
        return raw, None
    parts: list[bytes] = []
    view = memoryview(raw)
    while True:
        d = isal_zlib.decompressobj(wbits=31)
        try:
            parts.append(d.decompress(view))
        except isal_zlib.error as exc:
            parts.append(_salvage(view))
            return b"".join(parts), f"unreadable_file: corrupt gzip stream ({exc})"
        if not d.eof:
            parts.append(d.flush())
            return b"".join(parts), "truncated_gzip: the gzip stream ends without its end marker"
        rest = d.unused_data
        if not rest.strip(b"\x00"):
            break
        if rest[:2] != _GZIP_MAGIC:
            return b"".join(parts), "unreadable_file: bytes after the end of the gzip stream"
        view = memoryview(rest)
    return parts[0] if len(parts) == 1 else b"".join(parts), None


def _salvage(view: memoryview, block: int = 1 << 16) -> bytes:
    """Decompress a corrupt member block by block, keeping what came out before the error."""
    d = isal_zlib.decompressobj(wbits=31)
    out: list[bytes] = []
    for start in range(0, len(view), block):
        try:
            out.append(d.decompress(view[start : start + block]))
        except isal_zlib.error:
            break
    return b"".join(out)


def _line_offsets(data: bytes) -> np.ndarray:
    """Arrow offsets (n_lines + 1, int64): line i spans [off[i], off[i+1])."""
    if not data:
        return np.zeros(1, dtype=np.int64)
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    parts = [np.zeros(1, dtype=np.int64), newlines.astype(np.int64, copy=False)]
    if data[-1] != 10:
        parts.append(np.array([len(data)], dtype=np.int64))
    return np.concatenate(parts)


def _content_span(offsets: np.ndarray, i: int) -> tuple[int, int]:
    """Byte span of line i's content (without the leading '\\n')."""
    start = int(offsets[i]) + (1 if i > 0 else 0)
    return start, int(offsets[i + 1])


def _strip_cr(text: str) -> str:
    return text[:-1] if text.endswith("\r") else text


def _find_invalid_utf8(data: bytes, offsets: np.ndarray) -> list[int]:
    """0-based indexes of the lines holding invalid UTF-8 (one C decode per bad line)."""
    bad: list[int] = []
    view = memoryview(data)
    n_lines = len(offsets) - 1
    pos = 0
    while pos < len(data):
        try:
            codecs.utf_8_decode(view[pos:], "strict", True)
            break
        except UnicodeDecodeError as exc:
            at = pos + exc.start
            i = min(int(np.searchsorted(offsets, at, side="right")) - 1, n_lines - 1)
            bad.append(i)
            pos = int(offsets[i + 1]) if i + 1 < n_lines else len(data)
            if pos <= at:  # defensive: always move past the bad byte
                pos = at + 1
    return sorted(set(bad))


def read_content(
    abs_path: Path, *, plain_text_ok: bool = True, max_line_bytes: int = 1 << 20
) -> FileContent:
    """Read, hash, decompress and split one landing file (see :class:`FileContent`).

    A file that cannot be read to its end gets a ``file_reason`` (every line of it is then
    quarantined with it): a truncated gzip stream (``truncated_gzip``), a corrupt one or bytes
    after its end (``unreadable_file``), a ``.gz`` name over bytes that are not gzip
    (``not_gzip``, unless ``plain_text_ok``). A UTF-8 byte order mark at the start is dropped.
    Lines of more than ``max_line_bytes`` bytes (without the line end) are bad lines
    (``line_too_long``), as are lines of invalid UTF-8 (``invalid_utf8``).
    """
    raw = abs_path.read_bytes()
    size = len(raw)
    content_hash = hashlib.sha256(raw).hexdigest()
    data, problem = gunzip(raw)
    if problem is None and raw and raw[:2] != _GZIP_MAGIC and abs_path.name.endswith(".gz"):
        if not plain_text_ok:
            problem = "not_gzip: the name ends in .gz but the bytes are not gzip"
    del raw
    file_reason = problem.split(":", 1)[0] if problem else None
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    bad_lines: list[BadLine] = []
    if file_reason in ("truncated_gzip", "unreadable_file"):
        # The text after the last newline is cut off: it is one more line, outside `lines`.
        cut = data.rfind(b"\n") + 1
        tail = data[cut:]
        data = data[:cut]
        if tail or not data:  # an unreadable file is at least one (empty) line
            bad_lines.append(
                BadLine(
                    line_no=data.count(b"\n") + 1,
                    reason=file_reason,
                    raw_line=tail.decode("utf-8", "backslashreplace")[:RAW_LINE_MAX_CHARS],
                    line_bytes=len(tail),
                )
            )
    elif file_reason == "not_gzip" and not data:
        bad_lines.append(BadLine(1, file_reason, "", 0))
    offsets = _line_offsets(data)
    n_lines = len(offsets) - 1
    blank: dict[int, str] = {}  # line index -> reason, for lines DuckDB must not see
    lengths = np.diff(offsets) - (np.arange(n_lines) > 0)  # without the leading '\n'
    for i in np.flatnonzero(lengths > max_line_bytes).tolist():
        blank[i] = "line_too_long"
    lines = _as_arrow(data, offsets)
    try:
        lines.validate(full=True)  # UTF-8 check, SIMD speed
    except pa.ArrowInvalid:
        for i in _find_invalid_utf8(data, offsets):
            blank.setdefault(i, "invalid_utf8")
    if blank:
        blanked = bytearray(data)
        for i, reason in sorted(blank.items()):
            start, end = _content_span(offsets, i)
            original = bytes(blanked[start:end])
            bad_lines.append(
                BadLine(
                    line_no=i + 1,
                    reason=reason,
                    raw_line=_strip_cr(
                        original[: RAW_LINE_MAX_CHARS * 4].decode("utf-8", "backslashreplace")
                    )[:RAW_LINE_MAX_CHARS],
                    line_bytes=len(original) - (1 if original.endswith(b"\r") else 0),
                )
            )
            blanked[start:end] = b" " * (end - start)
        data = bytes(blanked)
        lines = _as_arrow(data, offsets)
        lines.validate(full=True)
    bad_lines.sort(key=lambda b: b.line_no)
    return FileContent(
        content_hash, lines, n_lines, bad_lines, problem, file_reason, len(blank), size
    )


def _as_arrow(data: bytes, offsets: np.ndarray) -> pa.Array:
    return pa.Array.from_buffers(
        pa.large_string(),
        len(offsets) - 1,
        [None, pa.py_buffer(offsets), pa.py_buffer(data)],
    )
