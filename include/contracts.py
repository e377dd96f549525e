"""DE's data contracts: the landing-zone fields, raw lake columns, snapshots, quarantine and
the ingestion manifest.

Ingestion, dbt sources, GX suites, the simulator and the loaders read these names from here
(dbt from ``dbt_project/models/staging/_staging__sources.yml``). The vocabulary every role
shares (event types and weights, the published recommendations table) lives in
:mod:`common.contracts`.
"""

from __future__ import annotations

# --- landing-zone event (one JSON object per line, see ../shared/DESIGN.md) ---------------
EVENT_REQUIRED_FIELDS: tuple[str, ...] = ("event_id", "event_time", "event_type", "anonymous_id")
EVENT_OPTIONAL_FIELDS: tuple[str, ...] = ("user_id", "item_id", "page", "properties", "context")

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
# experiment_id and variant: the holdout experiment a visit belongs to (common.experiment);
# both or neither, variant one of common.experiment.VARIANTS. Optional: events outside an
# experiment omit them (the simulator's first period) or send them as null (the loaders).
EXPERIMENT_CONTEXT_KEYS: tuple[str, ...] = ("experiment_id", "variant")
CONTEXT_KEYS: tuple[str, ...] = ("platform", "country", "user_agent", *EXPERIMENT_CONTEXT_KEYS)

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
    ("experiment_id", "VARCHAR"),  # context.experiment_id (null outside an experiment)
    ("variant", "VARCHAR"),  # context.variant: control | treatment
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

# --- ingestion outputs (include/ingest; added by the ingestion work, issue 4) --------------
# Raw snapshots in the lake, (name, DuckDB type), file column order:
# lake/catalog/snapshot_date=YYYY-MM-DD/*.parquet and lake/customers/snapshot_date=.../*.parquet
ITEM_LAKE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("item_id", "VARCHAR"),
    ("name", "VARCHAR"),
    ("department", "VARCHAR"),
    ("category", "VARCHAR"),
    ("product_type", "VARCHAR"),
    ("colour", "VARCHAR"),
    ("brand", "VARCHAR"),
    ("price", "DOUBLE"),
    ("collection", "VARCHAR"),
    ("launch_date", "DATE"),
    ("received_at", "TIMESTAMP"),
    ("source_file", "VARCHAR"),
    ("source_line", "BIGINT"),
    ("snapshot_date", "DATE"),  # partition key
)
CUSTOMER_LAKE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("user_id", "VARCHAR"),
    ("signup_date", "DATE"),
    ("country", "VARCHAR"),
    ("age_band", "VARCHAR"),
    ("is_newsletter_subscriber", "BOOLEAN"),
    ("received_at", "TIMESTAMP"),
    ("source_file", "VARCHAR"),
    ("source_line", "BIGINT"),
    ("snapshot_date", "DATE"),  # partition key
)

# Quarantine (Parquet, quarantine/landing/*.parquet; view raw.quarantine): one row per
# rejected landing line.
QUARANTINE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("dataset", "VARCHAR"),  # events | catalog | customers
    ("source_file", "VARCHAR"),  # path relative to landing/
    ("source_line", "BIGINT"),  # 1-based physical line number
    ("reason", "VARCHAR"),  # one of QUARANTINE_REASONS, ':<field>' appended where it has one
    ("event_id", "VARCHAR"),  # when it could be read (events only)
    ("raw_line", "VARCHAR"),  # the line, first RAW_LINE_MAX_CHARS characters, \r stripped
    ("line_bytes", "BIGINT"),  # length of the original line in bytes
    ("load_id", "VARCHAR"),
    ("quarantined_at", "TIMESTAMP"),  # UTC
)
RAW_LINE_MAX_CHARS = 4096
# Reason codes. missing_field / bad_type carry the field by its JSON path:
# 'missing_field:event_id', 'bad_type:properties.quantity'.
QUARANTINE_REASONS: tuple[str, ...] = (
    "invalid_utf8",
    "invalid_json",  # not JSON, truncated, or not a JSON object
    "missing_field",
    "bad_type",
    "unknown_event_type",
    "unknown_variant",  # context.variant not in common.experiment.VARIANTS
    "future_event_time",  # event_time > batch hour end + 1 h
    "too_late",  # event_time < batch hour start - late window
    "content_changed",  # a loaded file was dropped again with other bytes: quarantined whole
    # a file that cannot be read to its end is quarantined whole (status 'unreadable'):
    "truncated_gzip",  # the gzip stream ends early (cut off in transit, or still being written)
    "not_gzip",  # a .gz name over bytes that are not gzip (unless allowed for its source)
    "unreadable_file",  # a corrupt gzip stream, or bytes after its end
    "line_too_long",  # longer than IngestConfig.max_line_bytes (TRASOS_INGEST_MAX_LINE_BYTES)
)

# The ingestion manifest (warehouse table raw.ingest_manifest): one row per landing file
# version (path, content_hash). lines_in = loaded + quarantined + duplicates, always.
INGEST_MANIFEST_COLUMNS: tuple[tuple[str, str], ...] = (
    ("path", "VARCHAR"),  # relative to landing/
    ("dataset", "VARCHAR"),
    ("content_hash", "VARCHAR"),  # sha256 of the file's bytes
    ("size_bytes", "BIGINT"),
    ("file_mtime", "TIMESTAMP"),
    ("first_seen_at", "TIMESTAMP"),
    ("status", "VARCHAR"),  # loaded | quarantined | content_changed | unreadable | failed
    ("lines_in", "BIGINT"),  # non-blank lines
    ("blank_lines", "BIGINT"),  # empty or whitespace-only lines: not events, not counted
    ("loaded", "BIGINT"),
    ("quarantined", "BIGINT"),
    ("duplicates", "BIGINT"),
    ("late_loaded", "BIGINT"),  # loaded events older than the batch start (within window)
    ("bot_events", "BIGINT"),
    ("batch_start", "TIMESTAMP"),  # from date=/hour= in the path, else first_seen_at
    ("load_id", "VARCHAR"),
    ("loaded_at", "TIMESTAMP"),
    ("error", "VARCHAR"),
)
