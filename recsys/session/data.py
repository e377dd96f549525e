"""Sessions as flat numpy arrays, the train/test split, and the prefix -> target cases.

A :class:`Sessions` holds ``n`` sessions back to back: session ``s`` is
``items[indptr[s]:indptr[s + 1]]`` in event order. Items are integer codes into one item
vocabulary (``-1`` = an item unknown to that vocabulary). Everything here is vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# --- column names of a session file / frame (the CLI's CSV and the DAG's events frame) ------
SESSION_ID = "session_id"
ITEM_ID = "item_id"
POS = "pos"
TIMESTAMP = "timestamp"
USER_ID = "user_id"
SPLIT = "split"
EVENT_TYPE = "event_type"
ORDER_COLUMNS: tuple[str, ...] = (POS, TIMESTAMP)
SPLIT_TRAIN = "train"
SPLIT_TEST = "test"
#: share of sessions (the last ones by time) held out as test when the file has no split
DEFAULT_TEST_SHARE = 0.1


@dataclass(frozen=True)
class Sessions:
    """Ordered sessions, CSR-like.

    Attributes
    ----------
    indptr
        ``(n_sessions + 1,)`` int64, session ``s`` spans ``items[indptr[s]:indptr[s+1]]``.
    items
        ``(n_events,)`` int64 item codes in event order, ``-1`` = unknown item.
    end_time
        ``(n_sessions,)`` float64, the session's last event time (or file order): sorts sessions.
    visitor
        ``(n_sessions,)`` int64 visitor codes (the sessions of one person share a code), or
        None when the sessions carry no visitor (each session is then its own visitor).
    """

    indptr: np.ndarray
    items: np.ndarray
    end_time: np.ndarray
    visitor: np.ndarray | None = None

    @property
    def n_sessions(self) -> int:
        return len(self.indptr) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def session_of_event(self) -> np.ndarray:
        """``(n_events,)`` the session index of each event."""
        return np.repeat(np.arange(self.n_sessions, dtype=np.int64), self.lengths)

    def take(self, sessions: np.ndarray) -> Sessions:
        """The sessions at ``sessions`` (indices, in that order)."""
        sessions = np.asarray(sessions, dtype=np.int64)
        lengths = self.lengths[sessions]
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        starts = np.repeat(self.indptr[sessions], lengths)
        offset = np.arange(indptr[-1], dtype=np.int64) - np.repeat(indptr[:-1], lengths)
        visitor = None if self.visitor is None else self.visitor[sessions]
        return Sessions(indptr, self.items[starts + offset], self.end_time[sessions], visitor)

    def visitor_codes(self) -> np.ndarray:
        """``(n_sessions,)`` the visitor of each session (the session itself without visitors)."""
        if self.visitor is None:
            return np.arange(self.n_sessions, dtype=np.int64)
        return np.asarray(self.visitor, dtype=np.int64)


@dataclass(frozen=True)
class Cases:
    """Evaluation cases: each revealed prefix and the item to predict.

    ``prefix`` is a :class:`Sessions` of the revealed items (all but the last event);
    ``target`` is ``(n_cases,)`` the last item (``-1`` when unknown to the model).
    """

    prefix: Sessions
    target: np.ndarray

    @property
    def n(self) -> int:
        return len(self.target)


def read_session_csv(path: str | Path) -> pd.DataFrame:
    """Read a session CSV (``.csv`` or ``.csv.gz``) and check its columns.

    It needs ``session_id``, ``item_id`` and an order column, ``pos`` or ``timestamp``
    (numbers or ISO-8601 times); optionally ``split`` (``train``/``test``), ``event_type`` and
    ``user_id`` (the visitor: their sessions are pooled by the taste part of the model).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; pass a session CSV or CSV.gz file")
    dtypes = {SESSION_ID: str, ITEM_ID: str, SPLIT: str, EVENT_TYPE: str, USER_ID: str}
    frame = pd.read_csv(path, dtype=dtypes)
    return check_session_frame(frame, str(path))


def check_session_frame(frame: pd.DataFrame, name: str = "sessions") -> pd.DataFrame:
    """Normalise a session frame: string ids, a numeric ``order``; raise on a bad frame."""
    missing = [c for c in (SESSION_ID, ITEM_ID) if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{name} lacks column(s) {missing}; a session file needs session_id, item_id and "
            f"pos or timestamp (has {list(frame.columns)})"
        )
    order_col = next((c for c in ORDER_COLUMNS if c in frame.columns), None)
    if order_col is None:
        raise ValueError(
            f"{name} has no order column; add 'pos' (position in the session) or 'timestamp'"
        )
    # rows without a session or an item carry no event: dropped
    frame = frame.dropna(subset=[SESSION_ID, ITEM_ID])
    out = pd.DataFrame(
        {
            SESSION_ID: frame[SESSION_ID].astype(str).to_numpy(),
            ITEM_ID: frame[ITEM_ID].astype(str).to_numpy(),
        }
    )
    out["order"] = _numeric(frame[order_col], order_col, name)
    # a session's time: its timestamps, else its rows' positions in the file
    if TIMESTAMP in frame.columns:
        out["time"] = (
            out["order"] if order_col == TIMESTAMP else _numeric(frame[TIMESTAMP], TIMESTAMP, name)
        )
    else:
        out["time"] = np.arange(len(out), dtype=np.float64)
    if SPLIT in frame.columns:
        split = frame[SPLIT].astype(str).str.strip().str.lower().reset_index(drop=True)
        bad = set(split.unique()) - {SPLIT_TRAIN, SPLIT_TEST}
        if bad:
            raise ValueError(f"{name}: split values {sorted(bad)}; use 'train' or 'test'")
        out[SPLIT] = split.to_numpy()
    if EVENT_TYPE in frame.columns:
        out[EVENT_TYPE] = frame[EVENT_TYPE].astype(str).to_numpy()
    if USER_ID in frame.columns:
        # a session without a visitor is its own visitor
        missing = frame[USER_ID].isna().to_numpy()
        own = ("session:" + out[SESSION_ID]).to_numpy()
        out[USER_ID] = np.where(missing, own, frame[USER_ID].astype(str).to_numpy())
    if out.empty:
        raise ValueError(f"{name} has no rows")
    return out


