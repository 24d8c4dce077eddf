"""The exact radius search: multi-index hashing must find exactly what brute force finds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.neighbors import pairs_within


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
