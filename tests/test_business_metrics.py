"""Business metrics (DA): the metrics_ marts against values worked out by hand, the report,
the lapsed-customer export, the business_metrics DAG and the report in a real browser.

The fixture is a tiny raw lake (3 weeks of March 2024, weeks start on Mondays 4, 11 and 18);
the whole dbt project is built on it once per module. The last day of data is Mon 2024-03-18.

=========  =======================================================================  ==========
visitor    sessions (UTC start; platform, country)                                  purchases
=========  =======================================================================  ==========
u-a        device dev-a, anonymous until the login in its third session (stitched   o-a1 (30)
           to u-a): Mar 4 view, Mar 5 view + cart, Mar 6 login + view + cart + buy
           (web, DE). Converts on the third session.
u-b        Mar 4 view + cart + buy; returns after 10 days: Mar 14 view + cart + buy  o-b1 (50),
           (ios, FR)                                                                o-b2 (2x20)
u-c        Mar 11 view; Mar 12 view *through a recommendation* (rec-1) + cart +     o-c1 (50)
           buy; Mar 15 page view (web, DE)
dev-d      never logs in: Mar 4 bounce; Mar 18 category page + view through a       -
           recommendation (rec-2), no purchase (android, FR)
bot-1      one bot page view on Mar 4: excluded everywhere
=========  =======================================================================  ==========
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from include import contracts
from include.settings import REPO_ROOT

D = dt.date
DBT_DIR = REPO_ROOT / "dbt_project"

# (event_id, event_time, event_type, anonymous_id, user_id, item_id, page, recommendation_id,
#  platform, country, order_id, price, quantity, is_bot)
EVENTS: list[tuple] = [
    ("a1", "2024-03-04 09:00", "page_view", "dev-a", None, None, "/", None, "web", "de"),
    ("a2", "2024-03-04 09:01", "product_view", "dev-a", None, "i1", "/p/i1", None, "web", "DE"),
    ("a3", "2024-03-05 09:00", "product_view", "dev-a", None, "i1", "/p/i1", None, "web", "DE"),
    ("a4", "2024-03-05 09:02", "add_to_cart", "dev-a", None, "i1", "/p/i1", None, "web", "DE"),
    ("a5", "2024-03-06 20:00", "login", "dev-a", "u-a", None, "/login", None, "web", "DE"),
    ("a6", "2024-03-06 20:01", "product_view", "dev-a", "u-a", "i1", "/p/i1", None, "web", "DE"),
    ("a7", "2024-03-06 20:02", "add_to_cart", "dev-a", "u-a", "i1", "/p/i1", None, "web", "DE"),
    (
        "a8",
        "2024-03-06 20:03",
        "purchase",
        "dev-a",
        "u-a",
        "i1",
        "/checkout",
        None,
        "web",
        "DE",
        "o-a1",
        30.0,
        1,
    ),
    ("b1", "2024-03-04 12:00", "product_view", "dev-b", "u-b", "i2", "/p/i2", None, "ios", "FR"),
    ("b2", "2024-03-04 12:05", "add_to_cart", "dev-b", "u-b", "i2", "/p/i2", None, "ios", "FR"),
    (
        "b3",
        "2024-03-04 12:10",
        "purchase",
        "dev-b",
        "u-b",
        "i2",
        "/checkout",
        None,
        "ios",
        "FR",
        "o-b1",
        50.0,
        1,
    ),
    ("b4", "2024-03-14 12:00", "page_view", "dev-b", "u-b", None, "/", None, "ios", "FR"),
    ("b5", "2024-03-14 12:01", "product_view", "dev-b", "u-b", "i2", "/p/i2", None, "ios", "FR"),
    ("b6", "2024-03-14 12:03", "add_to_cart", "dev-b", "u-b", "i3", "/p/i3", None, "ios", "FR"),
    (
        "b7",
        "2024-03-14 12:05",
        "purchase",
        "dev-b",
        "u-b",
        "i3",
        "/checkout",
        None,
        "ios",
        "FR",
        "o-b2",
        20.0,
        2,
    ),
    ("c1", "2024-03-11 10:00", "page_view", "dev-c", "u-c", None, "/", None, "web", "DE"),
    ("c2", "2024-03-11 10:01", "product_view", "dev-c", "u-c", "i3", "/p/i3", None, "web", "DE"),
    ("c3", "2024-03-12 10:00", "product_view", "dev-c", "u-c", "i2", "/p/i2", "rec-1", "web", "DE"),
    ("c4", "2024-03-12 10:02", "add_to_cart", "dev-c", "u-c", "i2", "/p/i2", None, "web", "DE"),
    (
        "c5",
        "2024-03-12 10:04",
        "purchase",
        "dev-c",
        "u-c",
        "i2",
        "/checkout",
        None,
        "web",
        "DE",
        "o-c1",
        50.0,
        1,
    ),
    ("c6", "2024-03-15 10:00", "page_view", "dev-c", "u-c", None, "/", None, "web", "DE"),
    ("d1", "2024-03-04 15:00", "page_view", "dev-d", None, None, "/", None, "android", "FR"),
    ("d2", "2024-03-18 15:00", "page_view", "dev-d", None, None, "/c/shoes", None, "android", "FR"),
    (
        "d3",
        "2024-03-18 15:01",
        "product_view",
        "dev-d",
        None,
        "i1",
        "/p/i1",
        "rec-2",
        "android",
        "FR",
    ),
    (
        "x1",
        "2024-03-04 16:00",
        "page_view",
        "bot-1",
        None,
        None,
        "/",
        None,
        "web",
        "US",
        None,
        None,
        None,
        True,
    ),
]
ITEMS = [
    ("i1", "Linen shirt", "Menswear", "Shirts", "Shirt", "white", "Trasos", 30.0),
    ("i2", "Trail shoe", "Shoes", "Sneakers", "Shoe", "black", "Runa", 50.0),
    ("i3", "Wool socks", "Accessories", "Socks", "Socks", "grey", "Trasos", 20.0),
]
CUSTOMERS = [
    ("u-a", "2024-03-06", "DE", "25-34", True),
    ("u-b", "2023-11-02", "FR", "35-44", False),
    ("u-c", "2024-01-20", "DE", "18-24", True),
    ("u-z", "2023-05-01", "DE", "45-54", False),  # a customer account that never visits
]


def _write_partitioned(con: duckdb.DuckDBPyConnection, table: str, out: Path, key: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    con.execute(
        f"copy {table} to '{out}' (format parquet, partition_by ({key}), overwrite_or_ignore)"
    )


def build_lake(data_dir: Path) -> None:
    """Write the fixture as the raw Parquet lake that ingestion writes (hive partitions)."""
    lake = data_dir / "lake"
    con = duckdb.connect()
    cols = ", ".join(f"{name} {typ}" for name, typ in contracts.RAW_EVENT_COLUMNS)
    con.execute(f"create table events ({cols})")
    for row in EVENTS:
        (event_id, at, etype, anon, user, item, page, rec, platform, country) = row[:10]
        order_id, price, qty, is_bot = (list(row[10:]) + [None, None, None, False])[:4]
        when = dt.datetime.fromisoformat(at)
        values = {
            "event_id": event_id,
            "event_time": when,
            "event_type": etype,
            "anonymous_id": anon,
            "user_id": user,
            "item_id": item,
            "page": page,
            "price": price,
            "quantity": qty,
            "order_id": order_id,
            "recommendation_id": rec,
            "platform": platform,
            "country": country,
            "user_agent": "pytest",
            "properties": "{}",
            "is_bot": bool(is_bot),
            "received_at": when + dt.timedelta(minutes=5),
            "source_file": f"events/{when:%Y-%m-%d}.jsonl.gz",
            "source_line": 1,
            "event_date": when.date(),
        }
        names = [name for name, _ in contracts.RAW_EVENT_COLUMNS]
        con.execute(
            f"insert into events values ({', '.join('?' for _ in names)})",
            [values.get(name) for name in names],
        )
    _write_partitioned(con, "events", lake / "events", "event_date")

    con.execute(
        "create table catalog (item_id varchar, name varchar, department varchar, "
        "category varchar, product_type varchar, colour varchar, brand varchar, price double, "
        "collection varchar, launch_date date, received_at timestamp, source_file varchar, "
        "source_line bigint, snapshot_date date)"
    )
    for item in ITEMS:
        con.execute(
            "insert into catalog values (?, ?, ?, ?, ?, ?, ?, ?, 'core', date '2023-01-01', "
            "timestamp '2024-03-01 00:00', 'catalog.jsonl.gz', 1, date '2024-03-01')",
            list(item),
        )
    _write_partitioned(con, "catalog", lake / "catalog", "snapshot_date")

    con.execute(
        "create table customers (user_id varchar, signup_date date, country varchar, "
        "age_band varchar, is_newsletter_subscriber boolean, received_at timestamp, "
        "source_file varchar, source_line bigint, snapshot_date date)"
    )
    for customer in CUSTOMERS:
        con.execute(
            "insert into customers values (?, cast(? as date), ?, ?, ?, "
            "timestamp '2024-03-01 00:00', 'customers.jsonl.gz', 1, date '2024-03-01')",
            list(customer),
        )
    _write_partitioned(con, "customers", lake / "customers", "snapshot_date")
    con.close()


def warehouse_rows(data_dir: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def approx_rows(rows: list[tuple]) -> list[tuple]:
    """Rows with floats wrapped in pytest.approx (None stays None: a rate with no denominator)."""
    return [tuple(pytest.approx(v) if isinstance(v, float) else v for v in row) for row in rows]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The fixture lake, and the whole dbt project built on it (models and tests)."""
    from include.reporting import business

    data_dir = tmp_path_factory.mktemp("business") / "data"
    data_dir.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRASOS_DATA_DIR", str(data_dir))
        mp.delenv("TRASOS_WAREHOUSE", raising=False)
        build_lake(data_dir)
        # The same function as the DAG's build task, here for the whole project (one dbt run:
        # their staging and core marts, then ours). Raises with dbt's last lines on failure.
        print(business.build_marts(select=None))
        yield data_dir


