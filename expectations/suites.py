"""One suite builder per gated asset, with its thresholds as a frozen params dataclass.

Every gate validates one pandas DataFrame: the asset itself plus a few derived ``dq_*``
columns computed here in vectorised pandas/numpy (``prepare_*``), because some rules are
about rows in relation to each other or about the whole batch, which GX column expectations
cannot express directly:

=================  ==========================  ==================================================
suite              derived column              meaning
=================  ==========================  ==================================================
raw_events         dq_product_event_without_   a product event (PRODUCT_EVENT_TYPES) with a
                   item                        null item_id
raw_events         dq_quarantine_rate          quarantined / (loaded + quarantined) lines, batch
sessions           dq_overlaps_previous        session starts before an earlier session of the
                                               same visitor has ended
training_set       dq_density                  distinct (user, item) pairs / (users x items)
recommendations    dq_is_self_recommendation   also-bought list recommends its own key item
recommendations    dq_already_purchased        user list recommends an item the user bought
recommendations    dq_user_list_length         rows in the row's user list (null on other lists)
recommendations    dq_score_increases          score higher than at the previous rank
recommendations    dq_catalog_coverage         distinct recommended items / catalogue size
sample             dq_raw_id_leak              an id column holds a raw id of the sampled rows
sample             dq_unit_fraction            sampled units / population units (primary file)
=================  ==========================  ==================================================

Each expectation carries a severity (GX's own ``severity`` field, mirrored in
``meta["severity"]`` for the Data Docs): ``critical`` failures stop the pipeline,
``warning`` failures are reported and let it go on. GX is imported inside the builders.

Rules that dbt tests already guard (model logic, e.g. the grain of a mart) are not
repeated here; these gates check raw data and ML inputs/outputs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from common.contracts import (
    EVENT_TYPES,
    ITEM_ID,
    KEY_ID,
    LIST_ALSO_BOUGHT,
    LIST_TYPE,
    LIST_TYPES,
    LIST_USER,
    MODEL_VERSION,
    PRODUCT_EVENT_TYPES,
    RANK,
    RECOMMENDATION_COLUMNS,
    SCORE,
    USER_ID,
    WEIGHT,
)
from common.experiment import VARIANTS
from include.contracts import RAW_EVENT_COLUMNS

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from great_expectations.core import ExpectationSuite

CRITICAL = "critical"
WARNING = "warning"

ROLE_DE = "DE"
ROLE_DS = "DS"

# --- column names of the gated marts (dbt owns them; spelled once here for the gates) --------
SESSION_ID = "session_id"
VISITOR_ID = "visitor_id"
STARTED_AT = "started_at"
ENDED_AT = "ended_at"
DURATION_S = "duration_s"
N_EVENTS = "n_events"
SESSION_COLUMNS: tuple[str, ...] = (
    SESSION_ID,
    VISITOR_ID,
    STARTED_AT,
    ENDED_AT,
    DURATION_S,
    N_EVENTS,
)

TRAINING_COLUMNS: tuple[str, ...] = (USER_ID, ITEM_ID, WEIGHT)


# --- derived columns -------------------------------------------------------------------------
DQ_QUARANTINE_RATE = "dq_quarantine_rate"
DQ_PRODUCT_EVENT_WITHOUT_ITEM = "dq_product_event_without_item"
RAW_EVENTS_DERIVED: tuple[str, ...] = (DQ_PRODUCT_EVENT_WITHOUT_ITEM, DQ_QUARANTINE_RATE)
DQ_OVERLAPS_PREVIOUS = "dq_overlaps_previous"
DQ_DENSITY = "dq_density"
DQ_IS_SELF_RECOMMENDATION = "dq_is_self_recommendation"
DQ_ALREADY_PURCHASED = "dq_already_purchased"
DQ_USER_LIST_LENGTH = "dq_user_list_length"
DQ_SCORE_INCREASES = "dq_score_increases"
DQ_CATALOG_COVERAGE = "dq_catalog_coverage"

# DuckDB type of the contract -> GX ``type_`` for ExpectColumnValuesToBeOfType on pandas.
# GX compares the dtype's scalar type, so "int32" accepts int32 and Int32 (nullable),
# "bool" accepts bool and boolean, "str" accepts pandas' str/string dtypes, and
# "datetime64" accepts naive datetime64 of any unit (tz-aware columns fail: UTC naive is the
# contract). This is what DuckDB's ``.df()`` and pyarrow's ``to_pandas()`` give under pandas 3.
PANDAS_TYPE_OF_DUCKDB: dict[str, str] = {
    "VARCHAR": "str",
    "TIMESTAMP": "datetime64",
    "DATE": "datetime64",
    "DOUBLE": "float64",
    "INTEGER": "int32",
    "BIGINT": "int64",
    "BOOLEAN": "bool",
}
# pandas dtypes that satisfy the contract (to build frames, e.g. in tests and the bench).
PANDAS_DTYPE_OF_DUCKDB: dict[str, str] = {
    "VARCHAR": "str",
    "TIMESTAMP": "datetime64[us]",
    "DATE": "datetime64[us]",
    "DOUBLE": "float64",
    "INTEGER": "Int32",
    "BIGINT": "Int64",
    "BOOLEAN": "boolean",
}


def import_gx():
    """Import great_expectations quietly; call it inside functions only (the import takes
    several seconds, far too slow for DAG parsing)."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx

    return gx


