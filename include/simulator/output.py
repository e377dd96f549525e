"""One simulator run end to end: model, events, faults, files, snapshots, ground truth."""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from common.contracts import EVENT_TYPES
from include.contracts import CUSTOMER_COLUMNS, ITEM_COLUMNS
from include.simulator import _text
from include.simulator.behaviour import ET, SessionTimes, build_events
from include.simulator.catalog import (
    CATEGORY_NAMES,
    PRODUCT_TYPES,
    Catalog,
    Taste,
    build_catalog,
    build_taste,
)
from include.simulator.config import (
    AGE_BANDS,
    BRANDS,
    COLOURS,
    COUNTRIES,
    DEPARTMENTS,
    FAULT_KINDS,
    PRICE_BANDS,
    STYLES,
    SimulationSummary,
    SimulatorConfig,
)
from include.simulator.layout import FaultQuota, plan_layout
from include.simulator.population import (
    BOT,
    EXISTING,
    KIND_NAMES,
    NEVER,
    NEW,
    People,
    Sessions,
    build_people,
)
from include.simulator.writer import EventWriter, LineBuilder, write_gzip

_STREAMS = ("catalog", "taste", "people", "events", "ids", "layout", "orders")


def _json_lines(frame: pd.DataFrame) -> list[bytes]:
    """One JSON object per row (pandas' C serialiser), as a list of lines with newlines."""
    text = frame.to_json(orient="records", lines=True, force_ascii=True)
    return [line + b"\n" for line in text.encode().splitlines()]


