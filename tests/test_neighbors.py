"""The exact radius search: multi-index hashing must find exactly what brute force finds."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.neighbors import pairs_across, pairs_within


def planted(count: int, seed: int, radius: int = 10) -> np.ndarray:
    """Random hashes, with near copies (0..radius+2 bits flipped) and exact repeats planted."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64, count, dtype=np.uint64, endpoint=False)
    for _ in range(count // 10):
        source, target = rng.integers(0, count, 2)
        flips = rng.choice(64, int(rng.integers(0, radius + 3)), replace=False)
        value = hashes[source]
        for bit in flips:
            value ^= np.uint64(1) << np.uint64(bit)
        hashes[target] = value
    hashes[: count // 50] = hashes[count // 50 : 2 * (count // 50)]  # exact repeats
    return hashes


def as_set(pairs) -> set:
    return set(
        zip(pairs.first.tolist(), pairs.second.tolist(), pairs.distance.tolist(), strict=True)
    )


@pytest.mark.parametrize("radius", [0, 3, 7, 10, 13])
def test_mih_equals_brute_force(radius):
    hashes = planted(4000, seed=radius)
    found = pairs_within(hashes, radius, method="mih", threads=2)
    reference = pairs_within(hashes, radius, method="brute")
    assert as_set(found) == as_set(reference)
    assert len(found) == len(as_set(found)), "no pair reported twice"
    assert (found.first < found.second).all()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 2**64 - 1), min_size=0, max_size=60),
    st.integers(0, 16),
    st.integers(0, 2**32),
)
def test_mih_equals_brute_force_on_any_input(values, radius, seed):
    base = np.array(values, dtype=np.uint64)
    rng = np.random.default_rng(seed)
    near = (
        base ^ (np.uint64(1) << rng.integers(0, 64, base.size).astype(np.uint64))
        if base.size
        else base
    )
    hashes = np.concatenate([base, near])
    assert as_set(pairs_within(hashes, radius, method="mih", threads=1)) == as_set(
        pairs_within(hashes, radius, method="brute")
    )


def test_edge_cases():
    assert len(pairs_within(np.zeros(0, np.uint64), 10)) == 0
    assert len(pairs_within(np.array([5], np.uint64), 10)) == 0
    same = pairs_within(np.array([7, 7, 7], np.uint64), 0, method="mih")
    assert as_set(same) == {(0, 1, 0), (0, 2, 0), (1, 2, 0)}
    with pytest.raises(ValueError, match="radius"):
        pairs_within(np.zeros(3, np.uint64), 40)
    with pytest.raises(ValueError, match="method"):
        pairs_within(np.zeros(3, np.uint64), 4, method="fast")


def across_reference(queries: np.ndarray, base: np.ndarray, radius: int) -> set:
    """Every (query, base) pair within radius, by Python ints: the definition itself."""
    return {
        (i, j, (int(q) ^ int(b)).bit_count())
        for i, q in enumerate(queries.tolist())
        for j, b in enumerate(base.tolist())
        if (int(q) ^ int(b)).bit_count() <= radius
    }


@pytest.mark.parametrize("radius", [0, 3, 5, 10, 13])
def test_pairs_across_mih_equals_brute_force(radius):
    hashes = planted(3000, seed=100 + radius, radius=radius)
    queries, base = hashes[:2000], hashes[2000:]  # planted copies fall on both sides
    found = pairs_across(queries, base, radius, method="mih", threads=2)
    reference = pairs_across(queries, base, radius, method="brute")
    assert len(reference) > 0, "the planted copies give pairs across"
    assert as_set(found) == as_set(reference)
    assert len(found) == len(as_set(found)), "no pair reported twice"
    # Never a pair inside one side: queries 0..1999 against base 0..999.
    assert found.first.max() < queries.size and found.second.max() < base.size


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 2**64 - 1), min_size=0, max_size=40),
    st.lists(st.integers(0, 2**64 - 1), min_size=0, max_size=40),
    st.integers(0, 16),
    st.integers(0, 2**32),
)
def test_pairs_across_equals_the_definition(query_values, base_values, radius, seed):
    rng = np.random.default_rng(seed)
    queries = np.array(query_values, dtype=np.uint64)
    base = np.array(base_values, dtype=np.uint64)
    if queries.size and base.size:  # near copies of some queries into base
        picked = queries[rng.integers(0, queries.size, base.size)]
        flips = np.uint64(1) << rng.integers(0, 64, base.size).astype(np.uint64)
        base = np.where(rng.random(base.size) < 0.5, picked ^ flips, base)
    expected = across_reference(queries, base, radius)
    for method, threads in (("brute", None), ("mih", 1), ("mih", 3)):
        assert as_set(pairs_across(queries, base, radius, method=method, threads=threads)) == (
            expected
        )


def test_pairs_across_edge_cases():
    empty = np.zeros(0, np.uint64)
    assert len(pairs_across(empty, np.array([1], np.uint64), 10)) == 0
    assert len(pairs_across(np.array([1], np.uint64), empty, 10, method="mih")) == 0
    # Repeats on both sides: every combination, at distance 0; nothing within one side.
    same = pairs_across(np.array([7, 7], np.uint64), np.array([7, 7, 8], np.uint64), 0)
    assert as_set(same) == {(0, 0, 0), (0, 1, 0), (1, 0, 0), (1, 1, 0)}
    with pytest.raises(ValueError, match="radius"):
        pairs_across(empty, empty, 32)
    with pytest.raises(ValueError, match="method"):
        pairs_across(empty, empty, 4, method="fast")


def test_load_kernels_makes_the_first_search_cheap():
    """After load_kernels, the compiled search runs without loading anything: a fresh
    interpreter's first mih search takes a fraction of the time the load took."""
    code = (
        "import time, numpy as np\n"
        "from audit.neighbors import load_kernels, pairs_across, pairs_within\n"
        "started = time.process_time(); load_kernels(2); loading = time.process_time() - started\n"
        "hashes = np.random.default_rng(0).integers(1, 2**63, 3000, dtype=np.uint64)\n"
        "started = time.process_time()\n"
        "pairs_within(hashes, 10, method='mih', threads=2)\n"
        "pairs_across(hashes, hashes, 5, method='mih', threads=2)\n"
        "print(loading, time.process_time() - started)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loading, searching = map(float, done.stdout.split())
    assert searching < loading / 4, (loading, searching)