def _expect(kind: str, severity: str, **kwargs: Any):
    """Instantiate ``gx.expectations.<kind>`` tagged with ``severity``."""
    gx = import_gx()
    cls = getattr(gx.expectations, kind)
    meta = {"severity": severity, **kwargs.pop("meta", {})}
    return cls(severity=severity, meta=meta, **kwargs)


def _suite(name: str, expectations: list) -> ExpectationSuite:
    gx = import_gx()
    return gx.ExpectationSuite(name=name, expectations=expectations)


# =============================================================================================
# raw_events
# =============================================================================================
@dataclass(frozen=True)
class RawEventsParams:
    """Thresholds of the raw events gate.

    Attributes
    ----------
    event_time_min, event_time_max
        Accepted ``event_time`` window (naive UTC datetimes; never strings: GX compares
        datetime columns against string bounds silently wrong). ``event_time_max=None`` means
        "now (UTC) + ``max_clock_skew``" at build time.
    max_clock_skew
        Tolerance for device clocks ahead of the server when ``event_time_max`` is None.
    max_quarantine_rate
        Critical: share of landing lines quarantined in this batch.
    warn_quarantine_rate
        Warning: a lower share that deserves a look before it becomes critical.
    scroll_depth_min, scroll_depth_max
        Warning: accepted range of ``scroll_depth_pct``.
    min_rows
        Critical: fewer loaded rows means nothing to gate (an all-quarantined batch).
    """

    event_time_min: datetime = datetime(2020, 1, 1)
    event_time_max: datetime | None = None
    max_clock_skew: timedelta = timedelta(days=1)
    max_quarantine_rate: float = 0.05
    warn_quarantine_rate: float = 0.01
    scroll_depth_min: float = 0.0
    scroll_depth_max: float = 100.0
    min_rows: int = 1

    def resolved_event_time_max(self) -> datetime:
        if self.event_time_max is not None:
            return self.event_time_max
        return datetime.now(UTC).replace(tzinfo=None) + self.max_clock_skew


