"""Exact search for all pairs of 64-bit hashes within a Hamming radius.

Two interchangeable backends share one signature, `(hashes, radius) -> Pairs`:

* ``mih``: multi-index hashing, compiled with numba. The 64 bits are cut into four
  16-bit blocks; by the pigeonhole principle two hashes within radius r agree to within
  r // 4 bits on at least one block. For each block the hashes are bucketed by block
  value, and every bucket is joined with the buckets at most r // 4 bits away (137
  neighbours for r = 10). A pair is reported only from the first block that finds it,
  so nothing is reported twice. No recursion and no n x n matrix: the work grows with
  n^2 / 65536 per probe, a few seconds for a million random hashes.
* ``brute``: numpy, blocked XOR + popcount over all pairs. Slow, obviously correct:
  the reference the tests compare ``mih`` against.

Both search the array exactly as given: identical values are not collapsed, so k
copies of one value yield k(k-1)/2 pairs at distance 0. A caller with many copies
(ten thousand copies of one picture are fifty million pairs) collapses them first
with np.unique and maps rows through its inverse, as audit.checks.duplicates does.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import repeat

import numpy as np

BLOCKS = 4
BLOCK_BITS = 16
MAX_RADIUS = 31  # r // 4 <= 7 keeps the probe count per block reasonable
BRUTE_FORCE_UP_TO = 8000  # below this, numpy brute force beats compiling and probing (measured)


@dataclass(frozen=True)
class Pairs:
    """Pairs of positions (first < second) into the searched array, with distances."""

    first: np.ndarray  # int64
    second: np.ndarray  # int64
    distance: np.ndarray  # uint8

    def __len__(self) -> int:
        return int(self.first.size)

    @staticmethod
    def empty() -> "Pairs":
        return Pairs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8))


def pairs_within(
    hashes: np.ndarray, radius: int, method: str = "auto", threads: int | None = None
) -> Pairs:
    """All pairs i < j with popcount(hashes[i] ^ hashes[j]) <= radius, exactly.

    hashes: 1-D array, converted to uint64. Repeated values are not collapsed: every
    pair of them is returned at distance 0 (collapse them first where copies abound).
    radius: 0 to MAX_RADIUS bits.
    method: "mih", "brute", or "auto" (brute up to BRUTE_FORCE_UP_TO hashes, else mih).
    threads: for mih, threads that share the probes (default: one per CPU).
    The pairs come in no particular order; it differs between the methods, and for mih
    with the number of threads. Sort them where order matters.
    """
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    if not 0 <= radius <= MAX_RADIUS:
        raise ValueError(f"radius must be between 0 and {MAX_RADIUS} bits, got {radius}")
    if method not in ("auto", "mih", "brute"):
        raise ValueError(f"method must be auto, mih or brute; got {method!r}")
    if method == "auto":
        method = "brute" if hashes.size <= BRUTE_FORCE_UP_TO else "mih"
    if method == "brute":
        return _brute(hashes, radius)
    return _mih(hashes, radius, threads or os.cpu_count() or 1)


def popcount64(values: np.ndarray) -> np.ndarray:
    """Set bits per uint64 (numpy >= 2 has a ufunc; older ones use a byte table)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(values)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
    return table[values.view(np.uint8).reshape(-1, 8)].sum(axis=1, dtype=np.uint8)


# ---------------------------------------------------------------- brute force


def _brute(hashes: np.ndarray, radius: int, block: int = 1024) -> Pairs:
    firsts, seconds, distances = [], [], []
    for start in range(0, hashes.size, block):
        rows = hashes[start : start + block]
        distance = popcount64(rows[:, None] ^ hashes[None, start:])  # only j >= start
        first, offset = np.nonzero(distance <= radius)
        second = offset + start
        keep = second > first + start
        firsts.append(first[keep] + start)
        seconds.append(second[keep])
        distances.append(distance[first[keep], offset[keep]].astype(np.uint8))
    if not firsts:
        return Pairs.empty()
    return Pairs(
        np.concatenate(firsts).astype(np.int64),
        np.concatenate(seconds).astype(np.int64),
        np.concatenate(distances),
    )


# ---------------------------------------------------------------- multi-index hashing


def _probe_patterns(sub_radius: int) -> np.ndarray:
    values = np.arange(1 << BLOCK_BITS, dtype=np.int64)
    weights = popcount64(values.astype(np.uint64))
    return values[weights <= sub_radius]


def _mih(hashes: np.ndarray, radius: int, threads: int) -> Pairs:
    kernel = _compiled_kernel()
    sub_radius = radius // BLOCKS
    patterns = _probe_patterns(sub_radius)
    results: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for block in range(BLOCKS):
        keys = ((hashes >> np.uint64(BLOCK_BITS * block)) & np.uint64(0xFFFF)).astype(np.int64)
        order = np.argsort(keys, kind="stable")
        sorted_hashes = hashes[order]
        counts = np.bincount(keys, minlength=1 << BLOCK_BITS)
        starts = np.zeros((1 << BLOCK_BITS) + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        present = np.flatnonzero(counts).astype(np.int64)
        # Probes are independent: split them over threads (the kernel releases the GIL).
        shares = [patterns[index::threads] for index in range(threads)]
        with ThreadPoolExecutor(threads) as pool:
            found = pool.map(
                kernel,
                repeat(sorted_hashes),
                repeat(order),
                repeat(starts),
                repeat(present),
                shares,
                repeat(radius),
                repeat(sub_radius),
                repeat(block),
            )
            results.extend(found)
    firsts = [r[0] for r in results if r[0].size]
    if not firsts:
        return Pairs.empty()
    first = np.concatenate(firsts)
    second = np.concatenate([r[1] for r in results if r[0].size])
    distance = np.concatenate([r[2] for r in results if r[0].size])
    low, high = np.minimum(first, second), np.maximum(first, second)
    return Pairs(low, high, distance)


def _compiled_kernel():
    """The numba join kernel (imported on first use; compiled once, then cached on disk)."""
    from audit import mih_kernel

    return mih_kernel.join
