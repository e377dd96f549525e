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

REPO_ROOT = Path(__file__).resolve().parent.parent


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
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
        return self.data_dir / "lake"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def warehouse_path(self) -> Path:
        return _env_path("TRASOS_WAREHOUSE", self.data_dir / "warehouse.duckdb")

    @property
    def dbt_target(self) -> str:
        """The dbt output of dbt_project/profiles.yml: ``dev`` (DuckDB, default) or ``spark``
        (``TRASOS_DBT_TARGET``). Every dbt run and every reader of marts follows it."""
        return os.environ.get("TRASOS_DBT_TARGET") or "dev"

    @property
    def spark_dir(self) -> Path:
        """The Spark target's warehouse (``warehouse/<schema>.db/<table>``, Parquet) and its
        Derby metastore (``metastore_db``): ``TRASOS_SPARK_DIR``, default ``$DATA/spark``."""
        return _env_path("TRASOS_SPARK_DIR", self.data_dir / "spark")

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def published_dir(self) -> Path:
        return self.data_dir / "published"

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
        for path in (
            self.landing_events_dir,
            self.lake_dir,
            self.quarantine_dir,
            self.models_dir,
            self.published_dir,
            self.reports_dir,
        ):
            path.mkdir(parents=True, exist_ok=True)


def get_settings() -> Settings:
    """Read the environment now (cheap; call it where paths are needed)."""
    return Settings(
        data_dir=_env_path("TRASOS_DATA_DIR", REPO_ROOT / "data"),
        state_dir=_env_path("TRASOS_STATE_DIR", REPO_ROOT / ".state"),
    )
