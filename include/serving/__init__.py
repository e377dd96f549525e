"""Recommendations API for the Scala backend (DE toolbox; never imports Airflow).

It serves the published, immutable recommendation files, never the live warehouse::

    <published_dir>/CURRENT                          the current model_version (os.replace'd)
    <published_dir>/<model_version>/recommendations.parquet   common.contracts.RECOMMENDATION_COLUMNS
    <published_dir>/<model_version>/model.json       version, trained_at, candidate, metrics

Modules:

* :mod:`include.serving.loader`  - reads one version into compact in-memory indexes
  (:class:`~include.serving.loader.Snapshot`) and follows ``CURRENT``
  (:class:`~include.serving.loader.ModelStore`, atomic swap, no restart).
* :mod:`include.serving.publish` - writes a version and flips ``CURRENT`` atomically;
  :func:`~include.serving.publish.publish_fixture` makes a synthetic one for tests and benches.
* :mod:`include.serving.auth`    - API keys (``X-API-Key``) from ``TRASOS_API_KEYS`` or a file.
* :mod:`include.serving.app`     - the FastAPI app (``create_app``) and its response models.

CLI: ``python -m include.serving serve|openapi|sample`` (see ``docs/serving.md``).
Nothing heavy is imported here, so ``include.serving.publish`` stays cheap to import.
"""
