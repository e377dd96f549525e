"""Airflow's local settings for this repo: the scheduler preloads what the tasks import.

Airflow imports a module of this name from ``sys.path`` in every one of its processes
(``airflow.settings.import_local_settings``); the repo is on the path of every process of
the venv (``make setup``'s ``trasos.pth``, ``PYTHONPATH`` in ``include.airflowctl``).

With the LocalExecutor (``make up``) the scheduler forks its worker processes when it starts
and every task process is forked from a worker, so a module the scheduler has imported is
already imported in every task. dbt (the Cosmos producer), Great Expectations (each gate)
and Cosmos (each of ``events_transform``'s ~40 tasks) take about 3 s, 2 s and 0.9 s to
import on 2 cores (compiled): paid once here, not once per task. Other
Airflow processes (API server, DAG processor, triggerer, the CLI) import nothing here.
None of these imports starts a thread, so forking after them is safe.
"""

from __future__ import annotations

import importlib
import logging
import sys

__all__ = ["task_policy"]


def task_policy(task) -> None:  # noqa: ANN001 - Airflow's BaseOperator
    """Cluster profile (``TRASOS_WRITER_QUEUE``, :mod:`include.cluster`): every task of the
    one-slot DuckDB writer pool runs on the Celery queue of the host that holds the warehouse
    file. Without the variable (the embedded default) nothing changes."""
    import os

    queue = os.environ.get("TRASOS_WRITER_QUEUE")
    if not queue:
        return
    from include.assets import WRITER_POOL

    if task.pool == WRITER_POOL:
        task.queue = queue


#: Imported by the scheduler before its LocalExecutor forks the workers.
PRELOAD = ("dbt.cli.main", "dbt.adapters.duckdb", "great_expectations", "cosmos.operators.watcher")

if sys.argv[1:2] == ["scheduler"]:
    from include.tasks.transform import cosmos_defaults

    cosmos_defaults()  # before Cosmos reads its settings
    for _name in PRELOAD:
        try:
            importlib.import_module(_name)
        except Exception:  # noqa: BLE001 - a task imports it again and reports the error
            logging.getLogger(__name__).warning("could not preload %s", _name, exc_info=True)
