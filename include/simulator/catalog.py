"""The shop's catalog (items, collections, outfits) and the planted taste segments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from include.simulator import _text
from include.simulator.config import (
    BRANDS,
    CATEGORY_TREE,
    COLOUR_WEIGHTS,
    COLOURS,
    DEPARTMENT_WEIGHTS,
    DEPARTMENTS,
    PRICE_BAND_LOG_LEVEL,
    STYLES,
    SimulatorConfig,
)

CATEGORY_DEPARTMENT = np.array([DEPARTMENTS.index(row[0]) for row in CATEGORY_TREE], dtype=np.int8)
CATEGORY_NAMES: tuple[str, ...] = tuple(row[1] for row in CATEGORY_TREE)
CATEGORY_BASE_PRICE = np.array([row[2] for row in CATEGORY_TREE])
PRODUCT_TYPES: tuple[str, ...] = tuple(t for row in CATEGORY_TREE for t in row[4])
PRODUCT_TYPE_CATEGORY = np.repeat(
    np.arange(len(CATEGORY_TREE)), [len(row[4]) for row in CATEGORY_TREE]
).astype(np.int16)
_TYPE_START = np.concatenate([[0], np.cumsum([len(row[4]) for row in CATEGORY_TREE])[:-1]])
_TYPE_COUNT = np.array([len(row[4]) for row in CATEGORY_TREE])
OUTFIT_MAX = 3


@dataclass(frozen=True)
class Catalog:
    """All items that exist during the run; arrays have shape ``(n_items,)``.

    Codes index the vocabularies in :mod:`include.simulator.config` (``category`` indexes
    ``CATEGORY_TREE``, ``product_type`` indexes :data:`PRODUCT_TYPES`). ``launch_day`` is
    relative to ``config.start``; items with ``launch_day > 0`` are cold-start items.
    ``outfit_members`` is ``(n_outfits, 3)``, padded with -1.
    """

    item_id: np.ndarray
    name: np.ndarray
    department: np.ndarray
    category: np.ndarray
    product_type: np.ndarray
    colour: np.ndarray
    brand: np.ndarray
    style: np.ndarray
    price_cents: np.ndarray
    launch_day: np.ndarray
    collection: np.ndarray
    collections: tuple[str, ...]
    popularity: np.ndarray
    outfit: np.ndarray
    outfit_members: np.ndarray
    outfit_size: np.ndarray
    drop_days: tuple[int, ...]

    @property
    def n(self) -> int:
        return len(self.item_id)


@dataclass(frozen=True)
class Taste:
    """Planted taste segments: every person mixes two of them.

    ``item_prob[e, s, i]`` is the probability that a person of segment ``s`` looks at item
    ``i`` during catalog epoch ``e`` (epoch ``e`` starts on day ``epoch_start_day[e]``);
    unlaunched items have probability 0.
    """

    department: np.ndarray  # (S,)
    category_w: np.ndarray  # (S, n_categories)
    colour_w: np.ndarray  # (S, n_colours)
    brand_w: np.ndarray  # (S, n_brands)
    style_w: np.ndarray  # (S, n_styles)
    price_band: np.ndarray  # (S,) index of PRICE_BANDS
    epoch_start_day: np.ndarray  # (E,)
    item_prob: np.ndarray  # (E, S, n_items) float32
    _cdf: tuple[np.ndarray, ...]  # per epoch: (S * n_items,) row-offset cumulative sums
    _available: tuple[np.ndarray, ...]  # per epoch: indices of launched items

    def epoch_of_day(self, day: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.epoch_start_day, day, side="right") - 1

    def sample(self, epoch: np.ndarray, segment: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Draw one item per row from ``item_prob[epoch, segment]`` using uniforms ``u``."""
        n_items = self.item_prob.shape[2]
        out = np.empty(len(u), dtype=np.int32)
        for e in np.unique(epoch):
            sel = epoch == e
            rows = segment[sel].astype(np.float64)
            pos = np.searchsorted(self._cdf[e], rows + u[sel], side="right")
            out[sel] = np.minimum(pos - segment[sel].astype(np.int64) * n_items, n_items - 1)
        return out

    def sample_uniform(self, epoch: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Draw one launched item per row, uniformly (crawlers do not have taste)."""
        out = np.empty(len(u), dtype=np.int32)
        for e in np.unique(epoch):
            sel = epoch == e
            avail = self._available[e]
            out[sel] = avail[np.minimum((u[sel] * len(avail)).astype(np.int64), len(avail) - 1)]
        return out


def drop_days(days: int) -> tuple[int, ...]:
    """Days (relative to start) on which a new collection drops: about one per 10 days."""
    if days < 2:
        return ()
    n_drops = int(np.clip(round(days / 10), 1, 6))
    out = np.floor((np.arange(n_drops) + 0.5) * days / n_drops).astype(int)
    return tuple(sorted({int(d) for d in np.clip(out, 1, days - 1)}))


def _season(d: date) -> str:
    if 3 <= d.month <= 8:
        return f"SS{d.year % 100:02d}"
    year = d.year if d.month >= 9 else d.year - 1
    return f"AW{year % 100:02d}"


def build_catalog(cfg: SimulatorConfig, rng: np.random.Generator) -> Catalog:
    n = cfg.n_items
    n_cat = len(CATEGORY_TREE)
    cat_weight = np.array([DEPARTMENT_WEIGHTS[d] for d in CATEGORY_DEPARTMENT]) * np.array(
        [row[3] for row in CATEGORY_TREE]
    )
    dept_total = np.bincount(CATEGORY_DEPARTMENT, weights=[row[3] for row in CATEGORY_TREE])
    cat_weight = cat_weight / dept_total[CATEGORY_DEPARTMENT]
    category = rng.choice(n_cat, size=n, p=cat_weight / cat_weight.sum()).astype(np.int16)
    product_type = (
        _TYPE_START[category] + (rng.random(n) * _TYPE_COUNT[category]).astype(np.int64)
    ).astype(np.int16)
    colour_p = np.asarray(COLOUR_WEIGHTS) / np.sum(COLOUR_WEIGHTS)
    colour = rng.choice(len(COLOURS), size=n, p=colour_p).astype(np.int8)
    brand_p = 1.0 / np.sqrt(np.arange(len(BRANDS)) + 1.0)
    brand = rng.choice(len(BRANDS), size=n, p=brand_p / brand_p.sum()).astype(np.int8)
    brand_tier = rng.normal(0.0, 0.3, size=len(BRANDS))
    brand_style = rng.integers(0, len(STYLES), size=len(BRANDS))
    style = np.where(
        rng.random(n) < 0.55, brand_style[brand], rng.integers(0, len(STYLES), size=n)
    ).astype(np.int8)
    price = CATEGORY_BASE_PRICE[category] * np.exp(brand_tier[brand] + rng.normal(0, 0.25, n))
    price_cents = (np.maximum(np.floor(price), 3) * 100 + 99).astype(np.int64)

    # Launches: most items are already on sale; cold-start items drop during the run.
    drops = drop_days(cfg.days)
    launch_day = -rng.integers(1, 400, size=n).astype(np.int32)
    drop_index = np.full(n, -1, dtype=np.int32)
    if drops:
        n_cold = int(round(cfg.cold_item_share * n))
        cold = rng.choice(n, size=n_cold, replace=False)
        drop_index[cold] = np.arange(n_cold) % len(drops)
        launch_day[cold] = np.asarray(drops, dtype=np.int32)[drop_index[cold]]
    labels = []
    for ld in np.unique(launch_day[drop_index < 0]):
        labels.append(_season(cfg.start + timedelta(days=int(ld))))
    for k, d in enumerate(drops):
        labels.append(f"{_season(cfg.start + timedelta(days=d))}-drop{k + 1}")
    collections = tuple(sorted(set(labels)))
    coll_of_day = {
        int(ld): collections.index(_season(cfg.start + timedelta(days=int(ld))))
        for ld in np.unique(launch_day[drop_index < 0])
    }
    collection = np.empty(n, dtype=np.int16)
    old = drop_index < 0
    uniq, inv = np.unique(launch_day[old], return_inverse=True)
    collection[old] = np.array([coll_of_day[int(u)] for u in uniq], dtype=np.int16)[inv]
    for k, d in enumerate(drops):
        label = f"{_season(cfg.start + timedelta(days=d))}-drop{k + 1}"
        collection[drop_index == k] = collections.index(label)

    popularity = rng.lognormal(0.0, 0.8, size=n)

    # Outfits: items of one department, collection and style, worn (and bought) together.
    in_pool = np.flatnonzero(rng.random(n) < cfg.outfit_share)
    order = in_pool[
        np.lexsort(
            (
                rng.random(len(in_pool)),
                style[in_pool],
                collection[in_pool],
                CATEGORY_DEPARTMENT[category[in_pool]],
            )
        )
    ]
    group_key = (
        CATEGORY_DEPARTMENT[category[order]].astype(np.int64) * 1_000_000
        + collection[order].astype(np.int64) * 100
        + style[order]
    )
    new_group = np.concatenate([[True], group_key[1:] != group_key[:-1]])
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(len(order)), 0))
    rank = np.arange(len(order)) - group_start
    chunk_key = group_key * 10_000 + rank // OUTFIT_MAX
    _, chunk, size = np.unique(chunk_key, return_inverse=True, return_counts=True)
    keep = size[chunk] >= 2
    kept_ids, outfit_of = np.unique(chunk[keep], return_inverse=True)
    outfit = np.full(n, -1, dtype=np.int32)
    outfit[order[keep]] = outfit_of
    members = np.full((len(kept_ids), OUTFIT_MAX), -1, dtype=np.int32)
    members[outfit_of, (rank[keep] % OUTFIT_MAX)] = order[keep]
    outfit_size = size[kept_ids].astype(np.int8)

    type_title = np.array([t.title() for t in PRODUCT_TYPES], dtype=np.dtypes.StringDType())
    colour_title = np.array([c.title() for c in COLOURS], dtype=np.dtypes.StringDType())
    brand_arr = np.array(BRANDS, dtype=np.dtypes.StringDType())
    name = _text.concat(brand_arr[brand], " ", colour_title[colour], " ", type_title[product_type])

    return Catalog(
        item_id=_text.padded_ids("i", np.arange(n), 6),
        name=name,
        department=CATEGORY_DEPARTMENT[category],
        category=category,
        product_type=product_type,
        colour=colour,
        brand=brand,
        style=style,
        price_cents=price_cents,
        launch_day=launch_day,
        collection=collection,
        collections=collections,
        popularity=popularity,
        outfit=outfit,
        outfit_members=members,
        outfit_size=outfit_size,
        drop_days=drops,
    )


def build_taste(cfg: SimulatorConfig, cat: Catalog, rng: np.random.Generator) -> Taste:
    s = cfg.n_segments
    n_cat = len(CATEGORY_TREE)
    counts = np.floor(np.asarray(DEPARTMENT_WEIGHTS) * s).astype(int)
    counts[0] += s - counts.sum()
    counts = np.maximum(counts, 1)
    counts[0] -= counts.sum() - s
    department = rng.permutation(np.repeat(np.arange(len(DEPARTMENTS)), counts)).astype(np.int8)
    in_dept = CATEGORY_DEPARTMENT[None, :] == department[:, None]
    category_w = rng.dirichlet(np.full(n_cat, 0.8), size=s) * np.where(in_dept, 1.0, 0.02)
    category_w /= category_w.sum(axis=1, keepdims=True)
    base_colour = np.asarray(COLOUR_WEIGHTS) / np.sum(COLOUR_WEIGHTS)
    colour_w = 0.4 * base_colour + 0.6 * rng.dirichlet(np.full(len(COLOURS), 0.5), size=s)
    brand_w = rng.dirichlet(np.full(len(BRANDS), 0.35), size=s)
    style_w = rng.dirichlet(np.full(len(STYLES), 0.5), size=s)
    price_band = rng.integers(0, 3, size=s).astype(np.int8)

    rel_price = np.log(cat.price_cents / 100.0 / CATEGORY_BASE_PRICE[cat.category])
    level = np.asarray(PRICE_BAND_LOG_LEVEL)[price_band]
    weight = (
        cat.popularity[None, :]
        * category_w[:, cat.category]
        * colour_w[:, cat.colour] ** 0.5
        * brand_w[:, cat.brand] ** 0.4
        * style_w[:, cat.style] ** 0.5
        * np.exp(-0.5 * ((rel_price[None, :] - level[:, None]) / 0.5) ** 2)
    )
    weight = np.maximum(weight, 1e-12)

    epoch_start = np.array((0,) + cat.drop_days, dtype=np.int32)
    probs, cdfs, avails = [], [], []
    for start_day in epoch_start:
        launched = cat.launch_day <= start_day
        boost = np.where(cat.launch_day == start_day, 3.0, np.where(cat.launch_day > 0, 1.5, 1.0))
        w = weight * (launched * boost)[None, :]
        p = w / w.sum(axis=1, keepdims=True)
        c = np.cumsum(p, axis=1)
        c /= c[:, -1:]
        cdfs.append((c + np.arange(s)[:, None]).ravel())
        probs.append(p.astype(np.float32))
        avails.append(np.flatnonzero(launched).astype(np.int32))
    return Taste(
        department=department,
        category_w=category_w,
        colour_w=colour_w,
        brand_w=brand_w,
        style_w=style_w,
        price_band=price_band,
        epoch_start_day=epoch_start,
        item_prob=np.stack(probs),
        _cdf=tuple(cdfs),
        _available=tuple(avails),
    )