def prepare_raw_events(
    df: pd.DataFrame,
    params: RawEventsParams | None = None,
    *,
    n_quarantined: int = 0,
    n_loaded: int | None = None,
) -> pd.DataFrame:
    """Add ``dq_product_event_without_item`` and ``dq_quarantine_rate`` to a raw events batch.

    Parameters
    ----------
    df
        Loaded raw events, shape (n_rows, len(RAW_EVENT_COLUMNS)).
    params
        Unused (the rate threshold lives in the suite); kept for a uniform signature.
    n_quarantined
        Landing lines of this batch that went to quarantine.
    n_loaded
        Lines loaded; defaults to ``len(df)``.
    """
    loaded = len(df) if n_loaded is None else int(n_loaded)
    total = loaded + int(n_quarantined)
    rate = float(n_quarantined) / total if total else 0.0
    if {"event_type", "item_id"} <= set(df.columns):
        missing_item = df["event_type"].isin(PRODUCT_EVENT_TYPES) & df["item_id"].isna()
        missing_item = missing_item.fillna(False).to_numpy(dtype=bool)
    else:
        missing_item = False
    return df.assign(**{DQ_PRODUCT_EVENT_WITHOUT_ITEM: missing_item, DQ_QUARANTINE_RATE: rate})


def build_raw_events_suite(params: RawEventsParams | None = None) -> ExpectationSuite:
    """Suite ``raw_events``: contract columns and types, keys, vocabularies, window, rates."""
    p = params or RawEventsParams()
    event_time_max = p.resolved_event_time_max()
    contract = [name for name, _ in RAW_EVENT_COLUMNS]
    exps = [
        _expect(
            "ExpectTableColumnsToMatchOrderedList",
            CRITICAL,
            column_list=[*contract, *RAW_EVENTS_DERIVED],
        ),
        _expect("ExpectTableRowCountToBeBetween", CRITICAL, min_value=p.min_rows),
    ]
    exps += [
        _expect(
            "ExpectColumnValuesToBeOfType", CRITICAL, column=name, type_=PANDAS_TYPE_OF_DUCKDB[t]
        )
        for name, t in RAW_EVENT_COLUMNS
    ]
    exps += [
        _expect("ExpectColumnValuesToNotBeNull", CRITICAL, column="event_id"),
        _expect("ExpectColumnValuesToBeUnique", CRITICAL, column="event_id"),
        _expect("ExpectColumnValuesToNotBeNull", CRITICAL, column="event_type"),
        _expect(
            "ExpectColumnValuesToBeInSet",
            CRITICAL,
            column="event_type",
            value_set=list(EVENT_TYPES),
        ),
        _expect("ExpectColumnValuesToNotBeNull", CRITICAL, column="event_time"),
        # The window as min/max aggregates: GX checks datetime values one by one in Python
        # (~10 s per 1M rows); the extremes are vectorised and name the offending timestamp.
        _expect(
            "ExpectColumnMinToBeBetween",
            CRITICAL,
            column="event_time",
            min_value=p.event_time_min,
            description=f"no event_time before {p.event_time_min:%Y-%m-%d %H:%M}",
        ),
        _expect(
            "ExpectColumnMaxToBeBetween",
            CRITICAL,
            column="event_time",
            max_value=event_time_max,
            description=f"no event_time after {event_time_max:%Y-%m-%d %H:%M}",
        ),
        _expect("ExpectColumnValuesToNotBeNull", CRITICAL, column="anonymous_id"),
        # events outside an experiment have no variant (nulls pass)
        _expect(
            "ExpectColumnValuesToBeInSet", CRITICAL, column="variant", value_set=list(VARIANTS)
        ),
        _expect(
            "ExpectColumnValuesToBeInSet",
            CRITICAL,
            column=DQ_PRODUCT_EVENT_WITHOUT_ITEM,
            value_set=[False],
            description="item_id is set on every product event ("
            + ", ".join(PRODUCT_EVENT_TYPES)
            + ")",
        ),
        _expect(
            "ExpectColumnMaxToBeBetween",
            CRITICAL,
            column=DQ_QUARANTINE_RATE,
            min_value=0.0,
            max_value=p.max_quarantine_rate,
            description=f"at most {p.max_quarantine_rate:.2%} of landing lines quarantined",
        ),
        _expect(
            "ExpectColumnMaxToBeBetween",
            WARNING,
            column=DQ_QUARANTINE_RATE,
            min_value=0.0,
            max_value=p.warn_quarantine_rate,
            description=f"early warning: over {p.warn_quarantine_rate:.2%} of lines quarantined",
        ),
        _expect(
            "ExpectColumnValuesToBeBetween",
            WARNING,
            column="scroll_depth_pct",
            min_value=p.scroll_depth_min,
            max_value=p.scroll_depth_max,
        ),
    ]
    return _suite("raw_events", exps)


