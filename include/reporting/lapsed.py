"""The lapsed-customer list for marketing: ``<reports>/business/lapsed_customers_<N>d.csv``.

Contactable customers not seen for at least N days before the last day of data, read from
an export's ``metrics_customer_recency`` (never from the warehouse), longest-lapsed first.
"""

from __future__ import annotations

import logging
from pathlib import Path

from common.fs import atomic_write_with
from include.reporting.export import business_dir, sql_literal

log = logging.getLogger(__name__)

DEFAULT_LAPSED_DAYS = 14
#: Columns of the marketing export, in file order.
LAPSED_COLUMNS: tuple[str, ...] = (
    "user_id",
    "country",
    "is_newsletter_subscriber",
    "last_session_date",
    "days_since_last_session",
    "last_purchase_date",
    "days_since_last_purchase",
    "n_orders",
    "n_sessions",
    "data_end_date",
)


def lapsed_path(days: int) -> Path:
    return business_dir() / f"lapsed_customers_{days}d.csv"


def write_lapsed_customers(export_dir: Path, days: int = DEFAULT_LAPSED_DAYS) -> Path:
    """``lapsed_customers_<days>d.csv``: customers whose last visit is ``days`` or more days
    before the last day of data (metrics_customer_recency), longest-lapsed first."""
    import duckdb

    if int(days) != days or days < 1:
        raise ValueError(f"lapsed days must be a whole number of days >= 1, got {days!r}")
    source = sql_literal(export_dir / "metrics_customer_recency.parquet")
    query = (
        f"select {', '.join(LAPSED_COLUMNS)} from read_parquet({source}) "
        f"where days_since_last_session >= {int(days)} "
        "order by days_since_last_session desc, user_id"
    )

    def write(tmp: Path) -> None:
        con = duckdb.connect()
        try:
            con.execute(f"copy ({query}) to {sql_literal(tmp)} (format csv, header)")
        finally:
            con.close()

    out = atomic_write_with(lapsed_path(int(days)), write, suffix=".csv")
    log.info("customers lapsed for %d+ days -> %s", days, out)
    return out


def count_lapsed(lapsed_csv: Path) -> int:
    """Customers in a lapsed list (its data rows)."""
    import duckdb

    con = duckdb.connect()
    try:
        return con.execute(f"select count(*) from read_csv({sql_literal(lapsed_csv)})").fetchall()[
            0
        ][0]
    finally:
        con.close()
