"""Taobao UserBehavior 2-hour subset (96,169 events, 2017-11-26) -> events + catalog snapshot.

Source: ``taobao_userbehavior_sample/UserBehavior_subset.csv.gz`` (see SOURCE.md; Tianchi
research terms). No header; columns user_id, item_id, category_id, behavior, timestamp (unix s).
Times are real UTC: **no shift**. One row has timestamp 15 (1970): it is skipped as
``event_time_out_of_range`` (the generic check keeps 2000-01-01 .. now + 1 day).

=======================  ===============================================================
contract field           source
=======================  ===============================================================
event_id                 ``'taobao-' || <1-based row number>``
event_time               ``timestamp`` (unix seconds, UTC)
event_type               pv -> product_view, cart -> add_to_cart, fav -> add_to_wishlist,
                         buy -> purchase
anonymous_id             ``user_id`` (Taobao users are logged in; no device id exists)
user_id                  ``user_id``
item_id                  ``item_id``
page                     ``/p/<item_id>``; purchases ``/checkout/confirmation``
properties.quantity      1 on add_to_cart / purchase
properties.order_id      purchases only, derived: ``taobao-<user_id>-<timestamp>`` (one user's
                         buys in the same second = one order)
properties.category_id   ``category_id``
context                  all null
=======================  ===============================================================

Skipped with a reason: bad timestamp (``missing_event_time`` / ``event_time_out_of_range``),
unknown behaviour (``unmapped_event_type:<value>``), empty ids.

Catalog snapshot ``snapshot_date=<last event date>`` (2017-11-26): one row per item id of the
written events; ``category`` = ``category_id`` (of the item's last event), every other
attribute null (the source has none; there is no price either).
"""

from __future__ import annotations

from pathlib import Path

from include.loaders.common import loader_run, numbered_csv, source_file

NAME = "taobao"
DESCRIPTION = "Taobao UserBehavior subset, 96,169 pv/cart/fav/buy events (2017-11-26)"
SOURCE_FOLDER = "taobao_userbehavior_sample"
SOURCE_FILE = "UserBehavior_subset.csv.gz"
COLUMNS = ("user_id", "item_id", "category_id", "behavior", "timestamp")
EVENT_TYPE_MAP = {
    "pv": "product_view",
    "cart": "add_to_cart",
    "fav": "add_to_wishlist",
    "buy": "purchase",
}
MAPPING = {
    "event_id": "'taobao-' || row number",
    "event_time": "timestamp (unix s, UTC)",
    "event_type": EVENT_TYPE_MAP,
    "anonymous_id": "user_id",
    "user_id": "user_id",
    "item_id": "item_id",
    "properties": "quantity=1 (cart/buy), order_id (buy: user+second), category_id",
    "catalog": "item_id, category = category_id",
    "time_shift": "none",
}

EVENTS_SQL = """
with typed as (
    select
        source_row,
        make_timestamp(try_cast(timestamp as bigint) * 1000000) as ts,
        timestamp as raw_ts,
        behavior as raw_type,
        case behavior {type_cases} end as mapped_type,
        nullif(trim(user_id), '') as user_id,
        nullif(trim(item_id), '') as item_id,
        nullif(trim(category_id), '') as category_id
    from src
)
select
    source_row::varchar as event_key,
    case when mapped_type is null
        then 'unmapped_event_type:' || coalesce(raw_type, '<null>') end as skip_reason,
    ts as event_time,
    mapped_type as event_type,
    user_id as anonymous_id,
    user_id,
    item_id,
    case when mapped_type = 'purchase' then '/checkout/confirmation'
        else '/p/' || item_id end as page,
    strip_nulls(json_object(
        'quantity', case when mapped_type in ('add_to_cart', 'purchase') then 1 end,
        'order_id', case when mapped_type = 'purchase'
            then 'taobao-' || user_id || '-' || raw_ts end,
        'category_id', category_id
    )) as properties,
    null::varchar as platform,
    null::varchar as country,
    null::varchar as user_agent,
    null::varchar as experiment_id,  -- public datasets ran no holdout experiment
    null::varchar as variant
from typed
order by source_row
"""

CATALOG_SQL = """
select
    s.item_id,
    null::varchar as name,
    null::varchar as department,
    arg_max(nullif(trim(s.category_id), ''), s.source_row) as category,
    null::varchar as product_type,
    null::varchar as colour,
    null::varchar as brand,
    null::double as price,
    null::varchar as collection,
    null::date as launch_date,
    null::varchar as skip_reason
from src as s
inner join _events as e on e.event_id = 'taobao-' || s.source_row
where e.skip_reason is null
group by s.item_id
order by s.item_id
"""


def load(data_dir: Path | None = None, source_dir: Path | None = None) -> dict[str, object]:
    """Write Taobao events and an item -> category catalog into ``data_dir``."""
    path = source_file(source_dir, SOURCE_FOLDER, SOURCE_FILE)
    type_cases = " ".join(f"when '{k}' then '{v}'" for k, v in EVENT_TYPE_MAP.items())
    with loader_run(NAME, data_dir) as run:
        run.register_source("src", path, numbered_csv(path, COLUMNS, header=False))
        run.write_events(EVENTS_SQL.format(type_cases=type_cases))
        snapshot_date = run.last_event_day()
        run.write_catalog(
            CATALOG_SQL,
            snapshot_date,
            derived_from="distinct item_id of the written events (last event's category)",
        )
        return run.finish(mapping=MAPPING)
