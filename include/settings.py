"""Every path and tunable of the platform, derived from environment variables.

One root, ``TRASOS_DATA_DIR`` (default ``./data`` under the repository), holds all
data. Nothing else in the code base builds a data path by hand: import
:func:`get_settings` and use its attributes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from include.storage import Store, store_from_env

REPO_ROOT = Path(__file__).resolve().parent.parent


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    if value and "://" in value:
        # Path("s3://b/x") is the local folder "s3:/b/x": refuse instead of writing there.
        raise ValueError(
            f"{name}={value!r} is a URL, but {name} must be a local folder (the warehouse, the "
            "landing zone and the reports live there). Put the lake, quarantine, models and "
            "published files on an object store with TRASOS_STORE_URL=s3://bucket/prefix "
            "(see docs/scale-out.md)."
        )
    path = Path(value) if value else default
    return path if path.is_absolute() else (REPO_ROOT / path)


@dataclass(frozen=True)
class Settings:
    """Resolved locations. Construct with :func:`get_settings` so env changes are seen."""

    data_dir: Path
    state_dir: Path

    @cached_property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def landing_events_dir(self) -> Path:
        return self.landing_dir / "events"

    @property
    def lake_dir(self) -> Path:
        return self._stored / "lake"

    @property
    def quarantine_dir(self) -> Path:
        return self._stored / "quarantine"

    @property
    def _stored(self) -> Path:
        """The local root of the stored folders: the data directory (or the local folder
        TRASOS_STORE_URL names); with an object store, this host's cache of it under the state
        directory (``models/``, ``published/`` synced from and to the store)."""
        if self.store.remote:
            return self.state_dir / "store_cache"
        return Path(self.store.root)

    def local_copy(self, key: str) -> Path:
        """The local file of a store key (``models/_snapshots/<run>``): the file itself on the
        local default, this host's cached copy with an object store."""
        return self._stored / key

    @cached_property
    def store(self) -> Store:
        """Lake, quarantine, models and published files: ``TRASOS_STORE_URL`` (an
        ``s3://`` object store) or, by default, this data directory (:mod:`include.storage`)."""
        return store_from_env(self.data_dir)

    @property
    def warehouse_path(self) -> Path:
        return _env_path("TRASOS_WAREHOUSE", self.data_dir / "warehouse.duckdb")

    @property
    def dbt_target(self) -> str:
        """The dbt output of dbt_project/profiles.yml: ``TRASOS_DBT_TARGET`` (``dev``, ``spark``,
        ``spark_thrift``), else ``object_store`` when the lake is on an object store
        (``TRASOS_STORE_URL=s3://...``), else ``dev`` (DuckDB, the default). Every dbt run and
        every reader of marts follows it."""
        explicit = os.environ.get("TRASOS_DBT_TARGET")
        return explicit or ("object_store" if self.store.remote else "dev")

    @property
    def spark_dir(self) -> Path:
        """The Spark target's warehouse (``warehouse/{schema}.db/{table}``, Parquet) and its
        Derby metastore (``metastore_db``): ``TRASOS_SPARK_DIR``, default ``$DATA/spark``."""
        return _env_path("TRASOS_SPARK_DIR", self.data_dir / "spark")

    @property
    def models_dir(self) -> Path:
        return self._stored / "models"

    @property
    def published_dir(self) -> Path:
        return self._stored / "published"

    @property
    def analyst_dir(self) -> Path:
        """Read-only copies of the marts for ad-hoc queries (:mod:`include.analyst`)."""
        return self.data_dir / "analyst"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def notifications_file(self) -> Path:
        return self.data_dir / "notifications.jsonl"

    @property
    def airflow_home(self) -> Path:
        return _env_path("AIRFLOW_HOME", self.state_dir / "airflow")

    @property
    def dbt_project_dir(self) -> Path:
        return REPO_ROOT / "dbt_project"

    @property
    def late_window_days(self) -> int:
        return int(os.environ.get("TRASOS_LATE_WINDOW_DAYS", "3"))

    @property
    def definition_of_done(self) -> Path | None:
        """The definition-of-done contract training is gated by (``TRASOS_DEFINITION_OF_DONE``);
        None: the one DS and DE agreed on, ``recsys/definition_of_done.yaml``."""
        name = "TRASOS_DEFINITION_OF_DONE"
        return _env_path(name, REPO_ROOT) if os.environ.get(name) else None

    @property
    def airflow_base_url(self) -> str:
        return os.environ.get("TRASOS_AIRFLOW_URL", "http://127.0.0.1:8080")

    def ensure_dirs(self) -> None:
        stored = (self.lake_dir, self.quarantine_dir, self.models_dir, self.published_dir)
        for path in (
            self.landing_events_dir,
            *(() if self.store.remote else stored),  # on an object store: nothing local
            self.reports_dir,
        ):
            path.mkdir(parents=True, exist_ok=True)
        self.store.ensure()


def get_settings() -> Settings:
    """Read the environment now (cheap; call it where paths are needed)."""
    return Settings(
        data_dir=_env_path("TRASOS_DATA_DIR", REPO_ROOT / "data"),
        state_dir=_env_path("TRASOS_STATE_DIR", REPO_ROOT / ".state"),
    )
