"""Which line goes to which file, and which lines and files are broken on purpose.

The layout is a table of *rows* (one per line to write) sorted by ``(file, order)``.
A row points at the event it serialises (``src``, -1 for garbage) and may carry a fault.
Faults are planned here with their own random stream, so they never change the clean
events: a run with ``fault_rate=0`` and one with faults share every clean line.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from include.simulator.config import (
    FAULT_KINDS,
    GARBAGE_TEMPLATES,
    INVALID_UTF8_BYTES,
    LINE_FAULTS,
    UNKNOWN_EVENT_TYPES,
    SimulatorConfig,
)

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
EMPTY_WINDOW = 63  # window slot of injected empty files: after every real batch of the hour
MARGIN_US = 12 * HOUR_US  # late/future faults stay at least this far from ingestion's limits
FAULT_CODE = {name: i for i, name in enumerate(FAULT_KINDS)}
REQUIRED = ("event_id", "event_time", "event_type", "anonymous_id")


@dataclass(frozen=True)
class Layout:
    """Rows in write order (shape ``(n_rows,)``) and the files they fill.

    ``file_key`` is ``hour_since_epoch * 64 + slot``; ``files_*`` arrays describe each file
    (``(n_files,)``), ``file_row_start`` has ``n_files + 1`` entries. ``params[r]`` holds the
    details of the fault on row ``r`` (only rows that carry one).
    """

    row_src: np.ndarray
    row_fault: np.ndarray  # fault code or -1
    file_key: np.ndarray
    file_batch: np.ndarray  # 1-based batch number within the hour
    file_row_start: np.ndarray
    file_crlf: np.ndarray
    params: dict[int, dict[str, Any]]

    @property
    def n_rows(self) -> int:
        return len(self.row_src)

    def path(self, f: int) -> str:
        """Path of file ``f`` relative to ``landing/``."""
        return self.paths[f]

    @cached_property
    def paths(self) -> list[str]:
        """Paths of all files relative to ``landing/``, ``events/date=../hour=../batch-..``."""
        hour = self.file_key // 64
        day = np.datetime_as_string(hour.astype("datetime64[h]").astype("datetime64[D]"))
        return [
            f"events/date={d}/hour={h % 24:02d}/batch-{b:04d}.jsonl.gz"
            for d, h, b in zip(day.tolist(), hour.tolist(), self.file_batch.tolist(), strict=True)
        ]


@dataclass
class FaultQuota:
    """Hands out a run's fault counts chunk by chunk, so that in total (after E events in
    F files) each line fault kind was planned ``max(1, round(rate * E / 9))`` times
    (``late`` ``max(2, ...)``, half of them too late) and each file fault
    ``max(1, round(rate * F))`` times. A chunk may place fewer when it lacks candidates."""

    rate: float
    events: int = 0
    files: int = 0
    late: int = 0

    def _target(self, x: int, floor: int, per: float) -> int:
        return max(floor, int(round(self.rate * x / per))) if self.rate > 0 and x > 0 else 0

    def lines(self, n_events: int) -> tuple[int, int, int]:
        """(count per line kind, late count, of which too late) for the next chunk."""
        before, after = self.events, self.events + n_events
        self.events = after
        k = self._target(after, 1, len(LINE_FAULTS)) - self._target(before, 1, len(LINE_FAULTS))
        late_after = self._target(after, 2, len(LINE_FAULTS))
        n_late = late_after - self._target(before, 2, len(LINE_FAULTS))
        too_late = late_after // 2 - self.late // 2
        self.late = late_after
        return k, n_late, too_late

    def file_faults(self, n_files: int) -> int:
        """Count of each file fault (empty_file, crlf) for the next chunk."""
        before, after = self.files, self.files + n_files
        self.files = after
        return self._target(after, 1, 1.0) - self._target(before, 1, 1.0)


def _pick(rng: np.random.Generator, eligible: np.ndarray, k: int) -> np.ndarray:
    pool = np.flatnonzero(eligible)
    k = min(k, len(pool))
    return np.sort(rng.choice(pool, size=k, replace=False)) if k else pool[:0]


def plan_layout(
    cfg: SimulatorConfig,
    time_us: np.ndarray,
    is_purchase: np.ndarray,
    late_window_days: int,
    rng: np.random.Generator,
    quota: FaultQuota,
) -> Layout:
    """Assign every event of a chunk to its batch file and plan the chunk's faults.

    ``time_us`` must be sorted (the events' time order is their order inside a file).
    Moved and re-sent lines go to later files of the same chunk.
    """
    n = len(time_us)
    hour = time_us // HOUR_US
    window = (time_us % HOUR_US) // (cfg.batch_minutes * 60_000_000)
    key = hour * 64 + window
    order = np.arange(n, dtype=np.float64)
    src = np.arange(n, dtype=np.int64)
    fault = np.full(n, -1, dtype=np.int8)
    params: dict[int, dict[str, Any]] = {}
    natural_keys = np.unique(key)
    nat_hour_start = (natural_keys // 64) * HOUR_US

    extra_src: list[np.ndarray] = []
    extra_key: list[np.ndarray] = []
    extra_order: list[np.ndarray] = []
    extra_fault: list[np.ndarray] = []
    extra_params: list[dict[str, Any]] = []

    k, n_late, n_too_late = quota.lines(n)
    n_empty = n_crlf = quota.file_faults(len(natural_keys))
    if k or n_late:
        window_us = late_window_days * DAY_US
        taken = np.zeros(n, dtype=bool)

        def take(eligible: np.ndarray, count: int) -> np.ndarray:
            chosen = _pick(rng, eligible & ~taken, count)
            taken[chosen] = True
            return chosen

        # Later files that still lie inside the late window (moved events, re-sends).
        lo = np.searchsorted(nat_hour_start, (hour + 1) * HOUR_US, side="left")
        hi = np.searchsorted(nat_hour_start, time_us + window_us - MARGIN_US, side="right")
        can_move = hi > lo

        def later_file(ev: np.ndarray) -> np.ndarray:
            pick = lo[ev] + (rng.random(len(ev)) * (hi[ev] - lo[ev])).astype(np.int64)
            return natural_keys[pick]

        def append_order(count: int) -> np.ndarray:
            return 1e15 + rng.random(count)

        # wrong_type: half on purchases (quantity as a word), the rest event_time as a number.
        n_qty = k // 2
        qty_ev = take(is_purchase, n_qty)
        time_ev = take(np.ones(n, bool), k - len(qty_ev))
        for e in qty_ev:
            params[int(e)] = {"field": "properties.quantity"}
        for e in time_ev:
            params[int(e)] = {"field": "event_time"}
        fault[qty_ev] = fault[time_ev] = FAULT_CODE["wrong_type"]

        # late: moved to a later batch within the window, or re-stamped far too old.
        moved = take(can_move, n_late - n_too_late)
        key[moved] = later_file(moved)
        order[moved] = append_order(len(moved))
        fault[moved] = FAULT_CODE["late"]
        for e in moved:
            params[int(e)] = {"too_late": False}
        old = take(np.ones(n, bool), n_late - len(moved))
        fault[old] = FAULT_CODE["late"]
        shift = rng.uniform(window_us + MARGIN_US, window_us + 7 * DAY_US, size=len(old))
        for e, s in zip(old, shift, strict=True):
            params[int(e)] = {"too_late": True, "shift_us": int(s)}

        # duplicate: exact re-sends, half in a later batch (inside the window), half next line.
        dup_later = take(can_move, k // 2)
        dup_same = take(np.ones(n, bool), k - len(dup_later))
        extra_src += [dup_later, dup_same]
        extra_key += [later_file(dup_later), key[dup_same]]
        extra_order += [append_order(len(dup_later)), dup_same + 0.5]
        extra_fault.append(np.full(len(dup_later) + len(dup_same), FAULT_CODE["duplicate"]))
        extra_params += [{} for _ in range(len(dup_later) + len(dup_same))]

        future = take(np.ones(n, bool), k)
        fault[future] = FAULT_CODE["future"]
        for e, s in zip(future, rng.uniform(DAY_US, 3 * DAY_US, size=len(future)), strict=True):
            params[int(e)] = {"shift_us": int(s)}
        trunc = take(np.ones(n, bool), k)
        fault[trunc] = FAULT_CODE["truncated"]
        for e, u in zip(trunc, rng.random(len(trunc)), strict=True):
            params[int(e)] = {"cut": float(u)}
        bad = take(np.ones(n, bool), k)
        fault[bad] = FAULT_CODE["invalid_utf8"]
        for e, j in zip(bad, rng.integers(0, len(INVALID_UTF8_BYTES), len(bad)), strict=True):
            params[int(e)] = {"bytes": INVALID_UTF8_BYTES[j]}
        missing = take(np.ones(n, bool), k)
        fault[missing] = FAULT_CODE["missing_field"]
        for e, j in zip(missing, rng.integers(0, len(REQUIRED), len(missing)), strict=True):
            params[int(e)] = {"field": REQUIRED[j]}
        unknown = take(np.ones(n, bool), k)
        fault[unknown] = FAULT_CODE["unknown_event_type"]
        for e, j in zip(
            unknown, rng.integers(0, len(UNKNOWN_EVENT_TYPES), len(unknown)), strict=True
        ):  # noqa: E501
            params[int(e)] = {"event_type": UNKNOWN_EVENT_TYPES[j]}

        # garbage: extra lines right after a random event of the file.
        after = rng.integers(0, n, size=k)
        extra_src.append(np.full(k, -1, dtype=np.int64))
        extra_key.append(key[after])
        extra_order.append(after + 0.25)
        extra_fault.append(np.full(k, FAULT_CODE["garbage"]))
        tags = rng.integers(0, 2**62, size=k)
        tmpl = rng.integers(0, len(GARBAGE_TEMPLATES), size=k)
        extra_params += [
            {"text": f"{GARBAGE_TEMPLATES[t]}{g:016x}"} for t, g in zip(tmpl, tags, strict=True)
        ]

    # Rows: events (some moved or faulty) plus extra lines, sorted by (file, order).
    all_src = np.concatenate([src, *extra_src]) if extra_src else src
    all_key = np.concatenate([key, *extra_key]) if extra_key else key
    all_order = np.concatenate([order, *extra_order]) if extra_order else order
    all_fault = np.concatenate([fault, *extra_fault]).astype(np.int8) if extra_fault else fault
    perm = np.lexsort((all_order, all_key))
    row_src, row_key, row_fault = all_src[perm], all_key[perm], all_fault[perm]
    where = np.empty(len(perm), dtype=np.int64)
    where[perm] = np.arange(len(perm))
    row_params: dict[int, dict[str, Any]] = {int(where[e]): p for e, p in params.items()}
    for j, p in enumerate(extra_params):
        row_params[int(where[n + j])] = p

    file_keys, file_start = np.unique(row_key, return_index=True)
    row_start = np.concatenate([file_start, [len(row_key)]]).astype(np.int64)
    # Empty files (one per chosen hour) get the slot after the last batch of that hour.
    if n_empty:
        hours = np.unique(file_keys // 64)
        chosen = np.sort(rng.choice(hours, size=min(n_empty, len(hours)), replace=False))
        empty_keys = chosen * 64 + EMPTY_WINDOW
        all_keys = np.concatenate([file_keys, empty_keys])
        forder = np.argsort(all_keys, kind="stable")
        counts = np.concatenate([np.diff(row_start), np.zeros(len(empty_keys), np.int64)])
        file_keys = all_keys[forder]
        row_start = np.concatenate([[0], np.cumsum(counts[forder])]).astype(np.int64)
    f_hour = file_keys // 64
    first_of_hour = np.concatenate([[True], f_hour[1:] != f_hour[:-1]])
    hour_start = np.maximum.accumulate(np.where(first_of_hour, np.arange(len(f_hour)), 0))
    batch = np.arange(len(f_hour)) - hour_start + 1
    crlf = np.zeros(len(file_keys), dtype=bool)
    if n_crlf:
        nonempty = np.flatnonzero(np.diff(row_start) > 0)
        crlf[_pick(rng, np.isin(np.arange(len(file_keys)), nonempty), n_crlf)] = True
    return Layout(
        row_src=row_src,
        row_fault=row_fault,
        file_key=file_keys,
        file_batch=batch,
        file_row_start=row_start,
        file_crlf=crlf,
        params=row_params,
    )