# --- the marts, against values worked out by hand --------------------------------------------
@pytest.mark.integration
def test_visitors_know_when_and_after_how_many_sessions_they_converted(warehouse: Path) -> None:
    rows = warehouse_rows(
        warehouse,
        "select visitor_id, is_customer, first_session_date, first_purchase_date, cohort_week, "
        "sessions_to_first_purchase, days_to_first_purchase, n_sessions, n_orders "
        "from metrics_visitors order by visitor_id",
    )
    assert rows == [
        ("dev-d", False, D(2024, 3, 4), None, None, None, None, 2, 0),
        # anonymous on Mar 4 and 5, logs in and buys in the third session on Mar 6
        ("u-a", True, D(2024, 3, 4), D(2024, 3, 6), D(2024, 3, 4), 3, 2, 3, 1),
        ("u-b", True, D(2024, 3, 4), D(2024, 3, 4), D(2024, 3, 4), 1, 0, 2, 2),
        ("u-c", True, D(2024, 3, 11), D(2024, 3, 12), D(2024, 3, 11), 2, 1, 3, 1),
    ]  # bot-1 is nowhere


@pytest.mark.integration
def test_conversion_daily(warehouse: Path) -> None:
    rows = warehouse_rows(
        warehouse,
        "select activity_date, platform, country, n_visitors, n_new_visitors, "
        "n_non_customer_visitors, n_first_time_buyers, n_buyers, n_repeat_buyers, "
        "non_customer_conversion_rate from metrics_conversion_daily order by 1, 2, 3",
    )
    assert rows == approx_rows(
        [
            # date, platform, country, visitors, new, non-customers, first-time buyers,
            # buyers, repeat buyers, non-customer conversion rate
            (D(2024, 3, 4), "android", "FR", 1, 1, 1, 0, 0, 0, 0.0),
            (D(2024, 3, 4), "ios", "FR", 1, 1, 1, 1, 1, 0, 1.0),  # u-b buys on the first visit
            (D(2024, 3, 4), "web", "DE", 1, 1, 1, 0, 0, 0, 0.0),
            (D(2024, 3, 5), "web", "DE", 1, 0, 1, 0, 0, 0, 0.0),
            (D(2024, 3, 6), "web", "DE", 1, 0, 1, 1, 1, 0, 1.0),  # u-a, third session
            (D(2024, 3, 11), "web", "DE", 1, 1, 1, 0, 0, 0, 0.0),
            (D(2024, 3, 12), "web", "DE", 1, 0, 1, 1, 1, 0, 1.0),
            (D(2024, 3, 14), "ios", "FR", 1, 0, 0, 0, 1, 1, None),  # u-b is already a customer
            (D(2024, 3, 15), "web", "DE", 1, 0, 0, 0, 0, 0, None),
            (D(2024, 3, 18), "android", "FR", 1, 0, 1, 0, 0, 0, 0.0),
        ]
    )
    [(buyers, non_customers)] = warehouse_rows(
        warehouse,
        "select sum(n_first_time_buyers), sum(n_non_customer_visitors) "
        "from metrics_conversion_daily",
    )
    assert (buyers, non_customers) == (3, 8)  # 37.5 % over the range


