"""Every HTML page of the platform, rendered from Jinja2 templates (autoescape on).

One base layout (``templates/base.html``) and one stylesheet (``templates/style.css``, inlined
so each page is a single file that opens offline); one template per page. Python code passes
data (numbers, rows as dicts, chart images as ``data:`` URIs) and never builds markup:
formatting a number for a page is a template filter (``int``, ``pct``, ``num`` ...).

    from include.reporting.pages import write_page
    write_page(reports_dir / "owners.html", "owners.html", rows=[...])
"""

from __future__ import annotations

import math
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from common.fs import atomic_write_text

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
#: Shown for a missing value (None, NaN): a rate without denominator, an empty table cell.
MISSING = "–"


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, pd.NA
    except (TypeError, ValueError):
        return True


def fmt_int(value: Any) -> str:
    """A count: ``2897`` -> ``2,897`` (also when it arrives as the float ``2897.0``)."""
    if _missing(value):
        return MISSING
    return f"{round(float(value)):,}"


def fmt_pct(value: Any, digits: int = 1) -> str:
    """A share in [0, 1] as a percentage: ``0.375`` -> ``37.5%``."""
    if _missing(value):
        return MISSING
    return f"{float(value):.{digits}%}"


def fmt_decimal(value: Any, digits: int = 1) -> str:
    """A measured quantity with ``digits`` decimals and thousands separators."""
    if _missing(value):
        return MISSING
    return f"{float(value):,.{digits}f}"


def fmt_date(value: Any) -> str:
    """A date (or the date part of a timestamp) as ``YYYY-MM-DD``."""
    if _missing(value):
        return MISSING
    if isinstance(value, datetime | date):
        return value.isoformat()[:10]
    return str(value)[:10]


def fmt_num(value: Any, digits: int = 4) -> str:
    """Any value of a generic table: integers (also whole floats such as epochs ``3.0``) as
    integers, other numbers with ``digits`` significant decimals, text as it is."""
    if isinstance(value, bool):
        return str(value)
    if _missing(value):
        return MISSING
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float) or hasattr(value, "dtype"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return str(value)
        if math.isinf(number):
            return str(number)
        if number.is_integer() and abs(number) < 1e15:
            return f"{int(number):,}"
        return f"{number:.{digits}f}" if abs(number) < 100 else f"{number:,.1f}"
    return str(value)


def fmt_metric(value: Any) -> str:
    """A model metric: 4 decimals (1 from 100 up, e.g. seconds), counts as whole numbers."""
    if isinstance(value, bool):
        return str(value)
    if _missing(value):
        return MISSING
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, str):
        return value
    number = float(value)
    return f"{number:.4f}" if abs(number) < 100 else f"{number:,.1f}"


def fmt_sig(value: Any, digits: int = 3) -> str:
    """A figure with ``digits`` significant digits (``inf`` for a threshold never reached)."""
    if _missing(value):
        return MISSING
    return f"{float(value):.{digits}g}"


def fmt_datetime(value: Any) -> str:
    """A timestamp to the second, ``YYYY-MM-DD HH:MM:SS`` (UTC where the data is UTC)."""
    if _missing(value):
        return MISSING
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)[:19].replace("T", " ")


FILTERS = {
    "int": fmt_int,
    "pct": fmt_pct,
    "decimal": fmt_decimal,
    "date": fmt_date,
    "num": fmt_num,
    "sig": fmt_sig,
    "metric": fmt_metric,
    "datetime": fmt_datetime,
}


def fmt(value: Any, kind: str = "num") -> str:
    """``value`` formatted as ``kind`` (``int``, ``pct``, ``decimal``, ``days``, ``money``,
    ``points``, ``date``, ``datetime``, ``sig``, ``metric``, ``num``, ``text`` or ``long``
    text): the one switch the table macro uses."""
    if kind == "days":
        return fmt_decimal(value, 1)
    if kind == "money":
        return fmt_decimal(value, 2)
    if kind == "points":  # a percentage (margin %): 12.3, and 2,788 rather than 2,788.0
        return fmt_decimal(value, 1 if _missing(value) or abs(float(value)) < 100 else 0)
    if kind in ("text", "long"):
        return MISSING if _missing(value) else str(value)
    return FILTERS[kind](value)


@lru_cache(maxsize=1)
def environment() -> Any:
    """The one Jinja2 environment: templates from ``TEMPLATES_DIR``, autoescape on, undefined
    names raise (a typo in a template fails the render, not the reader)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(FILTERS)
    env.filters["fmt"] = fmt
    return env


def render(template_name: str, **context: Any) -> str:
    """The page ``template_name`` rendered with ``context`` (values are escaped)."""
    return environment().get_template(template_name).render(**context)


def write_page(path: str | Path, template: str, **context: Any) -> Path:
    """Render ``template`` and write it to ``path`` atomically; returns ``path``."""
    return atomic_write_text(path, render(template, **context))
