"""The dataset checks' shortcuts (issue 16) give exactly what the plain computation gives.

Each shortcut is compared with the straightforward definition it replaced: the memo of
pair relations with no memo, the search between crops and full frames with a brute
force over every crop-full pair, equal-key runs with a dictionary, the null-rate table
with one mean per radius. The garbage collector, paused while the checks run, is back
as it was afterwards.
"""

from __future__ import annotations

import gc
import hashlib
import threading
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.checks import Check, Registry, Thresholds, duplicates
from audit.checks.duplicates import check_dataset
from audit.hashing import NO_HASH, VARIANTS
from audit.records import DatasetResult, FileRecord
from audit.table import ScanTable


def flipped(value: int, rng: np.random.Generator, most: int) -> int:
    """value with up to `most` random bits flipped."""
    for bit in rng.choice(64, size=int(rng.integers(0, most + 1)), replace=False):
        value ^= 1 << int(bit)
    return value


def variant_table(seed: int, count: int = 120) -> ScanTable:
    """Hashed records around a few centres, with crop and side-cut hashes near other files'
    (some NO_HASH), tiny and regular sizes, two labels and two splits: every kind of
    relation (full frame, centred crop, side cut, none) occurs."""
    rng = np.random.default_rng(seed)
    centres = [int(value) for value in rng.integers(1, 2**63, size=8, dtype=np.int64)]
    table = ScanTable(None, ("cat", "dog"), ("train", "val"))
    for index in range(count):
        centre = centres[index % len(centres)]
        full = flipped(centre, rng, 14)
        variants = [flipped(centre, rng, 8) for _ in VARIANTS]
        for slot in rng.choice(len(VARIANTS), size=int(rng.integers(0, 4)), replace=False):
            variants[int(slot)] = NO_HASH
        label = ("cat", "dog")[int(rng.integers(0, 2))]
        split = ("train", "val")[int(rng.integers(0, 2))]
        side = int(rng.choice([40, 200, 300]))  # 40 px: the tiny bucket
        digest = hashlib.sha256(f"{index % 100}".encode()).hexdigest()  # a few byte copies
        record = FileRecord(
            f"{label}/{index}.png", label, 1000 + index, "PNG", "RGB", side, side, digest,
            full, 0, (), split, tuple(variants),
        )  # fmt: skip
        table.append(record)
    return table


def outcome(table: ScanTable) -> tuple:
    result = check_dataset(table, Thresholds(near_radius=10))
    summary = dict(result.summary)
    summary.pop("seconds")
    return summary, result.file_findings, result.report_rows


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_remembered_relations_change_nothing(monkeypatch, seed):
    """The whole check with the relation memo equals it with a memo of one pair (each
    relation computed afresh): same groups, kinds, distances, findings and summary."""
    table = variant_table(seed)
    remembered = outcome(table)
    rows = remembered[2]["duplicates"]
    assert {row["kind"] for row in rows} >= {"exact", "near"}, "the fixture makes groups"
    monkeypatch.setattr(duplicates, "_RELATION_MEMO", 1)
    assert outcome(table) == remembered


def test_a_relation_is_the_same_both_ways_and_remembered_or_not():
    table = variant_table(7, count=60)
    hashed = np.flatnonzero(table.has_phash)
    allowed = np.full(len(table), 10, dtype=np.int64)
    regular = np.sqrt(table.width.astype(float) * table.height) >= 64
    hashes = duplicates._Hashes(table, allowed, regular, hashed, mirror=False)
    fresh = duplicates._Hashes(table, allowed, regular, hashed, mirror=False)
    kinds = set()
    for row in range(len(table)):
        for other in range(len(table)):
            if row == other:
                continue
            relation = hashes.relation(row, other)
            assert relation == hashes.relation(other, row) == fresh._relate(row, other)
            kinds.add(relation.via)
    assert {"full frame", "centred crop", "side cut"} <= kinds, "every relation occurs"


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32), st.integers(2, 60), st.integers(0, 12))
def test_full_against_finds_every_crop_near_a_full_frame(seed, count, radius):
    """The search across (crops against full frames) finds exactly the (owner, full) pairs
    a brute force over every crop and every full hash finds, NO_HASH and tiny rows left out."""
    rng = np.random.default_rng(seed)
    values = rng.integers(1, 2**16, count, dtype=np.uint64)  # 16 bits: many close pairs
    columns = values[rng.integers(0, count, (count, 6))] ^ (
        np.uint64(1) << rng.integers(0, 16, (count, 6)).astype(np.uint64)
    )
    columns[rng.random((count, 6)) < 0.2] = NO_HASH
    is_regular = rng.random(count) < 0.8
    first, second, distance = duplicates._full_against(values, columns, is_regular, radius)
    found = sorted(zip(first.tolist(), second.tolist(), distance.tolist(), strict=True))
    expected = sorted(
        (owner, full, (int(columns[owner, slot]) ^ int(values[full])).bit_count())
        for owner in range(count)
        for slot in range(6)
        for full in range(count)
        if is_regular[owner]
        and is_regular[full]
        and columns[owner, slot] != NO_HASH
        and (int(columns[owner, slot]) ^ int(values[full])).bit_count() <= radius
    )
    assert found == expected


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 5), max_size=40), st.integers(0, 2**32))
def test_equal_groups_are_the_runs_of_equal_keys(keys, seed):
    keys_array = np.array(keys, dtype=np.int64)
    rows = np.random.default_rng(seed).permutation(len(keys)).astype(np.int64)
    found = [group.tolist() for group in duplicates._equal_groups(keys_array, rows)]
    by_key: dict[int, list[int]] = defaultdict(list)
    for row in rows.tolist():  # stable: rows keep their given order within a key
        by_key[keys[row]].append(row)
    assert found == [by_key[key] for key in sorted(by_key) if len(by_key[key]) > 1]


