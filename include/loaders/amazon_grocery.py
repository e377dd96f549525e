"""Amazon "Grocery and Gourmet Food" 5-core (ReChorus preprocessing) -> purchases and a catalog.

Source: ``amazon_grocery_rechorus/`` (see SOURCE.md; McAuley Amazon reviews 2014, research
use): ``train.tsv.gz`` (121,892 rows: ``user_id, item_id, time``, unix seconds at day
granularity, 2000-08 .. 2014-07; every user has at least 3 rows) and ``item_meta.tsv.gz``
(``item_id, i_category, r_complement, r_substitute``). A review stands for a purchase of the
item by the reviewer: the one real dataset here where the same people come back over years,
so a user-level time split keeps thousands of users on both sides of ``T``.

=======================  ===============================================================
contract field           source
=======================  ===============================================================
event_id                 ``'amazon_grocery-<row>'`` (1-based data row of train.tsv)
event_time               ``time`` (the review's day) + a synthetic time between 12:00
                         and 13:00, deterministic per order (day is **kept**; one hour
                         per day keeps the landing zone at one file per day, ~4,000)
event_type               ``purchase``
anonymous_id, user_id    ``user_id``
item_id                  ``item_id``
page                     ``/checkout/confirmation``
properties               ``order_id`` (``amazon_grocery-<user>-<day>``), ``quantity`` 1
context                  all null
=======================  ===============================================================

Catalog snapshot ``snapshot_date=2014-07-22`` (one row per item_meta row): ``item_id`` ->
``item_id``, ``category`` = ``'grocery-' || i_category`` (ReChorus' leaf-category
index), department ``grocery``; no name, colour, brand or price (the preprocessing drops
them). The "also bought" relations (``r_complement``) are not loaded: they are Amazon's own
recommendations, and training on them would leak another recommender's output.

Skipped with a reason: unparseable time, empty user or item id.
"""

from __future__ import annotations

from pathlib import Path

from include.loaders.common import check_header, loader_run, numbered_csv, source_file

NAME = "amazon_grocery"
DESCRIPTION = "Amazon Grocery 5-core (ReChorus): 121,892 purchases by 14,681 users, 2000-2014"
SOURCE_FOLDER = "amazon_grocery_rechorus"
EVENTS_FILE = "train.tsv.gz"
ITEMS_FILE = "item_meta.tsv.gz"
EVENT_COLUMNS = ("user_id", "item_id", "time")
ITEM_COLUMNS = ("item_id", "i_category", "r_complement", "r_substitute")
SNAPSHOT_DATE = "2014-07-22"
ORDER_DAY_START_S = 12 * 3600
ORDER_DAY_SPAN_S = 3600
MAPPING = {
    "event_id": "'amazon_grocery-' || data row number of train.tsv",
    "event_time": "time (unix s, day) + synthetic time of day per order",
    "event_type": {"review": "purchase"},
    "anonymous_id": "user_id",
    "user_id": "user_id",
    "item_id": "item_id",
    "properties": "order_id, quantity",
    "catalog": "item_id, i_category -> category 'grocery-<i>', department 'grocery'",
    "time_shift": "date kept, time of day synthetic (deterministic per order)",
}

EVENTS_SQL = f"""
with typed as (
    select
        source_row,
        make_timestamp(try_cast(time as bigint) * 1000000) as day,
        nullif(trim(user_id), '') as user_id,
        nullif(trim(item_id), '') as item_id
    from src_events
),
ordered as (
    select *, 'amazon_grocery-' || user_id || '-' || strftime(day, '%Y%m%d') as order_id
    from typed
)
select
    source_row::varchar as event_key,
    case when day is null then 'unparseable_time' end as skip_reason,
    day + to_seconds(
        {ORDER_DAY_START_S} + (md5_number(order_id) % {ORDER_DAY_SPAN_S})::bigint
    ) as event_time,
    'purchase' as event_type,
    user_id as anonymous_id,
    user_id,
    item_id,
    '/checkout/confirmation' as page,
    strip_nulls(json_object('quantity', 1, 'order_id', order_id)) as properties,
    null::varchar as platform,
    null::varchar as country,
    null::varchar as user_agent,
    null::varchar as experiment_id,  -- public datasets ran no holdout experiment
    null::varchar as variant
from ordered
order by source_row
"""

CATALOG_SQL = """
select
    nullif(trim(item_id), '') as item_id,
    null::varchar as name,
    'grocery' as department,
    'grocery-' || nullif(trim(i_category), '') as category,
    null::varchar as product_type,
    null::varchar as colour,
    null::varchar as brand,
    null::double as price,
    null::varchar as collection,
    null::date as launch_date,
    null::varchar as skip_reason
from src_items
order by source_row
"""


def load(data_dir: Path | None = None, source_dir: Path | None = None) -> dict[str, object]:
    """Write the Amazon Grocery purchases and the item catalog into ``data_dir``."""
    with loader_run(NAME, data_dir) as run:
        for table, file_name, columns in (
            ("src_events", EVENTS_FILE, EVENT_COLUMNS),
            ("src_items", ITEMS_FILE, ITEM_COLUMNS),
        ):
            path = source_file(source_dir, SOURCE_FOLDER, file_name)
            check_header(path, columns, sep="\t")
            run.register_source(table, path, numbered_csv(path, columns, sep="\t"))
        run.write_events(EVENTS_SQL)
        run.write_catalog(CATALOG_SQL, SNAPSHOT_DATE)
        return run.finish(mapping=MAPPING)
