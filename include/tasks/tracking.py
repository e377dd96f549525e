"""The training DAG's experiment tracking: :mod:`recsys.tracking` with the platform's paths.

``train`` logs the saved version's run (tagged with the dataset in the landing zone and the
training snapshot); ``publish`` and ``rollback`` mirror the registry's promotion history
(alias ``champion``). Tracking never fails a task: it logs a warning and returns None.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from include.settings import get_settings

log = logging.getLogger(__name__)

SIMULATOR_DIR = "_simulator"  # landing/_simulator/: the simulator's manifest
LOADER_DIR = "_loader"  # landing/_loader/<dataset>.json: a real dataset's loader summary


def dataset_name(landing_dir: Path) -> str:
    """What the landing zone holds: ``simulator``, the loaded public datasets, or ``landing``
    (files that arrived from elsewhere)."""
    loaded = sorted(p.stem for p in (landing_dir / LOADER_DIR).glob("*.json"))
    if loaded:
        return "+".join(loaded)
    return "simulator" if (landing_dir / SIMULATOR_DIR).exists() else "landing"


def warm_store() -> None:
    """Import MLflow and create the tracking store's tables ahead of :func:`track_training`.

    Both are Python work (6.5 s after ``make clean`` here: 3 s of import, 3.4 s of the
    SQLite store's migrations) that ``train`` runs in a thread while LightFM fits on the
    other core. Never fails: tracking reports its own errors later.
    """
    from recsys.tracking import client, enabled, store

    if not enabled():
        return
    try:
        client(store(get_settings().data_dir)).search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - track_training says what is wrong
        log.info("MLflow store not warmed up: %s", exc)


def track_training(summary: dict[str, Any], snapshot: dict[str, Any]) -> str | None:
    """Log the version ``train`` saved as an MLflow run; its run id, or None when untracked."""
    from recsys.tracking import enabled, log_training

    if not enabled():
        return None
    settings = get_settings()
    return log_training(
        summary["model_dir"],
        data_dir=settings.data_dir,
        dataset=dataset_name(settings.landing_dir),
        snapshot_id=Path(snapshot["snapshot"]).name,
        report_page=summary.get("report_path"),
    )


def track_registry() -> str | None:
    """Mirror ``models/promotions.json`` (alias ``champion``); the champion's MLflow version."""
    from recsys.tracking import sync_registry

    settings = get_settings()
    return sync_registry(settings.models_dir, settings.data_dir)