@pytest.mark.parametrize("bits, count", [(24, 1500), (32, 3000), (64, 3000)])
def test_null_rates_are_one_mean_per_radius(bits, count):
    """measured_radius's random-pair rates equal the mean of (distance <= t), the
    definition, float for float (they go into summary.json); every pair (1,500 hashes)
    and sampled pairs (3,000)."""
    rng = np.random.default_rng(bits)
    hashes = rng.integers(0, 2**bits, count, dtype=np.uint64, endpoint=False)
    _, report = duplicates.measured_radius(hashes, 10)
    distances = duplicates._random_pair_distances(duplicates._collapse_copies(np.unique(hashes)))
    assert report["random_pair_rate"] == {
        str(t): float((distances <= t).mean()) for t in (0, 2, 4, 6, 8, 10)
    }
    assert any(rate > 0 for rate in report["random_pair_rate"].values()) or bits == 64


class _CollectorProbe(Check):
    """A dataset check that notes whether the cyclic collector runs, and may fail."""

    name = "collector_probe"

    def __init__(self, fail: bool = False):
        self.fail = fail
        self.seen: list[bool] = []

    def check_dataset(self, table, thresholds):
        self.seen.append(gc.isenabled())
        if self.fail:
            raise RuntimeError("the check failed")
        return DatasetResult({}, {}, [])


@pytest.mark.parametrize("enabled_before", [True, False])
def test_the_collector_is_paused_during_the_dataset_checks_only(enabled_before):
    """Off while the checks run; afterwards as it was before, also when a check fails."""
    table = ScanTable(None, ("cat",))
    was = gc.isenabled()
    try:
        (gc.enable if enabled_before else gc.disable)()
        probe = _CollectorProbe()
        Registry([probe]).run_dataset_checks(table, Thresholds())
        assert probe.seen == [False] and gc.isenabled() is enabled_before
        failing = _CollectorProbe(fail=True)
        with pytest.raises(RuntimeError, match="the check failed"):
            Registry([failing]).run_dataset_checks(table, Thresholds())
        assert failing.seen == [False] and gc.isenabled() is enabled_before
    finally:
        (gc.enable if was else gc.disable)()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), max_size=30), st.integers(0, 3))
def test_unique_sorted_is_np_unique(values, repeats):
    array = np.array(values * (repeats + 1), dtype=np.uint64)
    found = duplicates.unique_sorted(array)
    expected = np.unique(array)
    assert found.dtype == expected.dtype and found.tolist() == expected.tolist()


@pytest.mark.parametrize("fails", [False, True])
def test_the_search_kernels_load_while_files_are_read_and_a_failure_costs_nothing(
    tmp_path, monkeypatch, fails
):
    from audit import neighbors, scan
    from tests.imagegen import colour_dataset

    colour_dataset(tmp_path / "data", {"a": 3, "b": 3})
    loaded = []

    def load_kernels():
        loaded.append(True)
        if fails:
            raise RuntimeError("numba cannot load")

    monkeypatch.setattr(neighbors, "load_kernels", load_kernels)
    monkeypatch.setattr(neighbors, "BRUTE_FORCE_UP_TO", 10)  # the scan below has 6 files
    expected = scan.scan(tmp_path / "data", tmp_path / "before", jobs=1, cache=False).summary
    assert loaded == []
    monkeypatch.setattr(neighbors, "BRUTE_FORCE_UP_TO", 5)
    result = scan.scan(tmp_path / "data", tmp_path / "after", jobs=1, cache=False)
    for thread in threading.enumerate():
        if thread.name == "load-search-kernels":
            thread.join(5)
    assert loaded == [True]
    assert result.summary["usable"] == expected["usable"] == 6
