"""Benchmark: sessionisation in dbt on DuckDB against pandas, and an hourly incremental build.

Generates a synthetic raw lake with DuckDB directly (no simulator needed), by default 10M
events: devices with several sessions each (events a few seconds to two minutes apart, sessions
at least a day apart), a share of devices that log in during their third session (their earlier
anonymous events are stitched to the customer), customers with two devices, 1 % bot devices.

Steps, each printing progress:

1. generate the lake under ``--data-dir`` (default: a temporary directory, removed at the end);
2. ``dbt build`` (full) with a fresh warehouse; the sessionisation figure uses dbt's own
   per-model timings from ``target/run_results.json`` (int_identities_stitched +
   int_events_sessionized), so dbt start-up is excluded and reported on its own;
   ``window_floor_events_per_s`` is the ceiling DuckDB allows here: the identity model's time
   plus one lag window over the stitched events, nothing numbered, hashed or written;
3. the same rule in plain pandas (sort, groupby, diff, cumsum), timed in-process, and an exact
   comparison of every event's (visitor_id, session start) with dbt's;
4. the Spark target (``TRASOS_DBT_TARGET=spark``, local pyspark, needs ``make setup-scale``)
   on the same lake: ``dbt run`` of the sessionisation models and their parents;
   ``spark_events_per_s`` from dbt's own timings of the two models (Spark's start-up lands in
   the first node, a staging view, and is measured apart: ``spark_startup_s``, a bare
   SparkSession start in a fresh process); ``spark_sessions_match``: every event's session
   (id, visitor, start, index) equal to DuckDB's. ``--no-spark`` skips it;
5. append 100k new events (a new hour) and time a whole ``dbt build`` again, start-up included
   (incremental models process the new hour), then the same as ``dbt build --full-refresh``,
   and check both give the same tables.

The LAST line printed is one JSON object with the figures. Run it on an idle machine: it uses
both cores and a few GB of RAM.

    .venv/bin/python bench/sessionize.py [--events 10000000] [--data-dir DIR] [--keep] [--no-spark]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

REPO_ROOT = Path(__file__).resolve().parent.parent

EVENTS_PER_SESSION = 20  # on average (10..30)
SESSIONS_PER_DEVICE = 5
INACTIVITY = "30 minutes"  # keep in line with dbt var sessions__inactivity_minutes
SESSION_MODELS = ("int_identities_stitched", "int_events_sessionized")
# The DE part of the project (DA's marts/metrics are built by their own DAG).
DE_SELECT = [
    "--select",
    "path:seeds",
    "path:models/staging",
    "path:models/intermediate",
    "path:models/marts/core",
    "path:models/marts/ml",
]
FINGERPRINT_SQL = """
    select
        (select count(*) from intermediate.int_events_sessionized),
        (select count(distinct session_id) from intermediate.int_events_sessionized),
        (select sum(hash(event_id, session_id, visitor_id, session_index))
            from intermediate.int_events_sessionized),
        (select sum(hash(event_id, session_id, visitor_id, event_type, item_id))
            from main.fct_events),
        (select sum(hash(session_id, n_events, duration_s, is_converted)) from main.fct_sessions),
        (select sum(hash(user_id, item_id, weight, round(decayed_score, 9)))
            from main.ml_interactions)
