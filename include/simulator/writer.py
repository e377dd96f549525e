"""Serialise events to JSON lines without a per-event Python loop, gzip them, write files.

Every line is the element-wise concatenation of a few string columns (Arrow compute,
in C++): a fixed-width head (event id, event time, built digit by digit in a numpy
uint8 matrix) and pieces gathered from small vocabularies (event type; device with its
context and user; item; page; up to three property pieces). Values are ASCII without
quotes or backslashes, so no escaping is needed. A chunk of consecutive files is one Arrow array
whose data buffer already *is* the files' content: each file is a zero-copy slice,
gzipped with ISA-L's igzip (deterministic header: mtime 0, no file name; several times
faster than zlib at level 1 with a smaller output) and written by a thread pool while the
next chunk is built (igzip releases the GIL).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from isal import igzip

from common.contracts import EVENT_TYPES, PLATFORMS
from common.fs import atomic_write_bytes
from include.simulator import _text
from include.simulator.behaviour import ET, Events, query_vocab
from include.simulator.catalog import CATEGORY_DEPARTMENT, CATEGORY_NAMES, Catalog
from include.simulator.config import (
    COUNTRIES,
    DEPARTMENTS,
    LINE_FAULTS,
    LOGIN_METHODS,
    SimulatorConfig,
)
from include.simulator.layout import DAY_US, FAULT_CODE, HOUR_US, Layout
from include.simulator.population import UA_TABLE, People

_HEAD = (
    b'{"event_id":"' + b"0" * 36 + b'","event_time":"0000-00-00T00:00:00.000000Z","event_type":"'
)
_ID_AT = 13
_TIME_AT = _ID_AT + 36 + 16
_PRICE_TYPES = np.zeros(len(EVENT_TYPES), dtype=bool)
for _name in ("add_to_cart", "remove_from_cart", "add_to_wishlist", "purchase"):
    _PRICE_TYPES[ET[_name]] = True
FAULT_NAMES = {code: name for name, code in FAULT_CODE.items()}


def write_gzip(path: Path, data: bytes | memoryview, level: int) -> int:
    """Write ``data`` gzipped with a fixed header (mtime 0, no name); returns bytes written.

    ``level`` is igzip's (0-3; 1 is its fast default, still smaller than zlib's level 1).

    The file appears atomically: it is written under a hidden name (ingestion skips
    names starting with '.') and renamed.
    """
    blob = igzip.compress(data, compresslevel=level, mtime=0)
    atomic_write_bytes(path, blob, fsync=False)  # generated data: no fsync per file
    return len(blob)


def iso_us(time_us: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` for microseconds since the epoch."""
    return f"{np.datetime_as_string(np.datetime64(int(time_us), 'us'), unit='us')}Z"


def _vocab(values: list[str] | np.ndarray) -> pa.Array:
    if isinstance(values, np.ndarray):
        values = values.tolist()  # fastest route from numpy strings to Arrow
    return pa.array(values, type=pa.string())


def _s(values: np.ndarray) -> np.ndarray:
    return _text.to_str(values)


