"""Embedding <-> BSON binary vector (subtype 9, float32), the storage format of every vector.

Why not ``Binary.as_vector()`` when reading: it builds a Python list per vector; the payload is
a 2-byte header (dtype 0x27, padding 0) followed by raw little-endian float32, so a whole
catalog decodes with one ``np.frombuffer`` per document and one concatenation.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from bson.binary import Binary, BinaryVectorDtype

FLOAT32_HEADER = b"\x27\x00"


def to_binary(vector: np.ndarray) -> Binary:
    """One (D,) float vector -> BSON binary vector (what Atlas $vectorSearch also reads)."""
    return Binary.from_vector(np.ascontiguousarray(vector, dtype=np.float32),
                              BinaryVectorDtype.FLOAT32)


def from_binary(value: Binary | bytes) -> np.ndarray:
    """BSON float32 binary vector -> (D,) float32 array (no Python list in between)."""
    raw = bytes(value)
    if raw[:2] != FLOAT32_HEADER:
        raise ValueError(f"not a float32 BSON binary vector (header {raw[:2]!r})")
    return np.frombuffer(raw, dtype=np.float32, offset=2)


def stack_binaries(values: Iterable[Binary | bytes], dim: int) -> np.ndarray:
    """Decode many vectors of dimension ``dim`` into one (N, dim) float32 matrix."""
    payload = b"".join(bytes(v)[2:] for v in values)
    out = np.frombuffer(payload, dtype=np.float32)
    if out.size % dim:
        raise ValueError(f"stored vectors do not all have dimension {dim}")
    return out.reshape(-1, dim)