# =============================================================================================
# sessions
# =============================================================================================
@dataclass(frozen=True)
class SessionsParams:
    """Thresholds of the sessions gate (``fct_sessions``).

    Attributes
    ----------
    n_events_min, n_events_max
        Critical: events per session (a session has at least one event; more than
        ``n_events_max`` means sessionisation broke).
    warn_n_events_max
        Warning: sessions this long are likely bots that slipped through.
    """

    n_events_min: int = 1
    n_events_max: int = 10_000
    warn_n_events_max: int = 1_000


def prepare_sessions(df: pd.DataFrame, params: SessionsParams | None = None) -> pd.DataFrame:
    """Add ``dq_overlaps_previous``: the session starts before an earlier-starting session of
    the same visitor has ended (running max of ``ended_at``, so a long session that covers
    several later ones flags all of them). Touching sessions (start == previous end) are fine.

    Parameters
    ----------
    df
        One row per session with at least ``visitor_id, started_at, ended_at``.
    """
    import numpy as np

    flags = np.zeros(len(df), dtype=bool)
    if len(df) and {VISITOR_ID, STARTED_AT, ENDED_AT} <= set(df.columns):
        s = df[[VISITOR_ID, STARTED_AT, ENDED_AT]].reset_index(drop=True)
        s = s.sort_values([VISITOR_ID, STARTED_AT, ENDED_AT], kind="mergesort", na_position="last")
        same_visitor = s[VISITOR_ID].eq(s[VISITOR_ID].shift()) & s[VISITOR_ID].notna()
        running_end = s.groupby(VISITOR_ID, sort=False, dropna=False)[ENDED_AT].cummax()
        prev_end = running_end.shift().where(same_visitor)
        overlap = (s[STARTED_AT] < prev_end).fillna(False).astype(bool)
        flags[s.index.to_numpy()] = overlap.to_numpy()
    return df.assign(**{DQ_OVERLAPS_PREVIOUS: flags})


def build_sessions_suite(params: SessionsParams | None = None) -> ExpectationSuite:
    """Suite ``sessions``: keys, non-negative durations, sane sizes, no overlaps."""
    p = params or SessionsParams()
    exps = [
        _expect(
            "ExpectTableColumnsToMatchSet",
            CRITICAL,
            column_set=[*SESSION_COLUMNS, DQ_OVERLAPS_PREVIOUS],
            exact_match=False,
        ),
        _expect("ExpectColumnValuesToNotBeNull", CRITICAL, column=SESSION_ID),
        _expect("ExpectColumnValuesToBeUnique", CRITICAL, column=SESSION_ID),
        _expect("ExpectColumnValuesToNotBeNull", CRITICAL, column=VISITOR_ID),
        _expect("ExpectColumnValuesToNotBeNull", CRITICAL, column=STARTED_AT),
        _expect("ExpectColumnValuesToNotBeNull", CRITICAL, column=ENDED_AT),
        _expect("ExpectColumnValuesToNotBeNull", CRITICAL, column=DURATION_S),
        _expect("ExpectColumnValuesToBeBetween", CRITICAL, column=DURATION_S, min_value=0),
        _expect(
            "ExpectColumnValuesToBeBetween",
            CRITICAL,
            column=N_EVENTS,
            min_value=p.n_events_min,
            max_value=p.n_events_max,
        ),
        _expect(
            "ExpectColumnValuesToBeInSet",
            CRITICAL,
            column=DQ_OVERLAPS_PREVIOUS,
            value_set=[False],
            description="no session overlaps an earlier session of the same visitor",
        ),
        _expect(
            "ExpectColumnValuesToBeBetween",
            WARNING,
            column=N_EVENTS,
            max_value=p.warn_n_events_max,
        ),
    ]
    return _suite("sessions", exps)


