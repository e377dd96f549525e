"""H&M Personalized Fashion Recommendations excerpt -> purchases, catalog, customers.

Source: ``hm_fashion_sample/`` (see SOURCE.md; Kaggle competition rules: research/education,
do not redistribute): ``transactions_train.csv.gz`` (10,000 rows, all on 2018-09-20),
``articles.csv.gz`` (4,903 articles, 25 columns), ``customers.csv.gz`` (10,000 customers).

**Time shift.** The source gives the day only (``t_dat``). The date is kept; the time of day is
synthetic and deterministic: one time per order, ``08:00:00 + (md5_number(order_id) mod 14 h)``
UTC, so an order's lines share one timestamp and orders spread over 08:00-21:59 UTC.

Purchase events (one per transaction row = one unit):

=========================  ==============================================================
contract field             source
=========================  ==============================================================
event_id                   ``'hm-' || <1-based data row number>``
event_time                 ``t_dat`` + synthetic time of day (see above)
event_type                 ``purchase``
anonymous_id               ``customer_id`` (no device id in the source)
user_id                    ``customer_id`` (64-hex hash)
item_id                    ``article_id`` (as written in the CSV, no leading zero)
page                       ``/checkout/confirmation`` online; null in store
properties.price           ``price`` (H&M's normalised price, not a currency amount)
properties.quantity        1
properties.order_id        ``hm-<yyyymmdd>-<customer_id>-<store|online>``: one order per
                           customer, day and channel (the source has no order id)
properties.sales_channel   ``sales_channel_id`` 1 -> ``store``, 2 -> ``online``
context                    all null (channel is in properties; app vs web is unknown)
=========================  ==============================================================

Catalog snapshot ``snapshot_date=2018-09-20`` (one row per articles.csv row):

==============  ===================================================================
item_id         ``article_id``
name            ``prod_name``
department      ``index_group_name`` (Ladieswear, Menswear, Baby/Children, Divided, Sport:
                the shopper-facing department; H&M's ``department_name`` is a buying unit)
category        ``product_group_name`` (Garment Upper body, ...)
product_type    ``product_type_name`` (Vest top, Trousers, ...)
colour          ``colour_group_name``
price           median transaction ``price`` of the article that day (normalised), else null
brand           null (all H&M; not in the source), collection and launch_date null
==============  ===================================================================

Customer snapshot ``snapshot_date=2018-09-20`` (one row per customers.csv row):

=========================  ================================================================
user_id                    ``customer_id``
signup_date, country       null (not in the source; postal_code is a hash)
age_band                   ``age`` -> '<18', '18-24', '25-34', '35-44', '45-54', '55-64',
                           '65+', null if missing
is_newsletter_subscriber   ``fashion_news_frequency`` Regularly/Monthly -> true, NONE -> false;
                           if missing, ``FN = 1`` -> true, else null
=========================  ================================================================

Skipped with a reason: unparseable date, empty customer or article id (events); empty or
repeated article / customer id (snapshots).
"""

from __future__ import annotations

from pathlib import Path

from include.loaders.common import check_header, loader_run, numbered_csv, source_file

NAME = "hm"
DESCRIPTION = "H&M fashion: 10,000 purchases (2018-09-20), 4,903 articles, 10,000 customers"
SOURCE_FOLDER = "hm_fashion_sample"
SNAPSHOT_DATE = "2018-09-20"
TRANSACTION_COLUMNS = ("t_dat", "customer_id", "article_id", "price", "sales_channel_id")
ARTICLE_COLUMNS = (
    "article_id",
    "product_code",
    "prod_name",
    "product_type_no",
    "product_type_name",
    "product_group_name",
    "graphical_appearance_no",
    "graphical_appearance_name",
    "colour_group_code",
    "colour_group_name",
    "perceived_colour_value_id",
    "perceived_colour_value_name",
    "perceived_colour_master_id",
    "perceived_colour_master_name",
    "department_no",
    "department_name",
    "index_code",
    "index_name",
    "index_group_no",
    "index_group_name",
    "section_no",
    "section_name",
    "garment_group_no",
    "garment_group_name",
    "detail_desc",
)
CUSTOMER_COLUMNS = (
    "customer_id",
    "FN",
    "Active",
    "club_member_status",
    "fashion_news_frequency",
    "age",
    "postal_code",
)
# Orders get a time of day in [08:00, 22:00) UTC.
ORDER_DAY_START_S = 8 * 3600
ORDER_DAY_SPAN_S = 14 * 3600
MAPPING = {
    "event_id": "'hm-' || transactions data row number",
    "event_time": "t_dat + synthetic time of day per order (08:00 + md5(order_id) mod 14 h)",
    "event_type": {"transaction": "purchase"},
    "anonymous_id": "customer_id",
    "user_id": "customer_id",
    "item_id": "article_id",
    "properties": "price (normalised), quantity=1, order_id (customer+day+channel), "
    "sales_channel (1 store, 2 online)",
    "catalog": "article_id, prod_name, index_group_name -> department, product_group_name -> "
    "category, product_type_name -> product_type, colour_group_name -> colour, "
    "median day price",
    "customers": "customer_id, age -> age_band, fashion_news_frequency/FN -> "
    "is_newsletter_subscriber",
    "time_shift": "date kept, time of day synthetic (deterministic per order)",
}

