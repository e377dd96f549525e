"""Column names and fixed vocabularies of the recsys library.

Names shared with the rest of the platform (keys, event types, interactions, the published
table) come from :mod:`common.contracts`, their one home; the library's own (features,
evaluation) are spelled here.

Inputs are the dbt marts ``ml_interactions``, ``ml_item_features``, ``ml_user_features`` and an
event-level frame for the time split (see :mod:`recsys.data`). Outputs are recommendation frames
``[user_id, item_id, score, rank]`` and the published table in :data:`RECOMMENDATION_COLUMNS`.
"""

from __future__ import annotations

from common.contracts import (  # noqa: F401 - the shared names, under the library's C.<name>
    ADD_TO_CART,
    ADD_TO_WISHLIST,
    COLD_KEY_CATEGORY_PREFIX,
    COLD_KEY_POPULAR,
    COLD_KEY_TRENDING,
    DECAYED_SCORE,
    GENERATED_AT,
    INTERACTION_COLUMNS,
    ITEM_ID,
    KEY_ID,
    LAST_INTERACTION_AT,
    LIST_ALSO_BOUGHT,
    LIST_COLD_START,
    LIST_TYPE,
    LIST_USER,
    MODEL_VERSION,
    N_CARTS,
    N_PURCHASES,
    N_VIEWS,
    PRODUCT_VIEW,
    PURCHASE,
    RANK,
    RECOMMENDATION_COLUMNS,
    REMOVE_FROM_CART,
    SCORE,
    USER_ID,
    WEIGHT,
)

# the library's short names for the product events
VIEW = PRODUCT_VIEW
WISHLIST = ADD_TO_WISHLIST
CART = ADD_TO_CART

# --- events frame (input of the time split): one row per product event ------------------------
EVENT_TYPE = "event_type"
EVENT_AT = "event_at"  # UTC timestamp (naive or tz-aware; normalised to naive UTC)
EVENT_COLUMNS: tuple[str, ...] = (USER_ID, ITEM_ID, EVENT_TYPE, EVENT_AT)

# --- item features (ml_item_features) ----------------------------------------------------------
DEPARTMENT = "department"
CATEGORY = "category"
PRODUCT_TYPE = "product_type"
COLOUR = "colour"
BRAND = "brand"
PRICE_BAND = "price_band"
LAUNCH_DATE = "launch_date"
ITEM_ATTRIBUTE_COLUMNS: tuple[str, ...] = (
    DEPARTMENT,
    CATEGORY,
    PRODUCT_TYPE,
    COLOUR,
    BRAND,
    PRICE_BAND,
)

# --- user features (ml_user_features) ----------------------------------------------------------
COUNTRY = "country"
PLATFORM = "platform"
# Present in ml_user_features but computed over all history by dbt, so it would leak the test
# window: the library recomputes preferred categories from the training window instead.
PREFERRED_CATEGORY = "preferred_category"
USER_ATTRIBUTE_COLUMNS: tuple[str, ...] = (COUNTRY, PLATFORM)

# --- recommendation frames ---------------------------------------------------------------------
RECO_COLUMNS: tuple[str, ...] = (USER_ID, ITEM_ID, SCORE, RANK)

# --- evaluation --------------------------------------------------------------------------------
MODEL = "model"
SEGMENT = "segment"  # 'all' | 'warm' | 'cold' (cold = items launched after the split time)
SEGMENT_ALL = "all"
SEGMENT_WARM = "warm"
SEGMENT_COLD = "cold"
SEGMENTS: tuple[str, ...] = (SEGMENT_ALL, SEGMENT_WARM, SEGMENT_COLD)
N_USERS = "n_users"
FIT_S = "fit_s"
