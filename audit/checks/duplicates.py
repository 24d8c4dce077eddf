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
  usable first, then the most pixels, then the most bytes per pixel (least compressed). Every other member is
  an exact_duplicate or near_duplicate, with its distance to the keeper. A group with
  several labels is a label_conflict (error) for all members; a group spanning
  several splits is a split_leak for all members.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict

import numpy as np
from PIL import Image

from audit.dataset import resolve
from audit.hashing import ZOOMS
from audit.neighbors import BRUTE_FORCE_UP_TO, pairs_within, popcount64
from audit.records import DatasetResult, Finding

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
    n = len(table)
    sha = table.sha256
    eligible = table.bytes > 0  # empty and unreadable files are errors already; never grouped
    union = _UnionFind(keeper_rank(table))

    # Exact bytes: rows sharing a sha256 (sorted on its first 8 bytes, then compared whole).
    prefix = np.ascontiguousarray(sha[:, :8]).view(np.uint64).ravel()
    for candidates in _equal_groups(prefix, np.flatnonzero(eligible)):
        by_digest: dict[bytes, list[int]] = defaultdict(list)
        for row in candidates.tolist():
            by_digest[sha[row].tobytes()].append(row)
        for rows in by_digest.values():
            union.join_all(rows)

    # Near: pHash pairs within the radius allowed for each row's size bucket.
    has_hash = table.has_phash & eligible
    hashed_rows = np.flatnonzero(has_hash)
    linear = np.sqrt(np.maximum(table.width, 0).astype(np.float64) * np.maximum(table.height, 0))
    tiny = linear < TINY_LINEAR_SIZE
    allowed = np.full(n, radius, dtype=np.int64)
    buckets = {
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

    unique, first_index, inverse = np.unique(
        table.phash[hashed_rows], return_index=True, return_inverse=True
    )
    unique_allowed = np.full(unique.size, radius, dtype=np.int64)
    np.minimum.at(unique_allowed, inverse, allowed[hashed_rows])
    representative = hashed_rows[first_index]  # a row holding each distinct hash value
    # Search the distinct full hashes together with the centred-crop hashes of their rows:
    # a copy cropped a few percent matches a crop hash of the original almost exactly.
    distinct = unique.size
    combined = np.concatenate([unique, table.phash_zoom[representative].T.ravel()])
    search_radius = int(unique_allowed.max()) if distinct else -1
    pairs = pairs_within(combined, search_radius) if search_radius >= 0 else None
    same_hash = _equal_groups(inverse, np.arange(hashed_rows.size))
    for members in same_hash:  # identical pHash: distance 0, allowed unless the bucket forbids it
        if unique_allowed[inverse[members[0]]] >= 0:
            union.join_all(hashed_rows[members])
    near_pairs = 0
    if pairs is not None and len(pairs):
        first, second = pairs.first % distinct, pairs.second % distinct
        first_is_full, second_is_full = pairs.first < distinct, pairs.second < distinct
        limit = np.minimum(unique_allowed[first], unique_allowed[second])
        crop_pair = first_is_full != second_is_full  # crop-vs-full; crop-vs-crop pairs add nothing
        regular_pair = ~tiny[representative[first]] & ~tiny[representative[second]]
        limit = np.where(
            crop_pair, np.where(regular_pair, np.minimum(limit, ZOOM_RADIUS), -1), limit
        )
        keep = (
            (first != second)
            & ((first_is_full & second_is_full) | crop_pair)
            & (pairs.distance <= limit)
        )
        order = np.argsort(pairs.distance[keep], kind="stable")  # closest links first
        lefts, rights = representative[first[keep][order]], representative[second[keep][order]]
        for left, right in zip(lefts.tolist(), rights.tolist()):
            keeper_left, keeper_right = union.keeper(left), union.keeper(right)
            if keeper_left != keeper_right and _linkable(
                keeper_left, keeper_right, table, allowed, ~tiny
            ):
                union.join(left, right)
                near_pairs += 1

    groups = union.groups()
    result = _describe_groups(groups, [union.keeper(members[0]) for members in groups], table, sha)
    result.summary.update(
        {
            "near": {
                "hash": "pHash, 64 bits (32x32 grayscale, 8x8 lowest DCT frequencies), of the full frame "
                f"and of centred crops {', '.join(f'{zoom:.0%}' for zoom in ZOOMS)} (matched within {ZOOM_RADIUS} bits)",
                "search": "exact: multi-index hashing over four 16-bit blocks"
                if combined.size > BRUTE_FORCE_UP_TO
                else "exact: brute force",
                "radius_requested": radius,
                "size_buckets": buckets,
                "near_links": near_pairs,
            },
            "seconds": round(time.monotonic() - started, 3),
        }
    )
    return result


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
            f"tightened: at radius {requested}, {rates[requested]:.2%} of random pairs of distinct images "
            f"collide (about {rates[requested] * pair_count:,.0f} spurious pairs); radius {chosen} keeps "
            f"them under {budget:,.0f}"
        )
    else:
        report["how"] = (
            "near search off: even identical pHashes are common among distinct images; exact duplicates only"
        )
    return chosen, report


