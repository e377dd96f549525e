"""The closed loop: simulated days of a holdout experiment against the published recommendations.

After the first period (:func:`include.simulator.simulate`) has been ingested, modelled and a
version published, :func:`simulate_experiment_week` generates the next ``days`` days of the
same world: the same customers (ids, taste segments, visit rhythm and purchase propensity from
``_simulator/ground_truth/people.parquet``) and fresh new visitors. Every visitor is assigned by
the API's own code: customers ask ``user_body`` (``/v1/users/{user_id}/recommendations``),
new visitors ``session_body`` with the item they landed on and their ``visitor_id``
(``/v1/sessions/recommendations``), both on the published files (:func:`load_version` of
``CURRENT``); the answer names the variant and the list shown: personal (treatment) or the
shop's default list (control). Every event of the visit carries
``context.experiment_id``/``context.variant``.

The planted effect
------------------
``match`` of a shown list for a visitor = the share of its ``k`` items that are among the top
``taste_top_share`` of the catalogue for one of the visitor's two taste segments (the
segments' item probabilities of the last catalogue epoch, ``segments.npz``). With
``effect = e``:

* each shown item is viewed with probability ``view_base * (1 + e * [item matches])``;
* a new visitor converts (sign-up ``login`` + first ``purchase``) during the week with
  probability ``conversion_base * (1 + e * match)``;
* a customer's visit ends in a purchase with probability
  ``purchase_propensity * (1 + e * match)`` (capped at 0.95), and after the first visit the
  customer comes back at rate ``(1 + e * match) / mean_gap_days`` (exponential gaps).

Customers' first visit of the week comes at their own rate ``1 / mean_gap_days`` (nothing has
been shown yet). ``effect = 0`` is an A/A test: both variants behave alike.

Ground truth
------------
``_simulator/ground_truth/experiment-<experiment_id>.json`` (next to the simulator's other
ground truth) holds the config, the counts and, per metric, the planted (expected) value of
each variant over the visitors of the week, computed from the counterfactual probabilities
(every visitor's match under both lists): the average treatment effect the marts estimate.
``experiment-<experiment_id>-visitors.parquet`` has one row per visitor.

Speed: outcomes are array code; the served lists are one API call per visitor (the same
functions as the HTTP path, without HTTP) and the JSON lines one ``json.dumps`` per event.
"""

from __future__ import annotations

import gzip
import json
import math
import uuid
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.experiment import CONTROL, TREATMENT, Experiment
from include.serving.app import SessionRequest, session_body, user_body
from include.serving.holdout import default_items_json
from include.serving.loader import Snapshot, load_version, read_current
from include.simulator.config import USER_AGENTS

GROUND_TRUTH = Path("_simulator") / "ground_truth"
#: Everyone treated: the counterfactual treatment list of a control visitor (ground truth only).
_ALL_TREATED = 1e-12


@dataclass(frozen=True)
class ExperimentWeekConfig:
    """One experiment week. The same config, world and published version give the same bytes.

    seed
        Seed of every draw of the week (independent of the world's seed).
    days
        Length of the week in days.
    effect
        The planted effect ``e`` (see the module doc); 0 = A/A.
    k
        Items shown in the widget (the API's ``k``).
    new_visitors_per_day
        Fresh new visitors a day; None = the first period's rate (ground truth).
    conversion_base
        New visitors' conversion probability during the week at ``match = 0``.
    view_base
        Probability of viewing a shown item that does not match.
    taste_top_share
        Share of the catalogue that "matches" a taste segment (its most likely items).
    id_suffix
        Appended to every emitted visitor, user and order id (``bench/uplift.py`` runs many
        independent replicas in one landing zone); empty by default.
    """

    seed: int = 21
    days: int = 7
    effect: float = 1.5
    k: int = 10
    new_visitors_per_day: int | None = None
    conversion_base: float = 0.05
    view_base: float = 0.05
    taste_top_share: float = 0.02
    id_suffix: str = ""

    def __post_init__(self) -> None:
        problems = {
            "days must be >= 1": self.days >= 1,
            "effect must be >= 0": self.effect >= 0,
            "k must be in 1..20": 1 <= self.k <= 20,
            "conversion_base must be in (0, 0.5]": 0 < self.conversion_base <= 0.5,
            "taste_top_share must be in (0, 0.5]": 0 < self.taste_top_share <= 0.5,
        }
        failed = [msg for msg, ok in problems.items() if not ok]
        if failed:
            raise ValueError("invalid ExperimentWeekConfig: " + "; ".join(failed))