class LineBuilder:
    """Builds the JSON line of any event index with Arrow compute."""

    def __init__(self, cfg: SimulatorConfig, people: People, cat: Catalog) -> None:
        self.n_items = cat.n
        # Clean events lie inside the run; a day of margin on each side.
        day0 = int(np.datetime64(cfg.start, "D").astype(np.int64)) - 1
        self.day0 = day0
        days = np.arange(day0, day0 + cfg.days + 2).astype("datetime64[D]")
        self.dates = np.frombuffer(
            np.datetime_as_string(days).astype("S10").tobytes(), np.uint8
        ).reshape(-1, 10)
        self.et = _vocab([f'{t}",' for t in EVENT_TYPES])
        ua = np.array(UA_TABLE, dtype=np.dtypes.StringDType())
        plat = np.array(PLATFORMS, dtype=np.dtypes.StringDType())
        country = np.array(COUNTRIES, dtype=np.dtypes.StringDType())
        # Device and user in one piece: index 2 * device + logged_in (the user of a device
        # is always its owner).
        dev = _text.concat(
            '"anonymous_id":"',
            _s(people.device_anon),
            '","context":{"platform":"',
            plat[people.device_platform],
            '","country":"',
            country[people.country[people.device_person]],
            '","user_agent":"',
            ua[people.device_ua],
            '"},"user_id":',
        )
        owner = _s(people.user_id[people.device_person])
        self.dev_user = _vocab(
            np.stack([_text.concat(dev, "null,"), _text.concat(dev, '"', owner, '",')], 1).ravel()
        )
        self.item = _vocab(
            np.concatenate(
                [['"item_id":null,'], _text.concat('"item_id":"', _s(cat.item_id), '",')]
            )
        )
        dept = np.array(DEPARTMENTS)[CATEGORY_DEPARTMENT]
        cat_pages = [f'"page":"/c/{d}/{c}",' for d, c in zip(dept, CATEGORY_NAMES, strict=True)]
        fixed = ["/", "/search", "/cart", "/checkout", "/login"]
        self.page = _vocab(
            np.concatenate(
                [
                    [f'"page":"{p}",' for p in fixed] + cat_pages,
                    _text.concat('"page":"/p/', _s(cat.item_id), '",'),
                ]
            )
        )
        # Properties: at most three pieces, each from one vocabulary, joined without a
        # separator. p1 is the event type's own key (scroll depth, list position, query,
        # login method or order id: never two at once), p2 quantity and price (with a
        # leading comma after an order id), p3 the recommendation id (after a position).
        # Order and recommendation ids are new in every chunk: see bind().
        q = query_vocab()
        self.p1_static = _vocab(
            [""]
            + [f'"scroll_depth_pct":{i}' for i in range(101)]
            + [f'"list_position":{i}' for i in range(128)]
            + [f'"search_query":"{x}"' for x in q]
            + [f'"method":"{m}"' for m in LOGIN_METHODS]
        )
        self.p1_at = np.cumsum([1, 101, 128, len(q), len(LOGIN_METHODS)])
        cents = cat.price_cents
        price = _text.concat(
            (cents // 100).astype(str), ".", np.char.zfill((cents % 100).astype(str), 2)
        )
        p2 = [np.array([""], dtype=np.dtypes.StringDType())]
        for comma in ("", ","):
            for qty in range(4):
                head = f'{comma}"quantity":{qty},"price":' if qty else f'{comma}"price":'
                p2.append(_text.concat(head, price))
        self.p2 = _vocab(np.concatenate(p2))
        self.ev: Events | None = None

    def bind(self, events: Events, uuid_raw: np.ndarray, rng: np.random.Generator) -> None:
        """Serve the lines of one chunk's events (``uuid_raw``: ``(n, 16)`` id bytes)."""
        self.ev = events
        self.uuid_raw = uuid_raw
        self.order_ids = _text.hex_ids(rng, events.n_orders, "ord-", 8)
        self.rec_ids = _text.hex_ids(rng, events.n_recs, "rec-", 8)
        orders = _text.concat('"order_id":"', _s(self.order_ids), '"')
        self.p1 = pa.concat_arrays([self.p1_static, _vocab(orders)])
        self.p3 = _vocab(
            np.concatenate([[""], _text.concat(',"recommendation_id":"', _s(self.rec_ids), '"')])
        )

    def event_ids(self, idx: np.ndarray) -> np.ndarray:
        """``(len(idx),)`` S36 UUID4 strings of the events ``idx``."""
        return _text.as_fixed(_text.uuid4_matrix(self.uuid_raw[idx]))

    def head(self, idx: np.ndarray) -> pa.Array:
        """Fixed-width start of each line: event id, event time, ``"event_type":"``."""
        n = len(idx)
        out = np.empty((n, len(_HEAD)), dtype=np.uint8)
        out[:] = np.frombuffer(_HEAD, np.uint8)
        _text.write_uuid4(out, _ID_AT, self.uuid_raw[idx])
        assert self.ev is not None, "bind() a chunk first"
        t = self.ev.time_us[idx]
        day, rem = np.divmod(t, DAY_US)
        sec, micro = np.divmod(rem, 1_000_000)
        minute, second = np.divmod(sec, 60)
        hour, minute = np.divmod(minute, 60)
        centi, micro2 = np.divmod(micro, 100)
        micro0, micro1 = np.divmod(centi, 100)
        at = _TIME_AT
        out[:, at : at + 10] = self.dates[day - self.day0]
        for col, value in ((11, hour), (14, minute), (17, second)):
            _text.write_pairs(out, at + col, value)
        for col, value in ((20, micro0), (22, micro1), (24, micro2)):
            _text.write_pairs(out, at + col, value)
        offsets = np.arange(n + 1, dtype=np.int32) * len(_HEAD)
        return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(out))

    def lines(self, idx: np.ndarray) -> pa.Array:
        """JSON lines (each ending in ``\\n``) of the events ``idx``, as an Arrow array."""
        ev = self.ev
        assert ev is not None, "bind() a chunk first"

        def take(vocab: pa.Array, codes: np.ndarray) -> pa.Array:
            return vocab.take(pa.array(codes.astype(np.int32, copy=False)))

        item = ev.item[idx]
        a = self.p1_at
        p1 = np.select(
            [ev.scroll[idx] >= 0, ev.lpos[idx] >= 0, ev.query[idx] >= 0, ev.method[idx] >= 0],
            [
                a[0] + ev.scroll[idx].astype(np.int32),
                a[1] + ev.lpos[idx].astype(np.int32),
                a[2] + ev.query[idx].astype(np.int32),
                a[3] + ev.method[idx].astype(np.int32),
            ],
            np.where(ev.order[idx] >= 0, a[4] + ev.order[idx], 0),
        )
        priced = _PRICE_TYPES[ev.etype[idx]]
        variant = (ev.order[idx] >= 0) * 4 + ev.qty[idx]
        p2 = np.where(priced, 1 + variant * self.n_items + item, 0)
        return pc.binary_join_element_wise(
            self.head(idx),
            take(self.et, ev.etype[idx]),
            take(self.dev_user, ev.device[idx] * 2 + (ev.user[idx] >= 0)),
            take(self.item, item + 1),
            take(self.page, ev.page[idx]),
            pa.scalar('"properties":{'),
            take(self.p1, p1),
            take(self.p2, p2),
            take(self.p3, ev.rec[idx] + 1),
            pa.scalar("}}\n"),
            "",
        )