def _collapse_copies(hashes: np.ndarray) -> np.ndarray:
    """Keep one hash per cluster of near-identical hashes, so copies do not count as collisions."""
    if hashes.size < 2:
        return hashes
    pairs = pairs_within(hashes, COPY_COLLAPSE_RADIUS)
    union = _UnionFind(np.zeros(hashes.size, dtype=np.int64))
    for left, right in zip(pairs.first.tolist(), pairs.second.tolist()):
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


def _describe_groups(
    groups: list[list[int]], keepers: list[int], table, sha: np.ndarray
) -> DatasetResult:
    labels, splits, paths = table.label, table.split, table.paths
    phash, zoom, has_hash = table.phash, table.phash_zoom, table.has_phash
    width, height = table.width, table.height
    pixel_digests: dict[int, str | None] = {}

    described = []
    for members, keeper in zip(groups, keepers):
        member_labels = {table.classes[labels[row]] for row in members}
        member_splits = {table.splits[splits[row]] for row in members}
        described.append((len(member_labels) > 1, len(member_splits) > 1, members, keeper))
    # Label conflicts first, then split leaks, then the largest groups.
    described.sort(key=lambda item: (not item[0], not item[1], -len(item[2]), min(item[2])))

    findings: dict[int, list[Finding]] = defaultdict(list)
    rows: list[dict] = []
    counts = {"exact": 0, "near": 0}
    conflict_groups = leak_groups = 0
    for group_id, (conflict, leak, members, keeper) in enumerate(described, start=1):
        kinds = {}
        for row in sorted(members):
            if row == keeper:
                kind, distance = "exact", 0
            elif bytes(sha[row]) == bytes(sha[keeper]):
                kind, distance = "exact", 0
            else:
                distance = (
                    _best_distance(phash, zoom, row, keeper)
                    if has_hash[row] and has_hash[keeper]
                    else None
                )
                kind = "near"
                if (
                    distance is not None
                    and distance <= PIXEL_CHECK_RADIUS
                    and (width[row], height[row]) == (width[keeper], height[keeper])
                ):
                    keeper_pixels = _pixel_digest(table, keeper, pixel_digests)
                    if (
                        keeper_pixels is not None
                        and _pixel_digest(table, row, pixel_digests) == keeper_pixels
                    ):
                        kind = "exact"
            kinds[row] = kind
            rows.append(
                {
                    "group": group_id,
                    "kind": kind,
                    "path": paths[row],
                    "label": table.classes[labels[row]],
                    "split": table.splits[splits[row]],
                    "distance": "" if distance is None else distance,
                    "keeper": row == keeper,
                }
            )
            if row != keeper:
                same = "bytes" if bytes(sha[row]) == bytes(sha[keeper]) else "pixels"
                if kind == "exact":
                    findings[row].append(
                        Finding(
                            "exact_duplicate", f"same {same} as {paths[keeper]} (group {group_id})"
                        )
                    )
                else:
                    shown = "unknown" if distance is None else distance
                    findings[row].append(
                        Finding(
                            "near_duplicate",
                            f"pHash distance {shown} to {paths[keeper]} (group {group_id})",
                        )
                    )
        counts["exact" if all(kind == "exact" for kind in kinds.values()) else "near"] += 1
        if conflict:
            conflict_groups += 1
            by_label = defaultdict(list)
            for row in sorted(members):
                by_label[table.classes[labels[row]]].append(paths[row])
            listing = ", ".join(
                f"{label} ({_some(found)})" for label, found in sorted(by_label.items())
            )
            for row in members:
                findings[row].append(
                    Finding(
                        "label_conflict",
                        f"the same picture is filed under {len(by_label)} labels: {listing} (group {group_id})",
                    )
                )
        if leak:
            leak_groups += 1
            for row in members:
                here = table.splits[splits[row]]
                others = [
                    paths[other] for other in sorted(members) if table.splits[splits[other]] != here
                ]
                other_splits = sorted({table.splits[splits[other]] for other in members} - {here})
                findings[row].append(
                    Finding(
                        "split_leak",
                        f"also in {', '.join(other_splits)}: {_some(others)} (group {group_id})",
                    )
                )

    in_groups = sum(len(members) for members in groups)
    summary = {
        "groups": len(groups),
        "exact_groups": counts["exact"],
        "near_groups": counts["near"],
        "files_in_groups": in_groups,
        "redundant_files": in_groups - len(groups),
        "label_conflict_groups": conflict_groups,
        "split_leak_groups": leak_groups,
    }
    return DatasetResult(summary, dict(findings), [], report_rows={"duplicates.csv": rows})


def _best_distance(phash: np.ndarray, zoom: np.ndarray, row: int, keeper: int) -> int:
    """Bits between two pictures: full frame against full frame, or a crop against the other's frame."""
    candidates = np.concatenate(
        [phash[[keeper]] ^ phash[[row]], zoom[keeper] ^ phash[row], zoom[row] ^ phash[keeper]]
    )
    return int(popcount64(candidates).min())


def _pixel_digest(table, row: int, cache: dict) -> str | None:
    """sha256 of the fully decoded pixels, with mode and shape in the key (None if undecodable)."""
    if row not in cache:
        try:
            with Image.open(resolve(table.root, table.paths[row])) as image:
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
