"""Duplicates: exact (same bytes, same pixels) and near (pHash), grouped, with a keeper.

* Exact: byte-identical files (sha256), and files whose decoded pixels are identical
  (checked by a full decode, shape and mode in the key) although their bytes differ.
* Near: 64-bit pHash within a Hamming radius, found exactly by audit.neighbors. The
  default radius 10 was measured (see README, "Duplicates"): resized, recompressed,
  blurred and text-watermarked copies land at 0-4 bits, distinct photo-like pictures at
  12 bits and more. Crops move pHash most (5% crops: 10 bits on average), so each file
  also carries the pHashes of two centred crops (95%, 90%); a crop hash within 5 bits
  of another file's full hash is a match as well.
* Tiny images: pHash carries little information below ~64 px, and distinct pictures
  collide (28 px digits: 0.23% of random pairs within 10 bits). For that size bucket
  the radius is measured on the dataset itself: the largest radius at which random
  pairs (obvious copies collapsed first) predict spurious pairs for under 0.5% of
  the bucket's images. summary.json says what was used and why.
* Groups are built link by link, exact links first, then near links from the closest:
  two groups join only when their keepers are themselves within the radius. Plain
  connected components chain distinct pictures through their copies (measured: 11 of
  194 groups mixed two originals); keeper linkage does not. One keeper per group:
  usable first, then the most pixels, then the most bytes per pixel (least compressed).
  Every other member is an exact_duplicate or near_duplicate, with its distance to the
  keeper. A group with several labels is a label_conflict (error) for all members; a
  group spanning several splits is a split_leak for all members.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from PIL import Image

from audit.checks.base import Check, Threshold
from audit.dataset import resolve
from audit.hashing import ZOOMS
from audit.inspect import c_stderr_silenced, strict_decoding
from audit.neighbors import BRUTE_FORCE_UP_TO, pairs_within, popcount64
from audit.records import DatasetResult, Finding
from audit.reportio import DUPLICATES

DEFAULT_RADIUS = 10
TINY_LINEAR_SIZE = 64  # sqrt(w*h) below this: the radius is measured on the data
SPURIOUS_BUDGET = 0.005  # at most this share of a tiny bucket's images spuriously paired
COPY_COLLAPSE_RADIUS = 2  # obvious copies, collapsed before measuring the null rate
NULL_SAMPLE_PAIRS = 2_000_000
ZOOM_RADIUS = 5  # a centred-crop hash against a full hash (measured: no distinct pair within 5)
PIXEL_CHECK_RADIUS = 4  # same-size pairs this close are decoded to test pixel identity
MAX_LISTED = 4  # paths named in one reason


def check_dataset(table, thresholds) -> DatasetResult:
    """Group duplicate files; findings for every member; rows for duplicates.csv."""
    started = time.monotonic()
    radius = thresholds.near_radius
    eligible = table.bytes > 0  # empty and unreadable files are errors already; never grouped
    union = _UnionFind(keeper_rank(table))
    # Links in order of certainty: same bytes, same pHash, then near pairs from the closest.
    _link_exact_bytes(table, eligible, union)
    hashed_rows = np.flatnonzero(table.has_phash & eligible)
    radii = _radius_per_row(table, hashed_rows, radius)
    distinct = _DistinctHashes.of(table, hashed_rows, radii.allowed, radius)
    _link_identical_hashes(distinct, union)
    lefts, rights = _near_candidate_pairs(table, distinct, radii.regular)
    near_links = _link_near_pairs(lefts, rights, table, radii, union)

    groups = union.groups()
    result = _describe_groups(groups, [union.keeper(members[0]) for members in groups], table)
    result.summary.update(
        {
            "near": _near_summary(radius, radii.buckets, near_links, distinct.searched),
            "seconds": round(time.monotonic() - started, 3),
        }
    )
    return result


def _link_exact_bytes(table, eligible: np.ndarray, union: _UnionFind) -> None:
    """Join rows sharing a sha256 (sorted on its first 8 bytes, then compared whole)."""
    sha = table.sha256
    prefix = np.ascontiguousarray(sha[:, :8]).view(np.uint64).ravel()
    for candidates in _equal_groups(prefix, np.flatnonzero(eligible)):
        by_digest: dict[bytes, list[int]] = defaultdict(list)
        for row in candidates.tolist():
            by_digest[sha[row].tobytes()].append(row)
        for rows in by_digest.values():
            union.join_all(rows)


@dataclass(frozen=True)
class _Radii:
    """How far each row may link: by size bucket, the tiny one measured on the data."""

    allowed: np.ndarray  # per table row: the largest distance it may link at (-1: none)
    regular: np.ndarray  # per table row: not tiny, so its crop hashes are matched too
    buckets: dict  # summary.json's report of each bucket


def _radius_per_row(table, hashed_rows: np.ndarray, radius: int) -> _Radii:
    linear = np.sqrt(np.maximum(table.width, 0).astype(np.float64) * np.maximum(table.height, 0))
    tiny = linear < TINY_LINEAR_SIZE
    allowed = np.full(len(table), radius, dtype=np.int64)
    buckets: dict[str, dict] = {
        "regular": {
            "images": int((~tiny[hashed_rows]).sum()),
            "radius_used": radius,
            "how": "default, measured on photo-like images",
        }
    }
    tiny_rows = hashed_rows[tiny[hashed_rows]]
    if tiny_rows.size:
        tiny_radius, tiny_report = measured_radius(table.phash[tiny_rows], radius)
        allowed[tiny_rows] = tiny_radius
        buckets["tiny"] = {
            "images": int(tiny_rows.size),
            "linear_size_below_px": TINY_LINEAR_SIZE,
            **tiny_report,
        }
    return _Radii(allowed, ~tiny, buckets)


@dataclass(frozen=True)
class _DistinctHashes:
    """The distinct pHash values among the hashed rows: ten thousand copies are one entry."""

    rows: np.ndarray  # the hashed table rows
    values: np.ndarray  # distinct pHash values, sorted
    inverse: np.ndarray  # per hashed row: its index into values
    representative: np.ndarray  # per value: a table row holding it
    allowed: np.ndarray  # per value: the smallest radius allowed to any row holding it
    searched: int  # hashes searched: the values and their rows' crop hashes

    @staticmethod
    def of(table, rows: np.ndarray, allowed: np.ndarray, radius: int) -> _DistinctHashes:
        values, first_index, inverse = np.unique(
            table.phash[rows], return_index=True, return_inverse=True
        )
        value_allowed = np.full(values.size, radius, dtype=np.int64)
        np.minimum.at(value_allowed, inverse, allowed[rows])
        searched = values.size * (1 + len(ZOOMS))
        return _DistinctHashes(rows, values, inverse, rows[first_index], value_allowed, searched)


def _link_identical_hashes(distinct: _DistinctHashes, union: _UnionFind) -> None:
    """Join rows with the same pHash (distance 0), unless their size bucket forbids it."""
    for members in _equal_groups(distinct.inverse, np.arange(distinct.rows.size)):
        if distinct.allowed[distinct.inverse[members[0]]] >= 0:
            union.join_all(distinct.rows[members])


def _near_candidate_pairs(
    table, distinct: _DistinctHashes, regular: np.ndarray
) -> tuple[list[int], list[int]]:
    """Row pairs whose distinct hashes are within their radius, closest first.

    The distinct full hashes are searched together with the centred-crop hashes of
    their rows: a copy cropped a few percent matches a crop hash of the original almost
    exactly. Full-vs-full pairs count within the radius, crop-vs-full ones within
    ZOOM_RADIUS (regular sizes only), crop-vs-crop ones add nothing.
    """
    count = distinct.values.size
    if not count or int(distinct.allowed.max()) < 0:
        return [], []
    combined = np.concatenate(
        [distinct.values, table.phash_zoom[distinct.representative].T.ravel()]
    )
    pairs = pairs_within(combined, int(distinct.allowed.max()))
    if not len(pairs):
        return [], []
    first, second = pairs.first % count, pairs.second % count
    first_is_full, second_is_full = pairs.first < count, pairs.second < count
    limit = np.minimum(distinct.allowed[first], distinct.allowed[second])
    crop_pair = first_is_full != second_is_full
    both_regular = (
        regular[distinct.representative[first]] & regular[distinct.representative[second]]
    )
    limit = np.where(crop_pair, np.where(both_regular, np.minimum(limit, ZOOM_RADIUS), -1), limit)
    keep = (
        (first != second)
        & ((first_is_full & second_is_full) | crop_pair)
        & (pairs.distance <= limit)
    )
    # Closest first; ties in a fixed order (the search's own order varies with its threads).
    first, second = first[keep], second[keep]
    order = np.lexsort((second, first, pairs.distance[keep]))
    lefts = distinct.representative[first[order]]
    rights = distinct.representative[second[order]]
    return lefts.tolist(), rights.tolist()


def _link_near_pairs(
    lefts: list[int], rights: list[int], table, radii: _Radii, union: _UnionFind
) -> int:
    """Join candidate pairs in order when their groups' keepers are near copies themselves.

    Plain connected components would chain distinct pictures through their copies;
    requiring the keepers to match keeps two originals apart. Returns the links made.
    """
    links = 0
    for left, right in zip(lefts, rights, strict=True):
        keeper_left, keeper_right = union.keeper(left), union.keeper(right)
        if keeper_left != keeper_right and _linkable(
            keeper_left, keeper_right, table, radii.allowed, radii.regular
        ):
            union.join(left, right)
            links += 1
    return links


def _near_summary(radius: int, buckets: dict, near_links: int, searched: int) -> dict:
    """The "near" section of the duplicates summary: hash, search, radii, links."""
    crops = ", ".join(f"{zoom:.0%}" for zoom in ZOOMS)
    return {
        "hash": "pHash, 64 bits (32x32 grayscale, 8x8 lowest DCT frequencies), of the full "
        f"frame and of centred crops {crops} (matched within {ZOOM_RADIUS} bits)",
        "search": "exact: multi-index hashing over four 16-bit blocks"
        if searched > BRUTE_FORCE_UP_TO
        else "exact: brute force",
        "radius_requested": radius,
        "size_buckets": buckets,
        "near_links": near_links,
    }


def keeper_rank(table) -> np.ndarray:
    """Rank of each row as a group's keeper (higher is better): usable first, then the most
    pixels, then the most bytes per pixel (the least compressed), then walk order."""
    pixels = np.maximum(table.width, 0).astype(np.int64) * np.maximum(table.height, 0)
    bytes_per_pixel = table.bytes / np.maximum(pixels, 1)
    order = np.lexsort((-np.arange(len(table)), bytes_per_pixel, pixels, table.usable))
    rank = np.empty(len(table), dtype=np.int64)
    rank[order] = np.arange(len(table))
    return rank


def _linkable(
    keeper_a: int, keeper_b: int, table, allowed: np.ndarray, regular: np.ndarray
) -> bool:
    """Whether two groups' keepers are near copies of each other (full frame or crop)."""
    if not (table.has_phash[keeper_a] and table.has_phash[keeper_b]):
        return False
    limit = min(allowed[keeper_a], allowed[keeper_b])
    phash, zoom = table.phash, table.phash_zoom
    if int(popcount64(phash[[keeper_a]] ^ phash[[keeper_b]])[0]) <= limit:
        return True
    if not (regular[keeper_a] and regular[keeper_b]):
        return False  # crop hashes of tiny images carry too little to match on
    crops = np.concatenate([zoom[keeper_a] ^ phash[keeper_b], zoom[keeper_b] ^ phash[keeper_a]])
    return int(popcount64(crops).min()) <= min(limit, ZOOM_RADIUS)