# =============================================================================================
# training_set
# =============================================================================================
@dataclass(frozen=True)
class TrainingSetParams:
    """Thresholds of the training set gate (``ml_interactions``).

    Attributes
    ----------
    min_users, min_items, min_interactions
        Critical: below these LightFM has nothing worth learning from.
    density_min, density_max
        Critical: distinct (user, item) pairs / (n_users * n_items). Too sparse means the join
        lost interactions; too dense means ids collapsed (e.g. everything mapped to one user).
    warn_weight_max
        Warning: an implausibly large weight for one (user, item) pair (a bot or a replay).
    """

    min_users: int = 50
    min_items: int = 20
    min_interactions: int = 500
    density_min: float = 1e-5
    density_max: float = 0.5
    warn_weight_max: float = 1_000.0


def prepare_training_set(df: pd.DataFrame, params: TrainingSetParams | None = None) -> pd.DataFrame:
    """Add ``dq_density`` (a constant column) to interactions [user_id, item_id, weight, ...]."""
    density = 0.0
    if len(df) and {USER_ID, ITEM_ID} <= set(df.columns):
        pairs = df[[USER_ID, ITEM_ID]].dropna()
        n_users, n_items = pairs[USER_ID].nunique(), pairs[ITEM_ID].nunique()
        if n_users and n_items:
            density = len(pairs.drop_duplicates()) / (n_users * n_items)
    return df.assign(**{DQ_DENSITY: density})


def build_training_set_suite(params: TrainingSetParams | None = None) -> ExpectationSuite:
    """Suite ``training_set``: ids, positive weights, enough users/items/rows, density."""
    p = params or TrainingSetParams()
    exps = [
        _expect(
            "ExpectTableColumnsToMatchSet",
            CRITICAL,
            column_set=[*TRAINING_COLUMNS, DQ_DENSITY],
            exact_match=False,
        ),
        _expect("ExpectColumnValuesToNotBeNull", CRITICAL, column=USER_ID),
        _expect("ExpectColumnValuesToNotBeNull", CRITICAL, column=ITEM_ID),
        _expect("ExpectColumnValuesToNotBeNull", CRITICAL, column=WEIGHT),
        _expect(
            "ExpectColumnValuesToBeBetween", CRITICAL, column=WEIGHT, min_value=0, strict_min=True
        ),
        _expect("ExpectTableRowCountToBeBetween", CRITICAL, min_value=p.min_interactions),
        _expect(
            "ExpectColumnUniqueValueCountToBeBetween",
            CRITICAL,
            column=USER_ID,
            min_value=p.min_users,
        ),
        _expect(
            "ExpectColumnUniqueValueCountToBeBetween",
            CRITICAL,
            column=ITEM_ID,
            min_value=p.min_items,
        ),
        _expect(
            "ExpectColumnMaxToBeBetween",
            CRITICAL,
            column=DQ_DENSITY,
            min_value=p.density_min,
            max_value=p.density_max,
            description=(
                f"interaction density (pairs / users x items) is within "
                f"[{p.density_min:g}, {p.density_max:g}]"
            ),
        ),
        _expect(
            "ExpectColumnValuesToBeBetween", WARNING, column=WEIGHT, max_value=p.warn_weight_max
        ),
    ]
    return _suite("training_set", exps)


# =============================================================================================
# recommendations
# =============================================================================================
@dataclass(frozen=True)
class RecommendationsParams:
    """Thresholds of the recommendations gate (the table published to the backend).

    Attributes
    ----------
    k
        Critical: every ``user`` list has exactly k rows; every list has ranks 1..k at most.
    min_catalog_coverage
        Critical: distinct recommended items / catalogue size.
    score_tolerance
        Float slack when checking that scores do not increase with rank.
    """

    k: int = 10
    min_catalog_coverage: float = 0.1
    score_tolerance: float = 1e-9