@dataclass
class _World:
    people: pd.DataFrame
    item_ids: np.ndarray  # catalogue order (item index of segments.npz)
    prices: np.ndarray
    item_prob: np.ndarray  # (segments, items) of the last epoch
    top: np.ndarray  # (segments, items) bool: the segment's matching items


def _load_world(landing: Path, cfg: ExperimentWeekConfig) -> _World:
    gt = landing / GROUND_TRUTH
    if not (gt / "people.parquet").exists():
        raise FileNotFoundError(
            f"no simulated world in {landing} ({GROUND_TRUTH}/people.parquet is missing): "
            "simulate the first period first (`make run` or `make simulate`)"
        )
    people = pd.read_parquet(gt / "people.parquet")
    items = pd.read_parquet(gt / "items.parquet", columns=["item_id", "price"])
    seg = np.load(gt / "segments.npz")
    item_prob = seg["item_prob"][-1]
    n_top = max(1, round(cfg.taste_top_share * item_prob.shape[1]))
    order = np.argsort(-item_prob, axis=1, kind="stable")[:, :n_top]
    top = np.zeros(item_prob.shape, dtype=bool)
    np.put_along_axis(top, order, True, axis=1)
    return _World(
        people=people,
        item_ids=items["item_id"].to_numpy(dtype=object),
        prices=items["price"].to_numpy(dtype=float),
        item_prob=item_prob,
        top=top,
    )


