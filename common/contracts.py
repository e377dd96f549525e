"""The vocabulary every role shares: event types and weights, the keys of users and items,
the interactions the model trains on, and the published recommendations table.

One home for each: DE plumbing (``include``), the gates (``expectations``), the DS library
(``recsys``) and the API read these names from here; dbt reads the event weights from its
seed, :data:`EVENT_WEIGHTS_SEED`, which this module parses (so the seed is the one source).
DE-only schemas (the raw lake, quarantine, manifest) stay in :mod:`include.contracts`.
"""

from __future__ import annotations

import csv
from pathlib import Path

# --- keys ----------------------------------------------------------------------------------------
USER_ID = "user_id"
ITEM_ID = "item_id"

# --- event types (landing-zone contract, ../shared/DESIGN.md) -----------------------------------
PAGE_VIEW = "page_view"
SCROLL = "scroll"
CLICK = "click"
SEARCH = "search"
PRODUCT_VIEW = "product_view"
ADD_TO_CART = "add_to_cart"
REMOVE_FROM_CART = "remove_from_cart"
ADD_TO_WISHLIST = "add_to_wishlist"
PURCHASE = "purchase"
LOGIN = "login"
EVENT_TYPES: tuple[str, ...] = (
    PAGE_VIEW,
    SCROLL,
    CLICK,
    SEARCH,
    PRODUCT_VIEW,
    ADD_TO_CART,
    REMOVE_FROM_CART,
    ADD_TO_WISHLIST,
    PURCHASE,
    LOGIN,
)
#: Event types that must carry an ``item_id``.
PRODUCT_EVENT_TYPES: tuple[str, ...] = (
    PRODUCT_VIEW,
    ADD_TO_CART,
    REMOVE_FROM_CART,
    ADD_TO_WISHLIST,
    PURCHASE,
)
PLATFORMS: tuple[str, ...] = ("web", "ios", "android")

# --- event weights: dbt's seed is the source ------------------------------------------------------
EVENT_WEIGHTS_SEED = Path(__file__).resolve().parent.parent / "dbt_project/seeds/event_weights.csv"


def _read_event_weights(path: Path = EVENT_WEIGHTS_SEED) -> tuple[tuple[str, float], ...]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    unknown = sorted({r["event_type"] for r in rows} - set(EVENT_TYPES))
    if unknown:
        raise ValueError(f"{path} names unknown event types {unknown}; use {EVENT_TYPES}")
    return tuple(
        (r["event_type"], float(r["interaction_weight"]))
        for r in rows
        if float(r["interaction_weight"]) > 0
    )


#: ``(event_type, weight)`` of the event types that make an interaction (weight > 0), in the
#: seed's order: ``ml_interactions`` (dbt) and :func:`recsys.data.aggregate_events` both use them.
EVENT_WEIGHTS: tuple[tuple[str, float], ...] = _read_event_weights()

# --- interactions (grain: one row per user_id, item_id; the ml_interactions mart) -----------------
WEIGHT = "weight"
DECAYED_SCORE = "decayed_score"
N_VIEWS = "n_views"
N_CARTS = "n_carts"
N_PURCHASES = "n_purchases"
LAST_INTERACTION_AT = "last_interaction_at"
INTERACTION_COLUMNS: tuple[str, ...] = (
    USER_ID,
    ITEM_ID,
    WEIGHT,
    DECAYED_SCORE,
    N_VIEWS,
    N_CARTS,
    N_PURCHASES,
    LAST_INTERACTION_AT,
)

# --- published recommendations (read by the API and the Scala backend) ---------------------------
LIST_TYPE = "list_type"
KEY_ID = "key_id"
RANK = "rank"  # 1-based
SCORE = "score"
MODEL_VERSION = "model_version"
GENERATED_AT = "generated_at"
RECOMMENDATION_COLUMNS: tuple[str, ...] = (
    LIST_TYPE,  # 'user' | 'also_bought' | 'cold_start'
    KEY_ID,  # user_id, item_id, or a segment key for cold start
    RANK,
    ITEM_ID,
    SCORE,
    MODEL_VERSION,
    GENERATED_AT,
)
LIST_USER = "user"
LIST_ALSO_BOUGHT = "also_bought"
LIST_COLD_START = "cold_start"
LIST_TYPES: tuple[str, ...] = (LIST_USER, LIST_ALSO_BOUGHT, LIST_COLD_START)
# Cold-start segment keys: "popular", "trending", "category:<category>".
COLD_KEY_POPULAR = "popular"
COLD_KEY_TRENDING = "trending"
COLD_KEY_CATEGORY_PREFIX = "category:"
#: How many items every published list holds (at most): what batch scoring writes and the
#: largest ``k`` the API can answer (it reads the published value from ``model.json``).
PUBLISHED_LIST_LENGTH = 20
