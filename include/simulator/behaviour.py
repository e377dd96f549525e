"""What people do inside a visit: the events of every session, built block by block.

A human session is a prefix (landing page, maybe a scroll and a login), one block per
product looked at (navigation, list scroll, click, product view, product scroll, wishlist,
cart) and a suffix (cart page, removals, login, checkout, one purchase line per item).
Every piece is a masked array over all sessions or all views at once; one sort by
``(session, block, slot, sub)`` puts the events in order. Only the loop over the view
index ``k`` (each view may follow the previous one as an outfit partner) and the loop
over catalog epochs are Python loops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.contracts import EVENT_TYPES
from include.simulator.catalog import CATEGORY_NAMES, PRODUCT_TYPES, Catalog, Taste
from include.simulator.config import BRANDS, COLOURS, HOUR_WEIGHTS, SimulatorConfig
from include.simulator.population import People, Sessions

ET = {name: np.int8(i) for i, name in enumerate(EVENT_TYPES)}
PAGE_HOME, PAGE_SEARCH, PAGE_CART, PAGE_CHECKOUT, PAGE_LOGIN = range(5)
PAGE_CATEGORY0 = 5  # '/c/<department>/<category>' pages follow, then '/p/<item_id>' pages
NAV_CATEGORY, NAV_SEARCH, NAV_CONTINUE, NAV_REC, NAV_OUTFIT = range(5)
MAX_VIEWS = 40
MAX_BOT_EVENTS = 3000
SESSION_GAP_S = 1860  # every person's visits are this far apart at least (31 minutes)
US = 1_000_000

# Gap before an event (lognormal: median seconds, sigma), by the kind of step it is.
(
    G_FIRST, G_SCROLL, G_LOGIN, G_NAV, G_SEARCH, G_CLICK, G_PV_CLICKED, G_PV, G_WISH,
    G_CART, G_CART_PAGE, G_REMOVE, G_CHECKOUT, G_PURCHASE, G_PURCHASE_NEXT, G_BOT,
) = range(16)  # fmt: skip
GAP_MEDIAN_S = np.array(
    [1.0, 14.0, 20.0, 18.0, 25.0, 12.0, 1.5, 8.0, 25.0, 35.0, 15.0, 10.0, 40.0, 60.0, 0.004, 1.2]
)
GAP_SIGMA = np.array([0, 0.9, 0.6, 0.9, 0.8, 0.9, 0.4, 0.8, 0.8, 0.8, 0.6, 0.6, 0.6, 0.5, 0.5, 0.6])
GAP_MAX_S = 1200.0  # 20 minutes: inside a session no gap reaches the 30-minute cut


def query_vocab() -> list[str]:
    """Search queries: colour + product type, brand, product type, category."""
    out = [f"{c} {t}" for c in COLOURS for t in PRODUCT_TYPES]
    out += [b.lower() for b in BRANDS]
    out += list(PRODUCT_TYPES)
    out += list(CATEGORY_NAMES)
    return out


@dataclass(frozen=True)
class Events:
    """The events of a chunk of days in event-time order; arrays have shape ``(n_events,)``.

    Codes: ``etype`` indexes ``common.contracts.EVENT_TYPES``; ``user``/``item``/``order``/
    ``query``/``rec``/``method`` are -1 when absent; ``scroll``/``lpos`` -1 when absent;
    ``qty`` 0 when absent; ``page`` is a page code (see ``PAGE_*``).
    """

    time_us: np.ndarray  # int64 microseconds since the Unix epoch (UTC)
    session: np.ndarray
    etype: np.ndarray
    device: np.ndarray
    user: np.ndarray  # person index of the logged-in customer
    item: np.ndarray
    page: np.ndarray
    scroll: np.ndarray
    lpos: np.ndarray
    qty: np.ndarray
    order: np.ndarray
    query: np.ndarray
    rec: np.ndarray
    method: np.ndarray
    n_orders: int
    n_recs: int

    @property
    def n(self) -> int:
        return len(self.time_us)


@dataclass(frozen=True)
class SessionTimes:
    start_us: np.ndarray  # (n_sessions,) absolute, microseconds since epoch
    end_us: np.ndarray
    n_events: np.ndarray


class _Parts:
    """Collects event pieces; each piece is a dict of equally long arrays."""

    # (field, dtype, default); compact types keep the sort and the gathers cheap.
    FIELDS: tuple[tuple[str, type, int], ...] = (
        ("sess", np.int32, 0),
        ("block", np.int8, 0),
        ("slot", np.int8, 0),
        ("sub", np.int8, 0),
        ("etype", np.int8, -1),
        ("item", np.int32, -1),
        ("page", np.int32, -1),
        ("scroll", np.int8, -1),
        ("lpos", np.int8, -1),
        ("qty", np.int8, 0),
        ("order", np.int32, -1),
        ("query", np.int16, -1),
        ("rec", np.int32, -1),
        ("method", np.int8, -1),
        ("gap", np.int8, -1),
    )

    def __init__(self) -> None:
        self.parts: list[dict[str, np.ndarray]] = []

    def add(self, sess: np.ndarray, **cols: np.ndarray | int) -> None:
        n = len(sess)
        if n == 0:
            return
        piece = {"sess": sess}
        for name, _, default in self.FIELDS[1:]:
            piece[name] = np.broadcast_to(np.asarray(cols.get(name, default)), (n,))
        self.parts.append(piece)

    def concat(self) -> dict[str, np.ndarray]:
        return {
            f: np.concatenate([p[f].astype(dt, copy=False) for p in self.parts])
            for f, dt, _ in self.FIELDS
        }


def build_events(
    cfg: SimulatorConfig,
    cat: Catalog,
    taste: Taste,
    people: People,
    ses: Sessions,
    rng: np.random.Generator,
) -> tuple[Events, SessionTimes]:
    """Events of the visits ``ses`` (any subset of whole days), sorted by event time.

    Returns the events (arrays of shape ``(n_events,)``; ``Events.session`` indexes
    ``ses``) and each visit's start, end and event count (shape ``(len(ses.person),)``).
    """
    n_ses = len(ses.person)
    epoch = taste.epoch_of_day(ses.day)
    page_item0 = PAGE_CATEGORY0 + len(CATEGORY_NAMES)
    n_types = len(PRODUCT_TYPES)
    q_brand = len(COLOURS) * n_types
    q_type = q_brand + len(BRANDS)
    q_cat = q_type + n_types

    parts = _Parts()
    human = np.flatnonzero(~ses.is_bot)
    h_purchase = ses.purchase[human]
    h_customer = ses.is_customer[human]
    person = ses.person[human]

    def taste_draw(p: np.ndarray, ep: np.ndarray) -> np.ndarray:
        seg = np.where(rng.random(len(p)) < people.mix[p], people.segment1[p], people.segment2[p])
        return taste.sample(ep, seg, rng.random(len(p)))

    # --- views per session -------------------------------------------------------------
    n_views = np.where(
        h_purchase,
        1 + rng.poisson(2.5, size=len(human)),
        np.where(
            rng.random(len(human)) < 0.35, 0, 1 + rng.negative_binomial(1.0, 0.45, len(human))
        ),
    )
    n_views = np.minimum(n_views, MAX_VIEWS)
    v_hs = np.repeat(np.arange(len(human)), n_views)  # index into `human`
    v_start = np.cumsum(n_views) - n_views
    v_k = np.arange(len(v_hs)) - v_start[v_hs]
    v_sess = human[v_hs]
    v_item = np.empty(len(v_hs), dtype=np.int32)
    v_nav = np.empty(len(v_hs), dtype=np.int8)
    by_k = np.argsort(v_k, kind="stable")
    k_bounds = np.searchsorted(v_k[by_k], np.arange(MAX_VIEWS + 1))
    for k in range(MAX_VIEWS):
        idx = by_k[k_bounds[k] : k_bounds[k + 1]]
        if len(idx) == 0:
            break
        item = taste_draw(ses.person[v_sess[idx]], epoch[v_sess[idx]])
        nav = rng.choice(3, size=len(idx), p=[0.5, 0.2, 0.3]).astype(np.int8)
        nav[rng.random(len(idx)) < cfg.recommendation_share] = NAV_REC
        if k > 0:
            prev = v_item[idx - 1]
            outfit = cat.outfit[prev]
            follow = (outfit >= 0) & (rng.random(len(idx)) < 0.3)
            o = outfit[follow]
            members = cat.outfit_members[o]
            slot = np.argmax(members == prev[follow][:, None], axis=1)
            size = cat.outfit_size[o].astype(np.int64)
            step = 1 + (rng.random(len(o)) * (size - 1)).astype(np.int64)
            item[follow] = members[np.arange(len(o)), (slot + step) % size]
            nav[follow] = NAV_OUTFIT
        v_item[idx] = item
        v_nav[idx] = nav

    nv = len(v_hs)
    v_purchase = h_purchase[v_hs]
    v_cat_page = PAGE_CATEGORY0 + cat.category[v_item].astype(np.int32)
    v_prod_page = page_item0 + v_item
    v_prev_page = np.where(v_k > 0, page_item0 + np.roll(v_item, 1), PAGE_HOME)
    is_list = v_nav <= NAV_CONTINUE
    list_page = np.where(v_nav == NAV_SEARCH, PAGE_SEARCH, v_cat_page)
    block = v_k + 1

    # --- login placement -----------------------------------------------------------------
    h_login = ses.login[human]
    u = rng.random(len(human))
    login_block = np.where(
        u < 0.6, 0, np.where(u < 0.85, 1 + (rng.random(len(human)) * n_views).astype(int), -1)
    )
    login_block = np.where(login_block > n_views, 0, login_block)
    login_block = np.where((login_block < 0) | ses.conversion[human], n_views + 1, login_block)
    method = rng.choice(3, size=len(human), p=[0.7, 0.2, 0.1])
    method = np.where(ses.conversion[human], 3, method)  # sign-up
    lg = np.flatnonzero(h_login)
    lb = login_block[lg]
    parts.add(
        human[lg],
        block=lb,
        slot=np.where(lb == 0, 3, np.where(lb == n_views[lg] + 1, 3, 0)),
        etype=ET["login"],
        page=PAGE_LOGIN,
        method=method[lg],
        gap=G_LOGIN,
    )

    # --- prefix: landing page and a scroll -------------------------------------------------
    landing_item = taste_draw(person, epoch[human])
    landing = np.where(
        rng.random(len(human)) < 0.55,
        PAGE_HOME,
        PAGE_CATEGORY0 + cat.category[landing_item].astype(np.int32),
    )
    parts.add(human, block=0, slot=1, etype=ET["page_view"], page=landing, gap=G_FIRST)
    sc = np.flatnonzero(rng.random(len(human)) < 0.45)
    parts.add(
        human[sc],
        block=0,
        slot=2,
        etype=ET["scroll"],
        page=landing[sc],
        scroll=rng.integers(5, 101, size=len(sc)),
        gap=G_SCROLL,
    )

    # --- one block per product view ----------------------------------------------------------
    sel = np.flatnonzero(v_nav == NAV_CATEGORY)
    parts.add(
        v_sess[sel], block=block[sel], slot=1, etype=ET["page_view"], page=v_cat_page[sel],
        gap=G_NAV,
    )  # fmt: skip
    sel = np.flatnonzero(v_nav == NAV_SEARCH)
    variant = rng.choice(4, size=len(sel), p=[0.45, 0.2, 0.25, 0.1])
    it = v_item[sel]
    query = np.select(
        [variant == 0, variant == 1, variant == 2],
        [
            cat.colour[it].astype(np.int64) * n_types + cat.product_type[it],
            q_brand + cat.brand[it].astype(np.int64),
            q_type + cat.product_type[it].astype(np.int64),
        ],
        q_cat + cat.category[it].astype(np.int64),
    )
    parts.add(
        v_sess[sel], block=block[sel], slot=1, etype=ET["search"], page=PAGE_SEARCH, query=query,
        gap=G_SEARCH,
    )  # fmt: skip
    sel = np.flatnonzero(is_list & (rng.random(nv) < 0.35))
    parts.add(
        v_sess[sel], block=block[sel], slot=2, etype=ET["scroll"], page=list_page[sel],
        scroll=rng.integers(10, 101, size=len(sel)), gap=G_SCROLL,
    )  # fmt: skip
    lpos = np.where(
        is_list,
        np.minimum(rng.geometric(0.12, size=nv), 96),
        np.where(v_nav == NAV_REC, rng.integers(1, 13, size=nv), rng.integers(1, 4, size=nv)),
    )
    n_recs = int((v_nav == NAV_REC).sum())
    rec = np.full(nv, -1, dtype=np.int64)
    rec[v_nav == NAV_REC] = np.arange(n_recs)
    clicked = ~is_list | (rng.random(nv) < 0.85)
    click_page = np.where(is_list, list_page, v_prev_page)
    sel = np.flatnonzero(clicked)
    parts.add(
        v_sess[sel], block=block[sel], slot=3, etype=ET["click"], page=click_page[sel],
        lpos=lpos[sel], rec=rec[sel], gap=G_CLICK,
    )  # fmt: skip
    parts.add(
        v_sess, block=block, slot=4, etype=ET["product_view"], item=v_item, page=v_prod_page,
        lpos=lpos, rec=rec, gap=np.where(clicked, G_PV_CLICKED, G_PV),
    )  # fmt: skip
    sel = np.flatnonzero(rng.random(nv) < 0.4)
    parts.add(
        v_sess[sel], block=block[sel], slot=5, etype=ET["scroll"], page=v_prod_page[sel],
        scroll=np.clip(rng.normal(60, 25, size=len(sel)), 0, 100).astype(np.int64), gap=G_SCROLL,
    )  # fmt: skip
    wish_p = np.where(h_customer[v_hs], 0.07, 0.04)
    sel = np.flatnonzero(rng.random(nv) < wish_p)
    parts.add(
        v_sess[sel], block=block[sel], slot=6, etype=ET["add_to_wishlist"], item=v_item[sel],
        page=v_prod_page[sel], gap=G_WISH,
    )  # fmt: skip

    # --- cart, removals, checkout ---------------------------------------------------------
    cart_p = np.where(v_purchase, 0.35, 0.08) * np.where(v_nav == NAV_OUTFIT, 1.6, 1.0)
    carted = rng.random(nv) < cart_p
    any_cart = np.zeros(len(human), dtype=bool)
    np.logical_or.at(any_cart, v_hs, carted)
    last_view = v_start + n_views - 1
    force = np.flatnonzero(h_purchase & ~any_cart)
    carted[last_view[force]] = True
    any_cart[force] = True
    qty = np.where(carted, rng.choice([1, 2, 3], size=nv, p=[0.88, 0.1, 0.02]), 0)
    sel = np.flatnonzero(carted)
    parts.add(
        v_sess[sel], block=block[sel], slot=7, etype=ET["add_to_cart"], item=v_item[sel],
        page=v_prod_page[sel], qty=qty[sel], gap=G_CART,
    )  # fmt: skip
    # The last carted item of a purchase session is never removed: an order is never empty.
    anchor = np.full(len(human), -1, dtype=np.int64)
    np.maximum.at(anchor, v_hs[sel], sel)
    cart_page = any_cart & (h_purchase | (rng.random(len(human)) < 0.5))
    suffix = n_views + 1
    cp = np.flatnonzero(cart_page)
    parts.add(human[cp], block=suffix[cp], slot=1, etype=ET["page_view"], page=PAGE_CART,
              gap=G_CART_PAGE)  # fmt: skip
    remove_p = np.where(v_purchase, 0.1, 0.35)
    removed = (
        carted & cart_page[v_hs] & (np.arange(nv) != anchor[v_hs]) & (rng.random(nv) < remove_p)
    )
    sel = np.flatnonzero(removed)
    parts.add(
        v_sess[sel], block=suffix[v_hs[sel]], slot=2, sub=v_k[sel], etype=ET["remove_from_cart"],
        item=v_item[sel], page=PAGE_CART, qty=qty[sel], gap=G_REMOVE,
    )  # fmt: skip
    pu = np.flatnonzero(h_purchase)
    parts.add(human[pu], block=suffix[pu], slot=4, etype=ET["page_view"], page=PAGE_CHECKOUT,
              gap=G_CHECKOUT)  # fmt: skip
    order_of = np.full(len(human), -1, dtype=np.int64)
    order_of[pu] = np.arange(len(pu))
    sel = np.flatnonzero(carted & v_purchase & ~removed)
    parts.add(
        v_sess[sel], block=suffix[v_hs[sel]], slot=5, sub=v_k[sel], etype=ET["purchase"],
        item=v_item[sel], page=PAGE_CHECKOUT, qty=qty[sel], order=order_of[v_hs[sel]],
        gap=G_PURCHASE,
    )  # fmt: skip

    # --- bots: long, fast crawls of category and product pages ------------------------------
    bots = np.flatnonzero(ses.is_bot)
    n_bot_ev = np.clip(rng.lognormal(np.log(60), 1.0, size=len(bots)), 5, MAX_BOT_EVENTS)
    n_bot_ev = n_bot_ev.astype(np.int64)
    b_ses = np.repeat(bots, n_bot_ev)
    b_sub = np.arange(len(b_ses)) - np.repeat(np.cumsum(n_bot_ev) - n_bot_ev, n_bot_ev)
    is_pv = rng.random(len(b_ses)) < 0.6
    b_item = taste.sample_uniform(epoch[b_ses], rng.random(len(b_ses)))
    b_page = np.where(
        is_pv,
        page_item0 + b_item,
        np.where(
            rng.random(len(b_ses)) < 0.2,
            PAGE_HOME,
            PAGE_CATEGORY0 + rng.integers(0, len(CATEGORY_NAMES), size=len(b_ses)),
        ),
    )
    parts.add(
        b_ses, block=b_sub // 1024, slot=(b_sub // 64) % 16, sub=b_sub % 64,
        etype=np.where(is_pv, ET["product_view"], ET["page_view"]),
        item=np.where(is_pv, b_item, -1), page=b_page, gap=np.where(b_sub == 0, G_FIRST, G_BOT),
    )  # fmt: skip

    # --- order, gaps, times -------------------------------------------------------------------
    ev = parts.concat()
    key = ev["sess"].astype(np.int64) * 64 + ev["block"]
    key = (key * 16 + ev["slot"]) * 64 + ev["sub"]
    perm = np.argsort(key)  # keys are unique: no tie to break
    sess = ev["sess"][perm]
    etype = ev["etype"][perm]
    n = len(sess)
    first = np.concatenate([[True], sess[1:] != sess[:-1]])
    gap_kind = ev["gap"][perm]
    next_line = (etype == ET["purchase"]) & np.concatenate([[False], etype[:-1] == ET["purchase"]])
    gap_kind[next_line & ~first] = G_PURCHASE_NEXT
    gap_kind[first] = G_FIRST
    gap_s = np.exp(np.log(GAP_MEDIAN_S[gap_kind]) + GAP_SIGMA[gap_kind] * rng.normal(size=n))
    gap_us = np.clip(np.round(gap_s * US), 1, GAP_MAX_S * US).astype(np.int64)
    gap_us[first] = 0
    csum = np.cumsum(gap_us)
    first_idx = np.flatnonzero(first)
    base = np.zeros(n_ses, dtype=np.int64)
    base[sess[first_idx]] = csum[first_idx]
    offset = csum - base[sess]
    n_events = np.bincount(sess, minlength=n_ses)
    last_idx = np.concatenate([first_idx[1:], [n]]) - 1
    duration = np.zeros(n_ses, dtype=np.int64)
    duration[sess[last_idx]] = offset[last_idx]

    # Start of day from the hourly profile, squeezed so the visit ends 31 minutes before
    # midnight: a person's visits (one a day at most) are always more than 30 minutes apart.
    hour_p = np.asarray(HOUR_WEIGHTS) / np.sum(HOUR_WEIGHTS)
    hour = rng.choice(24, size=n_ses, p=hour_p)
    tod = np.where(ses.is_bot, rng.random(n_ses) * 86400, (hour + rng.random(n_ses)) * 3600)
    room = np.maximum(86400 - SESSION_GAP_S - duration / US, 0)
    tod_us = (tod / 86400 * room * US).astype(np.int64)
    origin_us = int(np.datetime64(cfg.start, "us").astype(np.int64))
    start_us = origin_us + ses.day.astype(np.int64) * 86400 * US + tod_us
    time_us = start_us[sess] + offset

    # User id on the login event and after it, for registered customers only.
    is_login = etype == ET["login"]
    login_at = np.full(n_ses, n, dtype=np.int64)
    login_at[sess[is_login]] = np.flatnonzero(is_login)
    logged_in = (np.arange(n) >= login_at[sess]) & ses.is_customer[sess]
    user = np.where(logged_in, ses.person[sess], -1).astype(np.int32)

    # Event-time order; one gather per column.
    tperm = np.argsort(time_us)  # within a session times strictly increase
    final = perm[tperm]
    sess_t = sess[tperm]
    events = Events(
        time_us=time_us[tperm],
        session=sess_t,
        etype=etype[tperm],
        device=ses.device[sess_t],
        user=user[tperm],
        item=ev["item"][final],
        page=ev["page"][final],
        scroll=ev["scroll"][final],
        lpos=ev["lpos"][final],
        qty=ev["qty"][final],
        order=ev["order"][final],
        query=ev["query"][final],
        rec=ev["rec"][final],
        method=ev["method"][final],
        n_orders=len(pu),
        n_recs=n_recs,
    )
    times = SessionTimes(start_us=start_us, end_us=start_us + duration, n_events=n_events)
    return events, times
