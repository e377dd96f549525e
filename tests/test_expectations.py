"""GX gates: every critical rule fails on a batch broken for that rule, good batches pass,
the runner raises GateFailed with observed values and a Data Docs link, warnings do not raise,
and the Data Docs render offline (headless Chromium with the network cut off).

Rule tests use :func:`expectations.gate.evaluate` (real GX, ephemeral context, no Data Docs) to
stay fast; runner and report tests use :func:`expectations.gate.run_gate` on a temp data dir.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from expectations.gate import _domain_column
from expectations.suites import (
    CRITICAL,
    PANDAS_DTYPE_OF_DUCKDB,
    SUITES,
    RawEventsParams,
    RecommendationsParams,
    SessionsParams,
    TrainingSetParams,
    prepare_recommendations,
    prepare_sessions,
)
from include.contracts import RAW_EVENT_COLUMNS

REPO = Path(__file__).resolve().parent.parent

RAW_PARAMS = RawEventsParams(
    event_time_min=datetime(2024, 1, 1), event_time_max=datetime(2024, 12, 31)
)
RECS_PARAMS = RecommendationsParams(k=3, min_catalog_coverage=0.5)
TRAIN_PARAMS = TrainingSetParams(min_users=3, min_items=3, min_interactions=6, density_max=0.9)


# --- hand-built good batches -------------------------------------------------------------------
def raw_events() -> pd.DataFrame:
    """Eight valid raw events (one of each kind that matters), contract dtypes."""
    rows = [
        ("page_view", None, None),
        ("scroll", None, 40.0),
        ("product_view", "i1", None),
        ("add_to_cart", "i1", None),
        ("add_to_wishlist", "i2", None),
        ("remove_from_cart", "i1", None),
        ("purchase", "i2", None),
        ("login", None, None),
    ]
    n = len(rows)
    data = {name: [None] * n for name, _ in RAW_EVENT_COLUMNS}
    times = pd.date_range("2024-06-01 10:00", periods=n, freq="min")
    data.update(
        event_id=[f"e{i}" for i in range(n)],
        event_time=times,
        event_type=[r[0] for r in rows],
        anonymous_id=["a1"] * n,
        item_id=[r[1] for r in rows],
        scroll_depth_pct=[np.nan if r[2] is None else r[2] for r in rows],
        page=["/p"] * n,
        is_bot=[False] * n,
        received_at=times + pd.Timedelta(seconds=5),
        source_file=["events/2024-06-01.jsonl.gz"] * n,
        source_line=list(range(n)),
        event_date=times.normalize(),
    )
    dtypes = {name: PANDAS_DTYPE_OF_DUCKDB[t] for name, t in RAW_EVENT_COLUMNS}
    return pd.DataFrame(data).astype(dtypes)


def sessions() -> pd.DataFrame:
    start = pd.Timestamp("2024-06-01 10:00")
    m = pd.Timedelta(minutes=1)
    rows = [  # visitor, start, end (minutes), n_events
        ("v1", 0, 10, 5),
        ("v1", 60, 70, 3),
        ("v2", 0, 5, 1),
        ("v2", 5, 5, 2),  # touching (starts when the previous one ended), zero length
        ("v3", 30, 90, 40),
    ]
    frame = pd.DataFrame(
        {
            "session_id": [f"s{i}" for i in range(len(rows))],
            "visitor_id": [r[0] for r in rows],
            "started_at": [start + r[1] * m for r in rows],
            "ended_at": [start + r[2] * m for r in rows],
            "n_events": [r[3] for r in rows],
        }
    )
    frame["duration_s"] = (frame["ended_at"] - frame["started_at"]).dt.total_seconds()
    return frame


def training_set() -> pd.DataFrame:
    pairs = [("u1", "i1"), ("u1", "i2"), ("u2", "i2"), ("u2", "i3"), ("u3", "i1"), ("u3", "i3")]
    return pd.DataFrame(
        {
            "user_id": [u for u, _ in pairs],
            "item_id": [i for _, i in pairs],
            "weight": [1.0, 3.0, 1.0, 5.0, 2.0, 1.0],
        }
    )


def recommendations() -> pd.DataFrame:
    lists = {  # (list_type, key_id): items by rank
        ("user", "u1"): ["i1", "i2", "i3"],
        ("user", "u2"): ["i4", "i1", "i5"],
        ("also_bought", "i1"): ["i2", "i6", "i3"],
        ("cold_start", "popular"): ["i1", "i2", "i7"],
    }
    rows = [
        (lt, key, rank, item, round(1.0 - 0.1 * rank, 2))
        for (lt, key), items in lists.items()
        for rank, item in enumerate(items, start=1)
    ]
    frame = pd.DataFrame(rows, columns=["list_type", "key_id", "rank", "item_id", "score"])
    frame["model_version"] = "v20240601"
    frame["generated_at"] = pd.Timestamp("2024-06-01 12:00")
    return frame


PURCHASES = pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["i9", "i8"]})
CATALOG_SIZE = 10

GOOD: dict[str, tuple[Callable[[], pd.DataFrame], object, dict]] = {
    "raw_events": (raw_events, RAW_PARAMS, {"n_quarantined": 0}),
    "sessions": (sessions, SessionsParams(), {}),
    "training_set": (training_set, TRAIN_PARAMS, {}),
    "recommendations": (
        recommendations,
        RECS_PARAMS,
        {"purchases": PURCHASES, "catalog_size": CATALOG_SIZE},
    ),
}


def key(failure: dict) -> str:
    column = failure["column"]
    column = "+".join(column) if isinstance(column, list) else column
    return f"{failure['expectation']}:{column}"


def suite_keys(name: str, severity: str) -> set[str]:
    """Keys of the suite's expectations of one severity."""
    spec = SUITES[name]
    params = GOOD[name][1]
    keys = set()
    for exp in spec.build(params).expectations:
        conf = exp.configuration
        if str(getattr(exp.severity, "value", exp.severity)) != severity:
            continue
        keys.add(key({"expectation": conf.type, "column": _domain_column(conf.type, conf.kwargs)}))
    return keys