@pytest.mark.integration
def test_time_to_return(warehouse: Path) -> None:
    rows = warehouse_rows(
        warehouse,
        "select visitor_id, return_type, visit_number, previous_date, returned_date, "
        "days_to_return, is_customer from metrics_time_to_return order by 1, 2, 3",
    )
    assert rows == [
        ("dev-d", "session", 2, D(2024, 3, 4), D(2024, 3, 18), 14, False),
        ("u-a", "session", 2, D(2024, 3, 4), D(2024, 3, 5), 1, False),
        ("u-a", "session", 3, D(2024, 3, 5), D(2024, 3, 6), 1, False),
        # the customer who returns after 10 days, and orders again
        ("u-b", "purchase", 2, D(2024, 3, 4), D(2024, 3, 14), 10, True),
        ("u-b", "session", 2, D(2024, 3, 4), D(2024, 3, 14), 10, True),
        ("u-c", "session", 2, D(2024, 3, 11), D(2024, 3, 12), 1, False),
        ("u-c", "session", 3, D(2024, 3, 12), D(2024, 3, 15), 3, True),
    ]


@pytest.mark.integration
def test_return_by_cohort(warehouse: Path) -> None:
    rows = warehouse_rows(
        warehouse,
        "select cohort_week, n_customers, n_returned, return_rate, median_days_to_return, "
        "n_second_orders, median_days_to_second_order, return_window_days, "
        "n_customers_window_observed, n_returned_within_window, return_rate_within_window, "
        "data_end_date from metrics_return_by_cohort order by 1",
    )
    assert rows == approx_rows(
        [
            # u-a (never back after buying) and u-b (back after 10 days); only u-b, whose first
            # purchase is 14 days before the last day of data, is followed for the whole window
            (D(2024, 3, 4), 2, 1, 0.5, 10.0, 1, 10.0, 14, 1, 1, 1.0, D(2024, 3, 18)),
            # u-c, back 3 days after the first purchase; not yet followed for 14 days
            (D(2024, 3, 11), 1, 1, 1.0, 3.0, 0, None, 14, 0, 0, None, D(2024, 3, 18)),
        ]
    )


