"""Great Expectations gates: suite builders (:mod:`expectations.suites`), the gate runner
(:mod:`expectations.gate`) and the offline Data Docs report (:mod:`expectations.docs`).

Importing this package is free: great_expectations and pandas are imported inside the
functions that need them, so DAG files can import the gate at parse time.

Typical use in a task body::

    from expectations.gate import GateFailed, run_gate

    result = run_gate("raw_events", df, n_quarantined=n_bad, run_name=run_id)
"""

from __future__ import annotations

from expectations.suites import SUITES

# suite -> owning role ("DE" | "DS"), read by include/tasks/owners.py for the ownership map.
SUITE_OWNERS: dict[str, str] = {name: spec.owner_role for name, spec in SUITES.items()}

__all__ = ["SUITES", "SUITE_OWNERS"]
