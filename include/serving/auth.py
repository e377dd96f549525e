"""API keys for the recommendations API (header ``X-API-Key``).

Keys come from ``TRASOS_API_KEYS`` (comma-separated) when it is set and non-empty, else from
``<state_dir>/api_keys.txt`` (one key a line, ``#`` comments; the state dir is git-ignored).
When neither exists, that file is created with one random key (mode 0600) and its path is
printed. Comparison is constant-time (:func:`hmac.compare_digest`) against every key.
"""

from __future__ import annotations

import hmac
import os
import secrets
import sys
from collections.abc import Iterable
from pathlib import Path

from include.settings import get_settings

API_KEY_HEADER = "X-API-Key"
API_KEYS_ENV = "TRASOS_API_KEYS"
API_KEYS_FILE = "api_keys.txt"


def api_keys_file() -> Path:
    return get_settings().state_dir / API_KEYS_FILE


def _parse(lines: Iterable[str]) -> list[str]:
    keys = []
    for line in lines:
        key = line.split("#", 1)[0].strip()
        if key:
            keys.append(key)
    return keys


def load_api_keys(*, create: bool = True, announce: bool = True) -> tuple[list[str], str]:
    """The accepted keys and where they came from (``"env TRASOS_API_KEYS"`` or a file path)."""
    env = os.environ.get(API_KEYS_ENV, "")
    if env.strip():
        return _parse(env.split(",")), f"env {API_KEYS_ENV}"
    path = api_keys_file()
    if not path.exists():
        if not create:
            return [], str(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        key = "trs_" + secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(
                "# API keys of the Trasos recommendations API, one a line (send one as X-API-Key).\n"
                f"{key}\n"
            )
        if announce:
            print(f"generated an API key in {path} (send it as {API_KEY_HEADER})", file=sys.stderr)
    keys = _parse(path.read_text(encoding="utf-8").splitlines())
    if not keys:
        raise RuntimeError(f"{path} holds no API key")
    return keys, str(path)


class KeyRing:
    """Accepted keys; :meth:`accepts` compares in constant time against each of them."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = [key.encode("utf-8") for key in keys if key]

    def __len__(self) -> int:
        return len(self._keys)

    def accepts(self, candidate: str) -> bool:
        given = candidate.encode("utf-8", "surrogateescape")
        found = False
        for key in self._keys:  # no early exit: time does not depend on which key matched
            found |= hmac.compare_digest(given, key)
        return found
