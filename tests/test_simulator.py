"""The clickstream simulator: determinism, the event contract, the planted distributions,
and faults that match their manifest (checked by parsing the files independently)."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.contracts import EVENT_TYPES, PLATFORMS, PRODUCT_EVENT_TYPES
from include.contracts import (
    CONTEXT_KEYS,
    CUSTOMER_COLUMNS,
    EVENT_REQUIRED_FIELDS,
    EXPERIMENT_CONTEXT_KEYS,
    ITEM_COLUMNS,
)
from include.simulator import FAULT_KINDS, SimulationSummary, SimulatorConfig, simulate
from include.simulator.__main__ import main as cli_main

START = date(2026, 10, 1)
LATE_WINDOW = timedelta(days=3)
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
PATH_RE = re.compile(r"^events/date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/batch-\d{4}\.jsonl\.gz$")
BOT_MARKERS = ("bot", "python-requests", "curl", "Scrapy")

SMALL = SimulatorConfig(seed=11, days=2, visitors=400, n_items=600, fault_rate=0.02)
FAULTY = SimulatorConfig(
    seed=5, days=6, visitors=1500, n_items=1500, fault_rate=0.02, late_window_days=3
)
CLEAN = SimulatorConfig(seed=3, days=14, visitors=3000, n_items=1200)


# --- helpers -------------------------------------------------------------------------------
def landing_files(landing: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(landing)): p.read_bytes()
        for p in sorted(landing.rglob("*"))
        if p.is_file()
    }


def event_files(landing: Path) -> list[Path]:
    return sorted((landing / "events").rglob("*.jsonl.gz"))


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def hour_start(rel_path: str) -> datetime:
    m = PATH_RE.match(rel_path)
    assert m, rel_path
    return datetime.fromisoformat(m.group(1)).replace(hour=int(m.group(2)), tzinfo=UTC)


def read_events(landing: Path) -> pd.DataFrame:
    """All lines of a clean run as one frame (fails on any line that is not JSON)."""
    rows = []
    for path in event_files(landing):
        rel = str(path.relative_to(landing))
        for line in gzip.decompress(path.read_bytes()).decode("utf-8").splitlines():
            obj = json.loads(line)
            obj["_file"] = rel
            rows.append(obj)
    frame = pd.DataFrame(rows)
    frame["ts"] = pd.to_datetime(frame["event_time"], format="%Y-%m-%dT%H:%M:%S.%fZ", utc=True)
    return frame


def ground_truth(landing: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(landing / "_simulator" / "ground_truth" / f"{name}.parquet")


def events_with_sessions(landing: Path, events: pd.DataFrame) -> pd.DataFrame:
    """Attach the planted session to every event (same anonymous id, inside its time span)."""
    ses = ground_truth(landing, "sessions")
    ses["start_at"] = pd.to_datetime(ses["start_at"]).dt.tz_localize("UTC")
    ses["end_at"] = pd.to_datetime(ses["end_at"]).dt.tz_localize("UTC")
    ev = events.sort_values("ts").reset_index(drop=True)
    merged = pd.merge_asof(
        ev,
        ses.sort_values("start_at")[["session_id", "anonymous_id", "start_at", "end_at"]],
        left_on="ts",
        right_on="start_at",
        by="anonymous_id",
        direction="backward",
    )
    assert merged["session_id"].notna().all(), "every event belongs to a planted session"
    assert (merged["ts"] <= merged["end_at"]).all(), "events lie inside their session"
    return merged


# --- runs shared by the tests (module scope keeps the file fast) ----------------------------
@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulationSummary]:
    out = tmp_path_factory.mktemp("clean")
    summary = simulate(CLEAN, out)
    return out / "landing", summary


@pytest.fixture(scope="module")
def clean_events(clean_run: tuple[Path, SimulationSummary]) -> pd.DataFrame:
    return read_events(clean_run[0])


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulationSummary]:
    out = tmp_path_factory.mktemp("faulty")
    summary = simulate(FAULTY, out)
    return out / "landing", summary


# --- determinism ----------------------------------------------------------------------------
def test_same_seed_gives_same_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    simulate(SMALL, tmp_path / "a")
    simulate(SMALL, tmp_path / "b")
    simulate(SimulatorConfig(**{**SMALL.__dict__, "seed": 12}), tmp_path / "c")
    a = landing_files(tmp_path / "a" / "landing")
    b = landing_files(tmp_path / "b" / "landing")
    c = landing_files(tmp_path / "c" / "landing")
    assert any(k.startswith("events/") for k in a)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    # gzip header: no file name flag, mtime 0.
    blob = a[next(k for k in a if k.endswith(".jsonl.gz"))]
    assert blob[3] & 0x08 == 0 and blob[4:8] == b"\0\0\0\0"
    shared = [k for k in a if k.startswith("events/") and k in c]
    assert any(a[k] != c[k] for k in shared) or a.keys() != c.keys()


def test_default_out_is_data_dir_and_existing_output_is_protected(data_dir: Path) -> None:
    cfg = SimulatorConfig(seed=1, days=1, visitors=200, n_items=300)
    (data_dir / "landing" / "events").mkdir(parents=True, exist_ok=True)  # as `init` leaves it
    summary = simulate(cfg)
    assert summary.landing_dir == data_dir / "landing"
    assert summary.events > 0 and event_files(data_dir / "landing")
    assert sum(summary.faults.values()) == 0
    assert not (data_dir / "landing" / "_simulator" / "faults.jsonl").read_text()
    with pytest.raises(FileExistsError, match="overwrite"):
        simulate(cfg)
    again = simulate(cfg, overwrite=True)
    assert again.events == summary.events


def test_cli_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(
        ["--days", "1", "--visitors", "200", "--items", "300", "--seed", "2", "--out",
         str(tmp_path), "--fault-rate", "0.01", "--no-progress"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "events:" in out and "faults:" in out and "customers:" in out
    assert cli_main(["--days", "1", "--out", str(tmp_path), "--no-progress"]) == 2


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="conversion_band"):
        SimulatorConfig(conversion_band=(0.3, 0.1))
    with pytest.raises(ValueError, match="days"):
        SimulatorConfig(days=0)


# --- the event contract ---------------------------------------------------------------------
def test_events_obey_the_contract(
    clean_run: tuple[Path, SimulationSummary], clean_events: pd.DataFrame
) -> None:
    landing, summary = clean_run
    ev = clean_events
    assert len(ev) == summary.events == summary.lines
    assert ev["event_id"].is_unique
    for field in EVENT_REQUIRED_FIELDS:
        assert ev[field].map(lambda v: isinstance(v, str) and v != "").all(), field
    assert ev["event_time"].str.match(TIME_RE).all()
    assert set(ev["event_type"]) == set(EVENT_TYPES)
    product = ev["event_type"].isin(PRODUCT_EVENT_TYPES)
    assert ev.loc[product, "item_id"].notna().all()
    assert ev.loc[~product, "item_id"].isna().all()
    assert (
        ev.loc[product, "page"].eq("/p/" + ev.loc[product, "item_id"]).sum() > 0.6 * product.sum()
    )
    assert ev["properties"].map(lambda p: isinstance(p, dict)).all()
    # the first period runs no experiment: its events omit the (optional) experiment keys
    base = sorted(set(CONTEXT_KEYS) - set(EXPERIMENT_CONTEXT_KEYS))
    assert ev["context"].map(lambda c: sorted(c) == base).all()
    assert set(ev["context"].map(lambda c: c["platform"])) <= set(PLATFORMS)
    # Files hold the events of their own hour only.
    hours = ev["_file"].map(hour_start)
    assert ((ev["ts"] >= hours) & (ev["ts"] < hours + pd.Timedelta(hours=1))).all()
    props = ev["properties"]
    scroll = props[ev["event_type"] == "scroll"].map(lambda p: p["scroll_depth_pct"])
    assert scroll.between(0, 100).all()
    assert props[ev["event_type"] == "search"].map(lambda p: len(p["search_query"]) > 0).all()
    pv = props[ev["event_type"] == "product_view"]
    assert pv.map(lambda p: isinstance(p.get("list_position", 1), int)).all()
    buys = props[ev["event_type"] == "purchase"]
    assert buys.map(
        lambda p: (
            isinstance(p["quantity"], int)
            and isinstance(p["price"], float)
            and p["order_id"].startswith("ord-")
        )
    ).all()
    rec_share = pv.map(lambda p: "recommendation_id" in p).mean()
    assert 0.01 < rec_share < 0.08
    # Logins and purchases belong to a known customer; items exist in the catalog.
    assert ev.loc[ev["event_type"].isin(["login", "purchase"]), "user_id"].notna().all()
    items = ground_truth(landing, "items")
    assert set(ev["item_id"].dropna()) <= set(items["item_id"])


def test_user_id_is_set_from_the_login_on(
    clean_run: tuple[Path, SimulationSummary], clean_events: pd.DataFrame
) -> None:
    landing, _ = clean_run
    ev = events_with_sessions(landing, clean_events).sort_values(["session_id", "ts"])
    first_login = ev[ev["event_type"] == "login"].groupby("session_id")["ts"].min()
    login_at = ev["session_id"].map(first_login)
    has_user = ev["user_id"].notna()
    assert not has_user[login_at.isna()].any(), "no user_id without a login in the session"
    after = login_at.notna() & (ev["ts"] >= login_at)
    assert has_user[after].all() and not has_user[login_at.notna() & ~after].any()


# --- time: gaps and seasonality -------------------------------------------------------------
def test_gaps_inside_and_between_sessions(
    clean_run: tuple[Path, SimulationSummary], clean_events: pd.DataFrame
) -> None:
    landing, _ = clean_run
    ev = events_with_sessions(landing, clean_events).sort_values(["session_id", "ts"])
    gap = ev.groupby("session_id")["ts"].diff().dropna()
    assert gap.max() < pd.Timedelta(minutes=30)
    assert gap.median() < pd.Timedelta(seconds=60)
    ses = ground_truth(landing, "sessions").sort_values(["person_id", "start_at"])
    same = ses["person_id"].eq(ses["person_id"].shift())
    between = (ses["start_at"] - ses["end_at"].shift())[same]
    assert len(between) > 0 and between.min() > pd.Timedelta(minutes=30)
    # The same holds per device, which is what sessionisation sees.
    by_dev = ses.sort_values(["anonymous_id", "start_at"])
    same_dev = by_dev["anonymous_id"].eq(by_dev["anonymous_id"].shift())
    assert (by_dev["start_at"] - by_dev["end_at"].shift())[same_dev].min() > pd.Timedelta(
        minutes=30
    )


def test_daily_and_weekly_seasonality(clean_events: pd.DataFrame) -> None:
    human = clean_events[~clean_events["context"].map(lambda c: _is_bot(c["user_agent"]))]
    hour = human["ts"].dt.hour
    assert (hour.isin([2, 3, 4])).mean() * 8 < (hour.isin([18, 19, 20])).mean()
    by_weekday = human.groupby(human["ts"].dt.day_of_week).size()
    assert by_weekday[6] > by_weekday[5]  # Sunday evening shopping beats Saturday


def _is_bot(user_agent: str) -> bool:
    return any(m in user_agent for m in BOT_MARKERS)


# --- the promised distributions ------------------------------------------------------------
def test_people_visits_and_conversion(
    clean_run: tuple[Path, SimulationSummary], clean_events: pd.DataFrame
) -> None:
    landing, summary = clean_run
    ses = ground_truth(landing, "sessions")
    human = ses[~ses["is_bot"]]
    assert len(human) / human["person_id"].nunique() > 1.3
    people = ground_truth(landing, "people")
    new = people[people["kind"] == "new_visitor"]
    buyers = set(clean_events.loc[clean_events["event_type"] == "purchase", "user_id"])
    converted = new["user_id"].isin(buyers)
    lo, hi = CLEAN.conversion_band
    assert lo <= converted.mean() <= hi
    assert converted.sum() == summary.new_customers
    assert new.loc[converted, "converted"].all()
    # Two-device customers really use both devices; bots are few but very busy.
    two = people[people["second_anonymous_id"].notna()]
    seen = set(clean_events["anonymous_id"])
    assert two["second_anonymous_id"].isin(seen).mean() > 0.3
    bot = clean_events["context"].map(lambda c: _is_bot(c["user_agent"]))
    assert 0.02 < bot.mean() < 0.3
    per_device = clean_events.groupby(bot)["anonymous_id"].agg(lambda s: len(s) / s.nunique())
    assert per_device[True] > 5 * per_device[False]
    # Customer snapshots grow with the sign-ups.
    snaps = sorted((landing / "customers").glob("snapshot_date=*/customers.jsonl.gz"))
    first = pd.read_json(snaps[0], lines=True)
    last = pd.read_json(snaps[-1], lines=True)
    assert list(last.columns) == list(CUSTOMER_COLUMNS)
    assert len(last) == summary.customers
    assert len(last) - len(first) > 0.5 * summary.new_customers
    assert buyers <= set(last["user_id"])


def test_catalog_cold_start_items(
    clean_run: tuple[Path, SimulationSummary], clean_events: pd.DataFrame
) -> None:
    landing, summary = clean_run
    snaps = sorted((landing / "catalog").glob("snapshot_date=*/items.jsonl.gz"))
    assert len(snaps) >= 3  # start, each drop, end
    first = pd.read_json(snaps[0], lines=True, dtype={"launch_date": str})
    last = pd.read_json(snaps[-1], lines=True, dtype={"launch_date": str})
    assert list(last.columns) == list(ITEM_COLUMNS)
    assert len(last) == CLEAN.n_items
    cold = last[last["launch_date"] > START.isoformat()]
    assert len(cold) == summary.cold_items
    assert 0.10 <= len(cold) / len(last) <= 0.15
    assert not set(cold["item_id"]) & set(first["item_id"])
    assert last["collection"].nunique() > 2 and (last["price"] > 0).all()
    # Cold items get traffic, and never before their launch date.
    launch = pd.to_datetime(cold.set_index("item_id")["launch_date"]).dt.tz_localize("UTC")
    on_cold = clean_events[clean_events["item_id"].isin(launch.index)]
    assert len(on_cold) > 0
    assert (on_cold["ts"] >= on_cold["item_id"].map(launch)).all()


def test_event_type_mix(clean_events: pd.DataFrame) -> None:
    counts = Counter(clean_events["event_type"])
    product = {t: counts[t] for t in PRODUCT_EVENT_TYPES}
    assert max(product, key=product.get) == "product_view"
    assert counts["purchase"] < counts["add_to_cart"] < counts["product_view"]
    assert counts["remove_from_cart"] < counts["add_to_cart"]
    assert counts["page_view"] > counts["search"] > 0
    assert counts["login"] > 0 and counts["add_to_wishlist"] > 0


def test_planted_taste_and_outfits_are_visible(
    clean_run: tuple[Path, SimulationSummary], clean_events: pd.DataFrame
) -> None:
    landing, _ = clean_run
    items = ground_truth(landing, "items").set_index("item_id")
    # Outfit partners are bought together far more often than chance.
    buys = clean_events[clean_events["event_type"] == "purchase"]
    orders = buys.groupby(buys["properties"].map(lambda p: p["order_id"]))["item_id"].agg(list)
    multi = orders[orders.map(len) > 1]
    outfit = items["outfit_id"]
    together = multi.map(lambda its: outfit.loc[its].dropna().duplicated().any())
    assert len(multi) > 20 and together.mean() > 0.2
    # People mostly look at the categories their primary segment likes.
    people = ground_truth(landing, "people")
    customers = people.dropna(subset=["user_id"]).set_index("user_id")
    views = clean_events[
        (clean_events["event_type"] == "product_view") & clean_events["user_id"].notna()
    ]
    seg = views["user_id"].map(customers["segment1"])
    dept = views["item_id"].map(items["department"])
    truth = json.loads((landing / "_simulator/ground_truth/truth.json").read_text())
    npz = np.load(landing / "_simulator/ground_truth/segments.npz")
    seg_dept = np.array(truth["vocabularies"]["departments"])[npz["department"]]
    assert (dept.to_numpy() == seg_dept[seg.to_numpy()]).mean() > 0.6


# --- faults ---------------------------------------------------------------------------------
def classify(rel: str, line: bytes, seen: set[bytes]) -> tuple[str, str | None] | None:
    """(fault, expected_reason) of one line, judged from the bytes alone; None if clean."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8", "invalid_utf8"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return ("truncated" if text.startswith('{"event_id":"') else "garbage"), "invalid_json"
    for field in EVENT_REQUIRED_FIELDS:
        if field not in obj:
            return "missing_field", f"missing_field:{field}"
    if not isinstance(obj["event_time"], str):
        return "wrong_type", "bad_type:event_time"
    qty = obj.get("properties", {}).get("quantity")
    if qty is not None and not isinstance(qty, int):
        return "wrong_type", "bad_type:properties.quantity"
    if obj["event_type"] not in EVENT_TYPES:
        return "unknown_event_type", "unknown_event_type"
    if line in seen:
        return "duplicate", None
    seen.add(line)
    t, start = parse_time(obj["event_time"]), hour_start(rel)
    if t > start + timedelta(hours=2):
        assert t > start + timedelta(hours=2, days=0.5), "future faults are far from the limit"
        return "future", "future_event_time"
    if t < start - LATE_WINDOW:
        assert t < start - LATE_WINDOW - timedelta(hours=12), "too late: far from the limit"
        return "late", "too_late"
    if t < start:
        assert t > start - LATE_WINDOW + timedelta(hours=12), "late: far from the limit"
        return "late", None
    assert t < start + timedelta(hours=1), "clean lines lie in their batch hour"
    return None


