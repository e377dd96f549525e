"""REES46 multi-category store, first 17,434 events of 2019-10 -> events + catalog snapshot.

Source: ``rees46_multicategory_sample/2019-Oct_head.csv.gz`` (see its SOURCE.md; research /
non-commercial). Columns: event_time, event_type, product_id, category_id, category_code,
brand, price, user_id, user_session. Times are real UTC: **no shift**.

Events (one per source row):

=======================  ===============================================================
contract field           source
=======================  ===============================================================
event_id                 ``'rees46-' || <1-based data row number>``
event_time               ``event_time`` ("YYYY-MM-DD HH:MM:SS UTC"), unchanged
event_type               view -> product_view, cart -> add_to_cart,
                         remove_from_cart -> remove_from_cart, purchase -> purchase
anonymous_id             ``user_session`` (session UUID; the only device-like id),
                         ``'rees46-user-' || user_id`` if the session is empty
user_id                  ``user_id`` (REES46 "permanent user id")
item_id                  ``product_id``
page                     ``/p/<product_id>``; purchases ``/checkout/confirmation``
properties.price         ``price`` (DOUBLE)
properties.quantity      1 on add_to_cart / remove_from_cart / purchase (one row per unit)
properties.order_id      purchases only, derived: ``rees46-<user_session>-<yyyymmddHHMMSS>``
                         (purchases of one session in the same second = one checkout)
properties.category_id   ``category_id`` (kept as text: it exceeds BIGINT precision in JS)
context                  all null (source has no platform, country or user agent)
=======================  ===============================================================

Skipped with a reason: unparseable time (``missing_event_time``), unknown event type
(``unmapped_event_type:<value>``), empty product id (``missing_item_id``).

Catalog snapshot ``snapshot_date=<last event date>`` (2019-10-01), one row per product id seen
in the mapped events; attributes of the product's last event:

==============  ==================================================================
item_id         ``product_id``
department      ``category_code`` part 1 (``electronics`` of ``electronics.audio.headphone``)
category        part 2 (``audio``)
product_type    parts 3.. joined with '.' (``headphone``), null for 2-level codes
brand           ``brand`` (lower case), null if empty
price           ``price`` of the product's last event
others          null (name, colour, collection, launch_date are not in the source)
==============  ==================================================================
"""

from __future__ import annotations

from pathlib import Path

from include.loaders.common import check_header, loader_run, numbered_csv, source_file

NAME = "rees46"
DESCRIPTION = "REES46 multi-category store, 17,434 view/cart/purchase events (2019-10-01)"
SOURCE_FOLDER = "rees46_multicategory_sample"
SOURCE_FILE = "2019-Oct_head.csv.gz"
COLUMNS = (
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
)
EVENT_TYPE_MAP = {
    "view": "product_view",
    "cart": "add_to_cart",
    "remove_from_cart": "remove_from_cart",
    "purchase": "purchase",
}
MAPPING = {
    "event_id": "'rees46-' || data row number",
    "event_time": "event_time (UTC, unchanged)",
    "event_type": EVENT_TYPE_MAP,
    "anonymous_id": "user_session (fallback 'rees46-user-' || user_id)",
    "user_id": "user_id",
    "item_id": "product_id",
    "properties": "price, quantity=1 (cart/purchase), order_id (purchases: session+second), "
    "category_id",
    "catalog": "category_code a.b.c -> department/category/product_type, brand, last price",
    "time_shift": "none",
}

EVENTS_SQL = """
with typed as (
    select
        source_row,
        try_strptime(event_time, '%Y-%m-%d %H:%M:%S UTC') as ts,
        event_type as raw_type,
        case event_type {type_cases} end as mapped_type,
        nullif(trim(product_id), '') as item_id,
        nullif(trim(user_id), '') as user_id,
        nullif(trim(user_session), '') as session_id,
        try_cast(price as double) as price,
        nullif(category_id, '') as category_id
    from src
)
select
    source_row::varchar as event_key,
    case when mapped_type is null
        then 'unmapped_event_type:' || coalesce(raw_type, '<null>') end as skip_reason,
    ts as event_time,
    mapped_type as event_type,
    coalesce(session_id, 'rees46-user-' || user_id) as anonymous_id,
    user_id,
    item_id,
    case when mapped_type = 'purchase' then '/checkout/confirmation'
        else '/p/' || item_id end as page,
    strip_nulls(json_object(
        'price', price,
        'quantity', case when mapped_type <> 'product_view' then 1 end,
        'order_id', case when mapped_type = 'purchase'
            then 'rees46-' || coalesce(session_id, user_id) || '-' || strftime(ts, '%Y%m%d%H%M%S')
            end,
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
with last_seen as (
    select
        s.product_id as item_id,
        arg_max(
            {{'code': nullif(s.category_code, ''), 'brand': nullif(s.brand, ''),
              'price': try_cast(s.price as double)}},
            s.source_row
        ) as a
    from src as s
    inner join _events as e on e.event_id = 'rees46-' || s.source_row
    where e.skip_reason is null
    group by 1
)
select
    item_id,
    null::varchar as name,
    split_part(a.code, '.', 1) as department,
    nullif(split_part(a.code, '.', 2), '') as category,
    nullif(array_to_string(string_split(a.code, '.')[3:], '.'), '') as product_type,
    null::varchar as colour,
    a.brand as brand,
    a.price as price,
    null::varchar as collection,
    null::date as launch_date,
    null::varchar as skip_reason
from last_seen
order by item_id
"""


def load(data_dir: Path | None = None, source_dir: Path | None = None) -> dict[str, object]:
    """Write REES46 events and its catalog snapshot into ``data_dir``; returns the summary."""
    path = source_file(source_dir, SOURCE_FOLDER, SOURCE_FILE)
    type_cases = " ".join(f"when '{k}' then '{v}'" for k, v in EVENT_TYPE_MAP.items())
    with loader_run(NAME, data_dir) as run:
        check_header(path, COLUMNS)
        run.register_source("src", path, numbered_csv(path, COLUMNS))
        run.write_events(EVENTS_SQL.format(type_cases=type_cases))
        snapshot_date = run.last_event_day()
        run.write_catalog(
            CATALOG_SQL.format(),
            snapshot_date,
            derived_from="distinct product_id of the written events (last event's attributes)",
        )
        return run.finish(mapping=MAPPING)
