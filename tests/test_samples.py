"""Samples on request: real DuckDB, real GX, real Airflow on a hand-made warehouse.

The warehouse (written here): 1,000 visitors v0000..v0999; visitor i lives in country
``de`` when i < 600, else ``nl`` (600 / 400). Each visitor has two sessions, on 2024-03-01
and 2024-03-02 (session ids ``s<i>-1``, ``s<i>-2``), each with user agent ``UA/<i>`` and the
search text ``q<i>``; one interaction row per visitor (item ``i<i mod 7>``, last seen on
2024-03-02); seven items i0..i6 in ml_item_features.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
from pathlib import Path

import duckdb
import pytest

N_VISITORS = 1000
REPO_ROOT = Path(__file__).resolve().parent.parent


def _raw_visitors() -> set[str]:
    return {f"v{i:04d}" for i in range(N_VISITORS)}


@pytest.fixture
def warehouse(data_dir: Path) -> Path:
    path = data_dir / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        f"""create table fct_sessions as
        select
            's' || lpad(cast(i as varchar), 4, '0') || '-' || cast(d as varchar) as session_id,
            'v' || lpad(cast(i as varchar), 4, '0') as visitor_id,
            case when i % 3 = 0 then 'v' || lpad(cast(i as varchar), 4, '0') end as user_id,
            timestamp '2024-03-01 10:00:00' + to_days(d - 1) as started_at,
            cast(timestamp '2024-03-01 10:00:00' + to_days(d - 1) as date) as session_date,
            case when i < 600 then 'de' else 'nl' end as country,
            '/p/i' || cast(i % 7 as varchar) || '?q=secret' as landing_page,
            'UA/' || cast(i as varchar) as user_agent,
            'q' || cast(i as varchar) as search_query,
            cast(d as integer) as n_events
        from range({N_VISITORS}) r(i), range(1, 3) s(d)"""
    )
    con.execute(
        f"""create table ml_interactions as
        select
            'v' || lpad(cast(i as varchar), 4, '0') as user_id,
            'i' || cast(i % 7 as varchar) as item_id,
            1.0 + i % 3 as weight,
            timestamp '2024-03-02 12:00:00' as last_interaction_at
        from range({N_VISITORS}) r(i)"""
    )
    con.execute(
        "create table ml_item_features as select 'i' || cast(i as varchar) as item_id, "
        "'shirts' as category from range(7) r(i)"
    )
    con.close()
    return path


def _request(**kwargs):
    from include.samples.sampler import SampleRequest

    defaults = {"sources": ("fct_sessions", "ml_interactions"), "fraction": 0.1, "seed": 7}
    return SampleRequest(**{**defaults, **kwargs})


def _rows(path: Path, order: str) -> list[tuple]:
    con = duckdb.connect()
    try:
        return con.execute(
            f"select * from read_parquet(?) order by {order}", [str(path)]
        ).fetchall()
    finally:
        con.close()


def _column(path: Path, column: str) -> list:
    con = duckdb.connect()
    try:
        return [
            r[0]
            for r in con.execute(f"select {column} from read_parquet(?)", [str(path)]).fetchall()
        ]
    finally:
        con.close()


# --- reproducibility ---------------------------------------------------------------------------
@pytest.mark.integration
def test_same_seed_same_rows_and_another_seed_other_units(warehouse, monkeypatch) -> None:
    from include.samples.sampler import take_sample

    monkeypatch.setenv("TRASOS_SAMPLE_ADMINS", "alice")
    raw = dict(keep_raw_ids=True, requested_by="alice")
    a = take_sample(_request(sample_id="a", **raw))
    b = take_sample(_request(sample_id="b", **raw))
    c = take_sample(_request(sample_id="c", seed=8, **raw))
    for name in ("fct_sessions.parquet", "ml_interactions.parquet"):
        assert _rows(a.path / name, "all") == _rows(b.path / name, "all")
    units_a = set(_column(a.path / "fct_sessions.parquet", "visitor_id"))
    units_c = set(_column(c.path / "fct_sessions.parquet", "visitor_id"))
    assert len(units_a) == len(units_c) == 100  # exactly round(0.1 x 1000)
    assert units_a != units_c
    # both sessions of every chosen visitor, and the same visitors in the interactions
    assert len(_column(a.path / "fct_sessions.parquet", "session_id")) == 200
    assert set(_column(a.path / "ml_interactions.parquet", "user_id")) == units_a
    # a larger fraction with the same seed keeps a superset
    d = take_sample(_request(sample_id="d", fraction=0.2, **raw))
    assert units_a < set(_column(d.path / "fct_sessions.parquet", "visitor_id"))
    # pseudonymised samples with the same seed: the same rows apart from the keys
    p = take_sample(_request(sample_id="p"))
    q = take_sample(_request(sample_id="q"))
    con = duckdb.connect()
    count = "select session_date, country, n_events, count(*) from read_parquet(?) group by all order by all"
    assert (
        con.execute(count, [str(p.path / "fct_sessions.parquet")]).fetchall()
        == con.execute(count, [str(a.path / "fct_sessions.parquet")]).fetchall()
    )
    assert (
        con.execute(count, [str(q.path / "fct_sessions.parquet")]).fetchall()
        == con.execute(count, [str(a.path / "fct_sessions.parquet")]).fetchall()
    )
    con.close()


@pytest.mark.integration
def test_stratified_and_sized_samples_keep_each_share(warehouse) -> None:
    from include.samples.sampler import take_sample

    s = take_sample(_request(sample_id="strat", fraction=0.25, stratify_by="country"))
    assert s.card["population"]["strata"] == {
        "de": {"population": 600, "sampled": 150},
        "nl": {"population": 400, "sampled": 100},
    }
    con = duckdb.connect()
    by_country = con.execute(
        "select country, count(distinct visitor_id) from read_parquet(?) group by 1 order by 1",
        [str(s.path / "fct_sessions.parquet")],
    ).fetchall()
    con.close()
    assert by_country == [("de", 150), ("nl", 100)]
    sized = take_sample(_request(sample_id="sized", fraction=None, size=37))
    assert sized.card["population"]["sampled_units"] == 37
    assert len(set(_column(sized.path / "fct_sessions.parquet", "visitor_id"))) == 37
    # sessions as the unit: one day's session of a visitor can be in, the other out
    by_session = take_sample(
        _request(sample_id="sess", sources=("fct_sessions",), unit="session", fraction=0.5)
    )
    assert by_session.card["population"] | {"strata": None} == {
        "source": "fct_sessions",
        "unit": "session",
        "units": 2000,
        "sampled_units": 1000,
        "sampled_fraction": 0.5,
        "requested_fraction": 0.5,
        "strata": None,
    }
    # a date range narrows the population: day 2 only
    day2 = take_sample(
        _request(
            sample_id="day2",
            sources=("fct_sessions",),
            fraction=1.0,
            date_from=__import__("datetime").date(2024, 3, 2),
        )
    )
    assert day2.card["date_range"] == {"from": "2024-03-02", "to": "2024-03-02", "inclusive": True}
    assert len(_column(day2.path / "fct_sessions.parquet", "session_id")) == 1000


# --- pseudonymisation --------------------------------------------------------------------------
@pytest.mark.integration
def test_no_raw_id_survives_and_keys_are_per_sample(warehouse, data_dir) -> None:
    from include.samples.pseudonym import load_salt, salt_path
    from include.samples.sampler import take_sample

    one = take_sample(_request(sample_id="one", fraction=0.5))
    two = take_sample(_request(sample_id="two", fraction=0.5))
    sessions = one.path / "fct_sessions.parquet"
    con = duckdb.connect()
    columns = [
        r[0]
        for r in con.execute("describe select * from read_parquet(?)", [str(sessions)]).fetchall()
    ]
    con.close()
    assert columns == [
        "session_id",
        "visitor_id",
        "user_id",
        "started_at",
        "session_date",
        "country",
        "n_events",
    ]
    raw = _raw_visitors() | {f"s{i:04d}-{d}" for i in range(N_VISITORS) for d in (1, 2)}
    for f in sorted(one.path.glob("*.parquet")):
        con = duckdb.connect()
        present = {
            r[0] for r in con.execute("describe select * from read_parquet(?)", [str(f)]).fetchall()
        }
        con.close()
        id_columns = present & {"session_id", "visitor_id", "user_id"}
        assert id_columns, f.name
        for col in id_columns:
            values = set(_column(f, col)) - {None}
            assert values and not values & raw, (f.name, col)
    # the key is sha256(salt || id)[:32] with the sample's own stored salt
    salt = load_salt("one")
    visitors_one = set(_column(sessions, "visitor_id"))
    expected = {hashlib.sha256((salt + v).encode()).hexdigest()[:32] for v in _raw_visitors()}
    assert visitors_one <= expected and len(visitors_one) == 500
    # same visitor, same key across the files of one sample (the join finds all 500) ...
    con = duckdb.connect()
    joined = con.execute(
        "select count(distinct s.visitor_id) from read_parquet(?) s "
        "join read_parquet(?) i on i.user_id = s.visitor_id",
        [str(sessions), str(one.path / "ml_interactions.parquet")],
    ).fetchall()[0][0]
    con.close()
    assert joined == 500
    # ... and other keys in another sample (same seed, same visitors)
    assert not visitors_one & set(_column(two.path / "fct_sessions.parquet", "visitor_id"))
    # DE keeps the salt outside the sample, readable by its owner only
    path = salt_path("one")
    assert not path.is_relative_to(one.path) and not path.is_relative_to(data_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    card = json.loads((one.path / "card.json").read_text())
    assert card["privacy"]["ids"] == "pseudonymised"
    assert salt not in (one.path / "card.json").read_text()
    assert {d["name"] for d in card["files"][0]["dropped_columns"]} == {
        "landing_page",
        "user_agent",
        "search_query",
    }


@pytest.mark.integration
def test_raw_ids_are_for_admins_only(warehouse, monkeypatch) -> None:
    from include.samples.access import NotAuthorised
    from include.samples.sampler import samples_dir, take_sample
    from include.tasks.samples import main

    monkeypatch.setenv("TRASOS_SAMPLE_ADMINS", "alice")
    with pytest.raises(NotAuthorised, match="admins only.*'bob'"):
        take_sample(_request(sample_id="x", keep_raw_ids=True, requested_by="bob"))
    monkeypatch.delenv("TRASOS_SAMPLE_ADMINS")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin,de:op")
    with pytest.raises(NotAuthorised):
        take_sample(_request(sample_id="x", keep_raw_ids=True, requested_by="de"))
    # make sample: --keep-raw-ids needs TRASOS_SAMPLE_USER naming an admin, never $USER
    monkeypatch.setenv("USER", "admin")
    monkeypatch.delenv("TRASOS_SAMPLE_USER", raising=False)
    assert main(["--sources", "fct_sessions", "--keep-raw-ids", "--id", "cli-refused"]) == 2
    assert not (samples_dir() / "cli-refused").exists()
    monkeypatch.setenv("TRASOS_SAMPLE_USER", "admin")
    assert main(["--sources", "fct_sessions", "--keep-raw-ids", "--id", "cli-raw"]) == 0
    assert (
        set(_column(samples_dir() / "cli-raw" / "fct_sessions.parquet", "visitor_id"))
        <= _raw_visitors()
    )


def test_requests_are_validated() -> None:
    from include.samples.sampler import SampleError

    cases = {
        "unknown sources": _request(sources=("fct_sessions", "users; drop table x")),
        "on its own": _request(sources=("raw_events", "fct_sessions")),
        "no session column": _request(unit="session"),
        "exactly one of": _request(size=10),
        "must be in": _request(fraction=1.5),
        "sample id": _request(sample_id="../etc"),
    }
    for message, request in cases.items():
        with pytest.raises(SampleError, match=message):
            request.validate()


# --- the GX suite ------------------------------------------------------------------------------
@pytest.mark.integration
def test_sample_suite_fails_on_a_leak_and_on_extra_columns() -> None:
    import pandas as pd

    from expectations.gate import evaluate
    from expectations.suites import SampleParams

    key = hashlib.sha256(b"salt" + b"v0001").hexdigest()[:32]
    params = SampleParams(
        expected_columns=("visitor_id", "country"),
        id_columns=("visitor_id",),
        expected_fraction=0.1,
        fraction_tolerance=0.01,
    )
    good = pd.DataFrame({"visitor_id": [key, key], "country": ["de", "nl"]})
    inputs = {"raw_ids": {"v0001", "v0002"}, "n_units": 10, "n_population": 100}
    assert evaluate("sample", good, params=params, **inputs) == ((), ())

    leaked = pd.DataFrame({"visitor_id": [key, "v0002"], "country": ["de", "nl"]})
    critical, _ = evaluate("sample", leaked, params=params, **inputs)
    failed = {(f["expectation"], str(f["column"])) for f in critical}
    assert failed == {
        ("expect_column_values_to_be_in_set", "dq_raw_id_leak"),
        ("expect_column_values_to_match_regex", "visitor_id"),
    }
    # a user agent that should have been dropped, and 12 of 100 units for a 10% request
    extra = good.assign(user_agent=["UA/1", "UA/2"])
    critical, _ = evaluate("sample", extra, params=params, **{**inputs, "n_units": 12})
    assert {f["expectation"] for f in critical} == {
        "expect_table_columns_to_match_set",
        "expect_column_values_to_be_between",
    }


@pytest.mark.integration
def test_a_failed_check_publishes_nothing(warehouse) -> None:
    from include.samples.pseudonym import salt_path
    from include.samples.sampler import samples_dir, take_sample

    def refuse(folder: Path, result) -> None:
        assert (folder / "fct_sessions.parquet").exists()
        raise RuntimeError("gate says no")

    with pytest.raises(RuntimeError, match="gate says no"):
        take_sample(_request(sample_id="refused"), check=refuse)
    assert not (samples_dir() / "refused").exists()
    assert not salt_path("refused").exists()
    assert [p.name for p in samples_dir().iterdir()] == []


@pytest.mark.integration
def test_raw_events_sample_from_the_lake(data_dir) -> None:
    from include.samples.sampler import take_sample

    lake = data_dir / "lake" / "events"
    lake.mkdir(parents=True)
    con = duckdb.connect()
    con.execute(
        f"""copy (
            select 'e' || cast(i as varchar) as event_id, 'd' || cast(i % 50 as varchar) as anonymous_id,
                   case when i % 2 = 0 then 'u' || cast(i % 50 as varchar) end as user_id,
                   'Mozilla/5.0' as user_agent, '{{"q": "x"}}' as properties,
                   date '2024-03-01' + cast(i % 2 as integer) as event_date
            from range(200) r(i)
        ) to '{lake}' (format parquet, partition_by (event_date))"""
    )
    con.close()
    s = take_sample(_request(sample_id="raw", sources=("raw_events",), fraction=0.2))
    assert s.card["population"]["units"] == 50 and s.card["population"]["sampled_units"] == 10
    columns = [c["name"] for c in s.card["files"][0]["columns"]]
    assert columns == ["event_id", "anonymous_id", "user_id", "event_date"]
    assert len(_column(s.path / "raw_events.parquet", "event_id")) == 40  # 4 events per device


# --- the DAG -----------------------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.slow
def test_data_samples_dag_writes_a_gated_sample(warehouse, data_dir, airflow_home) -> None:
    conf = {
        "sources": ["fct_sessions", "ml_interactions", "ml_item_features"],
        "fraction": 0.1,
        "seed": 7,
        "sample_id": "dag-sample",
        "stratify_by": "country",
    }
    from conftest import run_airflow

    # a dags folder of its own: `dags test` parses the whole folder (Cosmos lists dbt there)
    dags = data_dir.parent / "dags"
    dags.mkdir()
    shutil.copy2(REPO_ROOT / "dags" / "data_samples.py", dags)
    env = {
        "TRASOS_DATA_DIR": str(data_dir),
        "PYTHONPATH": str(REPO_ROOT),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
    }
    proc = run_airflow(
        "dags",
        "test",
        "data_samples",
        "-c",
        json.dumps(conf),
        "--dagfile-path",
        str(dags / "data_samples.py"),
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    folder = data_dir / "samples" / "dag-sample"
    card = json.loads((folder / "card.json").read_text())
    assert card["requested_by"] == "dag_test"
    assert [f["rows"] for f in card["files"]] == [200, 100, 7]
    assert "one row per session" in (folder / "README.md").read_text()
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "card.json",
        "fct_sessions.parquet",
        "ml_interactions.parquet",
        "ml_item_features.parquet",
    ]
    overview = (
        json.loads((data_dir / "reports" / "data_quality.json").read_text())
        if (data_dir / "reports" / "data_quality.json").exists()
        else None
    )
    assert overview is None or "sample" in json.dumps(overview)
    # keep_raw_ids from a non-admin trigger ("dag_test") fails without publishing
    conf.update(sample_id="dag-raw", keep_raw_ids=True)
    proc = run_airflow(
        "dags",
        "test",
        "data_samples",
        "-c",
        json.dumps(conf),
        "--dagfile-path",
        str(dags / "data_samples.py"),
        env=env,
    )
    assert proc.returncode != 0 or "failed" in (proc.stdout + proc.stderr).lower()
    assert "admins only" in proc.stdout + proc.stderr
    assert not (data_dir / "samples" / "dag-raw").exists()


def test_dag_params_become_a_request() -> None:
    from include.tasks.samples import request_from_params

    request = request_from_params(
        {
            "sources": ["fct_sessions"],
            "fraction": 0.1,
            "size": 25,
            "date_from": "2024-03-02",
            "seed": 3,
            "stratify_by": "",
        },
        "ds",
    )
    assert (request.fraction, request.size, request.stratify_by) == (None, 25, None)
    assert (str(request.date_from), request.date_to, request.requested_by) == (
        "2024-03-02",
        None,
        "ds",
    )
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        request_from_params({"date_to": "14.03.2024"}, "ds")
