"""Planted-taste synthetic shop data for tests and the benchmark (no simulator needed).

Items get latent vectors built from their attributes (category, product type, colour, brand,
price band) plus a little item noise; users get a taste vector near one or two category
prototypes. A user's interactions are a Gumbel-top-n sample of ``beta * u.v + gamma * log pop``
over the items on sale, so attributes explain taste (a hybrid model can score cold items) and
popularity explains some of it (the popularity baselines are not trivial). Some items launch
after the split time (cold). Each (user, item) pair is an episode of views, maybe a cart and a
purchase; some viewed items come back later (re-engagement), as in a real shop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys import columns as C
from recsys.ranking import top_k


@dataclass(frozen=True)
class SyntheticConfig:
    n_users: int = 2000
    n_items: int = 600
    n_interactions: int = 20_000  # (user, item) pairs, approximately
    n_factors: int = 16
    n_departments: int = 4
    n_categories: int = 16
    n_product_types: int = 48
    n_colours: int = 10
    n_brands: int = 30
    n_price_bands: int = 5
    n_countries: int = 6
    days: int = 120
    test_days: int = 14
    cold_item_share: float = 0.05
    beta: float = 6.0  # taste strength
    gamma: float = 0.7  # popularity strength
    p_cart: float = 0.3
    p_purchase_given_cart: float = 0.5
    p_return: float = 0.15  # a viewed pair comes back later
    start: str = "2025-01-01"
    random_state: int = 0


@dataclass(frozen=True)
class SyntheticData:
    events: pd.DataFrame  # user_id, item_id, event_type, event_at
    item_features: pd.DataFrame  # ml_item_features shape
    user_features: pd.DataFrame  # ml_user_features shape (preferred_category leaks, on purpose)
    split_at: pd.Timestamp
    user_taste: np.ndarray  # (n_users, n_factors)
    item_vectors: np.ndarray  # (n_items, n_factors)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)


def generate(config: SyntheticConfig = SyntheticConfig(), block_size: int = 2048) -> SyntheticData:
    """Generate events, item features and user features (see module docstring)."""
    c = config
    rng = np.random.default_rng(c.random_state)
    d = c.n_factors
    start = pd.Timestamp(c.start)
    end = start + pd.Timedelta(days=c.days)
    split_at = end - pd.Timedelta(days=c.test_days)
    day_s = 86400.0

    # --- items ------------------------------------------------------------------------------
    cat_dept = rng.integers(0, c.n_departments, c.n_categories)
    pt_cat = np.concatenate(
        [
            np.arange(c.n_categories),
            rng.integers(0, c.n_categories, c.n_product_types - c.n_categories),
        ]
    )
    e_cat = rng.standard_normal((c.n_categories, d))
    e_pt = rng.standard_normal((c.n_product_types, d))
    e_col = rng.standard_normal((c.n_colours, d))
    e_brand = rng.standard_normal((c.n_brands, d))
    e_price = rng.standard_normal((c.n_price_bands, d))
    n = c.n_items
    pt = rng.integers(0, c.n_product_types, n)
    cat = pt_cat[pt]
    colour = rng.integers(0, c.n_colours, n)
    brand = rng.integers(0, c.n_brands, n)
    price = rng.integers(0, c.n_price_bands, n)
    v = _unit(
        1.0 * e_cat[cat]
        + 0.6 * e_pt[pt]
        + 0.5 * e_col[colour]
        + 0.6 * e_brand[brand]
        + 0.4 * e_price[price]
        + 0.3 * rng.standard_normal((n, d))
    ).astype(np.float32)
    log_pop = rng.normal(0.0, 1.0, n).astype(np.float32)
    is_cold = rng.random(n) < c.cold_item_share
    split_s = (split_at - start).total_seconds()
    launch_s = np.where(
        is_cold,
        split_s + rng.random(n) * (c.test_days - 1) * day_s,
        rng.uniform(-365 * day_s, split_s - day_s, n),
    )
    launch_s = np.floor(launch_s / day_s) * day_s  # launch dates are whole days
    items = pd.DataFrame(
        {
            C.ITEM_ID: [f"i{j:06d}" for j in range(n)],
            C.DEPARTMENT: [f"dept_{x}" for x in cat_dept[cat]],
            C.CATEGORY: [f"cat_{x:02d}" for x in cat],
            C.PRODUCT_TYPE: [f"pt_{x:03d}" for x in pt],
            C.COLOUR: [f"colour_{x:02d}" for x in colour],
            C.BRAND: [f"brand_{x:03d}" for x in brand],
            C.PRICE_BAND: [f"band_{x}" for x in price],
            C.LAUNCH_DATE: (start + pd.to_timedelta(launch_s, unit="s")).normalize().date,
        }
    )

    # --- users ------------------------------------------------------------------------------
    m = c.n_users
    fav = rng.integers(0, c.n_categories, (m, 2))
    mix = rng.random((m, 1))
    u = _unit(
        mix * e_cat[fav[:, 0]]
        + (1 - mix) * 0.7 * e_cat[fav[:, 1]]
        + 0.8 * rng.standard_normal((m, d))
    ).astype(np.float32)
    mean_n = c.n_interactions / m
    n_u = np.clip(np.round(rng.lognormal(np.log(mean_n) - 0.5, 1.0, m)), 1, min(200, n)).astype(int)

    # --- sampling: Gumbel top-n_u per user over items, in blocks ------------------------------
    pairs_u, pairs_i = [], []
    for s0 in range(0, m, block_size):
        ub = np.arange(s0, min(m, s0 + block_size))
        logits = c.beta * (u[ub] @ v.T) + c.gamma * log_pop[None, :]
        # Gumbel noise as -log(Exp(1)): one log per entry instead of two
        noise = rng.standard_exponential(logits.shape, dtype=np.float32)
        logits -= np.log(np.maximum(noise, 1e-30))
        kmax = int(n_u[ub].max())
        top, _ = top_k(logits, kmax)
        keep = (np.arange(kmax)[None, :] < n_u[ub, None]) & (top >= 0)
        pairs_u.append(np.repeat(ub, keep.sum(axis=1)))
        pairs_i.append(top[keep])
    pu = np.concatenate(pairs_u)
    pi = np.concatenate(pairs_i)
    affinity = (u[pu] * v[pi]).sum(axis=1)

    # --- episodes in time -----------------------------------------------------------------------
    total_s = c.days * day_s
    lo = np.clip(launch_s[pi], 0, None)
    t0 = lo + rng.random(len(pu)) * (total_s - lo)
    p_cart = np.clip(c.p_cart * (1 + affinity), 0.02, 0.95)
    rows = []

    def episode(users, itms, times, pc, with_views=True):
        n_views = 1 + rng.poisson(0.5, len(users))
        ev_u = np.repeat(users, n_views)
        ev_i = np.repeat(itms, n_views)
        ev_t = np.repeat(times, n_views) + rng.random(n_views.sum()) * 600
        rows.append((ev_u, ev_i, np.full(len(ev_u), C.VIEW), ev_t))
        cart = rng.random(len(users)) < pc
        rows.append((users[cart], itms[cart], np.full(cart.sum(), C.CART), times[cart] + 900))
        buy = cart & (rng.random(len(users)) < c.p_purchase_given_cart)
        rows.append((users[buy], itms[buy], np.full(buy.sum(), C.PURCHASE), times[buy] + 1800))
        return buy

    bought = episode(pu, pi, t0, p_cart)
    ret = (~bought) & (rng.random(len(pu)) < c.p_return)
    t_ret = t0[ret] + rng.random(ret.sum()) * (total_s - t0[ret])
    episode(pu[ret], pi[ret], t_ret, np.clip(2 * p_cart[ret], 0.05, 0.95))

    ev_u = np.concatenate([r[0] for r in rows])
    ev_i = np.concatenate([r[1] for r in rows])
    ev_type = np.concatenate([r[2] for r in rows])
    ev_t = np.concatenate([r[3] for r in rows])
    ok = ev_t < total_s
    order = np.argsort(ev_t[ok], kind="stable")
    user_ids = np.array([f"u{x:07d}" for x in range(m)], dtype=object)
    item_ids = items[C.ITEM_ID].to_numpy(dtype=object)
    events = pd.DataFrame(
        {
            C.USER_ID: user_ids[ev_u[ok][order]],
            C.ITEM_ID: item_ids[ev_i[ok][order]],
            C.EVENT_TYPE: ev_type[ok][order],
            C.EVENT_AT: start + pd.to_timedelta(np.round(ev_t[ok][order]), unit="s"),
        }
    )
    countries = np.array([f"C{x}" for x in range(c.n_countries)], dtype=object)
    platforms = np.array(["web", "ios", "android"], dtype=object)
    # dbt's preferred_category is computed on all history: deliberately leaky here too.
    pref = (
        pd.DataFrame({C.USER_ID: pu, C.CATEGORY: cat[pi]})
        .value_counts()
        .reset_index()
        .sort_values([C.USER_ID, "count", C.CATEGORY], ascending=[True, False, True])
        .drop_duplicates(C.USER_ID)
    )
    pref_cat = np.full(m, None, dtype=object)
    pref_cat[pref[C.USER_ID].to_numpy()] = [f"cat_{x:02d}" for x in pref[C.CATEGORY]]
    users = pd.DataFrame(
        {
            C.USER_ID: user_ids,
            C.COUNTRY: countries[rng.integers(0, c.n_countries, m)],
            C.PLATFORM: platforms[rng.integers(0, 3, m)],
        }
    )
    users[C.PREFERRED_CATEGORY] = pref_cat
    return SyntheticData(
        events=events,
        item_features=items,
        user_features=users,
        split_at=split_at,
        user_taste=u,
        item_vectors=v,
    )