def measured_radius(hashes: np.ndarray, requested: int) -> tuple[int, dict]:
    """The largest radius <= requested at which distinct pictures rarely collide.

    Random pairs of the bucket's hashes (obvious copies, within COPY_COLLAPSE_RADIUS,
    collapsed first) estimate how often two distinct pictures fall within each radius;
    the radius kept predicts spurious pairs for at most SPURIOUS_BUDGET of the images.
    Returns (radius, a report for summary.json); radius -1 means near search is off.
    """
    distinct = _collapse_copies(np.unique(hashes))
    count = distinct.size
    report: dict = {"radius_requested": requested, "distinct_hashes": int(count)}
    if count < 2:
        report.update(radius_used=requested, how="a single distinct picture: nothing to measure")
        return requested, report
    distances = _random_pair_distances(distinct)
    pair_count = count * (count - 1) / 2
    budget = max(1.0, SPURIOUS_BUDGET * count)
    rates = {t: float((distances <= t).mean()) for t in range(requested + 1)}
    chosen = -1
    for t in range(requested, -1, -1):
        if rates[t] * pair_count <= budget:
            chosen = t
            break
    report.update(
        radius_used=chosen,
        random_pair_rate={str(t): rates[t] for t in (0, 2, 4, 6, 8, 10) if t <= requested},
        spurious_pairs_expected_at_requested=round(rates[requested] * pair_count, 1),
        spurious_budget=round(budget, 1),
    )
    if chosen == requested:
        report["how"] = "measured: pHash is discriminative enough here; default radius kept"
    elif chosen >= 0:
        report["how"] = (
            f"tightened: at radius {requested}, {rates[requested]:.2%} of random pairs of "
            f"distinct images collide (about {rates[requested] * pair_count:,.0f} spurious "
            f"pairs); radius {chosen} keeps them under {budget:,.0f}"
        )
    else:
        report["how"] = (
            "near search off: even identical pHashes are common among distinct images; "
            "exact duplicates only"
        )
    return chosen, report


