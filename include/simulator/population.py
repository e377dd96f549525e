"""People (customers, new visitors, bots), their devices and the days they come back."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from include.simulator import _text
from include.simulator.config import (
    AGE_BAND_WEIGHTS,
    BOT_USER_AGENTS,
    COUNTRIES,
    COUNTRY_WEIGHTS,
    PLATFORM_WEIGHTS,
    USER_AGENTS,
    WEEKDAY_WEIGHTS,
    SimulatorConfig,
)

EXISTING, NEW, BOT = 0, 1, 2
KIND_NAMES: tuple[str, ...] = ("existing_customer", "new_visitor", "bot")
NEVER = np.iinfo(np.int32).max
# One table of user agents; ``device_ua`` indexes it. Platforms follow common.contracts.PLATFORMS.
UA_TABLE: tuple[str, ...] = USER_AGENTS["web"] + USER_AGENTS["ios"] + USER_AGENTS["android"]
UA_TABLE = UA_TABLE + BOT_USER_AGENTS
_UA_START = np.array(
    [0, len(USER_AGENTS["web"]), len(USER_AGENTS["web"]) + len(USER_AGENTS["ios"])]
)
_UA_COUNT = np.array([len(USER_AGENTS[p]) for p in ("web", "ios", "android")])
_BOT_UA_START = len(UA_TABLE) - len(BOT_USER_AGENTS)


@dataclass(frozen=True)
class People:
    """Everyone who may visit; person arrays ``(P,)``, device arrays ``(D,)``.

    ``kind``: 0 existing customer, 1 new visitor, 2 bot. ``user_num`` is -1 for people who
    never register; ``signup_day`` (relative to start, :data:`NEVER` if never) is negative
    for customers registered before the run.
    """

    kind: np.ndarray
    segment1: np.ndarray
    segment2: np.ndarray
    mix: np.ndarray  # weight of segment1 in the person's taste
    country: np.ndarray
    age_band: np.ndarray
    newsletter: np.ndarray
    arrival_day: np.ndarray  # float days since start (new visitors), 0 otherwise
    mean_gap_days: np.ndarray  # mean days between visits as a customer
    visitor_gap_days: np.ndarray  # mean days between visits before converting
    purchase_propensity: np.ndarray  # chance that a customer's visit ends in a purchase
    converted: np.ndarray
    user_num: np.ndarray
    signup_day: np.ndarray
    first_device: np.ndarray
    n_devices: np.ndarray
    device_person: np.ndarray
    device_platform: np.ndarray
    device_ua: np.ndarray
    device_anon: np.ndarray  # (D,) S16 anonymous ids

    @property
    def user_id(self) -> np.ndarray:
        """``(P,)`` S8 user ids (``u`` + 7 digits); rows with ``user_num < 0`` are meaningless."""
        return _text.padded_ids("u", np.maximum(self.user_num, 0), 7)


@dataclass(frozen=True)
class Sessions:
    """Planned visits, one row each, ordered by day (then person); shape ``(n_sessions,)``.

    A visit never crosses midnight, so the events of a range of days come from the visits
    of those days only: the run is generated and written chunk by chunk of days.
    """

    person: np.ndarray
    day: np.ndarray  # relative to start
    device: np.ndarray
    is_bot: np.ndarray
    is_customer: np.ndarray  # the person is registered during this session
    purchase: np.ndarray
    conversion: np.ndarray  # first purchase of a new visitor (also their sign-up)
    login: np.ndarray

    def take(self, idx: np.ndarray | slice) -> Sessions:
        return Sessions(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})


def _weekday_accept(cfg: SimulatorConfig, day: np.ndarray) -> np.ndarray:
    w = np.asarray(WEEKDAY_WEIGHTS)
    return (w / w.max())[(cfg.start.weekday() + day) % 7]


def build_people(
    cfg: SimulatorConfig, n_segments: int, rng: np.random.Generator
) -> tuple[People, Sessions]:
    n_exist = int(round(cfg.existing_customer_share * cfg.visitors))
    n_new = cfg.visitors - n_exist
    n_bots = max(1, int(round(cfg.bot_share * cfg.visitors))) if cfg.bot_share > 0 else 0
    n_people = cfg.visitors + n_bots
    kind = np.concatenate(
        [np.full(n_exist, EXISTING), np.full(n_new, NEW), np.full(n_bots, BOT)]
    ).astype(np.int8)
    is_new = kind == NEW
    # Who people ARE (customer ids, signup days, devices, anonymous ids) comes from a stream of
    # its own, drawn before anything that depends on the run's length: a world simulated for
    # more days (`make land`) has the same customers and devices, not a reshuffle of ids.
    ident = np.random.default_rng(rng.bit_generator.seed_seq.spawn(1)[0])
    signup_day = np.full(n_people, NEVER, dtype=np.int32)
    signup_day[kind == EXISTING] = -ident.integers(1, 1500, size=n_exist)
    exist_step = ident.integers(1, 4, size=n_exist)
    n_devices = np.where(
        (kind == EXISTING) & (ident.random(n_people) < cfg.two_device_share), 2, 1
    ).astype(np.int8)
    first_device = (np.cumsum(n_devices) - n_devices).astype(np.int32)
    device_person = np.repeat(np.arange(n_people), n_devices).astype(np.int32)
    n_dev = len(device_person)
    platform = ident.choice(3, size=n_dev, p=np.asarray(PLATFORM_WEIGHTS)).astype(np.int8)
    ua = _UA_START[platform] + (ident.random(n_dev) * _UA_COUNT[platform]).astype(np.int64)
    bot_dev = kind[device_person] == BOT
    platform[bot_dev] = 0
    ua[bot_dev] = _BOT_UA_START + ident.integers(0, len(BOT_USER_AGENTS), size=int(bot_dev.sum()))
    anon = _text.hex_ids(ident, n_dev, "", 8)
    if len(np.unique(anon)) != n_dev:  # 64 random bits: practically never
        raise RuntimeError("anonymous_id collision; use another seed")

    segment1 = rng.integers(0, n_segments, size=n_people).astype(np.int16)
    segment2 = ((segment1 + rng.integers(1, n_segments, size=n_people)) % n_segments).astype(
        np.int16
    )
    mix = rng.beta(6.0, 2.0, size=n_people)
    country_p = np.asarray(COUNTRY_WEIGHTS) / np.sum(COUNTRY_WEIGHTS)
    country = rng.choice(len(COUNTRIES), size=n_people, p=country_p).astype(np.int8)
    age_p = np.asarray(AGE_BAND_WEIGHTS) / np.sum(AGE_BAND_WEIGHTS)
    age_band = rng.choice(len(age_p), size=n_people, p=age_p).astype(np.int8)
    newsletter = rng.random(n_people) < 0.4
    mean_gap = np.clip(rng.lognormal(np.log(8.0), 0.6, size=n_people), 1.5, 60.0)
    visitor_gap = np.clip(rng.lognormal(np.log(2.5), 0.7, size=n_people), 0.3, 20.0)
    propensity = rng.beta(1.5, 16.0, size=n_people)

    # New visitors arrive every day (weekday seasonality, slow growth).
    day_w = _weekday_accept(cfg, np.arange(cfg.days)) * (1.0 + 0.01 * np.arange(cfg.days))
    arrival = np.zeros(n_people)
    arrival[is_new] = rng.choice(cfg.days, size=n_new, p=day_w / day_w.sum()) + rng.random(n_new)

    # A share of new visitors (drawn inside the configured band) converts; keen ones first.
    lo, hi = cfg.conversion_band
    target = rng.uniform(lo + 0.25 * (hi - lo), hi - 0.25 * (hi - lo))
    n_conv = int(np.clip(round(target * n_new), np.ceil(lo * n_new), np.floor(hi * n_new)))
    intent = np.log(rng.beta(2.0, 5.0, size=n_new)) + rng.gumbel(size=n_new)
    converted = np.zeros(n_people, dtype=bool)
    new_idx = np.flatnonzero(is_new)
    converted[new_idx[np.argsort(-intent, kind="stable")[:n_conv]]] = True
    conv_visit = np.where(converted, rng.geometric(0.55, size=n_people), NEVER)  # 1-based
    max_visits = np.where(
        kind == EXISTING, NEVER, np.where(converted, NEVER, rng.geometric(0.45, size=n_people))
    )

    # Renewal process of visits (gamma gaps), one round per visit index, vectorised.
    t = np.where(kind == EXISTING, rng.random(n_people) * rng.gamma(1.5, mean_gap / 1.5), arrival)
    t[kind == BOT] = np.inf
    active = t < cfg.days
    visits_left = max_visits.astype(np.int64)
    rec_person, rec_t = [], []
    k = 0
    while active.any():
        idx = np.flatnonzero(active)
        rec_person.append(idx)
        rec_t.append(t[idx])
        as_visitor = (kind[idx] == NEW) & (k + 2 <= conv_visit[idx])
        shape = np.where(as_visitor, 1.2, 1.5)
        mean = np.where(as_visitor, visitor_gap[idx], mean_gap[idx])
        t[idx] += rng.gamma(shape, mean / shape)
        visits_left[idx] -= 1
        active[idx] = (t[idx] < cfg.days) & (visits_left[idx] > 0)
        k += 1
    person = np.concatenate(rec_person) if rec_person else np.empty(0, np.int64)
    day = np.floor(np.concatenate(rec_t) if rec_t else np.empty(0)).astype(np.int64)
    # At most one visit a day; weekday seasonality by thinning (a new visitor's arrival stays).
    key = np.unique(person * (cfg.days + 1) + day)
    person, day = key // (cfg.days + 1), key % (cfg.days + 1)
    first = np.concatenate([[True], person[1:] != person[:-1]]) if len(person) else person == 0
    keep = (first & (kind[person] == NEW)) | (rng.random(len(day)) < _weekday_accept(cfg, day))
    person, day = person[keep], day[keep]
    first = np.concatenate([[True], person[1:] != person[:-1]]) if len(person) else person == 0

    # Conversion visit = the conv_visit-th visit, or the last one inside the period.
    start_of = np.maximum.accumulate(np.where(first, np.arange(len(person)), 0))
    rank = np.arange(len(person)) - start_of
    n_visits = np.bincount(person, minlength=n_people)
    conv_rank = np.minimum(conv_visit - 1, np.maximum(n_visits - 1, 0))
    conversion = converted[person] & (rank == conv_rank[person])
    is_customer = (kind[person] == EXISTING) | (converted[person] & (rank >= conv_rank[person]))
    purchase = conversion | (is_customer & (rng.random(len(person)) < propensity[person]))
    login = purchase | (is_customer & (rng.random(len(person)) < 0.55))

    signup_day[person[conversion]] = day[conversion]
    user_num = np.full(n_people, -1, dtype=np.int64)
    exist_order = np.flatnonzero(kind == EXISTING)
    exist_order = exist_order[np.argsort(signup_day[exist_order], kind="stable")]
    conv_people = person[conversion]
    conv_order = conv_people[np.argsort(day[conversion], kind="stable")]
    registered = np.concatenate([exist_order, conv_order])
    # Existing customers' ids do not depend on the run's length; converts are numbered after.
    step = np.concatenate([exist_step, ident.integers(1, 4, size=len(conv_order))])
    user_num[registered] = 100_000 + np.cumsum(step)

    # Devices (drawn above): customers may use two; bots one each, with a crawler user agent.
    second = (n_devices[person] == 2) & (rng.random(len(person)) < 0.35)
    device = first_device[person] + second

    # Bots crawl on most days, one long session a day.
    bot_people = np.flatnonzero(kind == BOT)
    grid = rng.random((len(bot_people), cfg.days)) < 0.75
    b_idx, b_day = np.nonzero(grid)
    b_person = bot_people[b_idx]

    people = People(
        kind=kind,
        segment1=segment1,
        segment2=segment2,
        mix=mix,
        country=country,
        age_band=age_band,
        newsletter=newsletter,
        arrival_day=arrival,
        mean_gap_days=mean_gap,
        visitor_gap_days=visitor_gap,
        purchase_propensity=propensity,
        converted=converted,
        user_num=user_num,
        signup_day=signup_day,
        first_device=first_device,
        n_devices=n_devices,
        device_person=device_person,
        device_platform=platform,
        device_ua=ua.astype(np.int16),
        device_anon=anon,
    )
    n_b = len(b_person)
    sessions = Sessions(
        person=np.concatenate([person, b_person]).astype(np.int32),
        day=np.concatenate([day, b_day]).astype(np.int32),
        device=np.concatenate([device, first_device[b_person]]).astype(np.int32),
        is_bot=np.concatenate([np.zeros(len(person), bool), np.ones(n_b, bool)]),
        is_customer=np.concatenate([is_customer, np.zeros(n_b, bool)]),
        purchase=np.concatenate([purchase, np.zeros(n_b, bool)]),
        conversion=np.concatenate([conversion, np.zeros(n_b, bool)]),
        login=np.concatenate([login, np.zeros(n_b, bool)]),
    )
    return people, sessions.take(np.argsort(sessions.day, kind="stable"))
