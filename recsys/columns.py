"""Column names and fixed vocabularies of the recsys library: the one place they are spelled.

Inputs are the dbt marts ``ml_interactions``, ``ml_item_features``, ``ml_user_features`` and an
event-level frame for the time split (see :mod:`recsys.data`). Outputs are recommendation frames
``[user_id, item_id, score, rank]`` and the published table in :data:`RECOMMENDATION_COLUMNS`.
"""

from __future__ import annotations

# --- keys --------------------------------------------------------------------------------------
USER_ID = "user_id"
ITEM_ID = "item_id"

# --- events frame (input of the time split): one row per product event ------------------------
EVENT_TYPE = "event_type"
EVENT_AT = "event_at"  # UTC timestamp (naive or tz-aware; normalised to naive UTC)
EVENT_COLUMNS: tuple[str, ...] = (USER_ID, ITEM_ID, EVENT_TYPE, EVENT_AT)

# Event types as spelled in include/contracts.EVENT_TYPES (copied, recsys never imports include).
VIEW = "product_view"
WISHLIST = "add_to_wishlist"
CART = "add_to_cart"
REMOVE_FROM_CART = "remove_from_cart"
PURCHASE = "purchase"

# --- interactions (grain: one row per user_id, item_id), same names as ml_interactions ---------
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
SCORE = "score"
RANK = "rank"  # 1-based
RECO_COLUMNS: tuple[str, ...] = (USER_ID, ITEM_ID, SCORE, RANK)

# Copied from include/contracts.RECOMMENDATION_COLUMNS (recsys must not import include/);
# tests/test_recsys_scoring.py checks the copy has not drifted when include/ is present.
LIST_TYPE = "list_type"
KEY_ID = "key_id"
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
# Cold-start segment keys: "popular", "trending", "category:<category>".
COLD_KEY_POPULAR = "popular"
COLD_KEY_TRENDING = "trending"
COLD_KEY_CATEGORY_PREFIX = "category:"

# --- evaluation --------------------------------------------------------------------------------
MODEL = "model"
SEGMENT = "segment"  # 'all' | 'warm' | 'cold' (cold = items launched after the split time)
SEGMENT_ALL = "all"
SEGMENT_WARM = "warm"
SEGMENT_COLD = "cold"
SEGMENTS: tuple[str, ...] = (SEGMENT_ALL, SEGMENT_WARM, SEGMENT_COLD)
N_USERS = "n_users"
FIT_S = "fit_s"
