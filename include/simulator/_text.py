"""Vectorised text helpers: ids and digits written straight into uint8 matrices."""

from __future__ import annotations

import numpy as np

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_DIGITS0 = ord("0")


def as_fixed(matrix: np.ndarray) -> np.ndarray:
    """View an ``(n, w)`` uint8 matrix as ``(n,)`` fixed-width bytes ``S<w>``."""
    m = np.ascontiguousarray(matrix, dtype=np.uint8)
    return m.view(f"S{m.shape[1]}").ravel()


_HEX_PAIRS = np.stack([_HEX[np.arange(256) >> 4], _HEX[np.arange(256) & 15]], axis=1)
# The same two characters as one uint16: one gather per byte instead of two.
_HEX16 = np.ascontiguousarray(_HEX_PAIRS).view(np.uint16).ravel()
DIGITS16 = np.frombuffer("".join(f"{i:02d}" for i in range(100)).encode(), np.uint16).copy()


def hex_matrix(raw: np.ndarray) -> np.ndarray:
    """``(n, k)`` random bytes -> ``(n, 2k)`` uint8 matrix of lowercase hex characters."""
    return _HEX16[raw].view(np.uint8).reshape(raw.shape[0], raw.shape[1] * 2)


def hex_ids(rng: np.random.Generator, n: int, prefix: str, nbytes: int) -> np.ndarray:
    """``n`` random ids ``<prefix><2*nbytes hex>`` as an ``(n,)`` ``S`` array."""
    body = hex_matrix(rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8))
    pre = np.frombuffer(prefix.encode(), dtype=np.uint8)
    out = np.empty((n, len(pre) + body.shape[1]), dtype=np.uint8)
    out[:, : len(pre)] = pre
    out[:, len(pre) :] = body
    return as_fixed(out)


_UUID_GROUPS = ((0, 4, 0), (4, 6, 9), (6, 8, 14), (8, 10, 19), (10, 16, 24))


def write_uuid4(out: np.ndarray, col: int, raw: np.ndarray) -> None:
    """Write ``(n, 16)`` random bytes as canonical UUID4 text into ``out[:, col:col+36]``."""
    raw = raw.copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    hexes = hex_matrix(raw)
    for lo, hi, at in _UUID_GROUPS:
        out[:, col + at : col + at + 2 * (hi - lo)] = hexes[:, 2 * lo : 2 * hi]
    for dash in (8, 13, 18, 23):
        out[:, col + dash] = ord("-")


def write_pairs(out: np.ndarray, col: int, values: np.ndarray) -> None:
    """Write ``values`` (0..99) as two digits into ``out[:, col:col+2]``."""
    out[:, col : col + 2] = DIGITS16[values].view(np.uint8).reshape(len(values), 2)


def uuid4_matrix(raw: np.ndarray) -> np.ndarray:
    """``(n, 16)`` random bytes -> ``(n, 36)`` uint8 matrix of canonical UUID4 text."""
    out = np.empty((raw.shape[0], 36), dtype=np.uint8)
    write_uuid4(out, 0, raw)
    return out


def write_digits(out: np.ndarray, col: int, values: np.ndarray, width: int) -> None:
    """Write zero-padded decimal ``values`` into ``out[:, col:col+width]`` (in place)."""
    v = values.astype(np.int64, copy=True)
    for j in range(width - 1, -1, -1):
        out[:, col + j] = _DIGITS0 + (v % 10)
        v //= 10


def padded_ids(prefix: str, values: np.ndarray, width: int) -> np.ndarray:
    """``prefix`` + zero-padded ``values`` as an ``(n,)`` ``S`` array, e.g. ``i000042``."""
    pre = np.frombuffer(prefix.encode(), dtype=np.uint8)
    out = np.empty((len(values), len(pre) + width), dtype=np.uint8)
    out[:, : len(pre)] = pre
    write_digits(out, len(pre), values, width)
    return as_fixed(out)


def to_str(values: np.ndarray) -> np.ndarray:
    """Fixed-width bytes -> numpy variable-width strings (for concatenation)."""
    return values.astype(np.dtypes.StringDType())


def concat(*parts: np.ndarray | str) -> np.ndarray:
    """Element-wise concatenation of string arrays and scalars (numpy StringDType)."""
    sdt = np.dtypes.StringDType()
    out = None
    for part in parts:
        arr = np.asarray(part, dtype=sdt) if isinstance(part, str) else part.astype(sdt)
        out = arr if out is None else np.strings.add(out, arr)
    assert out is not None
    return out