def _collapse_copies(hashes: np.ndarray) -> np.ndarray:
    """Keep one hash per cluster of near-identical hashes, so copies do not count as collisions."""
    if hashes.size < 2:
        return hashes
    pairs = pairs_within(hashes, COPY_COLLAPSE_RADIUS)
    union = _UnionFind(np.zeros(hashes.size, dtype=np.int64))
    for left, right in zip(pairs.first.tolist(), pairs.second.tolist(), strict=True):
        union.join(left, right)
    dropped = [member for members in union.groups() for member in members[1:]]
    return np.delete(hashes, dropped)


def _random_pair_distances(hashes: np.ndarray) -> np.ndarray:
    count = hashes.size
    if count * (count - 1) // 2 <= NULL_SAMPLE_PAIRS:
        first, second = np.triu_indices(count, 1)
    else:
        rng = np.random.default_rng(0)  # deterministic: the same data gives the same radius
        first = rng.integers(0, count, NULL_SAMPLE_PAIRS)
        second = (first + rng.integers(1, count, NULL_SAMPLE_PAIRS)) % count
    return popcount64(hashes[first] ^ hashes[second])


# ---------------------------------------------------------------- groups -> findings


@dataclass(frozen=True)
class _Group:
    """One group to describe: its rows (sorted), its keeper, and what makes it an error."""

    members: list[int]
    keeper: int
    conflict: bool  # members under several labels
    leak: bool  # members in several splits