_TIME_RE = re.compile(rb'"event_time":"([^"]*)"')


def mutate(line: bytes, fault: str, p: dict[str, Any], hour_start_us: int) -> bytes:
    """Apply one planned fault to a clean line (without its newline).

    Clean lines are our own compact JSON, so plain byte edits are exact (and much cheaper
    than a parse and dump per fault).
    """
    if fault == "garbage":
        return p["text"].encode()
    if fault == "truncated":
        cut = 60 + int(p["cut"] * (len(line) - 62))
        return line[:cut]
    if fault == "invalid_utf8":
        at = line.index(b'"page":"') + len(b'"page":"')
        return line[:at] + p["bytes"] + line[at:]
    if fault == "wrong_type" and p["field"] == "properties.quantity":
        return re.sub(rb'"quantity":\d+', b'"quantity":"two"', line, count=1)
    if fault == "wrong_type":
        m = _TIME_RE.search(line)
        assert m is not None
        t = int(np.datetime64(m.group(1).decode().rstrip("Z"), "us").astype(np.int64))
        return line[: m.start(1) - 1] + f"{t / 1e6:.6f}".encode() + line[m.end(1) + 1 :]
    if fault == "missing_field":
        key = p["field"].encode()
        return re.sub(rb'"' + key + rb'":"[^"]*",', b"", line, count=1)
    if fault == "unknown_event_type":
        new = b'"event_type":"' + p["event_type"].encode() + b'"'
        return re.sub(rb'"event_type":"[^"]*"', new, line, count=1)
    if fault in ("late", "future"):
        t = (
            hour_start_us - p["shift_us"]
            if fault == "late"
            else hour_start_us + HOUR_US + p["shift_us"]
        )
        return _TIME_RE.sub(b'"event_time":"' + iso_us(t).encode() + b'"', line, count=1)
    raise ValueError(f"unknown fault {fault!r}")  # pragma: no cover - shares FAULT_KINDS


_REASON = {
    "truncated": "invalid_json",
    "garbage": "invalid_json",
    "invalid_utf8": "invalid_utf8",
    "unknown_event_type": "unknown_event_type",
    "future": "future_event_time",
    "duplicate": None,
}


def manifest_record(
    path: str, line: int | None, fault: str, p: dict[str, Any], event_id: str | None
) -> dict[str, Any]:
    """One record of ``faults.jsonl`` (see the package docstring for the rules)."""
    field = p.get("field")
    if fault == "wrong_type":
        reason = f"bad_type:{field}"
    elif fault == "missing_field":
        reason = f"missing_field:{field}"
    elif fault == "late":
        field = "event_time"
        reason = "too_late" if p.get("too_late") else None
    elif fault == "future":
        field = "event_time"
        reason = _REASON[fault]
    else:
        reason = _REASON.get(fault)
    return {
        "file": path,
        "line": line,
        "fault": fault,
        "expected_reason": reason,
        "field": field,
        "event_id": event_id,
    }