@pytest.mark.integration
def test_retention_cohorts(warehouse: Path) -> None:
    rows = warehouse_rows(
        warehouse,
        "select cohort_week, weeks_since_first_purchase, activity_week, cohort_size, "
        "n_purchasing_customers, purchasing_share, is_complete_week "
        "from metrics_retention_cohorts order by 1, 2",
    )
    assert rows == approx_rows(
        [
            (D(2024, 3, 4), 0, D(2024, 3, 4), 2, 2, 1.0, True),
            (D(2024, 3, 4), 1, D(2024, 3, 11), 2, 1, 0.5, True),  # u-b buys again on Mar 14
            (D(2024, 3, 4), 2, D(2024, 3, 18), 2, 0, 0.0, False),  # data ends on Monday 18
            (D(2024, 3, 11), 0, D(2024, 3, 11), 1, 1, 1.0, True),
            (D(2024, 3, 11), 1, D(2024, 3, 18), 1, 0, 0.0, False),
        ]
    )


@pytest.mark.integration
def test_funnel_daily(warehouse: Path) -> None:
    rows = warehouse_rows(
        warehouse,
        "select session_date, n_sessions, n_product_view_sessions, n_add_to_cart_sessions, "
        "n_purchase_sessions, view_to_cart_rate, cart_to_purchase_rate, view_to_purchase_rate "
        "from metrics_funnel_daily order by 1",
    )
    assert rows == approx_rows(
        [
            (D(2024, 3, 4), 3, 2, 1, 1, 0.5, 1.0, 0.5),  # u-a views, u-b buys, dev-d bounces
            (D(2024, 3, 5), 1, 1, 1, 0, 1.0, 0.0, 0.0),
            (D(2024, 3, 6), 1, 1, 1, 1, 1.0, 1.0, 1.0),
            (D(2024, 3, 11), 1, 1, 0, 0, 0.0, None, 0.0),
            (D(2024, 3, 12), 1, 1, 1, 1, 1.0, 1.0, 1.0),
            (D(2024, 3, 14), 1, 1, 1, 1, 1.0, 1.0, 1.0),
            (D(2024, 3, 15), 1, 0, 0, 0, None, None, None),
            (D(2024, 3, 18), 1, 1, 0, 0, 0.0, None, 0.0),
        ]
    )