def test_faults_match_the_manifest_exactly(faulty_run: tuple[Path, SimulationSummary]) -> None:
    landing, summary = faulty_run
    manifest = [
        json.loads(x) for x in (landing / "_simulator" / "faults.jsonl").read_text().splitlines()
    ]
    found = []
    seen: set[bytes] = set()
    for path in event_files(landing):
        rel = str(path.relative_to(landing))
        raw = gzip.decompress(path.read_bytes())
        if raw == b"":
            found.append((rel, None, "empty_file", None))
            continue
        if b"\r\n" in raw:
            assert raw.count(b"\r\n") == raw.count(b"\n"), "CRLF files use CRLF throughout"
            found.append((rel, None, "crlf", None))
        assert raw.endswith(b"\n")
        for n, line in enumerate(raw.split(b"\n")[:-1], start=1):
            verdict = classify(rel, line.removesuffix(b"\r"), seen)
            if verdict:
                found.append((rel, n, *verdict))
    expected = [(m["file"], m["line"], m["fault"], m["expected_reason"]) for m in manifest]
    assert sorted(found, key=str) == sorted(expected, key=str)
    counts = Counter(m["fault"] for m in manifest)
    assert set(counts) == set(FAULT_KINDS), "every kind of fault is present"
    assert dict(counts) == {k: v for k, v in summary.faults.items() if v}
    line_faults = sum(v for k, v in counts.items() if k not in ("empty_file", "crlf"))
    assert 0.5 * FAULTY.fault_rate < line_faults / summary.events < 2 * FAULTY.fault_rate
    assert summary.lines == summary.events + counts["duplicate"] + counts["garbage"]
    # Manifest details: fields, event ids, both kinds of late.
    for m in manifest:
        if m["fault"] in ("wrong_type", "missing_field"):
            assert m["expected_reason"].endswith(":" + m["field"])
        if m["fault"] not in ("garbage", "empty_file", "crlf"):
            assert re.fullmatch(r"[0-9a-f-]{36}", m["event_id"])
    late = Counter(m["expected_reason"] for m in manifest if m["fault"] == "late")
    assert late["too_late"] > 0 and late[None] > 0
    wrong = Counter(m["field"] for m in manifest if m["fault"] == "wrong_type")
    assert wrong["event_time"] > 0 and wrong["properties.quantity"] > 0


def test_faults_leave_clean_lines_alone(
    faulty_run: tuple[Path, SimulationSummary], tmp_path: Path
) -> None:
    """The same seed without faults writes exactly the events whose lines were not broken."""
    landing, _ = faulty_run
    clean = simulate(SimulatorConfig(**{**FAULTY.__dict__, "fault_rate": 0.0}), tmp_path)
    clean_lines = set()
    for path in event_files(tmp_path / "landing"):
        clean_lines.update(gzip.decompress(path.read_bytes()).splitlines())
    assert len(clean_lines) == clean.events
    faulty_lines = set()
    for path in event_files(landing):
        faulty_lines.update(
            x.removesuffix(b"\r") for x in gzip.decompress(path.read_bytes()).split(b"\n")
        )
    manifest = [
        json.loads(x) for x in (landing / "_simulator" / "faults.jsonl").read_text().splitlines()
    ]
    broken = {"truncated", "invalid_utf8", "wrong_type", "missing_field", "unknown_event_type"}
    broken |= {"future"}
    n_broken = sum(
        m["fault"] in broken or (m["fault"] == "late" and m["expected_reason"] is not None)
        for m in manifest
    )
    assert len(clean_lines - faulty_lines) == n_broken
