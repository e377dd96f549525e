"""The data-quality overview page: the latest result of every GX gate, one row per suite.

:func:`record_result` keeps ``<reports_dir>/data_quality.json`` (latest result per suite) and
renders ``<reports_dir>/data_quality.html`` from the ``data_quality.html`` template of
:mod:`include.reporting.pages`: a self-contained table (no scripts, no external files) that a
data engineer opens first; it links to the GX Data Docs page of each latest run.

The gate (:mod:`expectations.gate`) calls this module; this module imports neither the gate
nor :mod:`expectations.docs`, so the three form no import cycle.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

OVERVIEW_HTML = "data_quality.html"
OVERVIEW_JSON = "data_quality.json"


def format_observed(value: Any) -> str:
    """An observed value for people: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _status(entry: dict[str, Any]) -> tuple[str, str]:
    if not entry["success"]:
        return "FAILED", "failed"
    if entry["n_warnings"]:
        return "PASSED with warnings", "warned"
    return "PASSED", "passed"


def _href(path: str | None, reports_dir: Path) -> str | None:
    """A link from the overview to ``path``: relative when it can be, else a file URI."""
    if not path:
        return None
    try:
        return Path(os.path.relpath(Path(path), reports_dir)).as_posix()
    except ValueError:  # another drive (Windows)
        return Path(path).as_uri()


def overview_context(state: dict[str, Any], reports_dir: Path) -> dict[str, Any]:
    """What the overview shows: one row per suite (suites in their declared order, then any
    others), and each suite's failed expectations, critical ones first."""
    from expectations.suites import SUITES

    order = [name for name in SUITES if name in state] + sorted(set(state) - set(SUITES))
    rows, failures = [], []
    for name in order:
        entry = state[name]
        label, css = _status(entry)
        rows.append(
            {
                "suite": name,
                "asset": entry.get("asset", ""),
                "owner_role": entry["owner_role"],
                "status": label,
                "status_class": css,
                "n_expectations": entry["n_expectations"],
                "n_critical_failures": entry["n_critical_failures"],
                "n_warnings": entry["n_warnings"],
                "n_rows": entry["n_rows"],
                "validated_at": entry["validated_at"],
                "run_name": entry.get("run_name") or "",
                "docs_href": _href(entry.get("docs_path"), reports_dir),
            }
        )
        problems = [("critical", f) for f in entry.get("critical_failures", [])] + [
            ("warning", f) for f in entry.get("warnings", [])
        ]
        if problems:
            failures.append(
                {
                    "suite": name,
                    "items": [
                        {
                            "severity": severity,
                            "expectation": f["expectation"],
                            "column": f.get("column"),
                            "description": f.get("description"),
                            "observed": format_observed(f["observed_value"]),
                        }
                        for severity, f in problems
                    ],
                }
            )
    return {
        "title": "Data quality: latest result of every gate",
        "rows": rows,
        "failures": failures,
        "index_href": _href(str(reports_dir / "data_docs" / "index.html"), reports_dir),
    }


def record_result(reports_dir: Path, entry: dict[str, Any]) -> Path:
    """Store ``entry`` as the latest result of its suite and re-render the overview page.

    ``entry`` is :meth:`expectations.gate.GateResult.summary`. Returns the overview path.
    """
    from common.fs import atomic_write_text
    from include.reporting.pages import write_page

    state_path = reports_dir / OVERVIEW_JSON
    state: dict[str, Any] = {}
    if state_path.is_file():
        try:
            state = json.loads(state_path.read_text())
        except json.JSONDecodeError:
            log.warning("%s was unreadable; starting a new one", state_path)
    state[entry["suite"]] = entry
    atomic_write_text(state_path, json.dumps(state, indent=2, sort_keys=True, default=str))
    return write_page(
        reports_dir / OVERVIEW_HTML, "data_quality.html", **overview_context(state, reports_dir)
    )