class _Columns:
    """The table's columns, read once (each ScanTable property builds a new view)."""

    def __init__(self, table):
        self.table = table
        self.sha = table.sha256
        self.phash, self.zoom, self.has_hash = table.phash, table.phash_zoom, table.has_phash
        self.width, self.height = table.width, table.height
        self._label, self._split = table.label, table.split

    def path(self, row: int) -> str:
        return self.table.paths[row]

    def label(self, row: int) -> str:
        return self.table.classes[self._label[row]]

    def split(self, row: int) -> str:
        return self.table.splits[self._split[row]]

    def same_bytes(self, row: int, other: int) -> bool:
        return bytes(self.sha[row]) == bytes(self.sha[other])


def _describe_groups(groups: list[list[int]], keepers: list[int], table) -> DatasetResult:
    """Kind and distance of every member, its findings, and the duplicates.csv rows."""
    columns = _Columns(table)
    ordered = _ordered_groups(groups, keepers, columns)
    pixel_digests: dict[int, str | None] = {}
    findings: dict[int, list[Finding]] = defaultdict(list)
    rows: list[dict] = []
    exact_groups = 0
    for group_id, group in enumerate(ordered, start=1):
        all_exact = True
        for row in group.members:
            kind, distance = _member_kind(columns, row, group.keeper, pixel_digests)
            all_exact = all_exact and kind == "exact"
            rows.append(_duplicates_row(columns, group_id, row, group.keeper, kind, distance))
            if row != group.keeper:
                findings[row].append(
                    _duplicate_finding(columns, group_id, row, group.keeper, kind, distance)
                )
        exact_groups += all_exact
        if group.conflict:
            conflict = _label_conflict(columns, group_id, group.members)
            for row in group.members:
                findings[row].append(conflict)
        if group.leak:
            for row in group.members:
                findings[row].append(_split_leak(columns, group_id, group.members, row))

    in_groups = sum(len(members) for members in groups)
    summary = {
        "groups": len(groups),
        "exact_groups": exact_groups,
        "near_groups": len(groups) - exact_groups,
        "files_in_groups": in_groups,
        "redundant_files": in_groups - len(groups),
        "label_conflict_groups": sum(group.conflict for group in ordered),
        "split_leak_groups": sum(group.leak for group in ordered),
    }
    return DatasetResult(summary, dict(findings), [], report_rows={DUPLICATES.name: rows})


