"""Inputs to model space: id mappings, sparse matrices, feature matrices and the time split.

One interface over four modules: ``ids`` (:class:`IdMap`), ``interactions`` (events to
interactions), ``dataset`` (:class:`Dataset` and its builders), ``split`` (the time split,
holdouts, :func:`prepare_split`).

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

from recsys.data.dataset import Dataset, build_dataset, category_affinity, preferred_categories
from recsys.data.ids import IdMap
from recsys.data.interactions import aggregate_events, clean_events
from recsys.data.split import (
    Holdout,
    SplitData,
    TimeSplit,
    build_holdout,
    prepare_split,
    time_split,
)

__all__ = [
    "Dataset",
    "Holdout",
    "IdMap",
    "SplitData",
    "TimeSplit",
    "aggregate_events",
    "build_dataset",
    "build_holdout",
    "category_affinity",
    "clean_events",
    "preferred_categories",
    "prepare_split",
    "time_split",
]