def _numeric(values: pd.Series, column: str, name: str) -> np.ndarray:
    """Numbers as they are, times (ISO-8601) as unix seconds; raise on anything else."""
    if not pd.api.types.is_numeric_dtype(values):
        parsed = pd.to_datetime(values, utc=True, errors="coerce")
        if parsed.isna().any():
            bad = values[parsed.isna()].iloc[0]
            raise ValueError(f"{name}: {column} value {bad!r} is neither a number nor a time")
        values = (parsed - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds()
    out = values.astype(np.float64).to_numpy()
    if np.isnan(out).any():
        raise ValueError(f"{name}: {column} has empty values; every event needs its {column}")
    return out


def time_split(frame: pd.DataFrame, test_share: float = DEFAULT_TEST_SHARE) -> pd.Series:
    """``split`` per row: the last ``test_share`` of sessions by end time are test.

    A session's time is its last event time (for a ``pos``-ordered file, its last row's
    position in the file); ties are broken by session id, so the split is deterministic.
    """
    if not 0.0 < test_share < 1.0:
        raise ValueError(f"test_share={test_share}; use a share strictly between 0 and 1")
    end = frame.groupby(SESSION_ID, sort=True)["time"].max()
    order = np.lexsort((end.index.to_numpy(dtype=str), end.to_numpy()))
    n_test = max(1, int(round(len(end) * test_share)))
    test_ids = set(end.index.to_numpy()[order[len(order) - n_test :]])
    is_test = frame[SESSION_ID].isin(test_ids)
    return pd.Series(np.where(is_test, SPLIT_TEST, SPLIT_TRAIN), index=frame.index, name=SPLIT)


def to_sessions(frame: pd.DataFrame, item_codes: pd.Index) -> Sessions:
    """Encode a normalised frame into :class:`Sessions` with the vocabulary ``item_codes``.

    Events are ordered by (session time, session id, order, row) so sessions are in time order.
    """
    if frame.empty:
        return Sessions(np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0))
    end = frame.groupby(SESSION_ID, sort=False)["time"].transform("max").to_numpy()
    sid_codes, _ = pd.factorize(frame[SESSION_ID], sort=True)
    order = np.lexsort((np.arange(len(frame)), frame["order"].to_numpy(), sid_codes, end))
    sid = sid_codes[order]
    boundaries = np.flatnonzero(np.diff(sid)) + 1
    indptr = np.concatenate([[0], boundaries, [len(sid)]]).astype(np.int64)
    items = item_codes.get_indexer(frame[ITEM_ID].to_numpy()[order]).astype(np.int64)
    visitor = None
    if USER_ID in frame.columns:
        # a session's visitor: the one of its first event
        visitor, _ = pd.factorize(frame[USER_ID].to_numpy()[order][indptr[:-1]], sort=True)
        visitor = visitor.astype(np.int64)
    return Sessions(indptr, items, end[order][indptr[:-1]].astype(np.float64), visitor)


def last_item_cases(test: Sessions, min_length: int = 2) -> Cases:
    """One case per session of ``>= min_length`` events: reveal all but the last event.

    The target is the session's last event; the prefix holds only the events before it, so
    neither the target nor anything after it is revealed.
    """
    keep = np.flatnonzero(test.lengths >= min_length)
    sub = test.take(keep)
    last = sub.indptr[1:] - 1
    mask = np.ones(len(sub.items), dtype=bool)
    mask[last] = False
    prefix = Sessions(sub.indptr - np.arange(len(sub.indptr)), sub.items[mask], sub.end_time)
    return Cases(prefix, sub.items[last])


def split_validation(
    train: Sessions, share: float = 0.1, max_cases: int = 3000
) -> tuple[Sessions, Cases]:
    """Carve a validation slice from the train sessions: the last ``share`` by time.

    Returns the sessions to fit on (the earlier ones) and the validation cases (at most
    ``max_cases``, the latest ones), so hyper-parameters are never chosen on test sessions.
    """
    n = train.n_sessions
    n_val = max(1, int(round(n * share)))
    order = np.argsort(train.end_time, kind="stable")
    fit = train.take(np.sort(order[: n - n_val]))
    val_sessions = train.take(np.sort(order[n - n_val :]))
    cases = last_item_cases(val_sessions)
    if cases.n > max_cases:
        cases = subsample_cases(cases, max_cases, seed=0)
    return fit, cases


def subsample_cases(cases: Cases, n: int, seed: int) -> Cases:
    """``n`` cases drawn without replacement (kept in their original order)."""
    if cases.n <= n:
        return cases
    pick = np.sort(np.random.default_rng(seed).choice(cases.n, size=n, replace=False))
    return Cases(cases.prefix.take(pick), cases.target[pick])
