"""Task bodies of ``business_metrics`` (DA): metrics marts, their export, the lapsed list,
the report page. The work is :mod:`include.reporting`; this layer takes and returns what
XCom carries (strings, ints).
"""

from __future__ import annotations

from pathlib import Path

from include.reporting.lapsed import DEFAULT_LAPSED_DAYS

__all__ = [
    "DEFAULT_LAPSED_DAYS",
    "build_marts",
    "export",
    "lapsed_list",
    "publish_analyst_copy",
    "render",
]


def build_marts() -> str:
    """``dbt build`` the DA metrics marts; dbt's summary line."""
    from include.reporting.export import build_marts as build

    return build()


def publish_analyst_copy() -> str:
    """Refresh the analyst copy so it holds the metrics marts just built; its folder."""
    from include.tasks.transform import publish_analyst_copy as publish

    return publish()


def export() -> str:
    """Export the metrics marts (read-only) to an immutable folder; its path."""
    from include.reporting.export import export_marts

    return str(export_marts())


def lapsed_list(export_dir: str, days: int) -> str:
    """The lapsed-customer CSV for marketing from an export; its path."""
    from include.reporting.lapsed import write_lapsed_customers

    return str(write_lapsed_customers(Path(export_dir), days))


def render(export_dir: str, days: int, lapsed_csv: str) -> str:
    """The business report page from an export; its path."""
    from include.reporting.business import render_report

    return str(render_report(Path(export_dir), days, Path(lapsed_csv)))
