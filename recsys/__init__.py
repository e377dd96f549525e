"""Trasos recommender library: a plain library (no Airflow, no include/).

Entry points for the training DAG::

    from recsys.pipeline import run_training          # train, evaluate, gate, save a version
    from recsys.registry import promote, rollback      # move / restore the `current` pointer
    from recsys.scoring import score_version           # batch recommendations to Parquet

Layout: ``columns`` (names), ``config`` (frozen configs), ``data`` (ids, matrices, features,
time split), ``models/`` (one interface), ``ranking`` (top-k kernels), ``metrics``,
``evaluate``, ``dod`` + ``definition_of_done.yaml``, ``registry``, ``scoring``, ``report``,
``pipeline``, ``synthetic`` (planted-taste data for tests and the benchmark).
"""

from __future__ import annotations

__all__ = ["__version__"]
__version__ = "0.1.0"
