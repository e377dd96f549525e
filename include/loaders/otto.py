"""OTTO session dataset, first 20 sessions (862 events, 2022-07-31 .. 2022-08-28) -> events.

Source: ``otto_tiny_sample/events.csv.gz`` (see SOURCE.md; CC BY 4.0). Columns session, aid,
ts_ms (unix milliseconds), type (clicks / carts / orders). The timestamps are real UTC
(converted from milliseconds, precision kept): **no shift**.

=======================  ===============================================================
contract field           source
=======================  ===============================================================
event_id                 ``'otto-' || <1-based data row number>``
event_time               ``ts_ms`` (unix ms, UTC), ISO-8601 with milliseconds
event_type               clicks -> product_view, carts -> add_to_cart, orders -> purchase
anonymous_id             ``session`` (OTTO's anonymised session = one visitor's history)
user_id                  null (no customer ids in the source, also not on orders)
item_id                  ``aid``
page                     ``/p/<aid>``; orders ``/checkout/confirmation``
properties.quantity      1 on carts / orders
properties.order_id      orders only, derived: ``otto-<session>-<ts_ms>`` (orders of one
                         session in the same millisecond = one order)
context                  all null
=======================  ===============================================================

Skipped with a reason: bad timestamp, unknown type (``unmapped_event_type:<value>``), empty
session or aid. The source has article ids only: the catalog snapshot lists the ids the events
name, attributes unknown (``LoaderRun.write_catalog_of_event_items``).
"""

from __future__ import annotations

from pathlib import Path

from include.loaders.common import check_header, loader_run, numbered_csv, source_file

NAME = "otto"
DESCRIPTION = "OTTO (Kaggle 2022), 20 sessions, 862 clicks/carts/orders (2022-08)"
SOURCE_FOLDER = "otto_tiny_sample"
SOURCE_FILE = "events.csv.gz"
COLUMNS = ("session", "aid", "ts_ms", "type")
EVENT_TYPE_MAP = {"clicks": "product_view", "carts": "add_to_cart", "orders": "purchase"}
MAPPING = {
    "event_id": "'otto-' || data row number",
    "event_time": "ts_ms (unix ms, UTC)",
    "event_type": EVENT_TYPE_MAP,
    "anonymous_id": "session",
    "user_id": None,
    "item_id": "aid",
    "properties": "quantity=1 (carts/orders), order_id (orders: session+ms)",
    "time_shift": "none",
}

EVENTS_SQL = """
with typed as (
    select
        source_row,
        make_timestamp(try_cast(ts_ms as bigint) * 1000) as ts,
        ts_ms as raw_ts,
        type as raw_type,
        case type {type_cases} end as mapped_type,
        nullif(trim(session), '') as session_id,
        nullif(trim(aid), '') as item_id
    from src
)
select
    source_row::varchar as event_key,
    case when mapped_type is null
        then 'unmapped_event_type:' || coalesce(raw_type, '<null>') end as skip_reason,
    ts as event_time,
    mapped_type as event_type,
    session_id as anonymous_id,
    null::varchar as user_id,
    item_id,
    case when mapped_type = 'purchase' then '/checkout/confirmation'
        else '/p/' || item_id end as page,
    strip_nulls(json_object(
        'quantity', case when mapped_type in ('add_to_cart', 'purchase') then 1 end,
        'order_id', case when mapped_type = 'purchase'
            then 'otto-' || session_id || '-' || raw_ts end
    )) as properties,
    null::varchar as platform,
    null::varchar as country,
    null::varchar as user_agent,
    null::varchar as experiment_id,  -- public datasets ran no holdout experiment
    null::varchar as variant
from typed
order by source_row
"""


def load(data_dir: Path | None = None, source_dir: Path | None = None) -> dict[str, object]:
    """Write the OTTO sample as events into ``data_dir``; returns the summary."""
    path = source_file(source_dir, SOURCE_FOLDER, SOURCE_FILE)
    type_cases = " ".join(f"when '{k}' then '{v}'" for k, v in EVENT_TYPE_MAP.items())
    with loader_run(NAME, data_dir) as run:
        check_header(path, COLUMNS)
        run.register_source("src", path, numbered_csv(path, COLUMNS))
        run.write_events(EVENTS_SQL.format(type_cases=type_cases))
        run.write_catalog_of_event_items()
        return run.finish(mapping=MAPPING)
