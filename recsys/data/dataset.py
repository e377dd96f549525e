"""The dataset a model fits on: id maps, the interaction matrix, user and item feature
matrices, known positives; preferred categories and category affinity."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys import columns as C
from recsys.config import DEFAULT_FEATURES, FeatureConfig
from recsys.data.ids import IdMap
from recsys.data.interactions import (
    _check_columns,
    _to_utc_naive,
)


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