@pytest.mark.integration
def test_recommendation_impact(warehouse: Path) -> None:
    rows = warehouse_rows(
        warehouse,
        "select has_recommendation_click, n_sessions, n_converted_sessions, conversion_rate, "
        "revenue_per_session, n_returned_sessions, return_rate, median_days_to_return, "
        "n_sessions_window_observed, n_returned_within_window, return_rate_within_window, "
        "first_session_date, last_session_date from metrics_recommendation_impact order by 1",
    )
    assert rows == approx_rows(
        [
            # 8 sessions; A3, B1, B2 buy (30 + 50 + 2 x 20); A1, A2, B1, C1, D1 are followed by
            # another visit after 1, 1, 10, 1, 14 days; A1, B1, D1 lie 14+ days before Mar 18
            # and all three came back within 14 days (D1 after exactly 14)
            (False, 8, 3, 0.375, 15.0, 5, 0.625, 1.0, 3, 3, 1.0, D(2024, 3, 4), D(2024, 3, 15)),
            # C2 (rec-1, buys 50, back 3 days later) and D2 (rec-2, the last day of data)
            (True, 2, 1, 0.5, 25.0, 1, 0.5, 3.0, 0, 0, None, D(2024, 3, 12), D(2024, 3, 18)),
        ]
    )


@pytest.mark.integration
def test_customer_recency(warehouse: Path) -> None:
    rows = warehouse_rows(
        warehouse,
        "select user_id, country, last_session_date, days_since_last_session, "
        "last_purchase_date, days_since_last_purchase, n_orders "
        "from metrics_customer_recency order by 1",
    )
    assert rows == [  # dev-d never logged in or bought, u-z never visited: neither is here
        ("u-a", "DE", D(2024, 3, 6), 12, D(2024, 3, 6), 12, 1),
        ("u-b", "FR", D(2024, 3, 14), 4, D(2024, 3, 14), 4, 2),
        ("u-c", "DE", D(2024, 3, 15), 3, D(2024, 3, 12), 6, 1),
    ]


@pytest.mark.integration
def test_headline(warehouse: Path) -> None:
    rows = warehouse_rows(
        warehouse,
        "select data_start_date, data_end_date, n_non_customer_visitors, n_first_time_buyers, "
        "non_customer_conversion_rate, n_customer_returns, median_days_to_next_visit_customers, "
        "n_customer_repeat_orders, median_days_to_next_order_customers, "
        "n_sessions, n_product_view_sessions, n_add_to_cart_sessions, n_purchase_sessions, "
        "n_sessions_with_any_purchase, view_to_purchase_rate, "
        "conversion_rate_with_recommendation_click, conversion_rate_without_recommendation_click "
        "from metrics_headline",
    )
    assert rows == approx_rows(
        [
            (
                D(2024, 3, 4),
                D(2024, 3, 18),
                8,  # non-customer visitor-days (test_conversion_daily)
                3,  # first-time buyers: u-b, u-a, u-c
                0.375,  # 3 / 8
                2,  # customers' visits after a visit: u-b after 10 days, u-c after 3
                6.5,  # median of 10 and 3
                1,  # u-b orders again after 10 days
                10.0,
                10,  # sessions: 3 + 1 + 1 + 1 + 1 + 1 + 1 + 1 (test_funnel_daily)
                8,  # with a product view: 2 + 1 + 1 + 1 + 1 + 1 + 0 + 1
                5,  # and an add to cart: 1 + 1 + 1 + 0 + 1 + 1 + 0 + 0
                4,  # and a purchase: Mar 4, 6, 12, 14
                4,  # any purchase: the same four (A3, B1, B2, C2)
                0.5,  # 4 / 8
                0.5,  # test_recommendation_impact
                0.375,
            )
        ]
    )


@pytest.mark.integration
def test_conversion_trend(warehouse: Path) -> None:
    rows = warehouse_rows(
        warehouse,
        "select activity_date, n_non_customer_visitors, n_first_time_buyers, "
        "non_customer_conversion_rate, n_non_customer_visitors_window, "
        "n_first_time_buyers_window, rolling_non_customer_conversion_rate "
        "from metrics_conversion_trend order by 1",
    )
    # test_conversion_daily summed per day; the window is the day and the 6 days before it
    assert rows == approx_rows(
        [
            (D(2024, 3, 4), 3, 1, 1 / 3, 3, 1, 1 / 3),
            (D(2024, 3, 5), 1, 0, 0.0, 4, 1, 0.25),
            (D(2024, 3, 6), 1, 1, 1.0, 5, 2, 0.4),
            (D(2024, 3, 11), 1, 0, 0.0, 3, 1, 1 / 3),  # Mar 5, 6, 11 (Mar 4 is 7 days back)
            (D(2024, 3, 12), 1, 1, 1.0, 3, 2, 2 / 3),  # Mar 6, 11, 12
            (D(2024, 3, 14), 0, 0, None, 2, 1, 0.5),  # Mar 11, 12, 14
            (D(2024, 3, 15), 0, 0, None, 2, 1, 0.5),
            (D(2024, 3, 18), 1, 0, 0.0, 2, 1, 0.5),  # Mar 12, 14, 15, 18
        ]
    )