def prepare_recommendations(
    df: pd.DataFrame,
    params: RecommendationsParams | None = None,
    *,
    purchases: pd.DataFrame,
    catalog_size: int,
) -> pd.DataFrame:
    """Add the recommendation ``dq_*`` columns (see the module table).

    Parameters
    ----------
    df
        Published recommendations, columns ``RECOMMENDATION_COLUMNS``.
    params
        Gate thresholds (``score_tolerance`` is used here).
    purchases
        Known purchases, columns ``[user_id, item_id]`` (one row per purchase or pair).
    catalog_size
        Number of items in the catalogue (denominator of the coverage).
    """
    import numpy as np
    import pandas as pd

    tolerance = (params or RecommendationsParams()).score_tolerance
    required = {LIST_TYPE, KEY_ID, RANK, ITEM_ID, SCORE}
    n = len(df)
    if not n or not required <= set(df.columns):
        return df.assign(
            **{
                DQ_IS_SELF_RECOMMENDATION: False,
                DQ_ALREADY_PURCHASED: False,
                DQ_USER_LIST_LENGTH: 0,
                DQ_SCORE_INCREASES: False,
                DQ_CATALOG_COVERAGE: 0.0,
            }
        )
    list_type = df[LIST_TYPE]
    is_self = (list_type == LIST_ALSO_BOUGHT) & (df[KEY_ID] == df[ITEM_ID])

    bought = pd.MultiIndex.from_frame(purchases[[USER_ID, ITEM_ID]].dropna().drop_duplicates())
    pairs = pd.MultiIndex.from_arrays([df[KEY_ID], df[ITEM_ID]])
    already = (list_type == LIST_USER) & pairs.isin(bought)

    list_length = df.groupby([LIST_TYPE, KEY_ID], sort=False, dropna=False)[ITEM_ID].transform(
        "size"
    )
    user_list_length = list_length.astype("Int64").where(list_type == LIST_USER)

    s = df[[LIST_TYPE, KEY_ID, RANK, SCORE]].reset_index(drop=True)
    s = s.sort_values([LIST_TYPE, KEY_ID, RANK], kind="mergesort")
    same_list = s[LIST_TYPE].eq(s[LIST_TYPE].shift()) & s[KEY_ID].eq(s[KEY_ID].shift())
    increases = np.zeros(n, dtype=bool)
    inc = same_list & (s[SCORE] > s[SCORE].shift() + tolerance)
    increases[s.index.to_numpy()] = inc.fillna(False).to_numpy(dtype=bool)

    coverage = df[ITEM_ID].nunique() / catalog_size if catalog_size else 0.0
    return df.assign(
        **{
            # arrays, not Series: positional, whatever the caller's index looks like
            DQ_IS_SELF_RECOMMENDATION: is_self.fillna(False).to_numpy(dtype=bool),
            DQ_ALREADY_PURCHASED: np.asarray(already, dtype=bool),
            DQ_USER_LIST_LENGTH: user_list_length.array,
            DQ_SCORE_INCREASES: increases,
            DQ_CATALOG_COVERAGE: float(coverage),
        }
    )