def _match(world: _World, lists: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """(n, k) bool: which shown items (catalogue indexes, -1 = none) match the visitor."""
    safe = np.maximum(lists, 0)
    hit = world.top[s1[:, None], safe] | world.top[s2[:, None], safe]
    return hit & (lists >= 0)


def _ids(body: bytes) -> tuple[str, list[str]]:
    doc = json.loads(body)
    return doc["variant"], [row["item_id"] for row in doc["items"]]


def simulate_experiment_week(
    landing: Path,
    published_dir: Path,
    experiment: Experiment,
    start: date,
    cfg: ExperimentWeekConfig | None = None,
    *,
    snapshot: Snapshot | None = None,
) -> dict[str, Any]:
    """Write the week's events under ``landing/events`` and its ground truth; return the truth.

    ``start`` is the week's first day (the day after the last landed date). ``snapshot``: the
    published version already loaded (``bench/uplift.py`` loads it once for many weeks);
    default: ``CURRENT`` of ``published_dir``.
    """
    cfg = cfg or ExperimentWeekConfig()
    if snapshot is None:
        version = read_current(published_dir)
        if version is None:
            raise FileNotFoundError(
                f"nothing is published in {published_dir}: an experiment week needs served "
                "lists (run the DAGs on the first period first: `make run`)"
            )
        snapshot = load_version(published_dir, version)
    snap = snapshot
    version = snap.model_version
    world = _load_world(landing, cfg)
    rng = np.random.default_rng([cfg.seed, 2121])
    code_of = {item: i for i, item in enumerate(world.item_ids)}
    everyone = Experiment(experiment.experiment_id, _ALL_TREATED, experiment.salt)
    k = cfg.k
    p = world.people

    def as_codes(ids: list[str]) -> np.ndarray:
        row = np.full(k, -1, dtype=np.int64)
        codes = [code_of.get(i, -1) for i in ids[:k]]
        row[: len(codes)] = codes
        return row

    default_ids = [r["item_id"] for r in json.loads(b"[" + default_items_json(snap, k) + b"]")]
    default_codes = as_codes(default_ids)

    # --- customers: the registered people of the world who visit during the week --------------
    registered = p[p["user_id"].notna()].reset_index(drop=True)
    reg_rate = 1.0 / registered["mean_gap_days"].to_numpy(dtype=float)
    reg_first = rng.exponential(1.0 / reg_rate)  # their first visit of the week (days)
    visiting = reg_first < cfg.days
    cust = registered[visiting].reset_index(drop=True)
    first = reg_first[visiting]
    n_c = len(cust)
    c_vid = cust["user_id"].to_numpy(dtype=object)
    c_variant = np.empty(n_c, dtype=object)
    c_lists = np.empty((n_c, k), dtype=np.int64)
    c_treat = np.empty((n_c, k), dtype=np.int64)
    for i, vid in enumerate(c_vid):
        c_variant[i], shown = _ids(user_body(snap, vid, k, experiment))
        c_lists[i] = as_codes(shown)
        # what the treatment would have shown (the ground truth's counterfactual)
        treated = shown if c_variant[i] == TREATMENT else _ids(user_body(snap, vid, k, everyone))[1]
        c_treat[i] = as_codes(treated)
    c_s1 = cust["segment1"].to_numpy()
    c_s2 = cust["segment2"].to_numpy()
    c_m_shown = _match(world, c_lists, c_s1, c_s2).mean(1)
    c_m_t = _match(world, c_treat, c_s1, c_s2).mean(1)
    c_m_c = _match(world, np.broadcast_to(default_codes, (n_c, k)), c_s1, c_s2).mean(1)
    rate = 1.0 / cust["mean_gap_days"].to_numpy(dtype=float)
    propensity = cust["purchase_propensity"].to_numpy(dtype=float)
    e = cfg.effect
    boost = 1.0 + e * c_m_shown
    # visits: the first at `first`, then exponential gaps at the boosted rate (at least 1 h)
    visits: list[tuple[int, float]] = []  # (customer row, day offset)
    t = first.copy()
    alive = t < cfg.days
    while alive.any():
        idx = np.flatnonzero(alive)
        visits.extend(zip(idx.tolist(), t[idx].tolist(), strict=True))
        gap = np.maximum(rng.exponential(1.0 / (rate[idx] * boost[idx])), 1.0 / 24)
        t[idx] = t[idx] + gap
        alive[idx] = t[idx] < cfg.days

    # --- new visitors: fresh ids, arriving uniformly over the week -------------------------------
    truth_json = json.loads((landing / GROUND_TRUTH / "truth.json").read_text())
    first_days = int(truth_json["config"]["days"])
    per_day = cfg.new_visitors_per_day
    if per_day is None:
        per_day = round(truth_json["people"]["new_visitors"] / max(first_days, 1))
    n_n = per_day * cfg.days
    n_seg = world.item_prob.shape[0]
    n_s1 = rng.integers(0, n_seg, n_n)
    n_s2 = (n_s1 + rng.integers(1, n_seg, n_n)) % n_seg
    mix = rng.uniform(0.5, 1.0, n_n)
    n_vid = np.array([f"anon-x{cfg.seed}-{j:06d}{cfg.id_suffix}" for j in range(n_n)], dtype=object)
    arrival = rng.uniform(0, cfg.days, n_n)
    # the item each new visitor lands on: drawn from their taste
    cum1 = np.cumsum(world.item_prob, axis=1)
    seg_land = np.where(rng.random(n_n) < mix, n_s1, n_s2)
    landed = np.minimum(
        (cum1[seg_land] < rng.random(n_n)[:, None] * cum1[seg_land, -1:]).sum(1),
        world.item_prob.shape[1] - 1,
    )
    n_variant = np.empty(n_n, dtype=object)
    n_lists = np.empty((n_n, k), dtype=np.int64)
    n_treat = np.empty((n_n, k), dtype=np.int64)
    for j in range(n_n):
        base_vid = f"anon-x{cfg.seed}-{j:06d}"
        req = SessionRequest(
            events=[{"item_id": world.item_ids[landed[j]]}], k=k, visitor_id=base_vid
        )
        n_variant[j], shown = _ids(session_body(snap, req, experiment))
        n_lists[j] = as_codes(shown)
        treated = shown if n_variant[j] == TREATMENT else _ids(session_body(snap, req, everyone))[1]
        n_treat[j] = as_codes(treated)
    n_m_shown = _match(world, n_lists, n_s1, n_s2).mean(1)
    n_m_t = _match(world, n_treat, n_s1, n_s2).mean(1)
    n_m_c = _match(world, np.broadcast_to(default_codes, (n_n, k)), n_s1, n_s2).mean(1)
    p_conv = np.minimum(cfg.conversion_base * (1 + e * n_m_shown), 0.95)
    converts = rng.random(n_n) < p_conv
    # a new visitor comes back a few times (gaps of 1.5 days on average); converters buy on
    # a uniformly chosen one of their visits in the week
    n_visits: list[tuple[int, float]] = []
    t = arrival.copy()
    alive = np.ones(n_n, dtype=bool)
    count = np.zeros(n_n, dtype=np.int64)
    while alive.any():
        idx = np.flatnonzero(alive)
        n_visits.extend(zip(idx.tolist(), t[idx].tolist(), strict=True))
        count[idx] += 1
        t[idx] = t[idx] + np.maximum(rng.exponential(1.5, len(idx)), 1.0 / 24)
        alive[idx] = (t[idx] < cfg.days) & (rng.random(len(idx)) < 0.5)
    buy_visit = np.floor(rng.random(n_n) * count).astype(np.int64)

    # --- events -------------------------------------------------------------------------------
    start_dt = datetime(start.year, start.month, start.day)  # naive UTC
    lines: dict[tuple[str, int], list[str]] = {}
    platforms = tuple(USER_AGENTS)
    countries = ("DE", "NL", "FR", "GB", "SE")

    id_block: list[bytes] = []

    def uid() -> str:
        if not id_block:  # random bytes drawn 4096 ids at a time
            raw = rng.bytes(16 * 4096)
            id_block.extend(raw[i : i + 16] for i in range(len(raw) - 16, -1, -16))
        return str(uuid.UUID(bytes=id_block.pop(), version=4))

    encode = json.JSONEncoder(separators=(",", ":")).encode

    def emit(at: datetime, doc: dict[str, Any]) -> None:
        doc["event_id"] = uid()
        stamp = at.isoformat(timespec="microseconds")
        doc["event_time"] = stamp + "Z"
        lines.setdefault((stamp[:10], at.hour), []).append(encode(doc))

    def visit(
        at: datetime,
        anon: str,
        user: str | None,
        variant: str,
        shown: np.ndarray,
        hits: np.ndarray,
        buy: bool,
        signup_user: str | None,
        order_no: str,
    ) -> None:
        plat = platforms[int(rng.integers(len(platforms)))]
        ctx = {
            "platform": plat,
            "country": countries[int(rng.integers(len(countries)))],
            "user_agent": USER_AGENTS[plat][0],
            "experiment_id": experiment.experiment_id,
            "variant": variant,
        }
        clock = at

        def step(doc: dict[str, Any]) -> None:
            nonlocal clock
            clock = clock + timedelta(seconds=float(rng.uniform(5, 60)))
            emit(clock, {"anonymous_id": anon, "user_id": user, "context": ctx, **doc})

        step({"event_type": "page_view", "page": "/"})
        p_view = np.minimum(cfg.view_base * (1 + e * hits), 1.0)
        viewed = [
            int(c) for c, pv in zip(shown, p_view, strict=True) if c >= 0 and rng.random() < pv
        ]
        rec_id = f"{experiment.experiment_id}:{variant}"
        for pos, c in enumerate(viewed, start=1):
            step(
                {
                    "event_type": "product_view",
                    "item_id": world.item_ids[c],
                    "page": f"/p/{world.item_ids[c]}",
                    "properties": {"list_position": pos, "recommendation_id": rec_id},
                }
            )
        if not buy:
            return
        if signup_user is not None:
            user = signup_user
            step({"event_type": "login", "page": "/login", "properties": {"method": "signup"}})
        matched = [int(c) for c, h in zip(shown, hits, strict=True) if h and c >= 0]
        pool = matched or viewed or [int(c) for c in shown if c >= 0]
        item = pool[int(rng.integers(len(pool)))]
        price = float(world.prices[item])
        ev = {"item_id": world.item_ids[item], "page": "/cart"}
        step({"event_type": "add_to_cart", **ev, "properties": {"quantity": 1, "price": price}})
        step(
            {
                "event_type": "purchase",
                **ev,
                "page": "/checkout",
                "properties": {"quantity": 1, "price": price, "order_id": order_no},
            }
        )

    c_hits = _match(world, c_lists, c_s1, c_s2)
    c_anon = cust["anonymous_id"].to_numpy(dtype=object)
    p_buy = np.minimum(propensity * (1 + e * c_m_shown), 0.95)
    for n, (row, day) in enumerate(visits):
        at = start_dt + timedelta(days=day)
        visit(
            at,
            f"{c_anon[row]}{cfg.id_suffix}",
            f"{c_vid[row]}{cfg.id_suffix}",
            c_variant[row],
            c_lists[row],
            c_hits[row],
            bool(rng.random() < p_buy[row]),
            None,
            f"o-x{cfg.seed}-c{n:07d}{cfg.id_suffix}",
        )
    n_hits = _match(world, n_lists, n_s1, n_s2)
    seen = np.zeros(n_n, dtype=np.int64)
    for row, day in n_visits:
        at = start_dt + timedelta(days=day)
        buy = bool(converts[row] and seen[row] == buy_visit[row])
        # after sign-up the visitor is a customer: later visits are logged in
        signed_up = converts[row] and seen[row] > buy_visit[row]
        user = f"u-x{cfg.seed}-{row:06d}{cfg.id_suffix}"
        visit(
            at,
            n_vid[row],
            user if signed_up else None,
            n_variant[row],
            n_lists[row],
            n_hits[row],
            buy,
            user if buy else None,
            f"o-x{cfg.seed}-n{row:07d}{cfg.id_suffix}",
        )
        seen[row] += 1

    files = 0
    for (day_s, hour), rows in sorted(lines.items()):
        rows.sort(key=lambda line: line[line.index('"event_time"') :])
        path = landing / "events" / f"date={day_s}" / f"hour={hour:02d}"
        name = f"batch-x{cfg.seed}{cfg.id_suffix.replace('.', '-')}.jsonl.gz"
        path.mkdir(parents=True, exist_ok=True)
        tmp = path / f".{name}.tmp"
        tmp.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode(), 6, mtime=0))
        tmp.replace(path / name)
        files += 1

    # --- ground truth: the planted effect over the week's visitors -----------------------------
    window = experiment.return_window_days
    eligible = first <= cfg.days - window  # exposed early enough to be followed for N days
    r_t = 1 - np.exp(-rate * (1 + e * c_m_t) * window)
    r_c = 1 - np.exp(-rate * (1 + e * c_m_c) * window)
    conv_t = np.minimum(cfg.conversion_base * (1 + e * n_m_t), 0.95)
    conv_c = np.minimum(cfg.conversion_base * (1 + e * n_m_c), 0.95)

    def metric(t_vals: np.ndarray, c_vals: np.ndarray) -> dict[str, float | None]:
        if not len(t_vals):  # nobody to measure (a week shorter than the return window)
            return {"control": None, "treatment": None, "uplift_abs": None, "uplift_rel": None}
        t_mean, c_mean = float(t_vals.mean()), float(c_vals.mean())
        return {
            "control": c_mean,
            "treatment": t_mean,
            "uplift_abs": t_mean - c_mean,
            "uplift_rel": t_mean / c_mean - 1 if c_mean else math.nan,
        }

    exposed = first < cfg.days
    truth = {
        "experiment": asdict(experiment),
        "config": asdict(cfg),
        "start": start.isoformat(),
        "end": (start + timedelta(days=cfg.days - 1)).isoformat(),
        "model_version": version,
        "model_kind": snap.kind,
        "lines": int(sum(len(v) for v in lines.values())),
        "files": files,
        "visitors": {
            "customers_exposed": int(exposed.sum()),
            "customers_exposed_control": int((exposed & (c_variant == CONTROL)).sum()),
            "new_visitors": int(n_n),
            "new_visitors_control": int((n_variant == CONTROL).sum()),
        },
        "match": {
            "customers_treatment_list": float(c_m_t[exposed].mean()),
            "customers_default_list": float(c_m_c[exposed].mean()),
            "new_visitors_treatment_list": float(n_m_t.mean()),
            "new_visitors_default_list": float(n_m_c.mean()),
        },
        "planted": {
            "new_visitor_conversion": metric(conv_t, conv_c),
            "customer_return_within_n_days": metric(r_t[eligible], r_c[eligible]),
        },
        "definitions": {
            "new_visitor_conversion": "P(first purchase in the week) of the week's new visitors",
            "customer_return_within_n_days": (
                f"P(next visit within {window} days of the first exposure) of customers first "
                f"exposed at least {window} days before the week's end"
            ),
        },
    }
    gt = landing / GROUND_TRUTH
    stem = f"experiment-{experiment.experiment_id}{cfg.id_suffix}"
    visitors = pd.DataFrame(
        {
            "visitor_id": np.concatenate([c_vid, n_vid]).astype(str),
            "kind": ["customer"] * n_c + ["new_visitor"] * n_n,
            "variant": np.concatenate([c_variant, n_variant]).astype(str),
            "match_shown": np.concatenate([c_m_shown, n_m_shown]),
            "match_treatment": np.concatenate([c_m_t, n_m_t]),
            "match_default": np.concatenate([c_m_c, n_m_c]),
            "exposed": np.concatenate([exposed, np.ones(n_n, dtype=bool)]),
        }
    )
    visitors.to_parquet(gt / f"{stem}-visitors.parquet", index=False)
    (gt / f"{stem}.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth


__all__ = ["CONTROL", "TREATMENT", "ExperimentWeekConfig", "simulate_experiment_week"]
