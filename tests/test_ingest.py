"""Ingestion (include/ingest, dags/events_ingest.py): nothing lost, nothing twice.

Real DuckDB, real files, the real simulator with its fault manifest, a real SIGKILL, and a
real Airflow DAG run. Expected values are worked out by hand for the hand-made landing
zone; the simulator's ``faults.jsonl`` is the oracle for the simulated one.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from include.contracts import INGEST_MANIFEST_COLUMNS, QUARANTINE_COLUMNS, RAW_EVENT_COLUMNS
from include.ingest import (
    IngestConfig,
    IngestHooks,
    IngestLockedError,
    ReconciliationError,
    ingest,
)
from include.ingest import validate as ingest_validate
from include.ingest.landing import gunzip, read_content
from include.ingest.lock import ingest_lock
from include.ingest.runner import HOOK_POINTS
from include.settings import REPO_ROOT, get_settings
from include.tasks.ingest import validate_raw_events

HOUR = "events/date=2026-10-01/hour=10"


# --- helpers ---------------------------------------------------------------------------------


def event(n: int, **overrides) -> dict:
    e = {
        "event_id": f"e{n}",
        "event_time": "2026-10-01T10:05:00.000000Z",
        "event_type": "page_view",
        "anonymous_id": "anon-1",
        "user_id": None,
        "item_id": None,
        "page": "/",
        "properties": {"scroll_depth_pct": 50, "list_position": 2},
        "context": {"platform": "web", "country": "DE", "user_agent": "Mozilla/5.0"},
    }
    e.update(overrides)
    return e


def line(n: int, **overrides) -> bytes:
    return json.dumps(event(n, **overrides), separators=(",", ":")).encode()


def write_gz(landing: Path, rel: str, lines: list[bytes], end: bytes = b"\n") -> Path:
    path = landing / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(end.join(lines) + (end if lines else b"")))
    return path


def query(data_dir: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def state(data_dir: Path) -> dict:
    """Everything a run leaves behind, minus wall-clock timestamps."""
    s = get_settings()
    files = sorted(
        p.relative_to(data_dir).as_posix()
        for folder in (data_dir / "lake", data_dir / "quarantine")
        if folder.exists()
        for p in folder.rglob("*")
        if p.is_file()
    )
    events = [c for c, _ in RAW_EVENT_COLUMNS if c != "received_at"]
    q = [c for c, _ in QUARANTINE_COLUMNS if c != "quarantined_at"]
    manifest = [
        c
        for c, _ in INGEST_MANIFEST_COLUMNS
        if c not in ("first_seen_at", "loaded_at", "file_mtime")
    ]
    assert s.data_dir == data_dir
    return {
        "files": files,
        "events": query(data_dir, f"select {', '.join(events)} from raw.events order by all"),
        "quarantine": query(data_dir, f"select {', '.join(q)} from raw.quarantine order by all"),
        "manifest": query(
            data_dir, f"select {', '.join(manifest)} from raw.ingest_manifest order by all"
        ),
        "event_ids": query(data_dir, "select * from raw.event_ids order by all"),
        "outputs": query(data_dir, "select path, load_id, kind, rows from raw.ingest_outputs"),
    }


def assert_reconciles(data_dir: Path) -> None:
    bad = query(
        data_dir,
        "select path, lines_in, loaded, quarantined, duplicates from raw.ingest_manifest "
        "where lines_in <> loaded + quarantined + duplicates",
    )
    assert bad == []
    per_file = query(
        data_dir,
        """
        with m as (  -- every version of a path (a cut-off one, then the complete one)
            select path, sum(loaded) as loaded, sum(quarantined) as quarantined
            from raw.ingest_manifest where status <> 'failed' group by path
        )
        select m.path, m.loaded, m.quarantined,
               (select count(*) from (
                    select source_file from raw.events union all
                    select source_file from raw.items union all
                    select source_file from raw.customers) e where e.source_file = m.path),
               (select count(*) from raw.quarantine q where q.source_file = m.path)
        from m
        """,
    )
    for path, loaded, quarantined, in_lake, in_quarantine in per_file:
        assert (loaded, quarantined) == (in_lake, in_quarantine), path


# --- the simulator's landing zone and its fault manifest ---------------------------------------


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> Path:
    """2 days, 500 visitors, 5 % faults: every fault kind, several times (~14k lines)."""
    from include.simulator import SimulatorConfig, simulate

    out = tmp_path_factory.mktemp("simulated")
    simulate(SimulatorConfig(days=2, visitors=500, seed=7, fault_rate=0.05), out)
    return out / "landing"


@pytest.fixture
def sim_data(data_dir: Path, simulated: Path) -> Path:
    shutil.copytree(simulated, data_dir / "landing")
    return data_dir


def test_every_fault_is_quarantined_with_the_manifest_reason(sim_data: Path) -> None:
    summary = ingest()
    faults = [
        json.loads(x)
        for x in (sim_data / "landing/_simulator/faults.jsonl").read_text().split("\n")
        if x
    ]
    assert {f["fault"] for f in faults} >= {
        "truncated",
        "garbage",
        "invalid_utf8",
        "wrong_type",
        "missing_field",
        "unknown_event_type",
        "duplicate",
        "late",
        "future",
        "empty_file",
        "crlf",
    }
    expected = {
        (f["file"], f["line"], f["expected_reason"]) for f in faults if f["expected_reason"]
    }
    got = set(query(sim_data, "select source_file, source_line, reason from raw.quarantine"))
    assert got == expected  # line by line, not just in total
    assert Counter(summary.reasons) == Counter(
        f["expected_reason"] for f in faults if f["expected_reason"]
    )

    # Duplicates: counted, never loaded twice.
    assert summary.duplicates == sum(f["fault"] == "duplicate" for f in faults)
    assert query(sim_data, "select count(*) - count(distinct event_id) from raw.events") == [(0,)]

    # Late events inside the window load into their own event_date partition.
    late_ok = [f for f in faults if f["fault"] == "late" and f["expected_reason"] is None]
    assert late_ok
    for f in late_ok:
        rows = query(
            sim_data,
            f"select event_date, event_time::date, source_file, filename from read_parquet("
            f"'{sim_data}/lake/events/*/*.parquet', filename = true) where event_id = '{f['event_id']}'",
        )
        assert len(rows) == 1, f
        event_date, time_date, source_file, filename = rows[0]
        assert event_date == time_date
        assert f"event_date={event_date.isoformat()}/" in filename
        assert source_file == f["file"]
    assert summary.late_loaded == len(late_ok)

    # Empty files count 0 lines and are done; CRLF files load like any other.
    for f in faults:
        if f["fault"] == "empty_file":
            assert query(
                sim_data,
                f"select status, lines_in from raw.ingest_manifest where path = '{f['file']}'",
            ) == [("loaded", 0)]
        if f["fault"] == "crlf":
            [(lines_in, loaded, dups, quarantined)] = query(
                sim_data,
                "select lines_in, loaded, duplicates, quarantined from raw.ingest_manifest "
                f"where path = '{f['file']}'",
            )
            assert loaded + dups + quarantined == lines_in > 0
    assert query(sim_data, "select count(*) from raw.events where contains(event_id, chr(13))") == [
        (0,)
    ]

    # Nothing lost, per file and in total; the snapshots are in the lake with their dates.
    assert_reconciles(sim_data)
    assert summary.reconciles and summary.files_failed == 0
    n_lines = sum(
        gzip.decompress(p.read_bytes()).count(b"\n")
        for p in (sim_data / "landing/events").rglob("*.jsonl.gz")
    )
    assert query(
        sim_data, "select sum(lines_in) from raw.ingest_manifest where dataset = 'events'"
    ) == [(n_lines,)]
    assert summary.lines_in == summary.loaded + summary.quarantined + summary.duplicates
    snaps = query(sim_data, "select distinct snapshot_date::varchar from raw.items order by 1")
    assert snaps == [("2026-10-01",), ("2026-10-02",)]
    assert query(sim_data, "select count(*) from raw.customers where user_id is null") == [(0,)]
    # The simulator's crawler is caught by its user agent.
    assert summary.bot_events > 0
    checked = validate_raw_events(summary.as_dict())
    assert {k: v for k, v in checked.items() if k != "gate"} == summary.as_dict()
    assert checked["gate"]["suite"] == "raw_events" and checked["gate"]["success"]


# --- hand-made landing zone: every rule, values worked out by hand ----------------------------


def test_hand_made_landing_zone(data_dir: Path) -> None:
    landing = data_dir / "landing"
    lines = [
        line(1),  # 1 ok
        b"",  # 2 blank: not an event
        b'{"event_id":"e3","event_time":"2026-10-01T10:0',  # 3 truncated -> invalid_json
        b"<html>502</html>",  # 4 garbage -> invalid_json
        b"[1, 2]",  # 5 JSON but not an object -> invalid_json
        b'{"event_id":"e6","page":"\xff\xfe"}',  # 6 invalid_utf8
        line(7, event_type="hover"),  # 7 unknown_event_type
        line(8, event_time=1790000000),  # 8 bad_type:event_time
        line(9, properties={"quantity": "two"}),  # 9 bad_type:properties.quantity
        line(10, user_id=42),  # 10 bad_type:user_id
        line(11, event_type="purchase"),  # 11 purchase without item_id -> missing_field:item_id
        line(12, anonymous_id=""),  # 12 empty required id -> missing_field:anonymous_id
        line(13, event_time="2026-09-28T09:59:59Z"),  # 13 older than hour start - 3 d: too_late
        line(14, event_time="2026-09-28T10:00:00Z"),  # 14 exactly at the limit: loads (late)
        line(15, event_time="2026-10-01T12:00:00Z"),  # 15 = hour end + 1 h: loads
        line(16, event_time="2026-10-01T12:00:01Z"),  # 16 future_event_time
        line(1),  # 17 duplicate of line 1
        line(18, context={"user_agent": "Mozilla/5.0 (compatible; Googlebot/2.1)"}),  # 18 bot
        b"   \t",  # 19 whitespace only: blank
        line(20, event_time="2026-10-01T12:30:00+02:00"),  # 20 offset -> 10:30 UTC
    ]
    write_gz(landing, f"{HOUR}/batch-0001.jsonl.gz", lines)
    # CRLF file with a repeat of e20 (duplicate across files) and a rate bot (70 in a minute).
    rate = [line(100 + i, anonymous_id="anon-fast") for i in range(70)]
    write_gz(landing, f"{HOUR}/batch-0002.jsonl.gz", [line(20), *rate], end=b"\r\n")
    write_gz(landing, f"{HOUR}/batch-0003.jsonl.gz", [])  # empty file
    trunc = gzip.compress(b"\n".join([line(30), line(31), line(32)]) + b"\n")
    (landing / HOUR / "batch-0004.jsonl.gz").write_bytes(trunc[: len(trunc) // 2])
    # not under date=/hour=: the window is the file's first_seen time (now)
    write_gz(landing, "events/adhoc/resend.jsonl", [line(1)])
    # ignored: '_' components, hidden files, and files outside the dataset folders
    write_gz(landing, "_simulator/x.jsonl.gz", [line(900)])
    write_gz(landing, f"{HOUR}/_rejected/y.jsonl.gz", [line(901)])
    write_gz(landing, f"{HOUR}/.upload.jsonl.gz", [line(902)])
    write_gz(landing, "stray.jsonl.gz", [line(903)])
    items = [
        b'{"item_id":"i1","name":"a\\/b","price":10.5,"launch_date":"2026-01-01"}',
        b'{"item_id":"i2","price":"cheap"}',
        b'{"name":"no id"}',
        b'{"item_id":"i1","name":"again"}',
    ]
    write_gz(landing, "catalog/snapshot_date=2026-10-01/items.jsonl.gz", items)

    s = ingest()

    reasons = dict(
        query(
            data_dir,
            "select source_line, reason from raw.quarantine "
            f"where source_file = '{HOUR}/batch-0001.jsonl.gz'",
        )
    )
    assert reasons == {
        3: "invalid_json",
        4: "invalid_json",
        5: "invalid_json",
        6: "invalid_utf8",
        7: "unknown_event_type",
        8: "bad_type:event_time",
        9: "bad_type:properties.quantity",
        10: "bad_type:user_id",
        11: "missing_field:item_id",
        12: "missing_field:anonymous_id",
        13: "too_late",
        16: "future_event_time",
    }
    manifest = {
        r[0]: r[1:]
        for r in query(
            data_dir,
            "select path, status, lines_in, blank_lines, loaded, quarantined, duplicates, "
            "late_loaded, bot_events from raw.ingest_manifest",
        )
    }
    assert manifest[f"{HOUR}/batch-0001.jsonl.gz"] == ("loaded", 18, 2, 5, 12, 1, 1, 1)
    assert manifest[f"{HOUR}/batch-0002.jsonl.gz"] == ("loaded", 71, 0, 70, 0, 1, 0, 70)
    assert manifest[f"{HOUR}/batch-0003.jsonl.gz"] == ("loaded", 0, 0, 0, 0, 0, 0, 0)
    # cut off in its first deflate block: nothing decompresses; the file is one unit
    status, lines_in, _, loaded, quarantined, *_ = manifest[f"{HOUR}/batch-0004.jsonl.gz"]
    assert (status, lines_in, loaded, quarantined) == ("unreadable", 1, 0, 1)
    # its window starts now: an October event is too late there
    assert manifest["events/adhoc/resend.jsonl"] == ("loaded", 1, 0, 0, 1, 0, 0, 0)
    assert manifest["catalog/snapshot_date=2026-10-01/items.jsonl.gz"] == (
        "loaded", 4, 0, 1, 2, 1, 0, 0,
    )  # fmt: skip
    assert set(manifest) == {f"{HOUR}/batch-000{i}.jsonl.gz" for i in range(1, 5)} | {
        "events/adhoc/resend.jsonl",
        "catalog/snapshot_date=2026-10-01/items.jsonl.gz",
    }
    assert s.files_unknown == ["stray.jsonl.gz"]

    ev = {
        r[0]: r[1:]
        for r in query(
            data_dir,
            "select event_id, event_time::varchar, event_date::varchar, is_bot, source_line, "
            "scroll_depth_pct, list_position, platform from raw.events",
        )
    }
    assert ev["e1"] == ("2026-10-01 10:05:00", "2026-10-01", False, 1, 50.0, 2, "web")
    assert ev["e14"][:2] == ("2026-09-28 10:00:00", "2026-09-28")  # its own partition
    assert ev["e20"][0] == "2026-10-01 10:30:00" and ev["e20"][3] == 20  # first received wins
    assert ev["e18"][2] is True and ev["e1"][2] is False
    assert all(ev[f"e{100 + i}"][2] for i in range(70))  # rate rule
    assert (data_dir / "lake/events/event_date=2026-09-28").is_dir()
    raw = dict(
        query(
            data_dir,
            "select source_line, raw_line from raw.quarantine "
            f"where source_file = '{HOUR}/batch-0001.jsonl.gz'",
        )
    )
    assert raw[6] == '{"event_id":"e6","page":"\\xff\\xfe"}'
    assert raw[4] == "<html>502</html>"
    assert query(data_dir, "select item_id, name, price, launch_date::varchar from raw.items") == [
        ("i1", "a/b", 10.5, "2026-01-01")
    ]
    assert s.reconciles and s.lines_in == 18 + 71 + 0 + lines_in + 1 + 4
    assert_reconciles(data_dir)


# --- idempotency ------------------------------------------------------------------------------


def test_quarantined_crlf_lines_and_bot_flags_are_exact(data_dir: Path) -> None:
    """raw_line comes from the line array after validation: no '\\n' of the line before, no
    '\\r'; is_bot is a plain boolean also for events without a user agent."""
    lines = [
        line(1),
        b'{"event_id":"e2","event_type":"page_view"}',  # 2 missing_field:event_time
        line(3, context={"platform": "ios"}),  # no user_agent: not a bot
        line(4, context=None),  # no context at all: not a bot
        line(5, context={"user_agent": "curl/8.1"}),  # crawler agent
        b"not json",  # 6
    ]
    write_gz(data_dir / "landing", f"{HOUR}/batch-0001.jsonl.gz", lines, end=b"\r\n")
    s = ingest()
    assert s.reconciles and s.loaded == 4 and s.quarantined == 2
    assert query(
        data_dir, "select source_line, reason, raw_line, line_bytes from raw.quarantine order by 1"
    ) == [
        (2, "missing_field:event_time", lines[1].decode(), len(lines[1])),
        (6, "invalid_json", "not json", 8),
    ]
    assert query(data_dir, "select event_id, is_bot from raw.events order by 1") == [
        ("e1", False),
        ("e3", False),
        ("e4", False),
        ("e5", True),
    ]


def test_context_must_be_an_object_when_present(data_dir: Path) -> None:
    """context is read in the line's own pass: a non-object is bad_type:context, while an
    object with none of the known keys (or null ones) loads, as does no context at all."""
    shapes = ["web", 5, [1], True, {}, {"other": 1}, {"platform": None}, None]
    lines = [line(i, context=c) for i, c in enumerate(shapes, start=1)]
    lines.append(line(9, context={"user_agent": 5}))
    lines.append(json.dumps({k: v for k, v in event(10).items() if k != "context"}).encode())
    write_gz(data_dir / "landing", f"{HOUR}/batch-0001.jsonl.gz", lines)
    s = ingest()
    assert s.reconciles and s.loaded == 5
    assert query(data_dir, "select source_line, reason from raw.quarantine order by 1") == [
        (1, "bad_type:context"),
        (2, "bad_type:context"),
        (3, "bad_type:context"),
        (4, "bad_type:context"),
        (9, "bad_type:context.user_agent"),
    ]


def test_string_fields_load_strings_that_look_like_json_and_reject_other_types(
    data_dir: Path,
) -> None:
    """String fields are read as VARCHAR in the line's pass; a value that is valid JSON text
    (digits, 'true', '[1]', '{}', a quoted word) is asked its type in the line: a string
    loads as it is, a number, boolean, array or object is bad_type. Escapes are undone."""
    lines = [
        line(1, item_id="12345", event_type="product_view"),  # digits as a string: loads
        line(2, item_id=12345, event_type="product_view"),  # a number: bad_type:item_id
        line(3, user_id="true"),  # loads
        line(4, user_id=True),  # bad_type:user_id
        line(5, page="[1]"),  # loads
        line(6, page=[1]),  # bad_type:page
        line(7, page="{}"),  # loads
        line(8, page={}),  # bad_type:page
        line(9, page='"quoted"'),  # loads, quotes kept
        line(10, properties={"order_id": 77}),  # bad_type:properties.order_id
        line(11, properties={"order_id": "77"}),  # loads
        line(12, context={"country": -1}),  # bad_type:context.country
        line(13, page="/a\tb \u00e9"),  # loads as /a<TAB>b é (json.dumps escapes it)
        line(14, event_id="2026"),  # loads
        line(15, event_time="2026"),  # a string, not a time: bad_type:event_time
    ]
    write_gz(data_dir / "landing", f"{HOUR}/batch-0001.jsonl.gz", lines)
    s = ingest()
    assert s.reconciles and s.loaded == 8 and s.quarantined == 7
    assert query(data_dir, "select source_line, reason from raw.quarantine order by 1") == [
        (2, "bad_type:item_id"),
        (4, "bad_type:user_id"),
        (6, "bad_type:page"),
        (8, "bad_type:page"),
        (10, "bad_type:properties.order_id"),
        (12, "bad_type:context.country"),
        (15, "bad_type:event_time"),
    ]
    assert query(
        data_dir,
        "select source_line, event_id, item_id, user_id, page, order_id from raw.events order by 1",
    ) == [
        (1, "e1", "12345", None, "/", None),
        (3, "e3", None, "true", "/", None),
        (5, "e5", None, None, "[1]", None),
        (7, "e7", None, None, "{}", None),
        (9, "e9", None, None, '"quoted"', None),
        (11, "e11", None, None, "/", "77"),
        (13, "e13", None, None, "/a\tb \u00e9", None),
        (14, "2026", None, None, "/", None),
    ]


def test_same_file_again_and_a_rerun_add_nothing(sim_data: Path) -> None:
    first = ingest()
    before = state(sim_data)
    again = ingest()
    assert again.files_new == 0 and again.loaded == 0 and again.loads == 0
    assert state(sim_data) == before

    # Dropped again with the same bytes (new mtime): skipped after hashing, nothing changes.
    some = sorted((sim_data / "landing/events").rglob("*.jsonl.gz"))[3]
    some.write_bytes(some.read_bytes())
    os.utime(some, ns=(time.time_ns(), time.time_ns() + 10**9))
    third = ingest()
    assert third.files_new == 0 and third.files_skipped == first.files_found
    assert state(sim_data) == before

    # The same content under another name: every event is a counted duplicate.
    copy = some.with_name("batch-0099.jsonl.gz")
    shutil.copy(some, copy)
    fourth = ingest()
    rel = copy.relative_to(sim_data / "landing").as_posix()
    [(lines_in, loaded, dups, quarantined)] = query(
        sim_data,
        "select lines_in, loaded, duplicates, quarantined from raw.ingest_manifest "
        f"where path = '{rel}'",
    )
    assert loaded == 0 and lines_in == dups + quarantined and dups > 0
    assert fourth.loaded == 0
    assert state(sim_data)["events"] == before["events"]


def test_changed_content_is_quarantined_whole(data_dir: Path) -> None:
    landing = data_dir / "landing"
    path = write_gz(landing, f"{HOUR}/batch-0001.jsonl.gz", [line(1), line(2)])
    ingest()
    write_gz(landing, f"{HOUR}/batch-0001.jsonl.gz", [line(1), line(3), b"", b"\xff oops"])
    s = ingest()
    assert s.files_content_changed == 1 and s.loaded == 0 and s.quarantined == 3
    rows = query(
        data_dir,
        "select status, lines_in, blank_lines, loaded, quarantined from raw.ingest_manifest "
        "order by loaded_at",
    )
    assert rows == [("loaded", 2, 0, 2, 0), ("content_changed", 3, 1, 0, 3)]
    assert query(
        data_dir, "select source_line, reason from raw.quarantine order by source_line"
    ) == [(1, "content_changed"), (2, "content_changed"), (4, "content_changed")]
    assert query(data_dir, "select event_id from raw.events order by 1") == [("e1",), ("e2",)]
    assert ingest().files_new == 0  # the changed version is done too
    assert path.exists()


# --- failures ---------------------------------------------------------------------------------


def test_a_file_that_does_not_reconcile_fails_loudly_and_is_retried(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing = data_dir / "landing"
    write_gz(landing, f"{HOUR}/batch-0001.jsonl.gz", [line(1), line(2)])
    write_gz(landing, f"{HOUR}/batch-0002.jsonl.gz", [line(3), line(4), line(5)])
    real = ingest_validate.staging_sql

    def lossy(spec, **kw):  # a bug that drops line 2 of every file
        return real(spec, **kw).replace(
            "join files as f on f.file_id = l.file_id",
            "join files as f on f.file_id = l.file_id and l.line_no <> 2",
        )

    monkeypatch.setattr(ingest_validate, "staging_sql", lossy)
    with pytest.raises(ReconciliationError) as err:
        ingest()
    message = str(err.value)
    assert f"{HOUR}/batch-0001.jsonl.gz" in message and f"{HOUR}/batch-0002.jsonl.gz" in message
    assert "lines_in=2 loaded=1" in message
    assert query(data_dir, "select distinct status from raw.ingest_manifest") == [("failed",)]
    assert query(data_dir, "select count(*) from raw.events") == [(0,)]

    monkeypatch.setattr(ingest_validate, "staging_sql", real)
    s = ingest()
    assert s.files_new == 2 and s.loaded == 5
    assert query(data_dir, "select distinct status from raw.ingest_manifest") == [("loaded",)]


def test_a_second_ingestion_waits_for_the_lock(data_dir: Path) -> None:
    write_gz(data_dir / "landing", f"{HOUR}/batch-0001.jsonl.gz", [line(1)])
    with ingest_lock(get_settings(), timeout_s=1):
        with pytest.raises(IngestLockedError, match="another ingestion"):
            ingest(IngestConfig(lock_timeout_s=0.5))
    assert ingest().loaded == 1


def _cli(data_dir: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "include.ingest", "--json"],
        cwd=REPO_ROOT,
        env={**os.environ, "TRASOS_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO_ROOT), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def clean_small_loads(simulated: Path, tmp_path_factory) -> dict:
    """The state one uninterrupted run leaves, with loads small enough for 4 snapshot loads
    (one per file) and about 3 event loads (the crash tests' reference), and its load count."""
    clean = tmp_path_factory.mktemp("clean") / "data"
    shutil.copytree(simulated, clean / "landing")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRASOS_DATA_DIR", str(clean))
        mp.delenv("TRASOS_WAREHOUSE", raising=False)
        mp.setenv("TRASOS_INGEST_CHUNK_BYTES", _small_chunk(clean))
        summary = ingest(batch="clean")
        assert summary.loads >= 7
        return {"state": state(clean), "loads": summary.loads, "summary": _batch_view(summary)}


def _batch_view(summary) -> dict:
    """What a run's summary says of its batch (the gate and the Asset event read these)."""
    out = summary.as_dict()
    return {
        **{k: out[k] for k in (*summary.LOAD_FIELDS, "reasons", "files_found", "reconciles")},
        "files_skipped": out["files_skipped"],
        "event_dates": out["event_dates"],
        "snapshots": sorted(out["snapshots"]),
    }


def _small_chunk(data_dir: Path) -> str:
    event_bytes = sum(p.stat().st_size for p in (data_dir / "landing/events").rglob("*.gz"))
    return str(event_bytes // 3 + 1)


@pytest.mark.parametrize(
    ("point", "load_no"),
    [
        ("staged", 1),  # a snapshot load: Parquet staged and verified, nothing moved
        ("moved", 2),  # snapshot files in place, transaction open
        ("staged", 5),  # the first event load
        ("moved", 6),  # event files in place under their final names, not committed
        ("committed", 6),  # committed, the next load not started
        ("moved", -1),  # the last load
    ],
)
def test_sigkill_at_any_point_then_rerun_equals_one_clean_run(
    sim_data: Path, monkeypatch: pytest.MonkeyPatch, clean_small_loads: dict, point, load_no
) -> None:
    assert point in HOOK_POINTS
    n_loads = clean_small_loads["loads"]
    load_no = n_loads if load_no == -1 else load_no
    monkeypatch.setenv("TRASOS_INGEST_CHUNK_BYTES", _small_chunk(sim_data))
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tests" / "ingest_crash.py"), point, str(load_no), "r1"],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert f"KILLED at {point} of load {load_no}" in proc.stderr
    if point == "moved":  # the load's Parquet files are in place but uncommitted
        committed = {r[0] for r in query(sim_data, "select path from raw.ingest_outputs")}
        on_disk = {
            p.relative_to(sim_data).as_posix()
            for p in [
                *(sim_data / "lake").rglob("*.parquet"),
                *(sim_data / "quarantine").rglob("*.parquet"),
            ]
        }
        assert on_disk - committed

    # the retry of the same batch (Airflow run): its summary is the clean run's, the loads
    # the killed try committed included (so its gate and Asset event cover them)
    rerun = ingest(batch="r1")
    assert rerun.reconciles
    committed_before = load_no if point == "committed" else load_no - 1
    assert rerun.loads_resumed == committed_before
    assert _batch_view(rerun) == clean_small_loads["summary"]
    assert (rerun.orphans_removed > 0) == (point == "moved")
    assert state(sim_data) == clean_small_loads["state"]
    # another batch (the next hourly run) finds nothing new and reports nothing
    assert ingest(batch="r2").loads == 0


def test_three_concurrent_runs_equal_one_clean_run(
    sim_data: Path, monkeypatch: pytest.MonkeyPatch, clean_small_loads: dict
) -> None:
    monkeypatch.setenv("TRASOS_INGEST_CHUNK_BYTES", _small_chunk(sim_data))
    procs = [_cli(sim_data) for _ in range(3)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in outs]
    summaries = [json.loads(out) for out, _ in outs]
    # the lock serialises them: one run loads everything, the others find nothing new
    assert sorted(s["loads"] for s in summaries) == [0, 0, clean_small_loads["loads"]]
    assert state(sim_data) == clean_small_loads["state"]


# --- files that cannot be read to their end, odd bytes, files still being written ------------


def _lines_of(data_dir: Path, path: str) -> list[tuple]:
    return query(
        data_dir,
        "select source_line, reason from raw.quarantine "
        f"where source_file = '{path}' order by source_line",
    )


def _manifest(data_dir: Path, path: str) -> list[tuple]:
    return query(
        data_dir,
        "select status, lines_in, loaded, quarantined, duplicates from raw.ingest_manifest "
        f"where path = '{path}' order by loaded_at",
    )


def test_truncated_gzip_is_quarantined_whole_and_a_complete_redelivery_loads_once(
    data_dir: Path,
) -> None:
    landing = data_dir / "landing"
    rel = f"{HOUR}/batch-0001.jsonl.gz"
    # 400 distinct lines in several deflate blocks: a cut at 70 % leaves readable lines
    lines = [line(i, page=f"/p/{i}/" + os.urandom(40).hex()) for i in range(400)]
    complete = gzip.compress(b"\n".join(lines) + b"\n")
    cut = complete[: int(len(complete) * 0.7)]
    readable, problem = gunzip(cut)
    assert problem.startswith("truncated_gzip") and readable.count(b"\n") > 100
    n_readable = readable.count(b"\n") + (0 if readable.endswith(b"\n") else 1)
    (landing / HOUR).mkdir(parents=True)
    (landing / rel).write_bytes(cut)

    s1 = ingest()
    assert s1.files_unreadable == 1 and s1.loaded == 0 and s1.quarantined == n_readable
    assert _manifest(data_dir, rel) == [("unreadable", n_readable, 0, n_readable, 0)]
    got = _lines_of(data_dir, rel)
    assert got == [(i, "truncated_gzip") for i in range(1, n_readable + 1)]
    assert query(data_dir, "select count(*) from raw.events") == [(0,)]
    assert ingest().files_new == 0  # the same cut-off bytes are not read again

    (landing / rel).write_bytes(complete)  # the collector sends the whole file again
    s2 = ingest()
    assert (s2.files_loaded, s2.files_content_changed, s2.loaded, s2.quarantined) == (1, 0, 400, 0)
    assert _manifest(data_dir, rel)[-1] == ("loaded", 400, 400, 0, 0)
    assert query(data_dir, "select count(*), count(distinct event_id) from raw.events") == [
        (400, 400)
    ]
    assert ingest().files_new == 0
    assert_reconciles(data_dir)


def test_corrupt_gzip_and_bytes_after_the_stream_are_unreadable_files(data_dir: Path) -> None:
    landing = data_dir / "landing"
    body = gzip.compress(b"\n".join(line(i) for i in range(50)) + b"\n")
    corrupt = bytearray(body)
    corrupt[len(body) // 2 : len(body) // 2 + 8] = b"\x00" * 8
    (landing / HOUR).mkdir(parents=True)
    (landing / HOUR / "batch-0001.jsonl.gz").write_bytes(bytes(corrupt))
    (landing / HOUR / "batch-0002.jsonl.gz").write_bytes(body + b"garbage")
    s = ingest()
    assert s.loaded == 0 and s.files_unreadable == 2
    for name in ("batch-0001.jsonl.gz", "batch-0002.jsonl.gz"):
        [(status, lines_in, loaded, quarantined, _)] = _manifest(data_dir, f"{HOUR}/{name}")
        assert status == "unreadable" and loaded == 0 and quarantined == lines_in >= 1
        assert {r for _, r in _lines_of(data_dir, f"{HOUR}/{name}")} == {"unreadable_file"}
    assert_reconciles(data_dir)


def test_a_gz_name_over_plain_text_is_not_gzip_unless_allowed_for_its_source(
    data_dir: Path,
) -> None:
    landing = data_dir / "landing"
    plain = b"\n".join([line(1), line(2), line(3)]) + b"\n"
    rel = f"{HOUR}/batch-0001.jsonl.gz"
    (landing / HOUR).mkdir(parents=True)
    (landing / rel).write_bytes(plain)
    legacy = "events/legacy/date=2026-10-01/hour=10/old.jsonl.gz"
    (landing / legacy).parent.mkdir(parents=True)
    (landing / legacy).write_bytes(b"\n".join([line(4), line(5)]) + b"\n")

    s = ingest(IngestConfig(plain_text_sources=("events/legacy/",)))
    assert _manifest(data_dir, rel) == [("unreadable", 3, 0, 3, 0)]
    assert _lines_of(data_dir, rel) == [(1, "not_gzip"), (2, "not_gzip"), (3, "not_gzip")]
    assert _manifest(data_dir, legacy) == [("loaded", 2, 2, 0, 0)]
    assert s.files_unreadable == 1 and s.loaded == 2

    write_gz(landing, rel, [line(1), line(2), line(3)])  # re-sent as real gzip
    assert ingest().loaded == 3
    assert _manifest(data_dir, rel)[-1] == ("loaded", 3, 3, 0, 0)
    assert query(data_dir, "select count(*) from raw.events") == [(5,)]
    assert_reconciles(data_dir)


def test_a_bom_is_stripped_in_gzip_and_plain_files(data_dir: Path) -> None:
    landing = data_dir / "landing"
    write_gz(landing, f"{HOUR}/batch-0001.jsonl.gz", [b"\xef\xbb\xbf" + line(1), line(2)])
    (landing / "events/adhoc").mkdir(parents=True)
    (landing / "events/adhoc/bom.jsonl").write_bytes(b"\xef\xbb\xbf" + line(3, event_time=None))
    s = ingest(IngestConfig(late_window_days=3650))
    assert s.loaded == 2 and s.quarantined == 1
    # the BOM is gone: line 1 of the plain file is judged on its JSON, not invalid_json
    assert query(data_dir, "select source_file, source_line, reason from raw.quarantine") == [
        ("events/adhoc/bom.jsonl", 1, "missing_field:event_time")
    ]
    assert query(data_dir, "select event_id from raw.events order by 1") == [("e1",), ("e2",)]


def test_lines_over_the_maximum_are_quarantined_and_long_valid_lines_load_whole(
    data_dir: Path,
) -> None:
    from include.contracts import RAW_LINE_MAX_CHARS

    long_ok = line(1, page="/" + "a" * 6000)  # longer than the quarantine's text cap
    too_long = line(2, page="/" + "b" * 9000)
    write_gz(data_dir / "landing", f"{HOUR}/batch-0001.jsonl.gz", [long_ok, too_long, line(3)])
    s = ingest(IngestConfig(max_line_bytes=8000))
    assert len(long_ok) < 8000 < len(too_long)
    assert (s.loaded, s.quarantined, s.reasons) == (2, 1, {"line_too_long": 1})
    assert query(data_dir, "select event_id, length(page) from raw.events order by 1") == [
        ("e1", 6001),
        ("e3", 1),
    ]
    [(source_line, reason, text_len, line_bytes)] = query(
        data_dir, "select source_line, reason, length(raw_line), line_bytes from raw.quarantine"
    )
    assert (source_line, reason, text_len, line_bytes) == (
        2,
        "line_too_long",
        RAW_LINE_MAX_CHARS,
        len(too_long),
    )
    assert_reconciles(data_dir)


def test_files_still_being_written_are_skipped_then_taken(data_dir: Path) -> None:
    landing = data_dir / "landing"
    # the convention: write under a temporary name, rename when complete
    part = write_gz(landing, f"{HOUR}/batch-0001.jsonl.gz.part", [line(1)])
    hidden = write_gz(landing, f"{HOUR}/.batch-0002.jsonl.gz", [line(2)])
    s1 = ingest()
    assert (s1.files_found, s1.loaded) == (0, 0)
    part.rename(landing / HOUR / "batch-0001.jsonl.gz")
    hidden.rename(landing / HOUR / "batch-0002.jsonl.gz")
    assert ingest().loaded == 2

    # a collector that writes in place: a file modified less than min_file_age_s ago waits
    young = write_gz(landing, f"{HOUR}/batch-0003.jsonl.gz", [line(3)])
    s2 = ingest(IngestConfig(min_file_age_s=60))
    assert (s2.files_pending, s2.loaded) == (1, 0)
    assert _manifest(data_dir, f"{HOUR}/batch-0003.jsonl.gz") == []
    old = time.time() - 120
    os.utime(young, (old, old))
    s3 = ingest(IngestConfig(min_file_age_s=60))
    assert (s3.files_pending, s3.loaded) == (0, 1)
    assert_reconciles(data_dir)


def test_a_file_that_grows_while_it_is_read_is_left_for_the_next_run(data_dir: Path) -> None:
    landing = data_dir / "landing"
    write_gz(landing, f"{HOUR}/batch-0001.jsonl.gz", [line(1)])
    growing = landing / HOUR / "batch-0002.jsonl"
    growing.write_bytes(line(2) + b"\n")  # written in place by a collector

    class AppendAfterScan(IngestHooks):
        def at(self, point: str, load_no: int) -> None:
            if point == "scanned":  # the collector writes its next line now
                with growing.open("ab") as fh:
                    fh.write(line(3) + b"\n")

    s1 = ingest(hooks=AppendAfterScan())
    assert (s1.files_pending, s1.loaded) == (1, 1)
    assert _manifest(data_dir, f"{HOUR}/batch-0002.jsonl") == []
    s2 = ingest()
    assert (s2.files_pending, s2.loaded) == (0, 2)
    assert _manifest(data_dir, f"{HOUR}/batch-0002.jsonl") == [("loaded", 2, 2, 0, 0)]


def test_a_held_warehouse_is_waited_for_then_a_clear_error(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_gz(data_dir / "landing", f"{HOUR}/batch-0001.jsonl.gz", [line(1)])
    warehouse = data_dir / "warehouse.duckdb"

    def hold(seconds: float) -> subprocess.Popen:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import duckdb, sys, time\n"
                f"con = duckdb.connect({str(warehouse)!r})\n"
                f"print('open', flush=True); time.sleep({seconds})",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout.readline().strip() == "open"
        return proc

    holder = hold(120)
    try:
        caplog.set_level("WARNING", logger="include.warehouse")
        t0 = time.monotonic()
        with pytest.raises(IngestLockedError) as err:
            ingest(IngestConfig(warehouse_wait_s=2))
        assert 2 <= time.monotonic() - t0 < 10
        message = str(err.value)
        assert f"(pid {holder.pid})" in message and str(warehouse) in message
        assert "Close that process" in message
        assert any("retrying in" in r.message for r in caplog.records)
        # the command line says the same, without a traceback
        cli = _cli(data_dir, TRASOS_INGEST_WAREHOUSE_WAIT_S="1")
        out, errout = cli.communicate(timeout=120)
        assert cli.returncode == 1 and "Traceback" not in errout
        *waits, last = errout.strip().split("\n")
        assert last.startswith("ingestion failed: the warehouse") and str(holder.pid) in last
        assert waits and all("retrying in" in w for w in waits)  # the bounded, logged wait
    finally:
        holder.kill()
        holder.wait()

    holder = hold(1.5)  # let go while the ingestion waits: it goes through
    try:
        assert ingest(IngestConfig(warehouse_wait_s=60)).loaded == 1
    finally:
        holder.wait()


# --- the reader ---------------------------------------------------------------------------------


def test_reader_handles_gzip_members_utf8_and_line_ends(tmp_path: Path) -> None:
    two_members = gzip.compress(b"a\n") + gzip.compress(b"b\n")
    assert gunzip(two_members) == (b"a\nb\n", None)
    text = b"".join(str(i).encode() for i in range(5000))
    data, problem = gunzip(gzip.compress(text)[:-20])
    assert problem and "truncated" in problem and text.startswith(data) and data
    assert gunzip(b"plain\n") == (b"plain\n", None)

    p = tmp_path / "f.jsonl"
    p.write_bytes(b"ok\n\xc0\xafbad\n\nok\xed\xa0\x80\r\nlast")
    c = read_content(p)
    assert c.n_lines == 5
    assert [(b.line_no, b.reason, b.raw_line) for b in c.bad_lines] == [
        (2, "invalid_utf8", "\\xc0\\xafbad"),
        (4, "invalid_utf8", "ok\\xed\\xa0\\x80"),
    ]
    assert c.lines.to_pylist() == ["ok", "\n" + " " * 5, "\n", "\n" + " " * 6, "\nlast"]
    p.write_bytes(b"")
    assert read_content(p).n_lines == 0
    p.write_bytes(b"\n")
    assert read_content(p).n_lines == 1


# --- the DAG, for real --------------------------------------------------------------------------


@pytest.mark.integration
def test_dag_runs_and_emits_raw_events(airflow_home: Path, sim_data: Path) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "dags", "test", "events_ingest"],
        env={**os.environ, "TRASOS_DATA_DIR": str(sim_data), "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "state=success" in result.stdout + result.stderr
    assert query(sim_data, "select count(*) from raw.ingest_manifest where status = 'failed'") == [
        (0,)
    ]
    [(loaded,)] = query(
        sim_data, "select sum(loaded) from raw.ingest_manifest where dataset = 'events'"
    )
    assert loaded > 2000
    assert query(sim_data, "select count(*) from raw.events") == [(loaded,)]
    assert_reconciles(sim_data)
    db = sqlite3.connect(airflow_home / "airflow.db")
    try:
        emitted = db.execute(
            "select a.name, e.extra from asset_event e join asset a on a.id = e.asset_id "
            "where e.source_dag_id = 'events_ingest' order by e.id desc"
        ).fetchall()
    finally:
        db.close()
    names = {name for name, _ in emitted}
    assert {"raw_events", "catalog"} <= names
    extra = json.loads(next(x for n, x in emitted if n == "raw_events"))
    assert extra["events_loaded"] == loaded


def test_experiment_fields_are_validated_and_loaded(data_dir: Path) -> None:
    """context.experiment_id/variant (issue 21): both or neither, variant control|treatment."""
    landing = data_dir / "landing"

    def ctx(**extra) -> dict:
        return {"platform": "web", "country": "DE", "user_agent": "Mozilla/5.0", **extra}

    lines = [
        line(1, context=ctx(experiment_id="x1", variant="control")),  # 1 loads
        line(2, context=ctx(experiment_id="x1", variant="treatment")),  # 2 loads
        line(3),  # 3 no experiment: loads with nulls
        line(4, context=ctx(experiment_id="x1", variant="holdout")),  # 4 unknown_variant
        line(5, context=ctx(experiment_id="x1")),  # 5 missing_field:context.variant
        line(6, context=ctx(variant="control")),  # 6 missing_field:context.experiment_id
        line(7, context=ctx(experiment_id="x1", variant=1)),  # 7 bad_type:context.variant
    ]
    write_gz(landing, f"{HOUR}/batch-0001.jsonl.gz", lines)
    ingest()
    reasons = dict(query(data_dir, "select source_line, reason from raw.quarantine"))
    assert reasons == {
        4: "unknown_variant",
        5: "missing_field:context.variant",
        6: "missing_field:context.experiment_id",
        7: "bad_type:context.variant",
    }
    lake = data_dir / "lake" / "events" / "*" / "*.parquet"
    con = duckdb.connect()
    got = con.execute(
        f"select event_id, experiment_id, variant from read_parquet('{lake}') order by 1"
    ).fetchall()
    assert got == [("e1", "x1", "control"), ("e2", "x1", "treatment"), ("e3", None, None)]