"""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def generate_events_sql(
    n_events: int, first_session: int = 0, base: str = "2024-03-01", hour: str | None = None
) -> str:
    """SELECT producing about ``n_events`` raw events (contracts.RAW_EVENT_COLUMNS order).

    Sessions ``first_session ..`` are spread over devices; with ``hour`` set, every session
    starts within that hour (the incremental batch), otherwise over 30 days from ``base``.
    """
    n_sessions = max(1, n_events // EVENTS_PER_SESSION)
    n_devices = max(1, n_sessions // SESSIONS_PER_DEVICE)
    if hour is None:
        start = (
            f"timestamp '{base}' + to_days(cast(session_ordinal * 6 as integer))"
            " + to_seconds(cast(hash(s, 'start') % (5 * 86400) as bigint))"
        )
    else:
        start = f"timestamp '{hour}' + to_seconds(cast(hash(s, 'start') % 1800 as bigint))"
    # length 10..30 so the mean is EVENTS_PER_SESSION; trimmed to n_events at the end
    return f"""
    with sessions as (
        select
            s,
            s % {n_devices} as device,
            (s - {first_session}) // {n_devices} as session_ordinal,
            10 + hash(s, 'len') % 21 as n_ev
        from range({first_session}, {first_session + n_sessions}) t(s)
    ),
    timed as (
        select *, {start} as started_at from sessions
    ),
    events as (
        select
            s, device, session_ordinal, started_at, k,
            hash(s, k) % 100 as r
        from timed, unnest(range(cast(n_ev as bigint))) u(k)
    ),
    typed as (
        select
            *,
            case
                when k = 0 and device % 10 < 3 and session_ordinal = 2 then 'login'
                when r < 30 then 'page_view'
                when r < 45 then 'scroll'
                when r < 55 then 'click'
                when r < 60 then 'search'
                when r < 85 then 'product_view'
                when r < 91 then 'add_to_cart'
                when r < 92 then 'remove_from_cart'
                when r < 95 then 'add_to_wishlist'
                else 'purchase'
            end as event_type,
            started_at
                + to_seconds(cast(k * 60 + hash(s, k, 'gap') % 50 as bigint))
                + to_milliseconds(cast(hash(s, k, 'ms') % 1000 as bigint)) as event_time
        from events
    )
    select
        'e' || s || '-' || k as event_id,
        event_time,
        event_type,
        'a' || device as anonymous_id,
        case
            when device % 10 < 3 and session_ordinal >= 2 then 'u' || (device // 2)
        end as user_id,
        case
            when event_type in ('product_view', 'add_to_cart', 'remove_from_cart',
                                'add_to_wishlist', 'purchase')
                then 'i' || (hash(s, k, 'item') % 5000)
        end as item_id,
        case
            when event_type = 'page_view' and k = 0 then '/'
            when event_type in ('page_view', 'scroll', 'click') then '/c/' || (r % 12)
            when event_type = 'search' then '/search'
            when event_type = 'login' then '/login'
            when event_type = 'purchase' then '/checkout'
            else '/p/i' || (hash(s, k, 'item') % 5000)
        end as page,
        case when event_type = 'scroll' then cast(r as double) end as scroll_depth_pct,
        cast(null as integer) as list_position,
        case when event_type in ('add_to_cart', 'purchase') then cast(10 + r as double) end
            as price,
        case when event_type in ('add_to_cart', 'purchase') then 1 end as quantity,
        case when event_type = 'purchase' then 'o' || s end as order_id,
        case when event_type = 'search' then 'dress' end as search_query,
        case when event_type = 'product_view' and r % 5 = 0 then 'rec' || s end
            as recommendation_id,
        case device % 3 when 0 then 'web' when 1 then 'ios' else 'android' end as platform,
        case device % 4 when 0 then 'DE' when 1 then 'FR' when 2 then 'NL' else 'GB' end
            as country,
        'bench' as user_agent,
        cast(null as varchar) as experiment_id,
        cast(null as varchar) as variant,
        '{{}}' as properties,
        device % 100 = 99 as is_bot,
        event_time + interval 5 minute as received_at,
        'bench.jsonl.gz' as source_file,
        cast(k as bigint) as source_line,
        cast(event_time as date) as event_date
    from typed
    limit {n_events}
    """


def write_lake(data_dir: Path, n_events: int) -> int:
    lake = data_dir / "lake"
    for sub in ("events", "catalog", "customers"):
        (lake / sub).mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(
        f"copy ({generate_events_sql(n_events)}) to '{lake / 'events'}' "
        "(format parquet, partition_by (event_date), overwrite_or_ignore, "
        "filename_pattern 'history_{i}')"
    )
    con.execute(
        f"""copy (
            select 'i' || i as item_id, 'item ' || i as name,
                case i % 3 when 0 then 'women' when 1 then 'men' else 'kids' end as department,
                'cat' || (i % 20) as category, 'type' || (i % 50) as product_type,
                'colour' || (i % 9) as colour, 'brand' || (i % 40) as brand,
                5.0 + (i % 300) as price, 'c' || (i % 4) as collection,
                date '2023-01-01' + cast(i % 400 as integer) as launch_date,
                date '2024-04-01' as snapshot_date
            from range(5000) t(i)
        ) to '{lake / "catalog"}' (format parquet, partition_by (snapshot_date),
            overwrite_or_ignore)"""
    )
    con.execute(
        f"""copy (
            select 'u' || i as user_id, date '2023-06-01' + cast(i % 300 as integer)
                as signup_date, 'DE' as country, '25-34' as age_band,
                i % 2 = 0 as is_newsletter_subscriber, date '2024-04-01' as snapshot_date
            from range({max(1, n_events // EVENTS_PER_SESSION // SESSIONS_PER_DEVICE // 2)}) t(i)
        ) to '{lake / "customers"}' (format parquet, partition_by (snapshot_date),
            overwrite_or_ignore)"""
    )
    n = con.execute(f"select count(*) from read_parquet('{lake}/events/*/*.parquet')").fetchall()[
        0
    ][0]
    con.close()
    return int(n)


def append_hour(data_dir: Path, n_events: int, history_events: int) -> str:
    """Write ``n_events`` new events in one new hour after the history; return the file."""
    con = duckdb.connect()
    max_time = con.execute(
        f"select max(event_time) from read_parquet('{data_dir}/lake/events/*/*.parquet')"
    ).fetchall()[0][0]
    hour = (max_time.replace(minute=0, second=0, microsecond=0)).isoformat(sep=" ")
    first_session = history_events // EVENTS_PER_SESSION + 1_000_000_000
    sql = generate_events_sql(n_events, first_session=first_session, hour=hour)
    # new devices for most, plus returning ones: reuse device ids by taking s % n_devices
    out = data_dir / "lake" / "events"
    con.execute(
        f"copy ({sql}) to '{out}' (format parquet, partition_by (event_date), "
        "overwrite_or_ignore, filename_pattern 'hour_{i}')"
    )
    con.close()
    return hour


def run_dbt(
    args: list[str], data_dir: Path, target_path: Path, target: str = "dev"
) -> tuple[float, dict]:
    """Run dbt through the project's runner on ``target`` (profiles.yml); return (wall
    seconds, run_results)."""
    from include.dbt_runner import DbtError
    from include.dbt_runner import run_dbt as project_run_dbt

    results_path = target_path / "run_results.json"
    results_path.unlink(missing_ok=True)  # never read an earlier command's results
    previous = os.environ.get("TRASOS_DBT_TARGET")
    os.environ["TRASOS_DBT_TARGET"] = target
    t0 = time.perf_counter()
    try:
        project_run_dbt(args, target_path, log_output=False, data_dir=data_dir)
    except DbtError as exc:
        raise SystemExit(str(exc)) from None
    finally:
        if previous is None:
            os.environ.pop("TRASOS_DBT_TARGET", None)
        else:
            os.environ["TRASOS_DBT_TARGET"] = previous
    wall = time.perf_counter() - t0
    # `dbt parse` writes no run results
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    return wall, results


def model_timings(results: dict) -> dict[str, float]:
    out = {}
    for r in results["results"]:
        name = r["unique_id"].split(".")[-1]
        out[name] = round(float(r["execution_time"]), 3)
    return out


def pandas_sessions(data_dir: Path) -> tuple[float, float, object]:
    """The same rule in pandas. Returns (load seconds, sessionise seconds, frame)."""
    import pandas as pd

    t0 = time.perf_counter()
    con = duckdb.connect()
    df = con.execute(
        f"""select event_id, event_time as event_at, anonymous_id, user_id
        from read_parquet('{data_dir}/lake/events/*/*.parquet', hive_partitioning = true)
        where not coalesce(is_bot, false)"""
    ).df()
    con.close()
    load_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    # identity stitching: each device belongs to its last known user
    known = df[df["user_id"].notna()].sort_values(["anonymous_id", "event_at", "event_id"])
    device_user = known.groupby("anonymous_id", sort=False)["user_id"].last()
    df["visitor_id"] = (
        df["user_id"].fillna(df["anonymous_id"].map(device_user)).fillna(df["anonymous_id"])
    )
    # sessionisation: order by visitor, time, event_id; new session after > 30 min
    df = df.sort_values(["visitor_id", "event_at", "event_id"], ignore_index=True)
    gap = df.groupby("visitor_id", sort=False)["event_at"].diff()
    is_start = gap.isna() | (gap > pd.Timedelta(INACTIVITY))
    df["session_index"] = is_start.astype("int64").groupby(df["visitor_id"], sort=False).cumsum()
    df["session_started_at"] = df["event_at"].where(is_start).ffill()
    sessionise_s = time.perf_counter() - t0
    return load_s, sessionise_s, df[["event_id", "visitor_id", "session_started_at"]]


def lag_window_seconds(warehouse: Path) -> float:
    """Seconds DuckDB takes for the least any sessionisation must do after stitching: the
    stitched events in per-visitor time order with the previous event's time (one window),
    nothing numbered, hashed or written. With ``int_identities_stitched``'s own time, an
    upper bound of ``events_per_s`` on this machine."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        t0 = time.perf_counter()
        con.execute(
            """select count(*), count(previous_event_at) from (
                select lag(e.event_at) over (
                    partition by coalesce(e.user_id, i.user_id, e.anonymous_id)
                    order by e.event_at, e.event_id
                ) as previous_event_at
                from staging.stg_lake__events as e
                left join intermediate.int_identities_stitched as i
                    on e.anonymous_id = i.anonymous_id and i.user_id is not null
            )"""
        ).fetchall()
        return time.perf_counter() - t0
    finally:
        con.close()


def compare_sessions(warehouse: Path, frame) -> tuple[bool, int, int]:
    con = duckdb.connect(str(warehouse), read_only=True)
    con.register("pandas_sessions", frame)
    mismatches = con.execute(
        """select count(*) from intermediate.int_events_sessionized d
        full outer join pandas_sessions p on d.event_id = p.event_id
        where d.event_id is null or p.event_id is null
            or d.visitor_id <> p.visitor_id or d.session_started_at <> p.session_started_at"""
    ).fetchall()[0][0]
    n_sessions_dbt = con.execute("select count(*) from fct_sessions").fetchall()[0][0]
    n_sessions_pd = con.execute(
        "select count(*) from (select distinct visitor_id, session_started_at from pandas_sessions)"
    ).fetchall()[0][0]
    con.close()
    return mismatches == 0 and n_sessions_dbt == n_sessions_pd, n_sessions_dbt, n_sessions_pd


def spark_startup_seconds() -> float:
    """Wall seconds of a bare local SparkSession start (JVM, Hive catalog off, loopback as in
    profiles.yml) in a fresh Python process, imports included: what every Spark dbt
    invocation pays first."""
    import subprocess
    import sys

    code = (
        "import time; t = time.perf_counter(); from pyspark.sql import SparkSession; "
        "s = SparkSession.builder.master('local[2]').config('spark.ui.enabled', 'false')"
        ".config('spark.driver.host', '127.0.0.1').config('spark.driver.bindAddress', "
        "'127.0.0.1').getOrCreate(); s.sql('select 1').collect(); "
        "print(time.perf_counter() - t)"
    )
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def compare_spark_sessions(data_dir: Path) -> tuple[bool, int]:
    """Every event's (session_id, visitor_id, session_started_at, session_index) on Spark
    equal to DuckDB's; returns (match, events compared)."""
    from include.warehouse import attach_spark_warehouse

    con = duckdb.connect()
    try:
        attach_spark_warehouse(con, data_dir / "spark" / "warehouse")
        con.execute(f"attach '{data_dir / 'warehouse.duckdb'}' as duck (read_only)")
        row = con.execute(
            """select count(*), count(*) filter (
                where s.event_id is null or d.event_id is null or s.session_id <> d.session_id
                    or s.visitor_id <> d.visitor_id
                    or s.session_started_at <> d.session_started_at
                    or s.session_index <> d.session_index)
            from intermediate.int_events_sessionized as s
            full outer join duck.intermediate.int_events_sessionized as d
                on s.event_id = d.event_id"""
        ).fetchall()[0]
        return row[1] == 0, int(row[0])
    finally:
        con.close()


def fingerprint(data_dir: Path) -> tuple:
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        return tuple(con.execute(FINGERPRINT_SQL).fetchall()[0])
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--new-events", type=int, default=100_000)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--reuse", action="store_true", help="reuse an existing lake in --data-dir")
    parser.add_argument(
        "--no-spark",
        dest="spark",
        action="store_false",
        help="skip the Spark target (it needs `make setup-scale` and Java 17)",
    )
    parser.add_argument(
        "--no-full-refresh",
        dest="full_refresh",
        action="store_false",
        help="skip timing the new hour as a full rebuild too",
    )
    args = parser.parse_args()

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="trasos_bench_"))
    data_dir = data_dir.resolve()
    target_path = data_dir / "dbt_target"
    figures: dict[str, object] = {
        "events": args.events,
        "cpus": os.cpu_count(),
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
    }
    try:
        if args.reuse and (data_dir / "lake" / "events").exists():
            log(f"reusing the lake in {data_dir} (drop its hour_* files first)")
            for path in (data_dir / "lake" / "events").glob("*/hour_*.parquet"):
                path.unlink()
        else:
            if data_dir.exists():
                shutil.rmtree(data_dir / "lake", ignore_errors=True)
            log(f"generating {args.events:,} events in {data_dir}")
            t0 = time.perf_counter()
            n = write_lake(data_dir, args.events)
            log(f"lake written: {n:,} events in {time.perf_counter() - t0:.1f} s")
        for path in (data_dir / "warehouse.duckdb", data_dir / "warehouse.duckdb.wal"):
            path.unlink(missing_ok=True)

        log("dbt parse (warms the partial-parse cache, as a deployed project has)")
        run_dbt(["parse"], data_dir, target_path)

        log("dbt build (full) on the history")
        wall, results = run_dbt(["build", *DE_SELECT], data_dir, target_path)
        timings = model_timings(results)
        session_s = sum(timings[m] for m in SESSION_MODELS)
        con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
        n_sessionized = con.execute(
            "select count(*) from intermediate.int_events_sessionized"
        ).fetchall()[0][0]
        con.close()
        startup = wall - float(results["elapsed_time"])
        log(
            f"dbt build: {wall:.1f} s wall, {results['elapsed_time']:.1f} s executing, "
            f"sessionisation models {session_s:.2f} s for {n_sessionized:,} events"
        )
        log(f"per-node timings (s): {json.dumps(timings)}")
        lag_s = lag_window_seconds(data_dir / "warehouse.duckdb")
        floor_s = timings["int_identities_stitched"] + lag_s
        log(
            f"DuckDB alone: one lag window over the stitched events {lag_s:.2f} s; with the "
            f"identity model {floor_s:.2f} s = {n_sessionized / floor_s:,.0f} events/s at most"
        )
        figures.update(
            {
                "events_per_s": round(n_sessionized / session_s),
                "window_floor_events_per_s": round(n_sessionized / floor_s),
                "lag_window_s": round(lag_s, 3),
                "sessionisation_models_s": round(session_s, 3),
                "sessionized_events": n_sessionized,
                "dbt_startup_s": round(startup, 2),
                "full_build_s": round(wall, 2),
                "full_build_node_s": timings,
            }
        )

        log("pandas: the same rule (sort, groupby, diff, cumsum)")
        load_s, pd_s, frame = pandas_sessions(data_dir)
        log(f"pandas: load {load_s:.1f} s, sessionise {pd_s:.1f} s")
        match, n_dbt, n_pd = compare_sessions(data_dir / "warehouse.duckdb", frame)
        del frame
        log(f"sessions: dbt {n_dbt:,}, pandas {n_pd:,}, identical assignment: {match}")
        figures.update(
            {
                "pandas_events_per_s": round(n_sessionized / pd_s),
                "pandas_load_s": round(load_s, 2),
                "sessions": n_dbt,
                "sessions_match": bool(match),
            }
        )

        if args.spark:
            log("Spark start-up alone (a bare local SparkSession in a fresh process)")
            startup_spark = spark_startup_seconds()
            log(f"Spark start-up: {startup_spark:.1f} s")
            shutil.rmtree(data_dir / "spark", ignore_errors=True)
            spark_target = data_dir / "dbt_target_spark"
            log("dbt run on the Spark target: the sessionisation models and their parents")
            wall_spark, results_spark = run_dbt(
                ["run", "--select", "+int_events_sessionized"], data_dir, spark_target, "spark"
            )
            timings_spark = model_timings(results_spark)
            spark_session_s = sum(timings_spark[m] for m in SESSION_MODELS)
            spark_match, n_compared = compare_spark_sessions(data_dir)
            log(
                f"Spark: {wall_spark:.1f} s wall, sessionisation models {spark_session_s:.2f} s; "
                f"sessions identical to DuckDB's on {n_compared:,} events: {spark_match}"
            )
            log(f"per-node timings on Spark (s): {json.dumps(timings_spark)}")
            figures.update(
                {
                    "spark_events_per_s": round(n_sessionized / spark_session_s),
                    "spark_sessions_match": bool(spark_match and n_compared == n_sessionized),
                    "spark_sessionisation_models_s": round(spark_session_s, 3),
                    "spark_startup_s": round(startup_spark, 2),
                    "spark_dbt_run_s": round(wall_spark, 2),
                    "spark_node_s": timings_spark,
                    "spark_vs_duckdb_sessionisation": round(spark_session_s / session_s, 2),
                }
            )

        log(f"appending {args.new_events:,} new events (one hour)")
        hour = append_hour(data_dir, args.new_events, args.events)
        log(f"dbt build (incremental) after the new hour {hour}")
        wall_inc, results_inc = run_dbt(["build", *DE_SELECT], data_dir, target_path)
        log(
            f"hourly dbt build: {wall_inc:.1f} s wall ({results_inc['elapsed_time']:.1f} s "
            "executing)"
        )
        log(f"per-node timings (s): {json.dumps(model_timings(results_inc))}")
        figures.update(
            {
                "incremental_hour_s": round(wall_inc, 2),
                "incremental_hour_node_s": model_timings(results_inc),
            }
        )
        if args.full_refresh:
            incremental_print = fingerprint(data_dir)
            log("the same hour as a full rebuild: dbt build --full-refresh")
            wall_full, results_full = run_dbt(
                ["build", "--full-refresh", *DE_SELECT], data_dir, target_path
            )
            match = fingerprint(data_dir) == incremental_print
            log(f"full rebuild: {wall_full:.1f} s wall; same tables as incremental: {match}")
            log(f"per-node timings (s): {json.dumps(model_timings(results_full))}")
            figures.update(
                {
                    "full_rebuild_hour_s": round(wall_full, 2),
                    "full_rebuild_hour_node_s": model_timings(results_full),
                    "incremental_matches_full_rebuild": match,
                }
            )
        figures["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    finally:
        if not args.keep and args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