def build_recommendations_suite(params: RecommendationsParams | None = None) -> ExpectationSuite:
    """Suite ``recommendations``: contract, list shape, no self/known items, order, coverage."""
    p = params or RecommendationsParams()
    exps = [
        _expect(
            "ExpectTableColumnsToMatchSet",
            CRITICAL,
            column_set=[
                *RECOMMENDATION_COLUMNS,
                DQ_IS_SELF_RECOMMENDATION,
                DQ_ALREADY_PURCHASED,
                DQ_USER_LIST_LENGTH,
                DQ_SCORE_INCREASES,
                DQ_CATALOG_COVERAGE,
            ],
            exact_match=True,
        ),
        _expect("ExpectTableRowCountToBeBetween", CRITICAL, min_value=1),
        _expect(
            "ExpectColumnValuesToBeInSet", CRITICAL, column=LIST_TYPE, value_set=list(LIST_TYPES)
        ),
    ]
    exps += [
        _expect("ExpectColumnValuesToNotBeNull", CRITICAL, column=c) for c in RECOMMENDATION_COLUMNS
    ]
    exps += [
        _expect("ExpectColumnValuesToBeBetween", CRITICAL, column=RANK, min_value=1, max_value=p.k),
        _expect("ExpectCompoundColumnsToBeUnique", CRITICAL, column_list=[LIST_TYPE, KEY_ID, RANK]),
        _expect(
            "ExpectCompoundColumnsToBeUnique", CRITICAL, column_list=[LIST_TYPE, KEY_ID, ITEM_ID]
        ),
        _expect(
            "ExpectColumnValuesToBeInSet",
            CRITICAL,
            column=DQ_IS_SELF_RECOMMENDATION,
            value_set=[False],
            description="no also-bought list recommends its own key item",
        ),
        _expect(
            "ExpectColumnValuesToBeInSet",
            CRITICAL,
            column=DQ_ALREADY_PURCHASED,
            value_set=[False],
            description="no user list recommends an item the user already bought",
        ),
        _expect(
            "ExpectColumnValuesToBeBetween",
            CRITICAL,
            column=DQ_USER_LIST_LENGTH,
            min_value=p.k,
            max_value=p.k,
            description=f"every user list has exactly k={p.k} rows",
        ),
        _expect(
            "ExpectColumnValuesToBeInSet",
            CRITICAL,
            column=DQ_SCORE_INCREASES,
            value_set=[False],
            description="within a list, score never increases with rank",
        ),
        _expect(
            "ExpectColumnMinToBeBetween",
            CRITICAL,
            column=DQ_CATALOG_COVERAGE,
            min_value=p.min_catalog_coverage,
            description=f"recommendations cover at least {p.min_catalog_coverage:.0%} of the catalogue",
        ),
        _expect(
            "ExpectColumnUniqueValueCountToBeBetween", WARNING, column=MODEL_VERSION, max_value=1
        ),
    ]
    return _suite("recommendations", exps)


# =============================================================================================
# sample (a DE sample handed to DS or DA)
# =============================================================================================
DQ_RAW_ID_LEAK = "dq_raw_id_leak"
DQ_UNIT_FRACTION = "dq_unit_fraction"


@dataclass(frozen=True)
class SampleParams:
    """What one file of a sample must look like (the task fills it from the request).

    Attributes
    ----------
    expected_columns
        The file's exact columns (dropped columns such as ``user_agent`` must be absent).
    id_columns
        Identifier columns; when ``pseudonymised`` each value must be a key
        (``include.samples.pseudonym.KEY_PATTERN``) and none a raw id of the sampled rows.
    pseudonymised
        False for an admin's raw-id sample: the id rules are left out.
    expected_fraction, fraction_tolerance
        Critical: sampled units / population units within ``expected_fraction`` +- the
        tolerance (the population's file only; None skips it).
    """

    expected_columns: tuple[str, ...] = ()
    id_columns: tuple[str, ...] = ()
    pseudonymised: bool = True
    expected_fraction: float | None = None
    fraction_tolerance: float = 0.01