# --- breakers ------------------------------------------------------------------------------------
def _set(frame: pd.DataFrame, row: int, column: str, value) -> pd.DataFrame:
    """A copy of ``frame`` with one cell changed (ints become nullable to take a null)."""
    frame = frame.copy()
    if value is None and pd.api.types.is_integer_dtype(frame[column].dtype):
        frame[column] = frame[column].astype("Int64")
    frame.loc[frame.index[row], column] = value
    return frame


# A dtype of the wrong family (or width) that keeps the values, so only the type rule breaks.
# (Python objects are no break: for object columns GX checks each value's type instead.)
WRONG_DTYPE = {
    "VARCHAR": "category",
    "TIMESTAMP": "object",  # pandas Timestamps as Python objects
    "DATE": "object",
    "DOUBLE": "float32",
    "INTEGER": "Int64",
    "BIGINT": "Int32",
    "BOOLEAN": "Int8",
}
FILLER = {"VARCHAR": "x", "DOUBLE": 1.0, "INTEGER": 1, "BIGINT": 1, "BOOLEAN": True}
FILLER_OF_COLUMN = {"variant": "control"}  # a value its own value-set rule accepts


def _wrong_dtype(column: str, duckdb_type: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def brk(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        values = frame[column]
        if values.isna().all():  # all-null columns are typeless to GX: give them a value
            values = values.fillna(FILLER_OF_COLUMN.get(column, FILLER[duckdb_type]))
        frame[column] = values.astype(WRONG_DTYPE[duckdb_type])
        return frame

    return brk


def _drop(column: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda frame: frame.drop(columns=[column])


# (suite, case id, breaker(frame) -> frame, params or None, inputs override, expected keys)
Case = tuple[str, str, Callable, object, dict, set[str]]
CASES: list[Case] = []


def case(suite, cid, brk, expected, params=None, **inputs):
    CASES.append((suite, cid, brk, params, inputs, set(expected)))


# raw_events
case(
    "raw_events",
    "columns_out_of_order",
    lambda f: f[[f.columns[1], f.columns[0], *f.columns[2:]]],
    {"expect_table_columns_to_match_ordered_list:None"},
)
case(
    "raw_events",
    "too_few_rows",
    lambda f: f,
    {"expect_table_row_count_to_be_between:None"},
    params=RawEventsParams(
        event_time_min=datetime(2024, 1, 1), event_time_max=datetime(2024, 12, 31), min_rows=100
    ),
)
for _name, _type in RAW_EVENT_COLUMNS:
    case(
        "raw_events",
        f"wrong_type_{_name}",
        _wrong_dtype(_name, _type),
        {f"expect_column_values_to_be_of_type:{_name}"},
    )
case(
    "raw_events",
    "null_event_id",
    lambda f: _set(f, 0, "event_id", None),
    {"expect_column_values_to_not_be_null:event_id"},
)
case(
    "raw_events",
    "duplicate_event_id",
    lambda f: _set(f, 1, "event_id", "e0"),
    {"expect_column_values_to_be_unique:event_id"},
)
case(
    "raw_events",
    "null_event_type",
    lambda f: _set(f, 0, "event_type", None),
    {"expect_column_values_to_not_be_null:event_type"},
)
case(
    "raw_events",
    "unknown_variant",
    lambda f: _set(f, 0, "variant", "holdout"),
    {"expect_column_values_to_be_in_set:variant"},
)
case(
    "raw_events",
    "unknown_event_type",
    lambda f: _set(f, 0, "event_type", "page_veiw"),
    {"expect_column_values_to_be_in_set:event_type"},
)
case(
    "raw_events",
    "null_event_time",
    lambda f: _set(f, 0, "event_time", pd.NaT),
    {"expect_column_values_to_not_be_null:event_time"},
)
case(
    "raw_events",
    "event_before_window",
    lambda f: _set(f, 0, "event_time", pd.Timestamp("2019-12-31")),
    {"expect_column_min_to_be_between:event_time"},
)
case(
    "raw_events",
    "event_after_window",
    lambda f: _set(f, 0, "event_time", pd.Timestamp("2031-01-01")),
    {"expect_column_max_to_be_between:event_time"},
)
case(
    "raw_events",
    "null_anonymous_id",
    lambda f: _set(f, 0, "anonymous_id", None),
    {"expect_column_values_to_not_be_null:anonymous_id"},
)
case(
    "raw_events",
    "product_event_without_item",
    lambda f: _set(f, 2, "item_id", None),  # row 2 is a product_view
    {"expect_column_values_to_be_in_set:dq_product_event_without_item"},
)
case(
    "raw_events",
    "quarantine_rate_over_max",
    lambda f: f,
    {"expect_column_max_to_be_between:dq_quarantine_rate"},
    n_quarantined=2,  # 2 / 10 = 20% > 5%
)

# sessions: a missing column also breaks the rules on that column
case(
    "sessions",
    "missing_column",
    _drop("duration_s"),
    {
        "expect_table_columns_to_match_set:None",
        "expect_column_values_to_not_be_null:duration_s",
        "expect_column_values_to_be_between:duration_s",
    },
)
for _col in ("session_id", "visitor_id", "started_at", "ended_at", "duration_s"):
    case(
        "sessions",
        f"null_{_col}",
        (lambda c: lambda f: _set(f, 4, c, None))(_col),  # row 4: the visitor's only session
        {f"expect_column_values_to_not_be_null:{_col}"},
    )
case(
    "sessions",
    "duplicate_session_id",
    lambda f: _set(f, 1, "session_id", "s0"),
    {"expect_column_values_to_be_unique:session_id"},
)
case(
    "sessions",
    "negative_duration",
    lambda f: _set(f, 0, "duration_s", -1.0),
    {"expect_column_values_to_be_between:duration_s"},
)
case(
    "sessions",
    "session_without_events",
    lambda f: _set(f, 0, "n_events", 0),
    {"expect_column_values_to_be_between:n_events"},
)
case(
    "sessions",
    "overlapping_sessions",
    lambda f: _set(f, 1, "started_at", pd.Timestamp("2024-06-01 10:05")),  # v1: 10:05 < 10:10
    {"expect_column_values_to_be_in_set:dq_overlaps_previous"},
)

# training_set
case(
    "training_set",
    "missing_column",
    _drop("weight"),
    {
        "expect_table_columns_to_match_set:None",
        "expect_column_values_to_not_be_null:weight",
        "expect_column_values_to_be_between:weight",
    },
)
for _col in ("user_id", "item_id", "weight"):
    case(
        "training_set",
        f"null_{_col}",
        (lambda c: lambda f: _set(f, 0, c, None))(_col),
        {f"expect_column_values_to_not_be_null:{_col}"},
    )
case(
    "training_set",
    "zero_weight",
    lambda f: _set(f, 0, "weight", 0.0),
    {"expect_column_values_to_be_between:weight"},
)
case(
    "training_set",
    "too_few_interactions",
    lambda f: f,
    {"expect_table_row_count_to_be_between:None"},
    params=TrainingSetParams(min_users=3, min_items=3, min_interactions=7, density_max=0.9),
)
case(
    "training_set",
    "too_few_users",
    lambda f: f,
    {"expect_column_unique_value_count_to_be_between:user_id"},
    params=TrainingSetParams(min_users=4, min_items=3, min_interactions=6, density_max=0.9),
)
case(
    "training_set",
    "too_few_items",
    lambda f: f,
    {"expect_column_unique_value_count_to_be_between:item_id"},
    params=TrainingSetParams(min_users=3, min_items=4, min_interactions=6, density_max=0.9),
)
case(
    "training_set",
    "too_dense",
    lambda f: f,  # 6 pairs / (3 x 3) = 0.67
    {"expect_column_max_to_be_between:dq_density"},
    params=TrainingSetParams(min_users=3, min_items=3, min_interactions=6, density_max=0.5),
)

# recommendations (frame rows: 0-2 user u1, 3-5 user u2, 6-8 also_bought i1, 9-11 cold_start)
case(
    "recommendations",
    "extra_column",
    lambda f: f.assign(debug=1),
    {"expect_table_columns_to_match_set:None"},
)
case(
    "recommendations",
    "empty",
    lambda f: f.iloc[:0],
    {
        "expect_table_row_count_to_be_between:None",
        "expect_column_min_to_be_between:dq_catalog_coverage",
    },
)
case(
    "recommendations",
    "unknown_list_type",
    lambda f: _set(f, 9, "list_type", "trending"),
    {"expect_column_values_to_be_in_set:list_type"},
)
for _col, _row in (
    ("list_type", 11),
    ("key_id", 11),
    ("rank", 11),
    ("item_id", 11),
    ("score", 11),
    ("model_version", 11),
    ("generated_at", 11),
):
    case(
        "recommendations",
        f"null_{_col}",
        (lambda c, r: lambda f: _set(f, r, c, None))(_col, _row),
        {f"expect_column_values_to_not_be_null:{_col}"},
    )
case(
    "recommendations",
    "rank_over_k",
    lambda f: _set(f, 8, "rank", 4),
    {"expect_column_values_to_be_between:rank"},
)
case(
    "recommendations",
    "duplicate_rank",
    lambda f: _set(f, 10, "rank", 1),
    {"expect_compound_columns_to_be_unique:list_type+key_id+rank"},
)
case(
    "recommendations",
    "duplicate_item_in_list",
    lambda f: _set(f, 11, "item_id", "i1"),
    {"expect_compound_columns_to_be_unique:list_type+key_id+item_id"},
)
case(
    "recommendations",
    "also_bought_with_itself",
    lambda f: _set(f, 7, "item_id", "i1"),
    {"expect_column_values_to_be_in_set:dq_is_self_recommendation"},
)
case(
    "recommendations",
    "already_purchased",
    lambda f: _set(f, 2, "item_id", "i9"),  # u1 bought i9
    {"expect_column_values_to_be_in_set:dq_already_purchased"},
)
case(
    "recommendations",
    "short_user_list",
    lambda f: f.drop(index=5),
    {"expect_column_values_to_be_between:dq_user_list_length"},
)
case(
    "recommendations",
    "score_increases_with_rank",
    lambda f: _set(f, 1, "score", 0.95),
    {"expect_column_values_to_be_in_set:dq_score_increases"},
)
case(
    "recommendations",
    "low_catalog_coverage",
    lambda f: f,
    {"expect_column_min_to_be_between:dq_catalog_coverage"},
    catalog_size=100,  # 7 / 100 < 50%
)

WARNING_CASES: list[tuple[str, str, Callable, dict, str]] = [
    (
        "raw_events",
        "scroll_over_100",
        lambda f: _set(f, 1, "scroll_depth_pct", 150.0),
        {},
        "expect_column_values_to_be_between:scroll_depth_pct",
    ),
    (
        "raw_events",
        "quarantine_rate_early_warning",
        lambda f: f,
        {"n_quarantined": 5, "n_loaded": 395},  # 1.25%: over the 1% warning, under the 5% max
        "expect_column_max_to_be_between:dq_quarantine_rate",
    ),
    (
        "sessions",
        "very_long_session",
        lambda f: _set(f, 4, "n_events", 2_000),
        {},
        "expect_column_values_to_be_between:n_events",
    ),
    (
        "training_set",
        "huge_weight",
        lambda f: _set(f, 0, "weight", 5_000.0),
        {},
        "expect_column_values_to_be_between:weight",
    ),
    (
        "recommendations",
        "two_model_versions",
        lambda f: _set(f, 9, "model_version", "v20240531"),
        {},
        "expect_column_unique_value_count_to_be_between:model_version",
    ),
]


def _evaluate(suite, frame, params=None, **inputs):
    from expectations.gate import evaluate

    good_frame, good_params, good_inputs = GOOD[suite]
    return evaluate(suite, frame, params=params or good_params, **{**good_inputs, **inputs})


def overview_context_of(data_dir: Path) -> dict:
    """The overview page's context, from the state the gates recorded (data_quality.json)."""
    from expectations.overview import OVERVIEW_JSON, overview_context

    reports = data_dir / "reports"
    return overview_context(json.loads((reports / OVERVIEW_JSON).read_text()), reports)


def overview_rows(data_dir: Path) -> list[dict]:
    return overview_context_of(data_dir)["rows"]


# --- tests: no GX at import ----------------------------------------------------------------------
def test_importing_expectations_is_cheap() -> None:
    code = (
        "import sys, expectations, expectations.gate, expectations.suites, expectations.docs, "
        "expectations.overview\n"
        "heavy = [m for m in ('great_expectations', 'pandas', 'numpy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


# --- tests: derived columns, worked out by hand ------------------------------------------------
def test_overlaps_previous_uses_running_end_per_visitor() -> None:
    t = pd.Timestamp("2024-06-01")
    h = pd.Timedelta(hours=1)
    frame = pd.DataFrame(
        {
            "visitor_id": ["a", "a", "a", "b", "b", "a"],
            # a: [0,10] covers [1,2] and [3,4]; b: [0,1] then [1,2] touch; a: [10,11] touches
            "started_at": [t, t + 1 * h, t + 3 * h, t, t + h, t + 10 * h],
            "ended_at": [t + 10 * h, t + 2 * h, t + 4 * h, t + h, t + 2 * h, t + 11 * h],
        },
        index=[10, 10, 12, 13, 14, 15],  # a duplicated index must not misalign the flags
    )
    flags = prepare_sessions(frame)["dq_overlaps_previous"]
    assert flags.tolist() == [False, True, True, False, False, False]
    assert flags.index.tolist() == frame.index.tolist()


def test_recommendation_flags_by_hand() -> None:
    frame = recommendations()
    frame = _set(frame, 7, "item_id", "i1")  # also_bought i1 -> i1
    frame = _set(frame, 2, "item_id", "i9")  # u1 bought i9
    frame = _set(frame, 1, "score", 0.95)  # u1: 0.9, 0.95 -> increases at rank 2
    out = prepare_recommendations(frame, purchases=PURCHASES, catalog_size=CATALOG_SIZE)
    assert out["dq_is_self_recommendation"].tolist() == [i == 7 for i in range(12)]
    assert out["dq_already_purchased"].tolist() == [i == 2 for i in range(12)]
    assert out["dq_score_increases"].tolist() == [i == 1 for i in range(12)]
    assert out["dq_user_list_length"].tolist()[:6] == [3] * 6
    assert out["dq_user_list_length"].isna().tolist()[6:] == [True] * 6
    # items i1 i2 i3 i4 i5 i7 i9 -> 7 of 10
    assert out["dq_catalog_coverage"].iloc[0] == pytest.approx(0.7)


# --- tests: rules ---------------------------------------------------------------------------------
@pytest.mark.parametrize("suite", list(GOOD))
def test_suite_passes_on_good_data(suite: str) -> None:
    make, _, _ = GOOD[suite]
    critical, warnings = _evaluate(suite, make())
    assert not critical, critical
    assert not warnings, warnings


@pytest.mark.parametrize(
    ("suite", "brk", "params", "inputs", "expected"),
    [pytest.param(s, b, p, i, e, id=f"{s}-{cid}") for s, cid, b, p, i, e in CASES],
)
def test_critical_rule_fails_on_batch_broken_for_it(suite, brk, params, inputs, expected) -> None:
    make, _, _ = GOOD[suite]
    critical, _ = _evaluate(suite, brk(make()), params=params, **inputs)
    assert {key(f) for f in critical} == expected
    for failure in critical:
        assert failure["severity"] == CRITICAL
        assert failure["observed_value"] not in (None, "", [])


@pytest.mark.parametrize("suite", list(GOOD))
def test_every_critical_expectation_has_a_breaking_case(suite: str) -> None:
    covered = set().union(*(e for s, _, _, _, _, e in CASES if s == suite))
    assert suite_keys(suite, CRITICAL) <= covered


@pytest.mark.parametrize(
    ("suite", "brk", "inputs", "expected"),
    [pytest.param(s, b, i, e, id=f"{s}-{cid}") for s, cid, b, i, e in WARNING_CASES],
)
def test_warning_rule_warns_without_critical_failure(suite, brk, inputs, expected) -> None:
    make, _, _ = GOOD[suite]
    critical, warnings = _evaluate(suite, brk(make()), **inputs)
    assert not critical, critical
    assert {key(f) for f in warnings} == {expected}


def test_every_suite_has_a_warning_case() -> None:
    for suite in GOOD:
        warned = {e for s, _, _, _, e in WARNING_CASES if s == suite}
        assert warned == suite_keys(suite, "warning")


def test_missing_input_is_a_clear_error() -> None:
    from expectations.gate import evaluate

    with pytest.raises(TypeError, match="purchases"):
        evaluate("recommendations", recommendations(), catalog_size=10)
    with pytest.raises(ValueError, match="known suites"):
        evaluate("nope", recommendations())


# --- tests: the runner and the report ------------------------------------------------------------
def _external_loads(docs_dir: Path) -> list[str]:
    from expectations.docs import external_loads

    found = []
    for path in [*docs_dir.rglob("*.html"), *docs_dir.glob("static/styles/*.css")]:
        found += [f"{path.name}: {s}" for s in external_loads(path.read_text())]
    return found


@pytest.mark.integration
def test_run_gate_passes_and_writes_offline_report(data_dir: Path) -> None:
    from expectations.gate import run_gate

    result = run_gate("raw_events", raw_events(), params=RAW_PARAMS, run_name="manual__t1")
    assert result.success and not result.critical_failures and not result.warnings
    assert result.owner_role == "DE"
    assert result.n_rows == 8 and result.n_expectations > 30
    docs = data_dir / "reports" / "data_docs"
    assert result.docs_path is not None and result.docs_path.is_file()
    assert docs in result.docs_path.parents
    assert (docs / "index.html").is_file()
    assert _external_loads(docs) == []
    # no CDN host is left anywhere a page loads from
    index = (docs / "index.html").read_text()
    for host in ("cdn.jsdelivr", "cdnjs", "unpkg.com", "bootstrapcdn", "code.jquery", "amazonaws"):
        assert host not in index
    assert "static/vendor/jquery/dist/jquery.min.js" in index
    # the validation page names its data asset and every site file it refers to exists
    # (GX writes "Data asset: None" and links the favicon one folder short)
    page = result.docs_path.read_text()
    assert "Data asset: raw_events" in " ".join(re.sub(r"<[^>]+>", " ", page).split())
    refs = re.findall(r"""(?:src|href)=["']((?:\.\./|\./)*static/[^"'?#]+)""", page)
    assert any(r.endswith("favicon.ico") for r in refs)
    assert [r for r in refs if not (result.docs_path.parent / r).is_file()] == []
    # results live under the data dir, nothing is written into the repo
    assert any((data_dir / "gx" / "uncommitted" / "validations" / "raw_events").rglob("*.json"))
    assert not (REPO / "expectations" / "gx" / "uncommitted").exists()
    [row] = overview_rows(data_dir)
    assert (row["suite"], row["status"], row["n_rows"]) == ("raw_events", "PASSED", 8)
    assert (data_dir / "reports" / row["docs_href"]).resolve() == result.docs_path.resolve()
    assert (data_dir / "reports" / "data_quality.html").is_file()


@pytest.mark.integration
def test_run_gate_raises_gate_failed_with_observed_values_and_link(data_dir: Path) -> None:
    from expectations.gate import GateFailed, run_gate

    broken = _set(_set(raw_events(), 1, "event_id", "e0"), 0, "event_type", "page_veiw")
    with pytest.raises(GateFailed) as info:
        run_gate("raw_events", broken, params=RAW_PARAMS, n_quarantined=5, n_loaded=395)
    exc = info.value
    assert exc.suite == "raw_events" and exc.owner_role == "DE"
    by_key = {key(f): f for f in exc.failures}
    assert set(by_key) == {
        "expect_column_values_to_be_unique:event_id",
        "expect_column_values_to_be_in_set:event_type",
    }
    unique = by_key["expect_column_values_to_be_unique:event_id"]
    assert unique["unexpected_count"] == 2 and unique["examples"] == ["e0", "e0"]
    assert by_key["expect_column_values_to_be_in_set:event_type"]["examples"] == ["page_veiw"]
    assert exc.docs_url.startswith("file://") and exc.result.docs_path.is_file()
    message = str(exc)
    for text in ("raw_events", "expect_column_values_to_be_unique(event_id)", "'e0'", "page_veiw"):
        assert text in message
    assert exc.docs_url in message
    # 5 of 400 lines quarantined is over the 1% early warning: reported, not a failure
    assert [key(w) for w in exc.result.warnings] == [
        "expect_column_max_to_be_between:dq_quarantine_rate"
    ]
    details = json.loads(json.dumps(exc.details))  # JSON-able, for include.roles.notify
    assert details["owner_role"] == "DE" and details["docs_url"] == exc.docs_url
    assert len(details["failures"]) == 2
    again = pickle.loads(pickle.dumps(exc))
    assert again.suite == exc.suite and again.failures == exc.failures
    [row] = overview_rows(data_dir)
    assert (row["status"], row["n_critical_failures"], row["n_warnings"]) == ("FAILED", 2, 1)
    [failed] = overview_context_of(data_dir)["failures"]
    assert sorted((f["severity"], f["column"]) for f in failed["items"]) == [
        ("critical", "event_id"),
        ("critical", "event_type"),
        ("warning", "dq_quarantine_rate"),
    ]
    assert any("page_veiw" in f["observed"] for f in failed["items"])
    assert _external_loads(data_dir / "reports" / "data_docs") == []


@pytest.mark.integration
def test_warnings_are_logged_and_do_not_raise(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from expectations.gate import run_gate

    frame = _set(training_set(), 0, "weight", 5_000.0)
    with caplog.at_level("WARNING", logger="expectations.gate"):
        result = run_gate("training_set", frame, params=TRAIN_PARAMS)
    assert result.success and result.owner_role == "DS"
    assert [key(w) for w in result.warnings] == ["expect_column_values_to_be_between:weight"]
    assert "5000" in str(result.warnings[0]["observed_value"]) or result.warnings[0]["examples"]
    assert any("training_set" in r.message and "weight" in r.message for r in caplog.records)
    summary = result.summary()
    assert summary["n_warnings"] == 1 and summary["success"] is True

    # history is bounded: older validation results and their pages are pruned
    for _ in range(2):
        run_gate("training_set", training_set(), params=TRAIN_PARAMS, keep_runs=2)
    results = list(
        (data_dir / "gx" / "uncommitted" / "validations" / "training_set").rglob("*.json")
    )
    pages = list(
        (data_dir / "reports" / "data_docs" / "validations" / "training_set").rglob("*.html")
    )
    assert len(results) == 2 and len(pages) == 2


@pytest.mark.integration
def test_data_docs_render_offline_in_chromium(data_dir: Path, tmp_path: Path, chromium) -> None:
    """All four gates run; the GX index and the overview list each suite's latest result in a
    browser that has no network (every non-file request is aborted and recorded)."""
    from expectations.docs import missing_vendor_files
    from expectations.gate import run_gate

    assert missing_vendor_files() == []  # committed under expectations/static/vendor
    for suite, (make, params, inputs) in GOOD.items():
        run_gate(suite, make(), params=params, run_name=f"test_{suite}", **inputs)

    shots = data_dir / "reports" / "screenshots"
    shots.mkdir(parents=True)
    external: list[str] = []
    browser = chromium(viewport={"width": 1400, "height": 1000})
    browser.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith("file:")
            else (external.append(route.request.url), route.abort())
        ),
    )
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((data_dir / "reports" / "data_docs" / "index.html").as_uri())
    # rows are rendered by bootstrap-table (JS): they exist only if the assets loaded
    page.wait_for_selector("text=Showing 1 to", timeout=10_000)
    table = page.inner_text("body")
    page.screenshot(path=str(shots / "data_docs_index.png"), full_page=True)
    for suite in GOOD:
        assert f"test_{suite}" in table, f"{suite} missing from the Data Docs index"
    assert page.locator("i.fas, i.fa").count() > 0  # font-awesome status icons
    assert not errors, errors

    page.goto((data_dir / "reports" / "data_quality.html").as_uri())
    overview = page.inner_text("body")
    page.screenshot(path=str(shots / "data_quality.png"), full_page=True)
    for suite in GOOD:
        assert suite in overview
    assert overview.count("PASSED") == len(GOOD)
    # the overview links to each suite's latest validation page, which renders too
    page.click("text=Data Docs page >> nth=0")
    page.wait_for_selector("text=Validation Filter", timeout=10_000)
    assert "raw_events" in page.inner_text("body")
    page.screenshot(path=str(shots / "raw_events_validation.png"))
    assert not errors, errors

    assert external == [], f"pages tried to reach the network: {external}"
    assert (shots / "data_docs_index.png").stat().st_size > 10_000
    shutil.copy(shots / "data_docs_index.png", tmp_path / "last_data_docs_index.png")