EVENTS_SQL = f"""
with typed as (
    select
        source_row,
        try_strptime(t_dat, '%Y-%m-%d') as day,
        nullif(trim(customer_id), '') as customer_id,
        nullif(trim(article_id), '') as article_id,
        try_cast(price as double) as price,
        case sales_channel_id when '1' then 'store' when '2' then 'online'
            else 'unknown:' || coalesce(sales_channel_id, '<null>') end as channel
    from src_transactions
),
ordered as (
    select
        *,
        'hm-' || strftime(day, '%Y%m%d') || '-' || customer_id || '-' || channel as order_id
    from typed
)
select
    source_row::varchar as event_key,
    null::varchar as skip_reason,
    day + to_seconds(
        {ORDER_DAY_START_S} + (md5_number(order_id) % {ORDER_DAY_SPAN_S})::bigint
    ) as event_time,
    'purchase' as event_type,
    customer_id as anonymous_id,
    customer_id as user_id,
    article_id as item_id,
    case when channel = 'online' then '/checkout/confirmation' end as page,
    strip_nulls(json_object(
        'price', price,
        'quantity', 1,
        'order_id', order_id,
        'sales_channel', channel
    )) as properties,
    null::varchar as platform,
    null::varchar as country,
    null::varchar as user_agent,
    null::varchar as experiment_id,  -- public datasets ran no holdout experiment
    null::varchar as variant
from ordered
order by source_row
"""

CATALOG_SQL = """
with day_price as (
    select article_id, median(try_cast(price as double)) as price
    from src_transactions
    group by 1
)
select
    nullif(trim(a.article_id), '') as item_id,
    a.prod_name as name,
    a.index_group_name as department,
    a.product_group_name as category,
    a.product_type_name as product_type,
    a.colour_group_name as colour,
    null::varchar as brand,
    p.price,
    null::varchar as collection,
    null::date as launch_date,
    null::varchar as skip_reason
from src_articles as a
left join day_price as p on p.article_id = a.article_id
order by a.source_row
"""

CUSTOMERS_SQL = """
with typed as (
    select source_row, customer_id, try_cast(age as double) as age,
        upper(trim(fashion_news_frequency)) as news, try_cast(FN as double) as fn
    from src_customers
)
select
    nullif(trim(customer_id), '') as user_id,
    null::date as signup_date,
    null::varchar as country,
    case
        when age is null then null
        when age < 18 then '<18'
        when age < 25 then '18-24'
        when age < 35 then '25-34'
        when age < 45 then '35-44'
        when age < 55 then '45-54'
        when age < 65 then '55-64'
        else '65+'
    end as age_band,
    case
        when news in ('REGULARLY', 'MONTHLY') then true
        when news = 'NONE' then false
        when fn = 1 then true
    end as is_newsletter_subscriber,
    null::varchar as skip_reason
from typed
order by source_row
"""


def load(data_dir: Path | None = None, source_dir: Path | None = None) -> dict[str, object]:
    """Write H&M purchases, the article catalog and the customer snapshot into ``data_dir``."""
    sources = {
        "src_transactions": ("transactions_train.csv.gz", TRANSACTION_COLUMNS),
        "src_articles": ("articles.csv.gz", ARTICLE_COLUMNS),
        "src_customers": ("customers.csv.gz", CUSTOMER_COLUMNS),
    }
    with loader_run(NAME, data_dir) as run:
        for table, (file_name, columns) in sources.items():
            path = source_file(source_dir, SOURCE_FOLDER, file_name)
            check_header(path, columns)
            run.register_source(table, path, numbered_csv(path, columns))
        run.write_events(EVENTS_SQL)
        run.write_catalog(CATALOG_SQL, SNAPSHOT_DATE)
        run.write_customers(CUSTOMERS_SQL, SNAPSHOT_DATE)
        return run.finish(mapping=MAPPING)
