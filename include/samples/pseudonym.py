"""Pseudonymisation: identifiers replaced by salted keyed hashes, the salt kept by DE.

A key is ``substr(sha256(salt || id), 1, 32)``: 32 hex characters (128 bits), computed in
DuckDB SQL with the salt as a bound parameter. Each sample (and each marketing list) has its
own random 256-bit salt, so the same visitor has the same key everywhere inside one sample
(files join on it) and unrelated keys in two samples (samples cannot be joined to each other
or to raw data). Salts live under ``<TRASOS_STATE_DIR>/sample_salts/<name>.salt`` (folder
mode 700, files mode 600), never in the sample folder: only DE can re-identify a key, by
hashing candidate ids with the stored salt.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from common.fs import atomic_write_text
from include.settings import get_settings

#: Length in hex characters of a pseudonymous key.
KEY_LENGTH = 32
#: What a pseudonymous key looks like (the GX sample suite checks id columns against it).
KEY_PATTERN = rf"^[0-9a-f]{{{KEY_LENGTH}}}$"
_SALT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def salts_dir() -> Path:
    """``<TRASOS_STATE_DIR>/sample_salts``: DE's salts, outside every data folder readers get."""
    return get_settings().state_dir / "sample_salts"


def salt_path(name: str) -> Path:
    if not _SALT_NAME.match(name):
        raise ValueError(
            f"salt name {name!r} must be letters, digits, '_', '.', '-' (the sample id)"
        )
    return salts_dir() / f"{name}.salt"


def generate_salt() -> str:
    """A fresh random 256-bit salt (hex); nothing is stored until :func:`store_salt`."""
    return secrets.token_hex(32)


def store_salt(name: str, salt: str) -> Path:
    """Keep ``salt`` as DE's record for ``name`` (folder 700, file 600); refuses to replace one,
    since the keys already handed out would become unexplainable."""
    path = salt_path(name)
    if path.exists():
        raise FileExistsError(f"salt {path} exists already: a sample id is used once")
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    atomic_write_text(path, salt)
    os.chmod(path, 0o600)
    return path


def salt_for(name: str) -> str:
    """The stored salt of ``name``, created on first use (a list re-written from the same
    export keeps its keys)."""
    path = salt_path(name)
    if path.exists():
        return load_salt(name)
    salt = generate_salt()
    store_salt(name, salt)
    return salt


def load_salt(name: str) -> str:
    """The stored salt of ``name`` (DE only: to re-identify a key on a justified request)."""
    path = salt_path(name)
    if not path.exists():
        raise FileNotFoundError(f"no salt for {name!r} in {path.parent}")
    return path.read_text(encoding="utf-8").strip()


def key_sql(column_sql: str) -> str:
    """SQL for the key of ``column_sql``; takes the salt as one bound ``?`` parameter.
    Nulls stay null. ``column_sql`` must be a validated, quoted identifier."""
    return f"substr(sha256(cast(? as varchar) || cast({column_sql} as varchar)), 1, {KEY_LENGTH})"


def quote_identifier(name: str) -> str:
    """A DuckDB identifier in double quotes (for names already checked against an allow-list
    or the table's own columns)."""
    return '"' + name.replace('"', '""') + '"'
