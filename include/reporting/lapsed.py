"""The lapsed-customer list for marketing: ``<reports>/business/lapsed_customers_<N>d.csv``.

Contactable customers not seen for at least N days before the last day of data, read from
an export's ``metrics_customer_recency`` (never from the warehouse), longest-lapsed first.

Privacy: the report folder is read widely, so its copy carries pseudonymous keys in
``user_id`` (the samples' salted keyed hash, :mod:`include.samples.pseudonym`; one salt per
export and N, kept by DE as ``lapsed-<N>d-<export id>``). Marketing gets the customer ids only
where its export destination is configured: ``TRASOS_MARKETING_EXPORT_DIR`` (a folder,
typically the mount of the campaign tool) receives the same list with the real ids.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from common.fs import atomic_write_with
from include.reporting.export import business_dir, sql_literal
from include.samples import pseudonym

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


MARKETING_EXPORT_ENV = "TRASOS_MARKETING_EXPORT_DIR"


def lapsed_path(days: int) -> Path:
    return business_dir() / f"lapsed_customers_{days}d.csv"


def marketing_export_dir() -> Path | None:
    """Marketing's configured destination for lists with real customer ids, or None."""
    value = os.environ.get(MARKETING_EXPORT_ENV)
    return Path(value) if value else None


def lapsed_salt_name(export_dir: Path, days: int) -> str:
    """Name of the salt of the pseudonymised list of one export and N."""
    return f"lapsed-{int(days)}d-{export_dir.name}"


def write_lapsed_customers(export_dir: Path, days: int = DEFAULT_LAPSED_DAYS) -> Path:
    """``lapsed_customers_<days>d.csv``: customers whose last visit is ``days`` or more days
    before the last day of data (metrics_customer_recency), longest-lapsed first."""
    import duckdb

    if int(days) != days or days < 1:
        raise ValueError(f"lapsed days must be a whole number of days >= 1, got {days!r}")
    source = sql_literal(export_dir / "metrics_customer_recency.parquet")
    order = "order by days_since_last_session desc, user_id"
    where = f"where days_since_last_session >= {int(days)}"

    def query(pseudonymised: bool) -> str:
        columns = [
            f"{pseudonym.key_sql('user_id')} as user_id" if c == "user_id" and pseudonymised else c
            for c in LAPSED_COLUMNS
        ]
        # ordered by the real id, so both copies list customers in the same order
        return (
            f"select {', '.join(columns)} from (select *, row_number() over ({order}) as position "
            f"from read_parquet({source}) {where}) order by position"
        )

    def writer(pseudonymised: bool):
        params = [pseudonym.salt_for(lapsed_salt_name(export_dir, days))] if pseudonymised else []

        def write(tmp: Path) -> None:
            con = duckdb.connect()
            try:
                con.execute(
                    f"copy ({query(pseudonymised)}) to {sql_literal(tmp)} (format csv, header)",
                    params,
                )
            finally:
                con.close()

        return write

    destination = marketing_export_dir()
    if destination is not None:
        sent = atomic_write_with(
            destination / f"lapsed_customers_{int(days)}d.csv", writer(False), suffix=".csv"
        )
        log.info("lapsed list with customer ids -> marketing's destination %s", sent)
    out = atomic_write_with(lapsed_path(int(days)), writer(True), suffix=".csv")
    log.info("customers lapsed for %d+ days (pseudonymised) -> %s", days, out)
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