@pytest.mark.integration
def test_conversion_by_platform(warehouse: Path) -> None:
    rows = warehouse_rows(
        warehouse,
        "select platform, n_visitors, n_non_customer_visitors, n_first_time_buyers, "
        "non_customer_conversion_rate from metrics_conversion_by_platform order by 1",
    )
    # visitor-days of test_conversion_daily summed per platform
    assert rows == approx_rows(
        [
            ("android", 2, 2, 0, 0.0),  # Mar 4 and 18
            ("ios", 2, 1, 1, 1.0),  # u-b buys on Mar 4; on Mar 14 a customer already
            ("web", 6, 5, 2, 0.4),  # Mar 4, 5, 6, 11, 12, 15 (a customer on the 15th)
        ]
    )


@pytest.mark.integration
def test_every_mart_column_is_defined(warehouse: Path) -> None:
    from include.reporting.business import MARTS, load_definitions

    definitions = load_definitions()
    for mart in MARTS:
        columns = [
            row[0]
            for row in warehouse_rows(
                warehouse,
                "select column_name from information_schema.columns "
                f"where table_schema = 'main' and table_name = '{mart}'",
            )
        ]
        documented = definitions[mart]["columns"]
        assert columns, mart
        assert [c for c in columns if not documented.get(c)] == [], mart
        assert [c for c in documented if c not in columns] == [], mart


