"""include.warehouse.frame: a query's result through Arrow, with the dtypes of DuckDB's .df()."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from include.warehouse import frame

ROWS = """
create table t as select * from (values
    ('a', 1, 10, true, date '2026-10-01', timestamp '2026-10-01 12:30:00', 1.25::decimal(9, 2), 0.5),
    ('b''s', null, 20, null, date '2026-10-02', null, 2.50::decimal(9, 2), null),
    (null, 3, 30, false, null, timestamp '2026-10-03 00:00:01', null, 1.5)
) v(s, i, j, b, d, ts, dec, f)
"""


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(ROWS)
    return con


def test_frame_gives_the_values_and_dtypes_of_df(con: duckdb.DuckDBPyConnection) -> None:
    sql = "select * from t order by j"
    got = frame(con, sql)
    pd.testing.assert_frame_equal(got, con.execute(sql).df())
    dtypes = got.dtypes.astype(str).to_dict()
    # an integer or boolean column with a null stays nullable (Arrow alone: float64, object)
    assert dtypes["i"] == "Int32" and dtypes["b"] == "boolean"
    assert dtypes["j"] == "int32"  # no null: numpy, as .df() gives it
    assert dtypes["d"] == dtypes["ts"] == "datetime64[us]"  # DATE as .df() gives it
    assert dtypes["dec"] == "float64"  # DECIMAL too
    assert got["i"].isna().tolist() == [False, True, False]
    assert got["d"].tolist()[:2] == [pd.Timestamp("2026-10-01"), pd.Timestamp("2026-10-02")]
    assert got["dec"].tolist()[:2] == [1.25, 2.5]


def test_frame_binds_its_parameters(con: duckdb.DuckDBPyConnection) -> None:
    got = frame(con, "select j from t where s = ? or j = ?", ["b's", 30])
    assert sorted(got["j"].tolist()) == [20, 30]
    assert frame(con, "select j from t where s = ?", ["' or 1=1 --"]).empty
