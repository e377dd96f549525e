"""Loaders: real public datasets -> the landing-zone contract (events, catalog, customers).

One module per dataset, each with its field mapping in the module docstring and a
``load(data_dir=None, source_dir=None) -> summary`` function; :mod:`include.loaders.common`
holds the write protocol (atomic, idempotent, every source row written or counted as skipped).

CLI: ``python -m include.loaders list | all | <name> [--out DATADIR] [--source REALDIR]``.
Sources are read in place from ``$TRASOS_REAL_DATA_DIR`` (default ``../shared/data/real``
next to the repository); they are never copied into the repository.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

# name -> module under include.loaders (imported on use).
LOADERS: dict[str, str] = {
    "rees46": "rees46",
    "retailrocket": "retailrocket",
    "hm": "hm",
    "taobao": "taobao",
    "otto": "otto",
    "yoochoose": "yoochoose",
    "amazon_grocery": "amazon_grocery",
}


def loader_module(name: str) -> ModuleType:
    """The module of loader ``name``; a ValueError lists the known names."""
    if name not in LOADERS:
        raise ValueError(f"unknown loader {name!r}; known: {', '.join(LOADERS)}")
    return importlib.import_module(f"{__name__}.{LOADERS[name]}")


def load(
    name: str, data_dir: Path | None = None, source_dir: Path | None = None
) -> dict[str, object]:
    """Run loader ``name`` into ``data_dir`` (default: settings' data dir); returns its summary."""
    fn: Callable[..., dict[str, object]] = loader_module(name).load
    return fn(data_dir=data_dir, source_dir=source_dir)