# --- the DAG, the CLI, the report --------------------------------------------------------------
@pytest.fixture(scope="module")
def dag_run(warehouse: Path, airflow_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real run of the business_metrics DAG (``airflow dags test``) on the fixture.

    The DAG file is run from a dags folder of its own: ``dags test`` parses the whole folder,
    and other DAGs' parse-time work (cosmos lists the dbt project) is not this test's business.
    build_metrics_marts is marked successful instead of run: it is ``business.build_marts()``,
    which the ``warehouse`` fixture has just run (a second dbt run would only cost time).
    """
    import shutil

    from conftest import run_airflow

    dags = tmp_path_factory.mktemp("dags")
    dag_file = Path(shutil.copy2(REPO_ROOT / "dags" / "business_metrics.py", dags))
    result = run_airflow(
        "dags",
        "test",
        "business_metrics",
        "--dagfile-path",
        str(dag_file),
        "--mark-success-pattern",
        "^build_metrics_marts$",
        env={
            "TRASOS_DATA_DIR": str(warehouse),
            "PYTHONPATH": str(REPO_ROOT),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        },
        timeout=600,  # the default of run_airflow: room for a busy machine (pytest -n 2)
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-4000:]
    assert "Marking success for <Task(_PythonDecoratedOperator): build_metrics_marts>" in (
        result.stdout + result.stderr
    )
    return warehouse / "reports" / "business"


@pytest.mark.integration
def test_dag_builds_exports_and_publishes(dag_run: Path, airflow_home: Path) -> None:
    import sqlite3

    from include.reporting.business import LAPSED_COLUMNS, MARTS

    latest = dag_run / "exports" / (dag_run / "exports" / "LATEST").read_text().strip()
    manifest = json.loads((latest / "manifest.json").read_text())
    assert manifest["data_start_date"] == "2024-03-04"
    assert manifest["data_end_date"] == "2024-03-18"
    for mart in MARTS:  # every mart as Parquet and CSV, with as many rows as in the warehouse
        [(n,)] = warehouse_rows(dag_run.parent.parent, f"select count(*) from {mart}")
        assert manifest["rows"][mart] == n
        with (latest / f"{mart}.csv").open() as fh:
            assert len(list(csv.reader(fh))) == n + 1
        assert duckdb.sql(
            f"select count(*) from read_parquet('{latest / f'{mart}.parquet'}')"
        ).fetchall() == [(n,)]
    assert json.loads((latest / "definitions.json").read_text()).keys() == set(MARTS)
    assert (dag_run / "index.html").exists()
    # the analyst copy was refreshed after the metrics build: it holds every metrics mart
    analyst = json.loads(
        (dag_run.parent.parent / "analyst" / "current" / "manifest.json").read_text()
    )
    assert {mart: analyst["rows"][mart] for mart in MARTS} == manifest["rows"]
    # default lapsed_days=14: nobody has been away 14 days (u-a: 12), so a header-only file
    with (dag_run / "lapsed_customers_14d.csv").open() as fh:
        assert list(csv.reader(fh)) == [list(LAPSED_COLUMNS)]
    con = sqlite3.connect(airflow_home / "airflow.db")
    try:
        [(events,)] = con.execute(
            "select count(*) from asset_event join asset on asset.id = asset_event.asset_id "
            "where asset.name = 'business_metrics'"
        ).fetchall()
    finally:
        con.close()
    assert events >= 1


@pytest.fixture(scope="module")
def report(dag_run: Path) -> Path:
    """The report re-rendered by hand from the DAG's export, with N = 12 lapsed days."""
    from include.reporting.business import main

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRASOS_DATA_DIR", str(dag_run.parent.parent))
        assert main(["--from-export", "--lapsed-days", "12"]) == 0
    return dag_run / "index.html"


@pytest.mark.integration
def test_lapsed_customers_csv(report: Path) -> None:
    import hashlib

    from include.reporting import business
    from include.reporting.lapsed import lapsed_salt_name
    from include.samples.pseudonym import load_salt

    with (report.parent / "lapsed_customers_12d.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    # the report's copy is pseudonymised: u-a's key under the list's own salt, kept by DE
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRASOS_DATA_DIR", str(report.parent.parent.parent))
        salt = load_salt(lapsed_salt_name(business.latest_export(), 12))
    key = hashlib.sha256((salt + "u-a").encode()).hexdigest()[:32]
    assert [(r["user_id"], r["days_since_last_session"], r["last_session_date"]) for r in rows] == [
        (key, "12", "2024-03-06")
    ]


@pytest.mark.integration
def test_lapsed_list_with_ids_goes_only_to_marketings_destination(
    report: Path, tmp_path: Path
) -> None:
    from include.reporting import business
    from include.reporting.lapsed import write_lapsed_customers

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRASOS_DATA_DIR", str(report.parent.parent.parent))
        mp.setenv("TRASOS_MARKETING_EXPORT_DIR", str(tmp_path / "marketing"))
        out = write_lapsed_customers(business.latest_export(), 12)
    with (tmp_path / "marketing" / "lapsed_customers_12d.csv").open() as fh:
        assert [r["user_id"] for r in csv.DictReader(fh)] == ["u-a"]
    with out.open() as fh:
        assert [len(r["user_id"]) for r in csv.DictReader(fh)] == [32]


@pytest.mark.integration
def test_report_has_every_chart_definition_and_date_range(report: Path) -> None:
    from include.reporting import business
    from include.reporting.pages import fmt_date

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRASOS_DATA_DIR", str(report.parent.parent.parent))
        export = business.latest_export()
        context = business.page_context(
            export, 12, report.parent / "lapsed_customers_12d.csv", report.parent
        )
    sections = ["conversion", "time-to-return", "retention", "funnel", "recommendation-impact"]
    for section in sections:
        assert context["charts"][section].startswith("data:image/svg+xml;base64,"), section
        assert [fmt_date(d) for d in context["ranges"][section]] == ["2024-03-04", "2024-03-18"]
    definitions = business.load_definitions()
    shown = {
        (d["model"], column): text
        for section in context["definitions"].values()
        for d in section
        for column, text in d["columns"]
    }
    for model, column in [
        ("metrics_conversion_daily", "non_customer_conversion_rate"),
        ("metrics_time_to_return", "days_to_return"),
        ("metrics_return_by_cohort", "median_days_to_return"),
        ("metrics_retention_cohorts", "purchasing_share"),
        ("metrics_funnel_daily", "view_to_cart_rate"),
        ("metrics_funnel_daily", "cart_to_purchase_rate"),
        ("metrics_recommendation_impact", "conversion_rate"),
        ("metrics_recommendation_impact", "return_rate_within_window"),
        ("metrics_customer_recency", "days_since_last_session"),
        ("metrics_headline", "non_customer_conversion_rate"),
    ]:
        assert shown[(model, column)] == definitions[model]["columns"][column], (model, column)
    assert {"visitor", "customer", "week"} <= set(context["glossary"])
    # the headline figures are metrics_headline's values (test_headline), not page arithmetic
    headline = context["headline"]
    assert headline["non_customer_conversion_rate"] == pytest.approx(0.375)
    assert headline["median_days_to_next_visit_customers"] == pytest.approx(6.5)
    assert [r["platform"] for r in context["tables"]["by_platform"]] == ["android", "ios", "web"]
    assert (context["n_lapsed"], context["n_contactable"]) == (1, 3)
    assert context["lapsed_href"] == "lapsed_customers_12d.csv"
    # the page: every chart drawn, nothing to fetch, no script
    page = report.read_text()
    assert page.count('<img class="chart"') == len(sections)
    assert "37.5%" in page and "6.5" in page
    assert "<script" not in page and 'src="http' not in page and 'href="http' not in page


@pytest.mark.integration
def test_report_renders_an_empty_export(report: Path, tmp_path: Path) -> None:
    from include.reporting import business

    source = business.latest_export()
    empty = tmp_path / "empty"
    empty.mkdir()
    con = duckdb.connect()
    for mart in business.MARTS:
        src = business.sql_literal(source / f"{mart}.parquet")
        dst = business.sql_literal(empty / f"{mart}.parquet")
        con.execute(f"copy (select * from read_parquet({src}) limit 0) to {dst} (format parquet)")
    con.close()
    for name in ("definitions.json", "manifest.json"):
        (empty / name).write_text((source / name).read_text())
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRASOS_DATA_DIR", str(tmp_path / "data"))
        context = business.page_context(empty, 14, tmp_path / "lapsed.csv")
        out = business.render_report(empty, 14, tmp_path / "lapsed.csv")
    assert set(context["charts"].values()) == {None}
    assert set(context["ranges"].values()) == {None}
    assert context["headline"] == {} and context["n_contactable"] == 0
    assert out.read_text().count("No data to chart.") == 5


@pytest.mark.integration
def test_report_in_headless_chromium(report: Path, chromium) -> None:
    shot = report.parent / "report.png"
    context = chromium(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(report.as_uri())
    assert page.title() == "Trasos business metrics"
    widths = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
    headings = page.locator("h2").all_inner_texts()
    page.screenshot(path=str(shot), full_page=True)
    assert len(widths) == 5 and all(w > 300 for w in widths)  # every chart decoded and drawn
    assert "Retention by first-purchase cohort" in headings
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    assert shot.stat().st_size > 50_000
    print(f"\nscreenshot: {shot}")


# --- fast checks (no dbt) ----------------------------------------------------------------------
def test_every_metrics_model_is_owned_by_da_and_states_its_grain() -> None:
    from include.reporting.business import MARTS, load_definitions

    definitions = load_definitions()
    folder = DBT_DIR / "models" / "marts" / "metrics"
    assert {p.stem for p in folder.glob("*.sql")} == set(MARTS) == set(definitions)
    for mart in MARTS:
        assert "config(meta={'owner': 'DA'})" in (folder / f"{mart}.sql").read_text(), mart
        assert definitions[mart]["meta"]["owner"] == "DA", mart
        assert "row" in definitions[mart]["description"].lower(), mart  # "One row per ..."


def test_dag_shape() -> None:
    from airflow.dag_processing.dagbag import DagBag

    from include.assets import WRITER_POOL
    from include.dag_rules import dag_violations, scheduled_assets

    bag = DagBag(
        dag_folder=str(REPO_ROOT / "dags" / "business_metrics.py"),
        known_pools={"default_pool", WRITER_POOL},
    )
    assert bag.import_errors == {}
    dag = bag.dags["business_metrics"]
    assert dag_violations(dag) == []
    tasks = {t.task_id: t for t in dag.tasks}
    assert tasks["export_metrics_marts"].upstream_task_ids == {"build_metrics_marts"}
    assert tasks["render_report"].upstream_task_ids == {
        "export_metrics_marts",
        "export_lapsed_customers",
    }
    assert tasks["build_metrics_marts"].pool == tasks["export_metrics_marts"].pool == WRITER_POOL
    # the analyst copy is refreshed once the metrics marts exist, reading in the writers' pool
    assert tasks["publish_analyst_copy"].upstream_task_ids == {"build_metrics_marts"}
    assert tasks["publish_analyst_copy"].pool == WRITER_POOL
    assert [o.name for o in tasks["render_report"].outlets] == ["business_metrics"]
    assert dag.params["lapsed_days"] == 14
    assert scheduled_assets(dag) == {"sessions"}


def test_lapsed_days_must_be_positive(tmp_path: Path) -> None:
    from include.reporting.business import write_lapsed_customers

    with pytest.raises(ValueError, match=">= 1"):
        write_lapsed_customers(tmp_path, 0)
