"""Inputs to model space: id mappings, sparse matrices, feature matrices and the time split.

Input frames (column names in :mod:`recsys.columns`):

``events``
    One row per product event: ``user_id``, ``item_id``, ``event_type`` (``product_view``,
    ``add_to_wishlist``, ``add_to_cart``, ``purchase``; others weigh 0), ``event_at`` (UTC).
    Rows without a user or item are dropped (map ``anonymous_id`` to a key upstream if
    anonymous sessions should count). The time split cuts this frame, so nothing at or after
    the split time ``T`` reaches training data or features.
``interactions``
    One row per ``(user_id, item_id)``: the shape of ``ml_interactions``; built from events by
    :func:`aggregate_events`.
``item_features``
    One row per item: ``item_id``, ``department``, ``category``, ``product_type``, ``colour``,
    ``brand``, ``price_band``, ``launch_date`` (``ml_item_features``). Static catalog facts.
``user_features``
    One row per user: ``user_id``, ``country``, ``platform`` (``ml_user_features``; its
    ``preferred_category`` is ignored because dbt computes it over all history; the library
    derives preferred categories from the training window).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys import columns as C
from recsys.config import DEFAULT_FEATURES, DEFAULT_SPLIT, FeatureConfig, SplitConfig


# --- id mappings -------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class IdMap:
    """External ids <-> contiguous indices ``0..n-1``.

    Attributes
    ----------
    ids
        Array of shape ``(n,)``: the external id of each index (object dtype of str).
    """

    ids: np.ndarray

    @classmethod
    def from_values(cls, values: object) -> IdMap:
        """Sorted unique non-null ids of ``values`` (sorting makes the mapping reproducible)."""
        s = pd.Series(np.asarray(values, dtype=object)).dropna().astype(str)
        return cls(np.asarray(np.sort(s.unique()), dtype=object))

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def _index(self) -> pd.Index:
        index = pd.Index(self.ids, dtype=object)
        if not index.is_unique:
            raise ValueError("IdMap ids must be unique")
        return index

    def index(self, values: object, missing: str = "raise") -> np.ndarray:
        """Indices of external ids, shape ``(len(values),)`` int64.

        ``missing="raise"`` fails on unknown ids; ``missing="ignore"`` returns ``-1`` for them.
        """
        arr = pd.Series(values, dtype=object) if not isinstance(values, pd.Series) else values
        if arr.dtype == object and len(arr) and not isinstance(arr.iloc[0], str):
            arr = arr.astype(str)
        idx = self._index.get_indexer(arr).astype(np.int64)
        if missing == "raise" and (idx < 0).any():
            unknown = np.asarray(arr)[idx < 0][:5].tolist()
            raise KeyError(f"unknown ids {unknown} (of {(idx < 0).sum()}); fit on data with them")
        return idx


# --- events -> interactions --------------------------------------------------------------------
def _to_utc_naive(values: pd.Series) -> pd.Series:
    out = pd.to_datetime(values, utc=True)
    return out.dt.tz_localize(None)


def _check_columns(frame: pd.DataFrame, required: tuple[str, ...], name: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{name} lacks columns {missing}; expected at least {list(required)} "
            f"(see recsys.data module docstring), got {list(frame.columns)}"
        )


def clean_events(events: pd.DataFrame) -> pd.DataFrame:
    """Validate and normalise an events frame.

    Returns a frame with columns :data:`recsys.columns.EVENT_COLUMNS`: ids as str, ``event_at``
    as naive UTC, rows with a null user, item or time dropped.
    """
    _check_columns(events, C.EVENT_COLUMNS, "events")
    out = events.loc[:, list(C.EVENT_COLUMNS)].dropna(subset=[C.USER_ID, C.ITEM_ID, C.EVENT_AT])
    out = out.assign(
        **{
            C.USER_ID: _as_str(out[C.USER_ID]),
            C.ITEM_ID: _as_str(out[C.ITEM_ID]),
            C.EVENT_TYPE: _as_str(out[C.EVENT_TYPE]),
            C.EVENT_AT: _to_utc_naive(out[C.EVENT_AT]),
        }
    )
    return out.reset_index(drop=True)


def _as_str(values: pd.Series) -> pd.Series:
    if pd.api.types.is_string_dtype(values.dtype) and values.dtype != object:
        return values
    return values.astype(str)


def aggregate_events(
    events: pd.DataFrame,
    config: FeatureConfig = DEFAULT_FEATURES,
    reference_at: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Aggregate events into one row per ``(user_id, item_id)`` (the ``ml_interactions`` grain).

    Parameters
    ----------
    events
        Events frame (see module docstring), ``n_events`` rows.
    config
        Event weights and the half-life of ``decayed_score``.
    reference_at
        Time the decay is measured from (the end of the window); default: the latest event.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`recsys.columns.INTERACTION_COLUMNS`, pairs with zero weight dropped.
        ``decayed_score = sum_events weight * 0.5 ** (age_days / half_life_days)``.
    """
    ev = clean_events(events)
    w = ev[C.EVENT_TYPE].map(dict(config.event_weights)).fillna(0.0).to_numpy(np.float64)
    keep = w > 0
    if not keep.any():
        return pd.DataFrame({c: pd.Series(dtype=object) for c in C.INTERACTION_COLUMNS})
    ev, w = ev.loc[keep], w[keep]
    t = ev[C.EVENT_AT].to_numpy(dtype="datetime64[ns]")
    ref = t.max() if reference_at is None else pd.Timestamp(reference_at).to_datetime64()
    age_days = (ref - t).astype("timedelta64[s]").astype(np.float64) / 86400.0
    decayed = w * np.power(0.5, np.clip(age_days, 0, None) / config.half_life_days)
    etype = ev[C.EVENT_TYPE].to_numpy()
    # Group by integer pair keys (factorised ids): much faster than grouping two string columns.
    u_codes, u_uni = pd.factorize(ev[C.USER_ID])
    i_codes, i_uni = pd.factorize(ev[C.ITEM_ID])
    key = u_codes.astype(np.int64) * len(i_uni) + i_codes
    keys, inv = np.unique(key, return_inverse=True)
    n = len(keys)

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(inv, weights=values, minlength=n)

    last = pd.Series(t).groupby(inv).max().to_numpy()
    out = pd.DataFrame(
        {
            C.USER_ID: np.asarray(u_uni, dtype=object)[keys // len(i_uni)],
            C.ITEM_ID: np.asarray(i_uni, dtype=object)[keys % len(i_uni)],
            C.WEIGHT: total(w),
            C.DECAYED_SCORE: total(decayed),
            C.N_VIEWS: total((etype == C.VIEW).astype(np.float64)).astype(np.int64),
            C.N_CARTS: total((etype == C.CART).astype(np.float64)).astype(np.int64),
            C.N_PURCHASES: total((etype == C.PURCHASE).astype(np.float64)).astype(np.int64),
            C.LAST_INTERACTION_AT: last,
        }
    )
    return out


# --- the dataset: everything a model fits on -----------------------------------------------------
@dataclass(frozen=True, eq=False)
class Dataset:
    """Training data in index space. Built by :func:`build_dataset`; models never see frames.

    Attributes
    ----------
    users, items
        Id mappings; ``n_users = len(users)``, ``n_items = len(items)``.
    interactions
        CSR ``(n_users, n_items)`` float32: training weight (``FeatureConfig.train_weight``).
    recency
        CSR ``(n_users, n_items)`` float32: ``decayed_score`` (recent interactions weigh more),
        same sparsity as ``interactions``.
    strong
        CSR ``(n_users, n_items)`` float32: 1 where the user carted or purchased the item.
    known_positives
        CSR ``(n_users, n_items)`` float32: 1 where the item is filtered from the user's
        recommendations (bought, or interacted with; see ``SplitConfig.known_positives``).
    item_features
        CSR ``(n_items, n_item_features)`` float32, rows summing to 1 (or empty).
    item_feature_names
        ``(n_item_features,)`` names such as ``"category=Dresses"`` or ``"item=<id>"``.
    user_features
        CSR ``(n_users, n_user_features)`` float32, rows summing to 1 (or empty).
    user_feature_names
        ``(n_user_features,)``.
    item_category
        ``(n_items,)`` int64 index into ``categories``; ``-1`` when unknown.
    categories
        ``(n_categories,)`` category names.
    item_launch
        ``(n_items,)`` datetime64[ns] launch time (NaT when unknown).
    reference_at
        End of the training window (exclusive), or None.
    """

    users: IdMap
    items: IdMap
    interactions: sp.csr_matrix
    recency: sp.csr_matrix
    strong: sp.csr_matrix
    known_positives: sp.csr_matrix
    item_features: sp.csr_matrix
    item_feature_names: np.ndarray
    user_features: sp.csr_matrix
    user_feature_names: np.ndarray
    item_category: np.ndarray
    categories: np.ndarray
    item_launch: np.ndarray
    reference_at: pd.Timestamp | None

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @cached_property
    def item_user_counts(self) -> np.ndarray:
        """``(n_items,)`` int64: number of training users who interacted with each item."""
        return np.bincount(self.interactions.indices, minlength=self.n_items).astype(np.int64)

    def cold_items(self, at: pd.Timestamp | None = None) -> np.ndarray:
        """``(n_items,)`` bool: launched at or after ``at`` (default ``reference_at``)."""
        at = self.reference_at if at is None else at
        if at is None:
            return np.zeros(self.n_items, dtype=bool)
        launch = self.item_launch
        return ~np.isnat(launch) & (launch >= np.datetime64(pd.Timestamp(at).to_datetime64()))


def _pair_matrix(
    u: np.ndarray, i: np.ndarray, values: np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    """CSR float32 from index pairs; pairs with a negative index or a zero value dropped."""
    values = np.asarray(values, dtype=np.float64)
    ok = (u >= 0) & (i >= 0) & (values != 0)
    m = sp.csr_matrix((values[ok].astype(np.float32), (u[ok], i[ok])), shape=shape)
    m.sum_duplicates()
    m.eliminate_zeros()
    m.sort_indices()
    return m


def _one_hot_features(
    n_rows: int, row_idx: np.ndarray, frame: pd.DataFrame, cols: tuple[str, ...]
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Row/col/name pieces for one-hot features of ``cols``; ``row_idx`` maps frame rows."""
    rows, feats, names = [], [], []
    offset = 0
    for col in cols:
        if col not in frame.columns:
            continue
        values = frame[col]
        ok = values.notna().to_numpy() & (row_idx >= 0)
        codes, uniques = pd.factorize(values[ok].astype(str), sort=True)
        rows.append(row_idx[ok])
        feats.append(codes.astype(np.int64) + offset)
        names.extend(f"{col}={u}" for u in uniques)
        offset += len(uniques)
    return rows, feats, names


def _assemble(
    n_rows: int,
    rows: list[np.ndarray],
    feats: list[np.ndarray],
    n_feats: int,
    identity: tuple[np.ndarray, np.ndarray] | None = None,
    identity_share: float | None = None,
) -> sp.csr_matrix:
    """CSR ``(n_rows, n_feats)`` float32 feature matrix with rows summing to 1.

    ``identity`` is ``(rows, feature columns)`` of identity features; with ``identity_share``
    they weigh that share of the row and the other features split the rest equally, otherwise
    every feature of a row weighs the same (as ``lightfm.data.Dataset`` normalises).
    """

    def build(r_list: list[np.ndarray], f_list: list[np.ndarray]) -> sp.csr_matrix:
        r = np.concatenate(r_list) if r_list else np.array([], dtype=np.int64)
        f = np.concatenate(f_list) if f_list else np.array([], dtype=np.int64)
        m = sp.csr_matrix((np.ones(len(r), dtype=np.float64), (r, f)), shape=(n_rows, n_feats))
        m.sum_duplicates()
        m.data[:] = 1.0
        return m

    def row_scale(m: sp.csr_matrix, total: np.ndarray) -> sp.csr_matrix:
        sums = np.asarray(m.sum(axis=1)).ravel()
        scale = np.divide(total, sums, out=np.zeros_like(sums), where=sums > 0)
        return sp.csr_matrix(sp.diags(scale) @ m)

    if identity is None or identity_share is None:
        all_rows = rows + ([identity[0]] if identity is not None else [])
        all_feats = feats + ([identity[1]] if identity is not None else [])
        m = row_scale(build(all_rows, all_feats), np.ones(n_rows))
    else:
        attrs = build(rows, feats)
        ident = build([identity[0]], [identity[1]])
        has_attr = np.diff(attrs.indptr) > 0
        has_id = np.diff(ident.indptr) > 0
        id_total = np.where(has_id, np.where(has_attr, identity_share, 1.0), 0.0)
        m = row_scale(attrs, 1.0 - id_total) + row_scale(ident, id_total)
    m = sp.csr_matrix(m, dtype=np.float32)
    m.eliminate_zeros()
    m.sort_indices()
    return m


def build_dataset(
    interactions: pd.DataFrame,
    item_features: pd.DataFrame,
    user_features: pd.DataFrame | None = None,
    config: FeatureConfig = DEFAULT_FEATURES,
    *,
    known_positives: str = "purchased",
    reference_at: pd.Timestamp | None = None,
    available_before: pd.Timestamp | None = None,
    users: IdMap | None = None,
    items: IdMap | None = None,
    like: Dataset | None = None,
) -> Dataset:
    """Build the model-space :class:`Dataset` from training-window frames only.

    Parameters
    ----------
    interactions
        ``ml_interactions``-shaped frame (see :func:`aggregate_events`) of the training window.
    item_features
        Catalog (``ml_item_features``): static attributes and ``launch_date``.
    user_features
        ``ml_user_features`` (country, platform); may be None.
    config
        Feature settings.
    known_positives
        ``"purchased"`` or ``"interacted"``: what is filtered from recommendations.
    reference_at
        End of the training window (decides which items are cold).
    available_before
        Catalog items launched at or after this time are left out (not yet on sale).
    users, items
        Fixed id mappings (e.g. the validation slice reuses the training mappings); default:
        users of ``interactions`` and items of the catalog plus ``interactions``.
    like
        Reuse this dataset's id mappings and feature columns (identity features for the same
        items), so a model fitted on one can continue training on the other. The validation
        slice is built ``like`` the training dataset; feature *values* (preferred categories)
        still come from ``interactions`` only.
    """
    if like is not None:
        users, items = like.users, like.items
    _check_columns(interactions, (C.USER_ID, C.ITEM_ID, C.WEIGHT), "interactions")
    _check_columns(item_features, (C.ITEM_ID,), "item_features")
    inter = interactions.assign(
        **{
            C.USER_ID: interactions[C.USER_ID].astype(str),
            C.ITEM_ID: interactions[C.ITEM_ID].astype(str),
        }
    )
    catalog = item_features.drop_duplicates(C.ITEM_ID, keep="last")
    catalog = catalog.assign(**{C.ITEM_ID: catalog[C.ITEM_ID].astype(str)})
    if C.LAUNCH_DATE in catalog.columns:
        launch_all = _to_utc_naive(catalog[C.LAUNCH_DATE])
        if available_before is not None:
            catalog = catalog.loc[~(launch_all >= pd.Timestamp(available_before)).to_numpy()]
    if users is None:
        users = IdMap.from_values(inter[C.USER_ID].to_numpy())
    if items is None:
        items = IdMap.from_values(
            np.concatenate([catalog[C.ITEM_ID].to_numpy(), inter[C.ITEM_ID].to_numpy()])
        )
    n_users, n_items = len(users), len(items)

    shape = (n_users, n_items)
    pu = users.index(inter[C.USER_ID].to_numpy(), missing="ignore")
    pi = items.index(inter[C.ITEM_ID].to_numpy(), missing="ignore")
    weight = inter[C.WEIGHT].to_numpy(np.float64)
    recent = inter[C.DECAYED_SCORE].to_numpy(np.float64) if C.DECAYED_SCORE in inter else weight
    present = weight > 0
    x_values = recent if config.train_weight == C.DECAYED_SCORE else weight
    x = _pair_matrix(pu, pi, np.where(present, np.maximum(x_values, 1e-6), 0.0), shape)
    recency = _pair_matrix(pu, pi, np.where(present, np.maximum(recent, 1e-12), 0.0), shape)
    zeros = np.zeros(len(inter))
    n_carts = inter[C.N_CARTS].to_numpy(np.float64) if C.N_CARTS in inter else zeros
    n_purch = inter[C.N_PURCHASES].to_numpy(np.float64) if C.N_PURCHASES in inter else None
    strong_vals = n_carts + (zeros if n_purch is None else n_purch)
    strong = _pair_matrix(pu, pi, (present & (strong_vals > 0)).astype(np.float64), shape)
    if known_positives == "purchased" and n_purch is not None:
        known = _pair_matrix(pu, pi, (present & (n_purch > 0)).astype(np.float64), shape)
    elif known_positives in ("purchased", "interacted"):
        known = x.copy()
        known.data[:] = 1.0
    else:
        raise ValueError(f"known_positives={known_positives!r}; use 'purchased' or 'interacted'")

    # Item side: catalog rows aligned to the item map.
    cat_idx = items.index(catalog[C.ITEM_ID].to_numpy(), missing="ignore")
    rows, feats, names = _one_hot_features(n_items, cat_idx, catalog, config.item_feature_columns)
    identity = None
    if config.item_identity != "none":
        if like is not None:
            names_like = like.item_feature_names
            ident = items.index(
                [n[len("item=") :] for n in names_like if str(n).startswith("item=")]
            )
        elif config.item_identity == "all":
            ident = np.arange(n_items)
        else:
            ident = np.flatnonzero(np.diff(x.tocsc().indptr) > 0)
        identity = (ident, np.arange(len(ident), dtype=np.int64) + len(names))
        names.extend(f"item={items.ids[j]}" for j in ident)
    item_x = _assemble(n_items, rows, feats, len(names), identity, config.item_identity_share)
    item_names = np.asarray(names, dtype=object)

    item_category = np.full(n_items, -1, dtype=np.int64)
    categories = np.array([], dtype=object)
    if C.CATEGORY in catalog.columns:
        ok = catalog[C.CATEGORY].notna().to_numpy() & (cat_idx >= 0)
        codes, uniq = pd.factorize(catalog[C.CATEGORY][ok].astype(str), sort=True)
        item_category[cat_idx[ok]] = codes
        categories = np.asarray(uniq, dtype=object)
    item_launch = np.full(n_items, np.datetime64("NaT"), dtype="datetime64[ns]")
    if C.LAUNCH_DATE in catalog.columns:
        ok = cat_idx >= 0
        item_launch[cat_idx[ok]] = _to_utc_naive(catalog[C.LAUNCH_DATE]).to_numpy(
            dtype="datetime64[ns]"
        )[ok]

    # User side: static attributes + preferred categories from the training window.
    rows, feats, names = [], [], []
    if user_features is not None and len(user_features):
        uf = user_features.drop_duplicates(C.USER_ID, keep="last")
        uidx = users.index(uf[C.USER_ID].astype(str).to_numpy(), missing="ignore")
        rows, feats, names = _one_hot_features(n_users, uidx, uf, config.user_feature_columns)
    if config.n_preferred_categories > 0 and len(categories):
        pref_rows, pref_cats = preferred_categories(
            x, item_category, len(categories), config.n_preferred_categories
        )
        rows.append(pref_rows)
        feats.append(pref_cats + len(names))
        names.extend(f"preferred_category={c}" for c in categories)
    identity = None
    if config.user_identity:
        identity = (np.arange(n_users), np.arange(n_users, dtype=np.int64) + len(names))
        names.extend(f"user={u}" for u in users.ids)
    user_x = _assemble(n_users, rows, feats, len(names), identity, config.user_identity_share)
    if config.user_history_share:
        # the user as the mean of the items they touched (an item-based representation):
        # on collaborative-only catalogs it generalises far better than an identity vector
        # learnt from a handful of interactions, and scores a user's new history unchanged
        share = float(config.user_history_share)
        hist = x.copy()
        hist.data[:] = 1.0
        n_hist = np.diff(hist.indptr)
        scale = np.divide(share, n_hist, out=np.zeros(n_users), where=n_hist > 0)
        rest = np.where(n_hist > 0, 1.0 - share, 1.0)
        user_x = sp.csr_matrix(
            sp.hstack([sp.diags(rest) @ user_x, sp.diags(scale) @ hist]), dtype=np.float32
        )
        user_x.eliminate_zeros()
        user_x.sort_indices()
        names.extend(f"history={i}" for i in items.ids)

    if like is not None and (
        list(names) != list(like.user_feature_names)
        or list(item_names) != list(like.item_feature_names)
    ):
        raise ValueError("feature columns differ from `like`: build both from the same catalog")
    return Dataset(
        users=users,
        items=items,
        interactions=x,
        recency=recency,
        strong=strong,
        known_positives=known,
        item_features=item_x,
        item_feature_names=item_names,
        user_features=user_x,
        user_feature_names=np.asarray(names, dtype=object),
        item_category=item_category,
        categories=categories,
        item_launch=item_launch,
        reference_at=None if reference_at is None else pd.Timestamp(reference_at),
    )


def preferred_categories(
    interactions: sp.csr_matrix, item_category: np.ndarray, n_categories: int, top_n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's ``top_n`` categories by interaction weight (ties: lower category index).

    Parameters
    ----------
    interactions
        CSR ``(n_users, n_items)`` weights.
    item_category
        ``(n_items,)`` category index, ``-1`` unknown.

    Returns
    -------
    rows, cats
        Parallel int64 arrays: user index and category index of each preferred category.
    """
    affinity = category_affinity(interactions, item_category, n_categories)
    top_n = min(top_n, n_categories)
    order = np.argsort(-affinity, axis=1, kind="stable")[:, :top_n]
    vals = np.take_along_axis(affinity, order, axis=1)
    rows = np.repeat(np.arange(affinity.shape[0]), top_n)
    ok = vals.ravel() > 0
    return rows[ok].astype(np.int64), order.ravel()[ok].astype(np.int64)


def category_affinity(
    interactions: sp.csr_matrix, item_category: np.ndarray, n_categories: int
) -> np.ndarray:
    """``(n_users, n_categories)`` float32: share of each user's weight per category."""
    known = item_category >= 0
    onehot = sp.csr_matrix(
        (np.ones(known.sum(), dtype=np.float32), (np.flatnonzero(known), item_category[known])),
        shape=(len(item_category), max(n_categories, 1)),
    )
    aff = np.asarray((interactions @ onehot).todense(), dtype=np.float32)[:, :n_categories]
    tot = aff.sum(axis=1, keepdims=True)
    return np.divide(aff, tot, out=np.zeros_like(aff), where=tot > 0)


# --- the time split -----------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class TimeSplit:
    """Events cut at ``split_at``: train ``[.., T)``, test ``[T, test_end)``."""

    split_at: pd.Timestamp
    test_end: pd.Timestamp
    train_events: pd.DataFrame
    test_events: pd.DataFrame


def time_split(
    events: pd.DataFrame,
    split_at: pd.Timestamp | str | None = None,
    test_days: float = 14,
) -> TimeSplit:
    """Cut events at ``split_at`` (default: ``test_days`` before the latest event).

    Events strictly before ``T`` train; events in ``[T, T + test_days)`` test; later ones are
    dropped. Everything downstream of the training window (features, popularity, validation)
    is computed from ``train_events`` only.
    """
    ev = clean_events(events)
    if ev.empty:
        raise ValueError("events is empty: nothing to split; check the upstream extract")
    if split_at is None:
        t = ev[C.EVENT_AT].max().floor("D") - pd.Timedelta(days=test_days - 1)
    else:
        t = pd.Timestamp(split_at)
        if t.tzinfo is not None:
            t = t.tz_convert("UTC").tz_localize(None)
    end = t + pd.Timedelta(days=test_days)
    at = ev[C.EVENT_AT]
    train = ev.loc[at < t].reset_index(drop=True)
    test = ev.loc[(at >= t) & (at < end)].reset_index(drop=True)
    if train.empty:
        raise ValueError(f"no events before split_at={t}; choose a later split time")
    return TimeSplit(split_at=t, test_end=end, train_events=train, test_events=test)


# --- evaluation / validation targets --------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Holdout:
    """A training dataset plus what its users did next.

    Attributes
    ----------
    dataset
        Built from the window before ``split_at`` only.
    truth
        CSR ``(n_users, n_items)`` float32: relevant pairs after ``split_at`` of users known to
        ``dataset``, without the user's known positives (those are never recommended).
    candidates
        ``(n_items,)`` bool: items that could be recommended in the holdout window.
    cold_items
        ``(n_items,)`` bool: launched at or after ``split_at``.
    stats
        Counts of the holdout pairs kept and dropped (unknown user / item, known positive).
    """

    dataset: Dataset
    truth: sp.csr_matrix
    candidates: np.ndarray
    cold_items: np.ndarray
    split_at: pd.Timestamp
    stats: dict

    @cached_property
    def eval_users(self) -> np.ndarray:
        """``(n_eval,)`` user indices with at least one relevant holdout item."""
        return np.flatnonzero(np.diff(self.truth.indptr) > 0)


def _relevant_mask(inter: pd.DataFrame, relevance: str) -> np.ndarray:
    if relevance == "any":
        return np.ones(len(inter), dtype=bool)
    purch = inter[C.N_PURCHASES].to_numpy() > 0
    if relevance == "purchase":
        return purch
    if relevance == "cart_or_purchase":
        return purch | (inter[C.N_CARTS].to_numpy() > 0)
    raise ValueError(f"relevance={relevance!r}; use 'cart_or_purchase', 'purchase' or 'any'")


def build_holdout(
    dataset: Dataset,
    holdout_events: pd.DataFrame,
    split_at: pd.Timestamp,
    config: FeatureConfig,
    relevance: str,
    available_before: pd.Timestamp | None = None,
) -> Holdout:
    """Ground truth of the window after ``split_at`` in the index space of ``dataset``."""
    inter = aggregate_events(holdout_events, config)
    rel = inter.loc[_relevant_mask(inter, relevance)] if len(inter) else inter
    u = dataset.users.index(rel[C.USER_ID].to_numpy(), missing="ignore")
    i = dataset.items.index(rel[C.ITEM_ID].to_numpy(), missing="ignore")
    ok = (u >= 0) & (i >= 0)
    truth = sp.csr_matrix(
        (np.ones(ok.sum(), dtype=np.float32), (u[ok], i[ok])),
        shape=(dataset.n_users, dataset.n_items),
    )
    truth.sum_duplicates()
    truth.data[:] = 1.0
    n_before = truth.nnz
    truth = truth - truth.multiply(dataset.known_positives > 0)
    truth = sp.csr_matrix(truth, dtype=np.float32)
    truth.eliminate_zeros()
    truth.sort_indices()
    candidates = np.ones(dataset.n_items, dtype=bool)
    if available_before is not None:
        launch = dataset.item_launch
        candidates = np.isnat(launch) | (
            launch < np.datetime64(pd.Timestamp(available_before).to_datetime64())
        )
    stats = {
        "holdout_relevant_pairs": int(len(rel)),
        "dropped_unknown_user": int((u < 0).sum()),
        "dropped_unknown_item": int(((u >= 0) & (i < 0)).sum()),
        "dropped_known_positive": int(n_before - truth.nnz),
        "relevant_pairs": int(truth.nnz),
        "eval_users": int((np.diff(truth.indptr) > 0).sum()),
    }
    return Holdout(
        dataset=dataset,
        truth=truth,
        candidates=candidates,
        cold_items=dataset.cold_items(split_at),
        split_at=pd.Timestamp(split_at),
        stats=stats,
    )


@dataclass(frozen=True, eq=False)
class SplitData:
    """Everything evaluation needs: the test holdout and the validation slice inside train."""

    split: TimeSplit
    test: Holdout
    validation: Holdout | None


def prepare_split(
    events: pd.DataFrame,
    item_features: pd.DataFrame,
    user_features: pd.DataFrame | None,
    feature_config: FeatureConfig = DEFAULT_FEATURES,
    split_config: SplitConfig = DEFAULT_SPLIT,
    split_at: pd.Timestamp | str | None = None,
) -> SplitData:
    """Time split -> training dataset, test holdout, and validation slice (carved from train).

    The training dataset only ever sees ``split.train_events``; the validation dataset only
    events before ``T - validation_days``; both share the training id mappings.
    """
    split = time_split(events, split_at, split_config.test_days)
    t = split.split_at
    train_inter = aggregate_events(split.train_events, feature_config, reference_at=t)
    train_ds = build_dataset(
        train_inter,
        item_features,
        user_features,
        feature_config,
        known_positives=split_config.known_positives,
        reference_at=t,
        available_before=split.test_end,
    )
    test = build_holdout(
        train_ds, split.test_events, t, feature_config, split_config.relevance, split.test_end
    )
    validation = None
    if split_config.validation_days > 0:
        tv = t - pd.Timedelta(days=split_config.validation_days)
        at = split.train_events[C.EVENT_AT]
        inner_events = split.train_events.loc[at < tv]
        val_events = split.train_events.loc[at >= tv]
        if len(inner_events) and len(val_events):
            inner_inter = aggregate_events(inner_events, feature_config, reference_at=tv)
            inner_ds = build_dataset(
                inner_inter,
                item_features,
                user_features,
                feature_config,
                known_positives=split_config.known_positives,
                reference_at=tv,
                like=train_ds,
            )
            validation = build_holdout(
                inner_ds, val_events, tv, feature_config, split_config.relevance, t
            )
    return SplitData(split=split, test=test, validation=validation)