def _write_parquet(path: Path, columns: dict[str, pa.Array | np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, compression="zstd")


def _pa_fixed(values: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Arrow strings from a fixed-width ``S`` array (zero-copy layout), nulls where not valid."""
    n, width = len(values), values.dtype.itemsize
    offsets = pa.py_buffer((np.arange(n + 1, dtype=np.int32) * width).tobytes())
    out = pa.StringArray.from_buffers(n, offsets, pa.py_buffer(values.tobytes()))
    if valid is not None:
        out = pc.if_else(pa.array(valid), out, pa.scalar(None, pa.string()))
    return out


def _pa_vocab(vocab: tuple[str, ...] | list[str] | np.ndarray, codes: np.ndarray) -> pa.Array:
    return pa.array(list(vocab), type=pa.string()).take(pa.array(codes.astype(np.int32)))


def _date_strings(start: date, day: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(np.datetime64(start) + day.astype("timedelta64[D]"))


def items_frame(cfg: SimulatorConfig, cat: Catalog) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": cat.item_id.astype("U").astype(object),
            "name": cat.name.astype(object),
            "department": np.array(DEPARTMENTS, dtype=object)[cat.department],
            "category": np.array(CATEGORY_NAMES, dtype=object)[cat.category],
            "product_type": np.array(PRODUCT_TYPES, dtype=object)[cat.product_type],
            "colour": np.array(COLOURS, dtype=object)[cat.colour],
            "brand": np.array(BRANDS, dtype=object)[cat.brand],
            "price": cat.price_cents / 100.0,
            "collection": np.array(cat.collections, dtype=object)[cat.collection],
            "launch_date": _date_strings(cfg.start, cat.launch_day).astype(object),
        }
    )[list(ITEM_COLUMNS)]


def customers_frame(cfg: SimulatorConfig, people: People) -> tuple[pd.DataFrame, np.ndarray]:
    """Registered customers in sign-up order, and their sign-up day (relative to start)."""
    reg = np.flatnonzero(people.user_num >= 0)
    reg = reg[np.argsort(people.user_num[reg], kind="stable")]
    frame = pd.DataFrame(
        {
            "user_id": people.user_id[reg].astype("U").astype(object),
            "signup_date": _date_strings(cfg.start, people.signup_day[reg]).astype(object),
            "country": np.array(COUNTRIES, dtype=object)[people.country[reg]],
            "age_band": np.array(AGE_BANDS, dtype=object)[people.age_band[reg]],
            "is_newsletter_subscriber": people.newsletter[reg],
        }
    )[list(CUSTOMER_COLUMNS)]
    return frame, people.signup_day[reg]


def write_snapshots(cfg: SimulatorConfig, cat: Catalog, people: People, landing: Path) -> int:
    """Catalog and customer snapshots at the end of day 0, every drop day and the last day.

    Rows are serialised once; a snapshot holds the items launched and the customers signed
    up by the end of its day.
    """
    days = sorted({0, *cat.drop_days, cfg.days - 1})
    item_lines = _json_lines(items_frame(cfg, cat))
    customers, signup_day = customers_frame(cfg, people)
    customer_lines = _json_lines(customers)
    for d in days:
        stamp = (cfg.start + timedelta(days=d)).isoformat()
        launched = np.flatnonzero(cat.launch_day <= d)
        write_gzip(
            landing / f"catalog/snapshot_date={stamp}/items.jsonl.gz",
            b"".join(item_lines[i] for i in launched),
            cfg.gzip_level,
        )
        signed_up = np.flatnonzero(signup_day <= d)
        write_gzip(
            landing / f"customers/snapshot_date={stamp}/customers.jsonl.gz",
            b"".join(customer_lines[i] for i in signed_up),
            cfg.gzip_level,
        )
    return 2 * len(days)


def write_ground_truth(
    cfg: SimulatorConfig,
    cat: Catalog,
    taste: Taste,
    people: People,
    ses: Sessions,
    times: SessionTimes,
    type_counts: np.ndarray,
    n_orders: int,
    out: Path,
) -> dict[str, object]:
    """What was planted, for checking recommenders and the pipeline against it."""
    out.mkdir(parents=True, exist_ok=True)
    _write_parquet(
        out / "items.parquet",
        {
            "item_id": _pa_fixed(cat.item_id),
            "name": pa.array(cat.name.astype(object), type=pa.string()),
            "department": _pa_vocab(DEPARTMENTS, cat.department),
            "category": _pa_vocab(CATEGORY_NAMES, cat.category),
            "product_type": _pa_vocab(PRODUCT_TYPES, cat.product_type),
            "colour": _pa_vocab(COLOURS, cat.colour),
            "brand": _pa_vocab(BRANDS, cat.brand),
            "style": _pa_vocab(STYLES, cat.style),
            "price": cat.price_cents / 100.0,
            "collection": _pa_vocab(cat.collections, cat.collection),
            "launch_date": (np.datetime64(cfg.start) + cat.launch_day.astype("timedelta64[D]")),
            "is_cold_start": cat.launch_day > 0,
            "popularity": cat.popularity,
            "outfit_id": pa.array(cat.outfit.astype(np.int64), mask=cat.outfit < 0),
        },
    )
    o_idx, o_slot = np.nonzero(cat.outfit_members >= 0)
    _write_parquet(
        out / "outfits.parquet",
        {
            "outfit_id": o_idx.astype(np.int64),
            "item_id": _pa_fixed(cat.item_id[cat.outfit_members[o_idx, o_slot]]),
        },
    )
    registered = people.user_num >= 0
    second = np.where(people.n_devices == 2, people.first_device + 1, people.first_device)
    seg1 = people.segment1
    never = people.signup_day == NEVER
    _write_parquet(
        out / "people.parquet",
        {
            "person_id": np.arange(len(people.kind), dtype=np.int64),
            "kind": _pa_vocab(KIND_NAMES, people.kind),
            "user_id": _pa_fixed(people.user_id, registered),
            "anonymous_id": _pa_fixed(people.device_anon[people.first_device]),
            "second_anonymous_id": _pa_fixed(people.device_anon[second], people.n_devices == 2),
            "segment1": seg1.astype(np.int64),
            "segment2": people.segment2.astype(np.int64),
            "segment1_weight": people.mix,
            "top_category": _pa_vocab(CATEGORY_NAMES, taste.category_w.argmax(1)[seg1]),
            "top_colour": _pa_vocab(COLOURS, taste.colour_w.argmax(1)[seg1]),
            "top_brand": _pa_vocab(BRANDS, taste.brand_w.argmax(1)[seg1]),
            "price_band": _pa_vocab(PRICE_BANDS, taste.price_band[seg1]),
            "country": _pa_vocab(COUNTRIES, people.country),
            "arrival_day": people.arrival_day,
            "mean_gap_days": people.mean_gap_days,
            "visitor_gap_days": people.visitor_gap_days,
            "purchase_propensity": people.purchase_propensity,
            "converted": people.converted,
            "signup_day": pa.array(np.where(never, 0, people.signup_day), mask=never),
        },
    )
    user_of_session = np.where(ses.is_customer, people.user_num[ses.person], -1)
    _write_parquet(
        out / "sessions.parquet",
        {
            "session_id": np.arange(len(ses.person), dtype=np.int64),
            "person_id": ses.person.astype(np.int64),
            "anonymous_id": _pa_fixed(people.device_anon[ses.device]),
            "user_id": _pa_fixed(
                _text.padded_ids("u", np.maximum(user_of_session, 0), 7), user_of_session >= 0
            ),
            "is_bot": ses.is_bot,
            "start_at": times.start_us.astype("datetime64[us]"),
            "end_at": times.end_us.astype("datetime64[us]"),
            "n_events": times.n_events.astype(np.int64),
            "has_login": ses.login,
            "has_purchase": ses.purchase,
            "is_conversion": ses.conversion,
        },
    )
    np.savez(
        out / "segments.npz",
        department=taste.department,
        category_w=taste.category_w,
        colour_w=taste.colour_w,
        brand_w=taste.brand_w,
        style_w=taste.style_w,
        price_band=taste.price_band,
        epoch_start_day=taste.epoch_start_day,
        item_prob=taste.item_prob,
    )

    n_new = int((people.kind == NEW).sum())
    n_conv = int(ses.conversion.sum())
    truth: dict[str, object] = {
        "config": cfg.to_dict(),
        "people": {
            "existing_customers": int((people.kind == EXISTING).sum()),
            "new_visitors": n_new,
            "bots": int((people.kind == BOT).sum()),
            "visitors_with_sessions": int(len(np.unique(ses.person[~ses.is_bot]))),
            "new_customers": n_conv,
            "conversion_rate": n_conv / n_new if n_new else 0.0,
            "two_device_customers": int((people.n_devices == 2).sum()),
        },
        "catalog": {
            "items": int(cat.n),
            "cold_start_items": int((cat.launch_day > 0).sum()),
            "cold_start_share": float((cat.launch_day > 0).mean()),
            "drop_dates": [(cfg.start + timedelta(days=d)).isoformat() for d in cat.drop_days],
            "collections": list(cat.collections),
            "outfits": int(len(cat.outfit_size)),
        },
        "sessions": {
            "human": int((~ses.is_bot).sum()),
            "bot": int(ses.is_bot.sum()),
            "with_purchase": int(ses.purchase.sum()),
            "orders": int(n_orders),
        },
        "event_types": {t: int(c) for t, c in zip(EVENT_TYPES, type_counts, strict=True)},
        "vocabularies": {
            "departments": list(DEPARTMENTS),
            "categories": list(CATEGORY_NAMES),
            "colours": list(COLOURS),
            "brands": list(BRANDS),
            "styles": list(STYLES),
            "price_bands": list(PRICE_BANDS),
        },
        "files": {
            "items.parquet": "catalog with style, popularity, outfit_id, is_cold_start",
            "outfits.parquet": "one row per (outfit_id, item_id): items bought together",
            "people.parquet": "every person: kind, ids, taste segments, gaps, conversion",
            "sessions.parquet": "every visit: person, device, start/end, purchase",
            "segments.npz": "segment weights; item_prob[epoch, segment, item_index]",
        },
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth


def run(
    cfg: SimulatorConfig, landing: Path, late_window_days: int, *, progress: bool = False
) -> SimulationSummary:
    """The whole run: global model, then chunk by chunk of days: events, layout, files.

    While the gzip threads write chunk ``c``, the main thread already generates chunk
    ``c + 1``; snapshots, vocabularies and ground truth are built by helper threads.
    """

    def rng(name: str, *extra: int) -> np.random.Generator:
        return np.random.default_rng([cfg.seed, _STREAMS.index(name), *extra])

    stage_s: dict[str, float] = {}
    clock = [time.perf_counter()]

    def step(label: str) -> None:
        now = time.perf_counter()
        stage_s[label] = round(stage_s.get(label, 0.0) + now - clock[0], 4)
        clock[0] = now

    bar = tqdm(
        total=cfg.days, desc="simulate", unit="day", file=sys.stderr,
        disable=not progress, leave=False,
    )  # fmt: skip
    cat = build_catalog(cfg, rng("catalog"))
    taste = build_taste(cfg, cat, rng("taste"))
    people, ses = build_people(cfg, cfg.n_segments, rng("people"))
    step("model")
    sim_dir = landing / "_simulator"
    n_ses = len(ses.person)
    start_us = np.zeros(n_ses, dtype=np.int64)
    end_us = np.zeros(n_ses, dtype=np.int64)
    n_events = np.zeros(n_ses, dtype=np.int64)
    type_counts = np.zeros(len(EVENT_TYPES), dtype=np.int64)
    n_orders = total_events = total_rows = total_files = 0
    quota = FaultQuota(cfg.fault_rate)
    ses_bounds = np.searchsorted(ses.day, np.arange(0, cfg.days + cfg.chunk_days, cfg.chunk_days))

    with ThreadPoolExecutor(max_workers=2) as helper, EventWriter(cfg, landing) as writer:
        snapshots = helper.submit(write_snapshots, cfg, cat, people, landing)
        builder_future = helper.submit(LineBuilder, cfg, people, cat)
        builder: LineBuilder | None = None
        for c in range(len(ses_bounds) - 1):
            lo, hi = int(ses_bounds[c]), int(ses_bounds[c + 1])
            if lo == hi:
                bar.update(min(cfg.chunk_days, cfg.days - c * cfg.chunk_days))
                continue
            events, times = build_events(
                cfg, cat, taste, people, ses.take(slice(lo, hi)), rng("events", c)
            )
            start_us[lo:hi], end_us[lo:hi], n_events[lo:hi] = (
                times.start_us,
                times.end_us,
                times.n_events,
            )
            type_counts += np.bincount(events.etype, minlength=len(EVENT_TYPES))
            n_orders += events.n_orders
            uuid_raw = rng("ids", c).integers(0, 256, size=(events.n, 16), dtype=np.uint8)
            step("events")
            layout = plan_layout(
                cfg, events.time_us, events.etype == ET["purchase"], late_window_days,
                rng("layout", c), quota,
            )  # fmt: skip
            step("layout")
            if builder is None:
                builder = builder_future.result()
                step("vocabularies")
            builder.bind(events, uuid_raw, rng("orders", c))
            writer.write(layout, builder)
            total_events += events.n
            total_rows += layout.n_rows
            total_files += len(layout.file_key)
            step("write_events")
            bar.update(min(cfg.chunk_days, cfg.days - c * cfg.chunk_days))
        truth_future = helper.submit(
            write_ground_truth, cfg, cat, taste, people, ses,
            SessionTimes(start_us=start_us, end_us=end_us, n_events=n_events),
            type_counts, n_orders, sim_dir / "ground_truth",
        )  # fmt: skip
        writer.close()
        step("drain_gzip")
        snapshots.result()
        truth = truth_future.result()
        step("side_files")
    bar.close()
    records = writer.records
    sim_dir.mkdir(parents=True, exist_ok=True)
    records.sort(key=lambda r: (r["file"], r["line"] or 0, r["fault"]))
    with (sim_dir / "faults.jsonl").open("w") as fh:
        for rec in records:
            fh.write(json.dumps(rec, separators=(",", ":")) + "\n")
    counts = {k: 0 for k in FAULT_KINDS}
    for rec in records:
        counts[rec["fault"]] += 1
    t_people = truth["people"]
    assert isinstance(t_people, dict)
    summary = SimulationSummary(
        landing_dir=landing,
        start=cfg.start,
        days=cfg.days,
        events=total_events,
        lines=total_rows,
        files=total_files,
        sessions=n_ses,
        visitors=int(t_people["visitors_with_sessions"]),
        bots=int(t_people["bots"]),
        customers=int((people.user_num >= 0).sum()),
        new_customers=int(t_people["new_customers"]),
        new_visitors=int(t_people["new_visitors"]),
        conversion_rate=float(t_people["conversion_rate"]),
        cold_items=int((cat.launch_day > 0).sum()),
        faults=counts,
        stage_s=stage_s,
    )
    (sim_dir / "summary.json").write_text(
        json.dumps(summary.to_dict(with_timing=False), indent=2) + "\n"
    )
    return summary
