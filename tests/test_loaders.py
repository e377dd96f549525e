"""Dataset loaders: every loader on its real file, checked against the contract and the source.

Source rows are counted here independently (gzip + csv), and every written event is traced
back to its source row through its event_id, so a shifted row number or a dropped row fails.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from common.contracts import EVENT_TYPES, PRODUCT_EVENT_TYPES
from include.contracts import (
    CONTEXT_KEYS,
    CUSTOMER_COLUMNS,
    EVENT_OPTIONAL_FIELDS,
    EVENT_REQUIRED_FIELDS,
    EXPERIMENT_CONTEXT_KEYS,
    ITEM_COLUMNS,
)
from include.loaders import LOADERS, load
from include.loaders.__main__ import main
from include.loaders.common import real_data_dir

REAL = real_data_dir()
pytestmark = pytest.mark.skipif(
    not REAL.is_dir(), reason=f"real datasets not found at {REAL} (set TRASOS_REAL_DATA_DIR)"
)


# --- independent readers -------------------------------------------------------------------
def source_rows(path: Path, sep: str = ",", header: bool = True) -> list[list[str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh, delimiter=sep))
    return rows[1:] if header else rows


def read_jsonl(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def read_events(data_dir: Path, dataset: str) -> list[dict]:
    """All events of a dataset; asserts each sits in the partition of its event hour."""
    events: list[dict] = []
    files = sorted(
        (data_dir / "landing" / "events").glob(f"date=*/hour=*/batch-{dataset}.jsonl.gz")
    )
    assert files, f"no event files for {dataset}"
    for path in files:
        date, hour = path.parent.parent.name[5:], path.parent.name[5:]
        for event in read_jsonl(path):
            # The file is in the partition of its event hour (the time format is checked below).
            ts = event["event_time"]
            assert (ts[:10], ts[10], ts[11:13]) == (date, "T", hour), (path, event)
            events.append(event)
    return events


def parse_time(value: str) -> datetime:
    """UTC ISO-8601 with 'Z' (seconds or milliseconds)."""
    assert isinstance(value, str) and value.endswith("Z") and len(value) in (20, 24), value
    ts = datetime.fromisoformat(value)
    assert ts.tzinfo is UTC, value
    return ts


def check_contract(events: list[dict]) -> None:
    """Schema of the landing-zone event contract, line by line."""
    for event in events:
        assert set(event) == set(EVENT_REQUIRED_FIELDS) | set(EVENT_OPTIONAL_FIELDS), event
        for name in EVENT_REQUIRED_FIELDS:
            assert isinstance(event[name], str) and event[name], (name, event)
        assert event["event_type"] in EVENT_TYPES, event
        if event["event_type"] in PRODUCT_EVENT_TYPES:
            assert isinstance(event["item_id"], str) and event["item_id"], event
        assert event["user_id"] is None or isinstance(event["user_id"], str), event
        assert isinstance(event["properties"], dict), event
        assert None not in event["properties"].values(), event
        assert isinstance(event["context"], dict) and set(event["context"]) == set(CONTEXT_KEYS)
        # no public dataset ran our holdout experiment: the keys are there, as null
        assert [event["context"][k] for k in EXPERIMENT_CONTEXT_KEYS] == [None, None], event
        parse_time(event["event_time"])
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)), "event_id not unique"


def check_duckdb_reads(data_dir: Path, dataset: str, expected: int) -> None:
    """Ingestion parses with DuckDB: every line must read as JSON with a parseable time."""
    glob = data_dir / "landing" / "events" / "*" / "*" / f"batch-{dataset}.jsonl.gz"
    n, bad_times = duckdb.sql(
        f"select count(*), count(*) filter (where try_cast(event_time as timestamptz) is null) "
        f"from read_json('{glob}', format = 'newline_delimited')"
    ).fetchall()[0]
    assert (n, bad_times) == (expected, 0)


def row_of(event: dict) -> int:
    """0-based source row from an event_id '<dataset>[-<split>]-<1-based row>'."""
    return int(event["event_id"].rsplit("-", 1)[1]) - 1


# --- every loader on its real file ----------------------------------------------------------
# dataset -> (files as (path, sep, header), item column, event-type column or constant map)
TypeOf = Callable[[list[str]], str]
CASES: dict[str, tuple[list[tuple[str, str, bool]], int, TypeOf]] = {
    "rees46": (
        [("rees46_multicategory_sample/2019-Oct_head.csv.gz", ",", True)],
        2,
        lambda r: {"view": "product_view", "cart": "add_to_cart", "purchase": "purchase"}[r[1]],
    ),
    "retailrocket": (
        [("retailrocket/raw_sample_views.tsv.gz", "\t", True)],
        2,
        lambda r: "product_view",
    ),
    "hm": ([("hm_fashion_sample/transactions_train.csv.gz", ",", True)], 2, lambda r: "purchase"),
    "taobao": (
        [("taobao_userbehavior_sample/UserBehavior_subset.csv.gz", ",", False)],
        1,
        lambda r: {
            "pv": "product_view",
            "cart": "add_to_cart",
            "fav": "add_to_wishlist",
            "buy": "purchase",
        }[r[3]],
    ),
    "otto": (
        [("otto_tiny_sample/events.csv.gz", ",", True)],
        1,
        lambda r: {"clicks": "product_view", "carts": "add_to_cart", "orders": "purchase"}[r[3]],
    ),
    "yoochoose": (
        [
            ("yoochoose_rsc15_100k/yoochoose-clicks-100k_train_full.tsv.gz", "\t", True),
            ("yoochoose_rsc15_100k/yoochoose-clicks-100k_test.tsv.gz", "\t", True),
        ],
        1,
        lambda r: "product_view",
    ),
    "amazon_grocery": (
        [("amazon_grocery_rechorus/train.tsv.gz", "\t", True)],
        1,
        lambda r: "purchase",
    ),
}


Loaded = dict[str, tuple[dict, list[dict], Path]]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    """Every loader run once into one temp data dir: {dataset: (summary, events, data_dir)}."""
    root = tmp_path_factory.mktemp("loaders") / "data"
    out = {}
    for dataset in LOADERS:
        summary = load(dataset, data_dir=root)
        out[dataset] = (summary, read_events(root, dataset), root)
    return out


def test_every_loader_has_a_case() -> None:
    assert set(CASES) == set(LOADERS)


@pytest.mark.parametrize("dataset", list(CASES))
def test_loader_writes_contract_events_that_reconcile_with_source(
    dataset: str, loaded: Loaded
) -> None:
    files, item_col, type_of = CASES[dataset]
    sources = {Path(f).name: source_rows(REAL / f, sep, header) for f, sep, header in files}
    n_source = sum(len(rows) for rows in sources.values())

    summary, events, data_dir = loaded[dataset]
    check_contract(events)
    stats = summary["events"]
    assert stats["source_rows"] == n_source
    assert stats["written"] == len(events)
    assert len(events) + stats["skipped_total"] == n_source
    assert sum(stats["skipped"].values()) == stats["skipped_total"]
    check_duckdb_reads(data_dir, dataset, len(events))

    # Trace every event back to its source row: item and event type must match.
    by_split = {"train": 0, "test": 1}
    rows_per_file = list(sources.values())
    for event in events:
        split = event["event_id"].split("-")[1] if dataset == "yoochoose" else None
        rows = rows_per_file[by_split[split]] if split else rows_per_file[0]
        row = rows[row_of(event)]
        assert event["item_id"] == row[item_col], (event, row)
        assert event["event_type"] == type_of(row), (event, row)

    on_disk = json.loads((data_dir / "landing" / "_loader" / f"{dataset}.json").read_text())
    assert on_disk["events"]["written"] == len(events)
    assert on_disk["mapping"]
    # Temp files are gone; nothing outside landing/ was written.
    assert not list((data_dir / "landing" / "_loader").glob(".tmp-*"))
    assert not list((data_dir / "landing" / "events").glob("*/*/.tmp-*"))
    assert {p.name for p in data_dir.iterdir()} == {"landing"}


# --- hand-picked values ------------------------------------------------------------------------
def by_id(events: list[dict]) -> dict[str, dict]:
    return {e["event_id"]: e for e in events}


def test_rees46_values_and_catalog(loaded: Loaded) -> None:
    _, events, data_dir = loaded["rees46"]
    ev = by_id(events)
    first = ev["rees46-1"]
    assert first["event_time"] == "2019-10-01T00:00:00Z"
    assert first["event_type"] == "product_view"
    assert first["item_id"] == "44600062"
    assert first["user_id"] == "541312140"
    assert first["anonymous_id"] == "72d76fde-8bb3-4e00-8c23-a032dfed738c"
    assert first["page"] == "/p/44600062"
    assert first["properties"] == {"price": 35.79, "category_id": "2103807459595387724"}
    purchases = [e for e in ev.values() if e["event_type"] == "purchase"]
    assert len(purchases) == 214
    assert all(e["properties"]["quantity"] == 1 for e in purchases)
    assert all(e["properties"]["order_id"].startswith("rees46-") for e in purchases)

    items = {
        i["item_id"]: i
        for i in read_jsonl(data_dir / "landing/catalog/snapshot_date=2019-10-01/items.jsonl.gz")
    }
    assert len(items) == 6493
    assert all(list(i) == list(ITEM_COLUMNS) for i in items.values())
    # Row 2: 3900821, appliances.environment.water_heater, aqua, 33.20
    assert items["3900821"]["department"] == "appliances"
    assert items["3900821"]["category"] == "environment"
    assert items["3900821"]["product_type"] == "water_heater"
    assert items["3900821"]["brand"] == "aqua"
    # Row 1 has no category code: hierarchy null, brand kept.
    assert items["44600062"]["department"] is None
    assert items["44600062"]["brand"] == "shiseido"
    assert items["44600062"]["price"] == 35.79


def test_hm_purchases_catalog_and_customers(loaded: Loaded) -> None:
    summary, events, data_dir = loaded["hm"]
    ev = by_id(events)
    first, second = ev["hm-1"], ev["hm-2"]
    customer = "000058a12d5b43e67d225668fa1f8d618c13dc232df0cad8ffe7ad4a1091e318"
    assert first["user_id"] == first["anonymous_id"] == customer
    assert first["item_id"] == "663713001"
    assert first["properties"] == {
        "price": 0.0508305084745762,
        "quantity": 1,
        "order_id": f"hm-20180920-{customer}-online",
        "sales_channel": "online",
    }
    # One order, one checkout time, on the real day.
    assert second["properties"]["order_id"] == first["properties"]["order_id"]
    assert second["event_time"] == first["event_time"]
    assert first["event_time"].startswith("2018-09-20T")
    assert Counter(e["properties"]["sales_channel"] for e in ev.values()) == {
        "online": 7313,
        "store": 2687,
    }
    assert all(
        e["page"] is None for e in ev.values() if e["properties"]["sales_channel"] == "store"
    )

    snap = data_dir / "landing"
    items = read_jsonl(snap / "catalog/snapshot_date=2018-09-20/items.jsonl.gz")
    n_articles = len(source_rows(REAL / "hm_fashion_sample/articles.csv.gz"))
    assert len(items) == n_articles == summary["catalog"]["written"]
    assert all(list(i) == list(ITEM_COLUMNS) for i in items)
    strap = next(i for i in items if i["item_id"] == "108775015")
    assert strap["name"] == "Strap top"
    assert strap["department"] == "Ladieswear"
    assert strap["category"] == "Garment Upper body"
    assert strap["product_type"] == "Vest top"
    assert strap["colour"] == "Black"
    assert all(i["price"] is not None for i in items)  # every article was sold that day

    customers = read_jsonl(snap / "customers/snapshot_date=2018-09-20/customers.jsonl.gz")
    n_customers = len(source_rows(REAL / "hm_fashion_sample/customers.csv.gz"))
    assert len(customers) == n_customers == summary["customers"]["written"]
    assert all(list(c) == list(CUSTOMER_COLUMNS) for c in customers)
    c0 = next(c for c in customers if c["user_id"].startswith("00000dbacae5"))
    assert c0["age_band"] == "45-54"  # age 49
    assert c0["is_newsletter_subscriber"] is False  # fashion_news_frequency NONE
    assert (
        Counter(c["is_newsletter_subscriber"] for c in customers)[True]
        == 3272 + 89 + 47 + 10 + 5 + 4
    )


def test_taobao_skips_the_1970_row_and_maps_favourites(loaded: Loaded) -> None:
    summary, events, _ = loaded["taobao"]
    assert summary["events"]["skipped"] == {"event_time_out_of_range": 1}
    assert summary["events"]["by_type"] == {
        "add_to_cart": 5292,
        "add_to_wishlist": 2959,
        "product_view": 85773,
        "purchase": 2144,
    }
    ev = by_id(events)
    first = ev["taobao-1"]
    assert (first["event_time"], first["user_id"], first["item_id"]) == (
        "2017-11-26T01:00:00Z",
        "543462",
        "1715",
    )
    assert first["properties"] == {"category_id": "1464116"}
    assert summary["catalog"]["written"] == 75384  # the skipped row's item has no other event


def test_otto_keeps_milliseconds(loaded: Loaded) -> None:
    ev = by_id(loaded["otto"][1])
    assert ev["otto-1"]["event_time"] == "2022-07-31T22:00:00.025Z"  # 1659304800025 ms
    assert ev["otto-1"]["anonymous_id"] == "0"
    assert ev["otto-1"]["item_id"] == "1517085"
    assert Counter(e["event_type"] for e in ev.values()) == {
        "product_view": 800,
        "add_to_cart": 52,
        "purchase": 10,
    }


def test_retailrocket_and_yoochoose_first_rows(loaded: Loaded) -> None:
    rr = by_id(loaded["retailrocket"][1])["retailrocket-1"]
    assert rr["event_time"] == "2015-09-11T20:49:49Z"  # 1442004589
    assert (rr["anonymous_id"], rr["user_id"], rr["item_id"]) == ("0", None, "285930")
    assert rr["properties"] == {"source_session_id": "0"}
    yc = by_id(loaded["yoochoose"][1])["yoochoose-train-1"]
    assert yc["event_time"] == "2014-04-02T11:17:46.940Z"  # 1396437466.94
    assert (yc["anonymous_id"], yc["item_id"]) == ("3", "214716935")


# --- write protocol -------------------------------------------------------------------------
def test_rerun_is_idempotent_and_removes_only_its_stale_files(data_dir: Path) -> None:
    load("otto", data_dir=data_dir)
    events_dir = data_dir / "landing" / "events"
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in events_dir.rglob("*.gz")}
    stale = events_dir / "date=2001-01-01" / "hour=00" / "batch-otto.jsonl.gz"
    foreign = events_dir / "date=2001-01-01" / "hour=00" / "batch-sim.jsonl.gz"
    crashed = events_dir / "date=2001-01-01" / "hour=00" / ".tmp-batch-otto-dead-x.tmp.gz"
    for path in (stale, foreign, crashed):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(b"{}\n"))

    summary = load("otto", data_dir=data_dir)

    assert summary["files_changed"] == 1  # the stale file, nothing else
    assert not stale.exists() and not crashed.exists() and foreign.exists()
    foreign.unlink()
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in events_dir.rglob("*.gz")}
    assert after == before


def write_gz_csv(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.write_bytes(gzip.compress(buf.getvalue().encode()))


def test_unmappable_rows_are_counted_with_a_reason(data_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "real"
    write_gz_csv(
        src / "otto_tiny_sample" / "events.csv.gz",
        [
            ["session", "aid", "ts_ms", "type"],
            ["1", "10", "1659304800025", "clicks"],
            ["1", "11", "1659304800026", "views"],  # unknown type
            ["1", "", "1659304800027", "carts"],  # no item
            ["", "12", "1659304800028", "clicks"],  # no session
            ["2", "13", "yesterday", "orders"],  # bad time
            ["2", "14", "0", "orders"],  # 1970
        ],
    )
    summary = load("otto", data_dir=data_dir, source_dir=src)
    assert summary["events"]["written"] == 1
    assert summary["events"]["skipped"] == {
        "event_time_out_of_range": 1,
        "missing_anonymous_id": 1,
        "missing_event_time": 1,
        "missing_item_id": 1,
        "unmapped_event_type:views": 1,
    }
    assert [e["event_id"] for e in read_events(data_dir, "otto")] == ["otto-1"]
    # OTTO has no item data: the catalog lists the written event's item only, attributes unknown
    items = read_jsonl(data_dir / "landing/catalog/snapshot_date=2022-07-31/items.jsonl.gz")
    assert items == [{"item_id": "10", **dict.fromkeys(ITEM_COLUMNS[1:])}]
    assert summary["catalog"]["source_rows"] == summary["catalog"]["written"] == 1


def test_wrong_header_fails_loudly(data_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "real"
    write_gz_csv(src / "otto_tiny_sample" / "events.csv.gz", [["session", "aid", "ts", "type"]])
    with pytest.raises(ValueError, match="header"):
        load("otto", data_dir=data_dir, source_dir=src)
    with pytest.raises(FileNotFoundError, match="TRASOS_REAL_DATA_DIR"):
        load("rees46", data_dir=data_dir, source_dir=src)


def test_cli_list_and_run(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    assert set(capsys.readouterr().out.split()) >= set(LOADERS)
    assert main(["otto", "--out", str(data_dir / "other")]) == 0
    out = capsys.readouterr().out
    assert "source     862 = written     862 + skipped 0" in out
    assert (data_dir / "other" / "landing" / "_loader" / "otto.json").exists()
    with pytest.raises(SystemExit):
        main(["nope"])


def test_amazon_grocery_values_and_catalog(loaded: Loaded) -> None:
    _, events, data_dir = loaded["amazon_grocery"]
    ev = by_id(events)
    # Row 1: user 2177, item 3, time 965779200 = 2000-08-09 00:00 UTC (the review's day)
    first = ev["amazon_grocery-1"]
    assert first["event_time"].startswith("2000-08-09T12:")  # synthetic hour 12:00-12:59
    assert (first["event_type"], first["user_id"], first["item_id"]) == ("purchase", "2177", "3")
    assert first["anonymous_id"] == "2177"
    assert first["properties"] == {"quantity": 1, "order_id": "amazon_grocery-2177-20000809"}
    assert len(events) == 121_892
    # one file per day: every event of a day lies in its 12:00 hour
    assert all(e["event_time"][11:13] == "12" for e in events)
    items = {
        i["item_id"]: i
        for i in read_jsonl(data_dir / "landing/catalog/snapshot_date=2014-07-22/items.jsonl.gz")
    }
    assert len(items) == 8_713
    assert items["1"]["category"] == "grocery-0" and items["1"]["department"] == "grocery"