def _ordered_groups(groups: list[list[int]], keepers: list[int], columns: _Columns) -> list[_Group]:
    """Groups in report order: label conflicts first, then split leaks, then the largest."""
    described = [
        _Group(
            sorted(members),
            keeper,
            conflict=len({columns.label(row) for row in members}) > 1,
            leak=len({columns.split(row) for row in members}) > 1,
        )
        for members, keeper in zip(groups, keepers, strict=True)
    ]
    described.sort(
        key=lambda group: (
            not group.conflict,
            not group.leak,
            -len(group.members),
            min(group.members),
        )
    )
    return described


def _member_kind(
    columns: _Columns, row: int, keeper: int, pixel_digests: dict[int, str | None]
) -> tuple[str, int | None]:
    """("exact" or "near", pHash distance to the keeper or None when either has no hash).

    Same bytes is exact at distance 0; a near member this close, of the keeper's size,
    is decoded and called exact when its pixels are identical.
    """
    if row == keeper or columns.same_bytes(row, keeper):
        return "exact", 0
    if not (columns.has_hash[row] and columns.has_hash[keeper]):
        return "near", None
    distance = _best_distance(columns.phash, columns.zoom, row, keeper)
    if (
        distance <= PIXEL_CHECK_RADIUS
        and (columns.width[row], columns.height[row])
        == (columns.width[keeper], columns.height[keeper])
        and _same_pixels(columns.table, row, keeper, pixel_digests)
    ):
        return "exact", distance
    return "near", distance


def _same_pixels(table, row: int, keeper: int, pixel_digests: dict[int, str | None]) -> bool:
    keeper_pixels = _pixel_digest(table, keeper, pixel_digests)
    return keeper_pixels is not None and _pixel_digest(table, row, pixel_digests) == keeper_pixels


def _duplicates_row(
    columns: _Columns, group_id: int, row: int, keeper: int, kind: str, distance: int | None
) -> dict:
    return {
        "group": group_id,
        "kind": kind,
        "path": columns.path(row),
        "label": columns.label(row),
        "split": columns.split(row),
        "distance": "" if distance is None else distance,
        "keeper": row == keeper,
    }


def _duplicate_finding(
    columns: _Columns, group_id: int, row: int, keeper: int, kind: str, distance: int | None
) -> Finding:
    """exact_duplicate or near_duplicate of a member that is not the keeper."""
    if kind == "exact":
        same = "bytes" if columns.same_bytes(row, keeper) else "pixels"
        return Finding(
            "exact_duplicate", f"same {same} as {columns.path(keeper)} (group {group_id})"
        )
    shown = "unknown" if distance is None else distance
    return Finding(
        "near_duplicate",
        f"pHash distance {shown} to {columns.path(keeper)} (group {group_id})",
    )


def _label_conflict(columns: _Columns, group_id: int, members: list[int]) -> Finding:
    """The label_conflict every member of a group with several labels gets."""
    by_label: dict[str, list[str]] = defaultdict(list)
    for row in members:
        by_label[columns.label(row)].append(columns.path(row))
    listing = ", ".join(f"{label} ({_some(found)})" for label, found in sorted(by_label.items()))
    return Finding(
        "label_conflict",
        f"the same picture is filed under {len(by_label)} labels: {listing} (group {group_id})",
    )


