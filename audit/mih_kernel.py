"""The compiled inner loop of multi-index hashing (see audit.neighbors).

Kept in its own module so that numba is imported only when the search needs it, and so
that numba's on-disk cache works (functions defined inside another function are
recompiled on every run).
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def popcount(x):
    """Set bits of a uint64 (LLVM turns this into one popcnt instruction)."""
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@njit(cache=True, nogil=True)
def first_block_within(x, sub_radius):
    """The first 16-bit block of x with at most sub_radius bits set (4 if none)."""
    for block in range(4):
        if popcount((x >> np.uint64(16 * block)) & np.uint64(0xFFFF)) <= sub_radius:
            return block
    return 4


@njit(cache=True, nogil=True)
def grow(array, capacity):
    bigger = np.empty(capacity, array.dtype)
    bigger[: array.size] = array
    return bigger


@njit(cache=True, nogil=True)
def join(sorted_hashes, order, starts, present, patterns, radius, sub_radius, block):
    """Pairs within radius among hashes bucketed on `block`, for the given probe patterns.

    sorted_hashes are sorted by their block value; starts[v]..starts[v+1] is bucket v;
    present lists the non-empty buckets (all 65536 are visited only when all are used);
    order maps sorted positions back to input positions. A pair is kept only when
    `block` is the first block on which it is within sub_radius, so that across the
    four blocks every pair is reported once.
    """
    # All arithmetic stays in uint64: a signed/unsigned comparison would make numba
    # go through float64 in the innermost loop (12x slower, measured).
    limit = np.uint64(radius)
    sub_limit = np.uint64(sub_radius)
    capacity = 1024
    out_first = np.empty(capacity, np.int64)
    out_second = np.empty(capacity, np.int64)
    out_distance = np.empty(capacity, np.uint8)
    found = 0
    for pattern in patterns:
        for value in present:
            begin, end = starts[value], starts[value + 1]
            partner = value ^ pattern
            if partner < value:
                continue  # each unordered pair of buckets once
            other_begin, other_end = starts[partner], starts[partner + 1]
            # Make room for every pair this bucket pair could yield *before* the hot
            # loop: growing arrays inside it stops LLVM optimising it (10x, measured).
            most = (end - begin) * (other_end - other_begin)
            if found + most > capacity:
                capacity = max(2 * capacity, found + most)
                out_first = grow(out_first, capacity)
                out_second = grow(out_second, capacity)
                out_distance = grow(out_distance, capacity)
            for a in range(begin, end):
                left = sorted_hashes[a]
                # Within one bucket (pattern 0) only the pairs after a; else the whole partner.
                for b in range(a + 1 if pattern == 0 else other_begin, other_end):
                    x = left ^ sorted_hashes[b]
                    distance = popcount(x)
                    if distance <= limit and first_block_within(x, sub_limit) == block:
                        out_first[found] = order[a]
                        out_second[found] = order[b]
                        out_distance[found] = distance
                        found += 1
    return out_first[:found], out_second[:found], out_distance[:found]


@njit(cache=True, nogil=True)
def join_across(
    sorted_queries,
    query_order,
    query_starts,
    query_present,
    sorted_base,
    base_order,
    base_starts,
    patterns,
    radius,
    sub_radius,
    block,
):
    """Pairs (query, base) within radius, two arrays bucketed on `block` as in join.

    Every query bucket is joined with the base buckets `pattern` away (the whole of both:
    the two sides are different arrays, so no pair is seen twice within one block); a pair
    is kept only when `block` is the first block on which it is within sub_radius.
    """
    limit = np.uint64(radius)
    sub_limit = np.uint64(sub_radius)
    capacity = 1024
    out_first = np.empty(capacity, np.int64)
    out_second = np.empty(capacity, np.int64)
    out_distance = np.empty(capacity, np.uint8)
    found = 0
    for pattern in patterns:
        for value in query_present:
            begin, end = query_starts[value], query_starts[value + 1]
            partner = value ^ pattern
            other_begin, other_end = base_starts[partner], base_starts[partner + 1]
            if other_begin == other_end:
                continue
            most = (end - begin) * (other_end - other_begin)
            if found + most > capacity:  # room first: see join
                capacity = max(2 * capacity, found + most)
                out_first = grow(out_first, capacity)
                out_second = grow(out_second, capacity)
                out_distance = grow(out_distance, capacity)
            for a in range(begin, end):
                left = sorted_queries[a]
                for b in range(other_begin, other_end):
                    x = left ^ sorted_base[b]
                    distance = popcount(x)
                    if distance <= limit and first_block_within(x, sub_limit) == block:
                        out_first[found] = query_order[a]
                        out_second[found] = base_order[b]
                        out_distance[found] = distance
                        found += 1
    return out_first[:found], out_second[:found], out_distance[:found]
