"""The training plan: which time split a history gets (DS policy, used by the training DAG
and ``make evaluate``).

The default test window (14 days, validation 7) needs about six weeks of events. Shorter
histories get proportionally shorter windows, and histories of hours (the real samples) are
split at an event quantile instead of whole days.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pandas as pd

from recsys import columns as C
from recsys.config import DEFAULT_PIPELINE, PipelineConfig

log = logging.getLogger(__name__)

#: Histories shorter than this many days (real samples of hours) are split by event quantile.
QUANTILE_SPLIT_BELOW_DAYS = 4.0


def quantile_split(event_at: pd.Series, test_share: float = 0.2) -> tuple[pd.Timestamp, float]:
    """``T`` at the ``1 - test_share`` quantile of the event times, and the test window in
    days (``T`` to just past the last event), for histories too short for whole-day windows.
    """
    t_max = event_at.max()
    split_at = event_at.quantile(1.0 - test_share)
    return split_at, (t_max - split_at).total_seconds() / 86400 + 1e-6


def training_plan(
    events: pd.DataFrame, base: PipelineConfig = DEFAULT_PIPELINE
) -> tuple[PipelineConfig, pd.Timestamp | None]:
    """The pipeline configuration and split time ``T`` (None: derived from the config) for
    a training snapshot's events (``user_id, item_id, event_type, event_at``).

    A history shorter than twice the default windows but of at least
    :data:`QUANTILE_SPLIT_BELOW_DAYS` days (a small simulation) gets whole-day windows of a
    quarter (test) and an eighth (validation) of its span; a history of hours (a real sample)
    gets ``T`` at the quantile of its last 20 % of events and a validation slice half as long
    in time, the split ``make evaluate`` uses. Training always has the larger part.

    Relevant test interactions are carts and purchases (the default); in data without any
    (views or clicks only: the RetailRocket and YOOCHOOSE samples) every product interaction
    is relevant, otherwise no user could be evaluated.
    """
    split = base.split
    if events.empty:
        return base, None
    changes: dict[str, Any] = {}
    split_at = None
    span_days = (events[C.EVENT_AT].max() - events[C.EVENT_AT].min()).total_seconds() / 86400
    if span_days < 2 * (split.test_days + split.validation_days):
        if span_days >= QUANTILE_SPLIT_BELOW_DAYS:
            test_days, validation_days = int(span_days // 4), int(span_days // 8)
        else:
            split_at, test_days = quantile_split(events[C.EVENT_AT])
            validation_days = test_days / 2
        changes.update(test_days=test_days, validation_days=validation_days)
        log.warning(
            "history spans %.2f days: time split shortened to test %.3g d, validation %.3g d%s",
            span_days,
            test_days,
            validation_days,
            f" (T = {split_at})" if split_at is not None else "",
        )
    if split.relevance == "cart_or_purchase" and not (
        events[C.EVENT_TYPE].isin((C.CART, C.PURCHASE)).any()
    ):
        changes["relevance"] = "any"
        log.warning("no cart or purchase event: every test interaction counts as relevant")
    if not changes:
        return base, None
    config = dataclasses.replace(base, split=dataclasses.replace(split, **changes))
    return config, split_at
