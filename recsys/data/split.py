"""The time split and its targets: events before ``T`` train, the window after it tests;
the validation slice before ``T`` tunes; holdouts say which items are relevant for whom."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys import columns as C
from recsys.config import DEFAULT_FEATURES, DEFAULT_SPLIT, FeatureConfig, SplitConfig
from recsys.data.dataset import Dataset, build_dataset
from recsys.data.interactions import (
    aggregate_events,
    clean_events,
)


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
