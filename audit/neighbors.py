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

`pairs_across(queries, base, radius)` is the same search between two arrays (every
query against every base hash, never two queries or two base hashes): the crop hashes of
audit.checks.duplicates against the full frames.

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
    _check(radius, method)
    if method == "auto":
        method = "brute" if hashes.size <= BRUTE_FORCE_UP_TO else "mih"
    if method == "brute":
        return _brute(hashes, radius)
    return _mih(hashes, radius, threads or os.cpu_count() or 1)


def pairs_across(
    queries: np.ndarray,
    base: np.ndarray,
    radius: int,
    method: str = "auto",
    threads: int | None = None,
) -> Pairs:
    """All pairs (i, j) with popcount(queries[i] ^ base[j]) <= radius, exactly: first is a
    position in queries, second one in base (so first < second does not hold here).

    Searching one array of both would also find every query-query and base-base pair, and
    throw them away: for the crop hashes of 20,000 photos (120,000 queries against 20,000
    full frames, radius 5) that search cost 0.175 s CPU, this one 0.08 s. "auto" is brute
    force up to as many pairs as pairs_within's brute force (BRUTE_FORCE_UP_TO hashes)
    compares, so small datasets do not load the compiled kernel (see load_kernels).
    """
    queries = np.ascontiguousarray(queries, dtype=np.uint64)
    base = np.ascontiguousarray(base, dtype=np.uint64)
    _check(radius, method)
    if method == "auto":
        brute_pairs = BRUTE_FORCE_UP_TO * (BRUTE_FORCE_UP_TO - 1) // 2
        method = "brute" if queries.size * base.size <= brute_pairs else "mih"
    if method == "brute":
        return _brute_across(queries, base, radius)
    return _mih_across(queries, base, radius, threads or os.cpu_count() or 1)


def _check(radius: int, method: str) -> None:
    if not 0 <= radius <= MAX_RADIUS:
        raise ValueError(f"radius must be between 0 and {MAX_RADIUS} bits, got {radius}")
    if method not in ("auto", "mih", "brute"):
        raise ValueError(f"method must be auto, mih or brute; got {method!r}")


def load_kernels(threads: int | None = None) -> None:
    """Load the compiled search now, as pairs_within and pairs_across call it.

    In a fresh process numba's import and first call cost 0.6-0.8 s CPU (measured; 0.25 s
    of it is numba importing scipy where scipy is installed), paid by the first search
    over more than BRUTE_FORCE_UP_TO hashes. Run in a background thread while the files
    are being read, that wait is off the dataset checks' path. threads: as the searches
    will use (numba loads one variant per array layout, and the layout of the probe
    patterns each thread gets differs for one thread)."""
    threads = threads or os.cpu_count() or 1
    hashes = np.zeros(2, dtype=np.uint64)
    _mih(hashes, 10, threads)  # radius 10 and 5: enough probe patterns for every thread
    _mih_across(hashes, hashes, 5, threads)


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
    return _joined(firsts, seconds, distances)


def _joined(firsts: list, seconds: list, distances: list) -> Pairs:
    """One Pairs of the blocks' pieces."""
    if not firsts:
        return Pairs.empty()
    return Pairs(
        np.concatenate(firsts).astype(np.int64),
        np.concatenate(seconds).astype(np.int64),
        np.concatenate(distances),
    )


def _brute_across(queries: np.ndarray, base: np.ndarray, radius: int) -> Pairs:
    # Blocks of queries of at most 4M distances (32 MB) each, however long base is.
    block = max(1, min(1024, (1 << 22) // max(base.size, 1)))
    firsts, seconds, distances = [], [], []
    for start in range(0, queries.size, block):
        distance = popcount64(queries[start : start + block, None] ^ base[None, :])
        first, second = np.nonzero(distance <= radius)
        firsts.append(first + start)
        seconds.append(second)
        distances.append(distance[first, second].astype(np.uint8))
    return _joined(firsts, seconds, distances)


# ---------------------------------------------------------------- multi-index hashing


def _probe_patterns(sub_radius: int) -> np.ndarray:
    values = np.arange(1 << BLOCK_BITS, dtype=np.int64)
    weights = popcount64(values.astype(np.uint64))
    return values[weights <= sub_radius]


@dataclass(frozen=True)
class _Buckets:
    """Hashes sorted by one 16-bit block: bucket v is sorted[starts[v]:starts[v + 1]]."""

    sorted: np.ndarray  # the hashes in block-value order
    order: np.ndarray  # sorted position -> input position
    starts: np.ndarray  # 65537 bucket boundaries
    present: np.ndarray  # the non-empty buckets

    @staticmethod
    def of(hashes: np.ndarray, block: int) -> "_Buckets":
        keys = ((hashes >> np.uint64(BLOCK_BITS * block)) & np.uint64(0xFFFF)).astype(np.int64)
        order = np.argsort(keys, kind="stable")
        counts = np.bincount(keys, minlength=1 << BLOCK_BITS)
        starts = np.zeros((1 << BLOCK_BITS) + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        return _Buckets(hashes[order], order, starts, np.flatnonzero(counts).astype(np.int64))


def _mih(hashes: np.ndarray, radius: int, threads: int) -> Pairs:
    def block_arguments(block: int) -> tuple:
        buckets = _Buckets.of(hashes, block)
        return (buckets.sorted, buckets.order, buckets.starts, buckets.present)

    first, second, distance = _probe(_kernels().join, block_arguments, radius, threads)
    low, high = np.minimum(first, second), np.maximum(first, second)
    return Pairs(low, high, distance)


def _mih_across(queries: np.ndarray, base: np.ndarray, radius: int, threads: int) -> Pairs:
    def block_arguments(block: int) -> tuple:
        asked, known = _Buckets.of(queries, block), _Buckets.of(base, block)
        return (asked.sorted, asked.order, asked.starts, asked.present) + (
            known.sorted,
            known.order,
            known.starts,
        )

    return Pairs(*_probe(_kernels().join_across, block_arguments, radius, threads))


def _probe(kernel, block_arguments, radius: int, threads: int) -> tuple[np.ndarray, ...]:
    """Run kernel(*block_arguments(block), patterns, radius, sub_radius, block) for each
    block, the probe patterns split over threads; (first, second, distance) concatenated."""
    sub_radius = radius // BLOCKS
    patterns = _probe_patterns(sub_radius)
    results: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for block in range(BLOCKS):
        arguments = block_arguments(block)
        # Probes are independent: split them over threads (the kernel releases the GIL).
        shares = [patterns[index::threads] for index in range(threads)]
        with ThreadPoolExecutor(threads) as pool:
            found = pool.map(
                kernel,
                *(repeat(argument) for argument in arguments),
                shares,
                repeat(radius),
                repeat(sub_radius),
                repeat(block),
            )
            results.extend(found)
    kept = [result for result in results if result[0].size]
    if not kept:
        return tuple(np.zeros(0, dtype) for dtype in (np.int64, np.int64, np.uint8))
    return tuple(np.concatenate([result[part] for result in kept]) for part in range(3))


def _kernels():
    """The numba kernels (imported on first use; compiled once, then cached on disk)."""
    from audit import mih_kernel

    return mih_kernel
