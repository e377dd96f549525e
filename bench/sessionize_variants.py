"""Micro-benchmark: the sessionisation SQL of int_events_sessionized against other shapes and
against DuckDB's floor (one lag window, nothing written), in one in-memory DuckDB process.

Events come from ``bench/sessionize.py``'s generator; stitching is done once up front, so each
variant times only what follows it. Variants (each writes the same 14 columns to a table):

- ``current``: the model's shape (lag window, a window over the ~5 % session starts, events
  joined to the session whose [start, next start) holds them);
- ``asof``: the same with DuckDB's ASOF join instead of the range join;
- ``two_windows``: a running count and a running max of session starts (a second window);
- ``narrow``: the lag window over (visitor_id, event_at, event_id) only, payload joined back.

All variants must give the same (session_id, session_index) per event. The LAST line printed is
one JSON object of seconds (best of ``--repeat``) and ratios floor / variant.

    .venv/bin/python bench/sessionize_variants.py [--events 3000000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import duckdb
from sessionize import generate_events_sql

FLAG = """flagged as (
    select *, previous_event_at is null
        or event_at > previous_event_at + interval 30 minute as is_session_start
    from (select {cols}, lag(event_at) over (partition by visitor_id order by event_at, event_id)
        as previous_event_at from st))"""
SESS = """sessions as (
    select visitor_id, event_at as session_started_at,
        row_number() over (partition by visitor_id order by event_at) as session_index,
        lead(event_at) over (partition by visitor_id order by event_at) as next_session_started_at
    from flagged where is_session_start),
keyed as (select md5(visitor_id || '|' || cast(session_started_at as varchar)) as session_id, *
    from sessions)"""
RANGE = """join keyed k on f.visitor_id = k.visitor_id and f.event_at >= k.session_started_at
    and (k.next_session_started_at is null or f.event_at < k.next_session_started_at)"""
OUT = """f.event_id, k.session_id, f.visitor_id, k.session_index, k.session_started_at,
    f.is_session_start, f.event_at, f.previous_event_at,
    datediff('second', f.previous_event_at, f.event_at) as seconds_since_previous_event,
    {payload}, now() as sessionized_at"""
PAYLOAD = "f.anonymous_id, f.user_id, f.stitched_user_id, f.received_at"
VARIANTS = {
    "floor": """select count(*), count(previous_event_at) from (select lag(event_at) over
        (partition by visitor_id order by event_at, event_id) as previous_event_at from st)""",
    "current": f"create or replace table out_current as with {FLAG.format(cols='*')}, {SESS} "
    f"select {OUT.format(payload=PAYLOAD)} from flagged f {RANGE}",
    "asof": f"create or replace table out_asof as with {FLAG.format(cols='*')}, {SESS} "
    f"select {OUT.format(payload=PAYLOAD)} from flagged f asof join keyed k "
    "on f.visitor_id = k.visitor_id and f.event_at >= k.session_started_at",
    "two_windows": f"""create or replace table out_two_windows as with {FLAG.format(cols="*")},
        w as (select *,
            sum(case when is_session_start then 1 else 0 end) over (partition by visitor_id
                order by event_at, event_id rows unbounded preceding) as session_index,
            max(case when is_session_start then event_at end) over (partition by visitor_id
                order by event_at, event_id rows unbounded preceding) as session_started_at
            from flagged)
        select event_id, md5(visitor_id || '|' || cast(session_started_at as varchar))
            as session_id, visitor_id, session_index, session_started_at, is_session_start,
            event_at, previous_event_at,
            datediff('second', previous_event_at, event_at) as seconds_since_previous_event,
            anonymous_id, user_id, stitched_user_id, received_at, now() as sessionized_at
        from w""",
    "narrow": "create or replace table out_narrow as with "
    f"{FLAG.format(cols='event_id, visitor_id, event_at')}, {SESS} "
    f"select {OUT.format(payload='st.anonymous_id, st.user_id, st.stitched_user_id, st.received_at')} "
    f"from flagged f {RANGE} join st on st.event_id = f.event_id",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    con = duckdb.connect()
    con.execute("set preserve_insertion_order = false")
    con.execute(
        "create table ev as select event_id, event_time as event_at, anonymous_id, user_id, "
        f"received_at from ({generate_events_sql(args.events)}) where not is_bot"
    )
    con.execute(
        """create table st as
        with ids as (
            select anonymous_id, arg_max(user_id, case when user_id is not null
                then row(event_at, event_id) end) as device_user_id
            from ev group by 1
        )
        select ev.*, coalesce(ev.user_id, ids.device_user_id) as stitched_user_id,
            coalesce(ev.user_id, ids.device_user_id, ev.anonymous_id) as visitor_id
        from ev left join ids on ev.anonymous_id = ids.anonymous_id"""
    )
    n = con.execute("select count(*) from st").fetchall()[0][0]
    best: dict[str, float] = {}
    for rep in range(args.repeat):
        for name, sql in VARIANTS.items():
            t0 = time.perf_counter()
            con.execute(sql).fetchall()
            took = time.perf_counter() - t0
            best[name] = min(best.get(name, took), took)
            print(f"run {rep + 1} {name}: {took:.2f} s", flush=True)
    same = {
        name: con.execute(
            f"""select count(*) = {n} from out_current c join out_{name} v using (event_id)
            where c.session_id = v.session_id and c.session_index = v.session_index"""
        ).fetchall()[0][0]
        for name in VARIANTS
        if name not in ("floor", "current")
    }
    figures = {
        "events": n,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "seconds": {k: round(v, 2) for k, v in best.items()},
        "floor_over_variant": {
            k: round(best["floor"] / v, 3) for k, v in best.items() if k != "floor"
        },
        "same_sessions_as_current": same,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