def _split_leak(columns: _Columns, group_id: int, members: list[int], row: int) -> Finding:
    """The split_leak of one member: the group's files in the other splits."""
    here = columns.split(row)
    others = [columns.path(other) for other in members if columns.split(other) != here]
    other_splits = sorted({columns.split(other) for other in members} - {here})
    return Finding(
        "split_leak", f"also in {', '.join(other_splits)}: {_some(others)} (group {group_id})"
    )


def _best_distance(phash: np.ndarray, zoom: np.ndarray, row: int, keeper: int) -> int:
    """Bits between two pictures: full frame against full frame, or a crop against the
    other's full frame, whichever is closest."""
    candidates = np.concatenate(
        [phash[[keeper]] ^ phash[[row]], zoom[keeper] ^ phash[row], zoom[row] ^ phash[keeper]]
    )
    return int(popcount64(candidates).min())


def _pixel_digest(table, row: int, cache: dict) -> str | None:
    """sha256 of the fully decoded pixels, with mode and shape in the key (None if undecodable)."""
    if row not in cache:
        try:
            with c_stderr_silenced(), Image.open(resolve(table.root, table.paths[row])) as image:
                with strict_decoding():
                    image.load()
                digest = hashlib.sha256(f"{image.mode}:{image.size}:".encode())
                digest.update(image.tobytes())
                cache[row] = digest.hexdigest()
        except Exception:  # a file that no longer decodes is simply not pixel-identical
            cache[row] = None
    return cache[row]


def _some(paths: list[str]) -> str:
    shown = ", ".join(paths[:MAX_LISTED])
    return shown + (f" and {len(paths) - MAX_LISTED} more" if len(paths) > MAX_LISTED else "")


def _equal_groups(keys: np.ndarray, rows: np.ndarray) -> list[np.ndarray]:
    """Groups (of 2 or more) of rows whose keys are equal."""
    if rows.size < 2:
        return []
    order = rows[np.argsort(keys[rows], kind="stable")]
    sorted_keys = keys[order]
    boundaries = np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1
    return [group for group in np.split(order, boundaries) if group.size > 1]


class _UnionFind:
    """Disjoint sets over rows with path halving, each set knowing its best keeper.

    Iterative (no recursion limit), and only rows ever joined are tracked, so a
    million singletons cost nothing. rank: higher is a better keeper.
    """

    def __init__(self, rank: np.ndarray):
        self.rank = rank
        self.parent: dict[int, int] = {}
        self.best: dict[int, int] = {}  # root -> keeper

    def find(self, item: int) -> int:
        parent = self.parent
        while parent.get(item, item) != item:
            grand = parent.get(parent[item], parent[item])
            parent[item] = grand
            item = grand
        return item

    def keeper(self, item: int) -> int:
        root = self.find(item)
        return self.best.get(root, root)

    def join(self, left: int, right: int) -> None:
        root_left, root_right = self.find(left), self.find(right)
        if root_left == root_right:
            return
        low, high = min(root_left, root_right), max(root_left, root_right)
        keepers = (self.best.get(low, low), self.best.get(high, high))
        self.parent[high] = low
        self.parent.setdefault(low, low)
        self.best[low] = max(keepers, key=lambda row: self.rank[row])
        self.best.pop(high, None)

    def join_all(self, items) -> None:
        items = [int(item) for item in items]
        for item in items[1:]:
            self.join(items[0], item)

    def groups(self) -> list[list[int]]:
        """Every set of two or more items, each sorted, in order of its smallest item."""
        members: dict[int, list[int]] = defaultdict(list)
        for item in sorted(self.parent):
            members[self.find(item)].append(item)
        return [group for group in members.values() if len(group) > 1]


class DuplicatesCheck(Check):
    """Exact and near duplicate groups; label conflicts and split leaks (dataset)."""

    name = "duplicates"
    codes = ("exact_duplicate", "near_duplicate", "label_conflict", "split_leak")
    thresholds = (
        Threshold(
            "near_radius",
            DEFAULT_RADIUS,
            "near duplicates: pHash Hamming distance at most BITS of 64 (default: {default}, "
            "measured; tightened automatically for tiny images)",
            minimum=0,
            maximum=31,
            metavar="BITS",
        ),
    )
    tables = (DUPLICATES,)

    def check_dataset(self, table, thresholds):
        return check_dataset(table, thresholds)

    def report_values(self, section: dict) -> dict:
        return {"duplicates": section}