def prepare_sample(
    df: pd.DataFrame,
    params: SampleParams | None = None,
    *,
    raw_ids: Any = (),
    n_units: int | None = None,
    n_population: int | None = None,
) -> pd.DataFrame:
    """Add ``dq_raw_id_leak`` (a row holds, in any id column, a raw id of the sampled source
    rows: ``raw_ids``, a set or Series of strings) and ``dq_unit_fraction`` (the constant
    ``n_units / n_population``, NaN when not given)."""
    import numpy as np
    import pandas as pd

    p = params or SampleParams()
    leak = np.zeros(len(df), dtype=bool)
    raw = pd.Index(pd.Series(list(raw_ids), dtype="str").unique())
    for column in p.id_columns:
        if column in df.columns and len(raw):
            leak |= df[column].astype("str").isin(raw).to_numpy() & df[column].notna().to_numpy()
    fraction = n_units / n_population if n_units is not None and n_population else float("nan")
    return df.assign(**{DQ_RAW_ID_LEAK: leak, DQ_UNIT_FRACTION: fraction})


def build_sample_suite(params: SampleParams | None = None) -> ExpectationSuite:
    """Suite ``sample``: exact columns, no raw id, keys look like keys, fraction in tolerance."""
    from include.samples.pseudonym import KEY_PATTERN

    p = params or SampleParams()
    exps = [
        _expect(
            "ExpectTableColumnsToMatchSet",
            CRITICAL,
            column_set=[*p.expected_columns, DQ_RAW_ID_LEAK, DQ_UNIT_FRACTION],
            exact_match=True,
            description="exactly the columns of the data card (free text and user agents gone)",
        )
    ]
    if p.pseudonymised:
        exps.append(
            _expect(
                "ExpectColumnValuesToBeInSet",
                CRITICAL,
                column=DQ_RAW_ID_LEAK,
                value_set=[False],
                description="no raw id of the sampled rows survives",
            )
        )
        exps += [
            _expect(
                "ExpectColumnValuesToMatchRegex",
                CRITICAL,
                column=column,
                regex=KEY_PATTERN,
                description="pseudonymous key (salted keyed hash)",
            )
            for column in p.id_columns
        ]
    if p.expected_fraction is not None:
        exps.append(
            _expect(
                "ExpectColumnValuesToBeBetween",
                CRITICAL,
                column=DQ_UNIT_FRACTION,
                min_value=max(0.0, p.expected_fraction - p.fraction_tolerance),
                max_value=min(1.0, p.expected_fraction + p.fraction_tolerance),
                description="sampled share of units within tolerance of the request",
            )
        )
    return _suite("sample", exps)


# =============================================================================================
# registry
# =============================================================================================
@dataclass(frozen=True)
class SuiteSpec:
    """What the gate runner needs to know about one gated asset."""

    name: str
    owner_role: str
    params_type: type
    build: Callable[[Any], ExpectationSuite]
    prepare: Callable[..., pd.DataFrame]
    id_column: str | None  # shown next to failing rows in the Data Docs
    description: str


SUITES: dict[str, SuiteSpec] = {
    "raw_events": SuiteSpec(
        "raw_events",
        ROLE_DE,
        RawEventsParams,
        build_raw_events_suite,
        prepare_raw_events,
        "event_id",
        "raw lake events of one ingestion batch",
    ),
    "sessions": SuiteSpec(
        "sessions",
        ROLE_DE,
        SessionsParams,
        build_sessions_suite,
        prepare_sessions,
        SESSION_ID,
        "fct_sessions",
    ),
    "training_set": SuiteSpec(
        "training_set",
        ROLE_DS,
        TrainingSetParams,
        build_training_set_suite,
        prepare_training_set,
        None,
        "ml_interactions, the LightFM training set",
    ),
    "recommendations": SuiteSpec(
        "recommendations",
        ROLE_DS,
        RecommendationsParams,
        build_recommendations_suite,
        prepare_recommendations,
        None,
        "batch recommendations before publishing",
    ),
    "sample": SuiteSpec(
        "sample",
        ROLE_DE,
        SampleParams,
        build_sample_suite,
        prepare_sample,
        None,
        "one file of a DE sample for DS or DA",
    ),
}


def get_spec(suite_name: str) -> SuiteSpec:
    try:
        return SUITES[suite_name]
    except KeyError:
        raise ValueError(
            f"unknown GX suite {suite_name!r}; known suites: {', '.join(SUITES)}"
        ) from None