class EventWriter:
    """Writes the batch files of successive chunks; gzip runs in a thread pool.

    ``write(layout, builder)`` returns once the chunk's lines are built and handed to the
    pool, so the caller can generate the next chunk meanwhile; at most ``max_pending``
    chunks wait in memory. ``records`` collects the fault manifest.
    """

    def __init__(
        self,
        cfg: SimulatorConfig,
        landing: Path,
        *,
        chunk_rows: int = 64_000,
        max_pending: int = 4,
    ) -> None:
        self.cfg = cfg
        self.landing = landing
        self.chunk_rows = chunk_rows
        self.max_pending = max_pending
        self.records: list[dict[str, Any]] = []
        self.bytes_written = 0
        self._pool = ThreadPoolExecutor(max_workers=cfg.workers)
        self._pending: list[list[Future[int]]] = []

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Wait for every file (re-raising a failed write) and stop the threads."""
        try:
            while self._pending:
                self.bytes_written += sum(fu.result() for fu in self._pending.pop(0))
        finally:
            self._pool.shutdown(wait=True)

    def write(
        self,
        layout: Layout,
        builder: LineBuilder,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        starts = layout.file_row_start
        n_files = len(layout.file_key)
        f = 0
        while f < n_files:
            g = int(np.searchsorted(starts, starts[f] + self.chunk_rows, side="right")) - 1
            g = min(max(g, f + 1), n_files)
            self._write_files(layout, builder, f, g)
            if on_progress:
                on_progress(int(starts[g] - starts[f]))
            f = g

    def _write_files(self, layout: Layout, builder: LineBuilder, f0: int, f1: int) -> None:
        starts = layout.file_row_start
        r0, r1 = int(starts[f0]), int(starts[f1])
        src = layout.row_src[r0:r1]
        lines = builder.lines(np.maximum(src, 0)).cast(pa.binary())
        fault = layout.row_fault[r0:r1]
        faulty = np.flatnonzero(fault >= 0)
        if len(faulty):
            lines = self._apply_faults(layout, builder, lines, src, fault, faulty, r0)
        if isinstance(lines, pa.ChunkedArray):
            lines = lines.combine_chunks()
        bufs = lines.buffers()
        offsets = np.frombuffer(bufs[1], dtype=np.int32)[lines.offset :]
        data = memoryview(bufs[2]) if bufs[2] is not None else memoryview(b"")
        futures: list[Future[int]] = []
        for f in range(f0, f1):
            path = layout.paths[f]
            if starts[f + 1] == starts[f]:
                self.records.append(manifest_record(path, None, "empty_file", {}, None))
            if layout.file_crlf[f]:
                self.records.append(manifest_record(path, None, "crlf", {}, None))
            a = int(offsets[starts[f] - r0])
            b = int(offsets[starts[f + 1] - r0])
            content: bytes | memoryview = data[a:b]
            if layout.file_crlf[f]:
                content = bytes(content).replace(b"\n", b"\r\n")
            futures.append(
                self._pool.submit(write_gzip, self.landing / path, content, self.cfg.gzip_level)
            )
        self._pending.append(futures)
        while len(self._pending) > self.max_pending:
            self.bytes_written += sum(fu.result() for fu in self._pending.pop(0))

    def _apply_faults(
        self,
        layout: Layout,
        builder: LineBuilder,
        lines: pa.Array,
        src: np.ndarray,
        fault: np.ndarray,
        faulty: np.ndarray,
        r0: int,
    ) -> pa.Array:
        """Edit the faulty lines of rows ``r0 + faulty`` and record them in the manifest."""
        starts = layout.file_row_start
        file_of = np.searchsorted(starts, r0 + faulty, side="right") - 1
        ids = builder.event_ids(np.maximum(src[faulty], 0))
        mask = np.zeros(len(src), dtype=bool)
        repl: list[bytes] = []
        for n_j, (j, f) in enumerate(zip(faulty.tolist(), file_of.tolist(), strict=True)):
            name = FAULT_NAMES[int(fault[j])]
            p = layout.params.get(r0 + j, {})
            if name in _EDITED or (name == "late" and p.get("too_late")):
                hour_start = int(layout.file_key[f] // 64) * HOUR_US
                line = lines[j].as_py()[:-1]
                repl.append(mutate(line, name, p, hour_start) + b"\n")
                mask[j] = True
            event_id = None if src[j] < 0 else ids[n_j].decode()
            line_no = r0 + j - int(starts[f]) + 1
            self.records.append(manifest_record(layout.paths[f], line_no, name, p, event_id))
        if not repl:
            return lines
        return pc.replace_with_mask(lines, pa.array(mask), pa.array(repl, type=pa.binary()))


# Faults that change the line's bytes (late: only the too-late ones, re-stamped).
_EDITED = frozenset(LINE_FAULTS) - {"duplicate", "late"}
