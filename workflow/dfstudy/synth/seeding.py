"""Seeded random generators: one per (seed, name), stable across processes and Python runs.

Every random choice of the corpus is drawn from a generator made here, from the seed and a SHA-256
of a name (identity key, video path, ...), never from Python's ``hash``.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np


def rng(seed: int, *names) -> np.random.Generator:
    """Generator for (seed, names): SHA-256 keeps it stable across processes and Python runs."""
    digest = hashlib.sha256("\x1f".join(str(n) for n in names).encode()).digest()
    words = [int(seed) & 0xFFFFFFFF, (int(seed) >> 32) & 0xFFFFFFFF]
    words += list(struct.unpack("<8I", digest))
    return np.random.default_rng(np.random.SeedSequence(words))
