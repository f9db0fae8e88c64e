"""Deterministic hashing and Poisson sampling: an example is kept iff ``hash_uniform(id, seed) < p``.

The hash is integer-only and fixed forever, so the same id and seed give the same decision on any platform,
in any order and in any partition of the data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tfx_curator.components.curator.policy.checks import check_probabilities

_MASK64 = (1 << 64) - 1

FNV64_OFFSET = 0xCBF29CE484222325
FNV64_PRIME = 0x100000001B3
_GOLDEN_GAMMA = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def splitmix64(x: int) -> int:
    """SplitMix64 (Steele, Lea, Flood 2014) output for state ``x``: ``mix64(x + golden gamma)``."""
    return _mix64_int((x + _GOLDEN_GAMMA) & _MASK64)


def _mix64_int(z: int) -> int:
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK64
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK64
    return z ^ (z >> 31)


def _fnv1a_int(state: int, data: bytes) -> int:
    for byte in data:
        state = ((state ^ byte) * FNV64_PRIME) & _MASK64
    return state


def _mix64_array(z: np.ndarray) -> np.ndarray:
    z = z ^ (z >> np.uint64(30))
    z *= np.uint64(_MIX1)
    z ^= z >> np.uint64(27)
    z *= np.uint64(_MIX2)
    z ^= z >> np.uint64(31)
    return z


def _id_matrix(ids: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """(lengths int64[n], bytes uint8[n, width] zero-padded) from a sequence of bytes ids.

    The padded matrix comes from numpy's 'S' conversion (fast, C level); it pads with NULs and cannot tell
    b"a" from b"a\\x00", so the true lengths come from ``len`` of each id and only bytes before the
    length are hashed.
    """
    if isinstance(ids, np.ndarray) and ids.dtype.kind in "SU":
        raise TypeError(
            "ids must be a list or object array of bytes: numpy 'S'/'U' arrays drop trailing NULs"
        )
    if isinstance(ids, (bytes, str)):
        raise TypeError("ids must be a sequence of bytes, not a single bytes/str object")
    if not isinstance(ids, (list, tuple, np.ndarray)):
        ids = list(ids)
    n = len(ids)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.uint8)
    types = set(map(type, ids))
    if not types <= {bytes}:
        raise TypeError(f"every id must be bytes, got {sorted(t.__name__ for t in types - {bytes})}")
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=n)
    width = int(lengths.max())
    if width == 0:
        return lengths, np.zeros((n, 0), dtype=np.uint8)
    padded = np.array(ids, dtype=f"S{width}")
    return lengths, padded.view(np.uint8).reshape(n, width)


def hash64(ids: Sequence[bytes], seed: int) -> np.ndarray:
    """The 64-bit hash behind ``hash_uniform`` (uint64 per id). Definition, fixed forever::

        state = FNV64_OFFSET ^ splitmix64(seed mod 2^64)
        for byte in len(id).to_bytes(8, "little") + id:      # FNV-1a-64 over length prefix and bytes
            state = ((state ^ byte) * FNV64_PRIME) mod 2^64
        hash = mix64(state)                                   # SplitMix64 finaliser, for avalanche

    with ``FNV64_OFFSET = 0xcbf29ce484222325``, ``FNV64_PRIME = 0x100000001b3``,
    ``mix64(z)``: ``z = (z ^ z >> 30) * 0xbf58476d1ce4e5b9; z = (z ^ z >> 27) * 0x94d049bb133111eb;
    z ^ z >> 31`` and ``splitmix64(x) = mix64(x + 0x9e3779b97f4a7c15)`` (all mod 2^64). Integer-only, so
    identical on every platform; vectorised over ids one byte column at a time.
    """
    seed = int(seed)
    lengths, matrix = _id_matrix(ids)
    start = FNV64_OFFSET ^ splitmix64(seed & _MASK64)
    prime = np.uint64(FNV64_PRIME)
    if matrix.shape[1] <= 65536:  # the state after the length prefix depends on the length only: a table
        prefixes = [_fnv1a_int(start, n.to_bytes(8, "little")) for n in range(matrix.shape[1] + 1)]
        state = np.array(prefixes, dtype=np.uint64)[lengths]
    else:
        state = np.full(lengths.size, start, dtype=np.uint64)
        length_bits = lengths.astype(np.uint64)
        for shift in range(0, 64, 8):
            state ^= (length_bits >> np.uint64(shift)) & np.uint64(0xFF)
            state *= prime
    same_length = lengths.size == 0 or bool((lengths == lengths[0]).all())
    for j in range(matrix.shape[1]):
        if same_length:
            state ^= matrix[:, j]
            state *= prime
        else:  # ids shorter than j + 1 bytes keep their state
            state = np.where(lengths > j, (state ^ matrix[:, j]) * prime, state)
    return _mix64_array(state)


def hash_uniform(ids: Sequence[bytes], seed: int) -> np.ndarray:
    """Deterministic uniform numbers in [0, 1): ``(hash64(id, seed) >> 11) * 2^-53`` per id (float64).

    Same id and seed give the same number on any platform, in any order and in any partition of the ids.
    ``ids`` is a list/tuple/object array of bytes (any bytes, including trailing NULs; numpy 'S' arrays are
    refused because they drop trailing NULs).
    """
    return (hash64(ids, seed) >> np.uint64(11)).astype(np.float64) * (2.0**-53)


def poisson_sample(ids, p, seed: int, max_weight: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Poisson sampling: keep ``i`` iff ``hash_uniform(id_i, seed) < p_i``; weight ``1 / p_i`` if kept, else 0.

    ``max_weight`` (>= 1) caps the weights: it lowers the variance contributed by rare, low-probability
    examples at the price of a downward bias of the weighted sums (a bias/variance trade); None = no cap,
    the Horvitz-Thompson weights, unbiased. Returns ``(keep bool[n], weight float64[n])``.
    """
    prob = check_probabilities(p)
    if max_weight is not None:
        max_weight = float(max_weight)
        if not max_weight >= 1.0 or math.isnan(max_weight):
            raise ValueError(f"max_weight must be >= 1 (or None), got {max_weight}")
    u = hash_uniform(ids, seed)
    if u.size != prob.size:
        raise ValueError(f"ids and p must have the same length, got {u.size} and {prob.size}")
    keep = u < prob
    weight = np.zeros(prob.size)
    weight[keep] = 1.0 / prob[keep]
    if max_weight is not None:
        np.minimum(weight, max_weight, out=weight)
    return keep, weight
