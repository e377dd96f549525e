"""Data contracts shared by every role: event types, raw lake columns, snapshots.

The one place column names and allowed values are spelled. Ingestion, dbt sources,
GX suites, the simulator and the loaders all read from here (dbt reads the same
names from ``dbt_project/models/staging/_staging__sources.yml``).
"""

from __future__ import annotations

# --- landing-zone event (one JSON object per line, see ../shared/DESIGN.md) ---------------
EVENT_REQUIRED_FIELDS: tuple[str, ...] = ("event_id", "event_time", "event_type", "anonymous_id")
EVENT_OPTIONAL_FIELDS: tuple[str, ...] = ("user_id", "item_id", "page", "properties", "context")

EVENT_TYPES: tuple[str, ...] = (
    "page_view",
    "scroll",
    "click",
    "search",
    "product_view",
    "add_to_cart",
    "remove_from_cart",
    "add_to_wishlist",
    "purchase",
    "login",
)
# Event types that must carry an item_id.
PRODUCT_EVENT_TYPES: tuple[str, ...] = (
    "product_view",
    "add_to_cart",
    "remove_from_cart",
    "add_to_wishlist",
    "purchase",
)

# properties.* keys the platform knows (others are kept in the raw JSON).
PROPERTY_KEYS: tuple[str, ...] = (
    "scroll_depth_pct",
    "list_position",
    "price",
    "quantity",
    "order_id",
    "search_query",
    "recommendation_id",
)
CONTEXT_KEYS: tuple[str, ...] = ("platform", "country", "user_agent")
PLATFORMS: tuple[str, ...] = ("web", "ios", "android")

# --- raw lake (Parquet, lake/events/event_date=YYYY-MM-DD/*.parquet) -----------------------
# (name, DuckDB type). Order is the file's column order.
RAW_EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("event_id", "VARCHAR"),
    ("event_time", "TIMESTAMP"),  # UTC, naive
    ("event_type", "VARCHAR"),
    ("anonymous_id", "VARCHAR"),
    ("user_id", "VARCHAR"),
    ("item_id", "VARCHAR"),
    ("page", "VARCHAR"),
    ("scroll_depth_pct", "DOUBLE"),
    ("list_position", "INTEGER"),
    ("price", "DOUBLE"),
    ("quantity", "INTEGER"),
    ("order_id", "VARCHAR"),
    ("search_query", "VARCHAR"),
    ("recommendation_id", "VARCHAR"),
    ("platform", "VARCHAR"),
    ("country", "VARCHAR"),
    ("user_agent", "VARCHAR"),
    ("properties", "VARCHAR"),  # the original properties object as JSON text
    ("is_bot", "BOOLEAN"),
    ("received_at", "TIMESTAMP"),  # when ingestion loaded the line (UTC)
    ("source_file", "VARCHAR"),
    ("source_line", "BIGINT"),
    ("event_date", "DATE"),  # partition key
)

# --- landing snapshots ---------------------------------------------------------------------
# landing/catalog/snapshot_date=YYYY-MM-DD/items.jsonl.gz
ITEM_COLUMNS: tuple[str, ...] = (
    "item_id",
    "name",
    "department",
    "category",
    "product_type",
    "colour",
    "brand",
    "price",
    "collection",
    "launch_date",
)
# landing/customers/snapshot_date=YYYY-MM-DD/customers.jsonl.gz
CUSTOMER_COLUMNS: tuple[str, ...] = (
    "user_id",
    "signup_date",
    "country",
    "age_band",
    "is_newsletter_subscriber",
)

# --- published recommendations (read by the API and the Scala backend) ---------------------
RECOMMENDATION_COLUMNS: tuple[str, ...] = (
    "list_type",  # 'user' | 'also_bought' | 'cold_start'
    "key_id",  # user_id, item_id, or a segment key for cold start
    "rank",
    "item_id",
    "score",
    "model_version",
    "generated_at",
)
