"""Duplicates: exact (same bytes, same pixels) and near (pHash), grouped around a keeper.

* Exact: byte-identical files (sha256), and files whose decoded pixels are identical
  (checked by a full decode, shape and mode in the key) although their bytes differ.
* Near: 64-bit pHash within a Hamming radius, found exactly by audit.neighbors. The
  default radius 10 was measured (see README, "Duplicates"). Each file also carries
  variant hashes (audit.hashing.VARIANTS), so edits that move the full-frame hash far
  are still found: a centred-crop hash within ZOOM_RADIUS of another file's full hash
  (crops up to 10%); the same side-cut hash (a third cut off one side) within
  CUT_RADIUS of another file's (overlays up to 10% of the frame along an edge or in a
  corner); with the opt-in `mirror` threshold (--mirror), a mirrored hash within
  MIRROR_RADIUS of another file's full hash whose flipped pixels correlate with the
  other file's at PIXEL_COPY_CUT or more (kind `mirror` in duplicates.csv; a mirrored
  hash alone matched distinct low-contrast crops at 4-8 bits).
* Low-information files (near-constant pictures, whose pHash is noise: the quality
  check's low_information finding, or, for files it does not judge, such as files with
  an error, a measured contrast under its low_information_below threshold) are never
  grouped by hash: only byte-identical or pixel-identical copies.
* Tiny images: pHash carries little information below ~64 px, and distinct pictures
  collide (28 px digits: 0.23% of random pairs within 10 bits). For that size bucket
  the radius is measured on the dataset itself: the largest radius at which random
  pairs (obvious copies collapsed first) predict spurious pairs for under 0.5% of
  the bucket's images. summary.json says what was used and why.
* Groups are keeper-centred: every member is within the radius of its group's keeper
  (a star, not a chain). Links are tried exact first, then near pairs from the closest;
  two groups merge only when every member of the group that loses its keeper is a
  near copy (or an exact one) of the merged group's keeper. So a chain A ~ B ~ C with
  A and C far apart is one group only when B, the middle, is the keeper (then A and C
  are both copies of B: a left and a right crop of one photo); under a keeper at an
  end it is not. Keeper-centred and not complete linkage (every pair within the
  radius) because two edits of one original (a crop and a caption bar) are often
  further from each other than from the original: complete linkage splits them and
  loses them. One keeper per group: usable first, then without a quality warning
  (blurry, dark, overexposed, low_information), then the most pixels, then the most
  bytes per pixel (least compressed).
* Label conflicts are graded by evidence. `label_conflict` (error): two files under two
  labels that are byte- or pixel-identical, or whose full-frame (or centred-crop)
  distance is at most CONFLICT_CUT, the distance that resizing, recompressing,
  blurring and brightening a real photo produce (measured: bench/near_duplicates_quality.py
  --measure-cut), and whose pixels agree: both files are decoded again (conflict pairs
  are few) and their 32x32 grayscale views correlate at PIXEL_COPY_CUT or more (a pHash
  collision between distinct low-contrast pictures, two crops of one retina photo 2 bits
  apart, correlates at 0.67). Tiny images need identical pixels: at 28 px distinct
  pictures collide within a few bits. Any other pair under two labels in one group is a
  `possible_label_conflict` (warning) whose reason says which distance was judged and
  why it is not a copy (side cuts and mirrors never make a copy).
* summary.json's group counts are disjoint: exact_groups (every member exact),
  mirror_groups (a mirrored member), near_groups (the rest).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass

import numpy as np
from PIL import Image

from audit.checks.base import Check, Threshold
from audit.dataset import resolve
from audit.hashing import (
    CUT_SLICE,
    MIRROR_INDEX,
    NO_HASH,
    SIDES,
    VARIANTS,
    ZOOM_SLICE,
    grayscale,
    variant_boxes,
)
from audit.inspect import c_stderr_silenced, strict_decoding
from audit.neighbors import BRUTE_FORCE_UP_TO, pairs_across, pairs_within, popcount64
from audit.records import DatasetResult, Finding
from audit.reportio import DUPLICATES

DEFAULT_RADIUS = 10
TINY_LINEAR_SIZE = 64  # sqrt(w*h) below this: the radius is measured on the data
SPURIOUS_BUDGET = 0.005  # at most this share of a tiny bucket's images spuriously paired
COPY_COLLAPSE_RADIUS = 2  # obvious copies, collapsed before measuring the null rate
NULL_SAMPLE_PAIRS = 2_000_000
ZOOM_RADIUS = 5  # a centred-crop hash against a full hash (measured: no distinct pair within 5)
CUT_RADIUS = 5  # a side-cut hash against the other file's same cut
MIRROR_RADIUS = 8  # a mirrored hash against a full hash (--mirror), confirmed by pixels
CONFLICT_CUT = 3  # label_conflict: at most this far (measured, see the module docstring)
# Pixel evidence: the Pearson correlation of two files' 32x32 grayscale views (the full
# frame and the centred and corner crops of audit.hashing, best pair; correlation is
# blind to brightness and contrast changes). Measured (bench/near_duplicates_quality.py
# --measure-cut, 250 originals): copies within the copy cut correlate at >= 0.978
# (resize), 0.993 (recompress), 0.971 (blur), 0.989 (brightness), 0.891 (overlay), 0.835
# (crop, 1st percentile 0.846); mirrored copies, flipped back, >= 0.995. Distinct pictures
# whose pHashes collide: two crops of scikit-image's low-contrast retina (IoU 0.22, 2 bits)
# 0.666, the closest distinct bench tiles 0.775, false mirror pairs at most 0.69 (600
# overlapping crops of ten pictures, /tmp/attack19 dk; one at 0.90 was 10 bits away).
PIXEL_COPY_CUT = 0.80
PIXEL_VIEW = 32  # side of the compared views, as the pHash's input
_VIEW_SOURCE = 256  # files are decoded to at most this side before the views are cut
_VIEW_CACHE = 4096  # decoded views kept (rows); pairs are compared once
PIXEL_CHECK_RADIUS = 4  # same-size pairs this close are decoded to test pixel identity
PAIRWISE_LIMIT = 400  # distinct files in a group up to which conflicts are graded pairwise
MAX_LISTED = 4  # paths named in one reason
_FAR = 99  # the distance of a relation that does not apply

GROUPING_RULE = (
    "keeper-centred: every member within the radius of its group's keeper "
    "(full frame, centred crop, side cut or, with --mirror, mirrored)"
)


def check_dataset(table, thresholds) -> DatasetResult:
    """Group duplicate files; findings for every member; rows for duplicates.csv."""
    started = time.monotonic()
    radius = thresholds.near_radius
    mirror = bool(getattr(thresholds, "mirror", 0))
    eligible = table.bytes > 0  # empty and unreadable files are errors already; never grouped
    low_information = _low_information(table, thresholds)
    union = _UnionFind(keeper_rank(table))
    # Exact links first: same bytes, then same pixels among low-information files.
    _link_exact_bytes(table, eligible, union)
    _link_identical_low_information(table, eligible & low_information, union)
    hashed_rows = np.flatnonzero(table.has_phash & eligible & ~low_information)
    radii = _radius_per_row(table, hashed_rows, radius)
    hashes = _Hashes(table, radii.allowed, radii.regular, hashed_rows, mirror)
    distinct = _DistinctHashes.of(table, hashed_rows, radii.allowed, radius)
    near_links = _link_identical_hashes(distinct, hashes, union)
    lefts, rights = _near_candidate_pairs(table, distinct, radii.regular, mirror, union.rank)
    near_links += _link_near_pairs(lefts, rights, hashes, union)

    groups = union.groups()
    keepers = [
        _clean_keeper(members, union.keeper(members[0]), hashes, union.rank) for members in groups
    ]
    result = _describe_groups(groups, keepers, hashes)
    result.summary.update(
        {
            "near": _near_summary(radius, radii.buckets, near_links, distinct.searched, mirror),
            "low_information_files": int((eligible & low_information).sum()),
            "seconds": round(time.monotonic() - started, 3),
        }
    )
    return result


def _low_information(table, thresholds) -> np.ndarray:
    """Near-constant files, whose pHash is noise: the quality check's low_information flag,
    and every measured file (errors included: the quality check does not judge those)
    whose contrast is under the same threshold."""
    flags = getattr(table, "low_information", None)
    flat = np.zeros(len(table), dtype=bool) if flags is None else np.array(flags, dtype=bool)
    contrast = getattr(table, "contrast", None)
    below = getattr(thresholds, "low_information_below", None)
    if contrast is not None and below is not None:
        contrast = np.asarray(contrast, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            flat |= ~np.isnan(contrast) & (contrast < float(below))
    return flat


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


def _link_identical_low_information(table, rows_mask: np.ndarray, union: _UnionFind) -> None:
    """Join near-constant files whose decoded pixels are identical (their pHash is noise,
    so only identity groups them). Candidates share pHash, width and height; then decoded."""
    rows = np.flatnonzero(rows_mask & table.has_phash)
    if rows.size < 2:
        return
    key = (
        table.phash[rows].astype(np.uint64)
        ^ (table.width[rows].astype(np.uint64) << np.uint64(40))
        ^ (table.height[rows].astype(np.uint64) << np.uint64(20))
    )
    keys = np.zeros(len(table), dtype=np.uint64)
    keys[rows] = key
    digests: dict[int, str | None] = {}
    for candidates in _equal_groups(keys, rows):
        by_pixels: dict[str, list[int]] = defaultdict(list)
        for row in candidates.tolist():
            digest = _pixel_digest(table, row, digests)
            if digest is not None:
                by_pixels[digest].append(row)
        for same in by_pixels.values():
            union.join_all(same)


@dataclass(frozen=True)
class _Radii:
    """How far each row may link: by size bucket, the tiny one measured on the data."""

    allowed: np.ndarray  # per table row: the largest distance it may link at (-1: none)
    regular: np.ndarray  # per table row: not tiny, so its crop hashes are matched too
    buckets: dict  # summary.json's report of each bucket


def _radius_per_row(table, hashed_rows: np.ndarray, radius: int) -> _Radii:
    linear = np.sqrt(np.maximum(table.width, 0).astype(np.float64) * np.maximum(table.height, 0))
    tiny = linear < TINY_LINEAR_SIZE
    allowed = np.full(len(table), -1, dtype=np.int64)
    allowed[hashed_rows] = radius
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
class _Relation:
    """How two files relate: the kind of link (None: none), its distance and what matched;
    evidence: the full-frame or centred-crop distance that grades a label conflict."""

    kind: str | None  # "near", "mirror" or None
    distance: int
    via: str
    evidence: int


_UNRELATED = _Relation(None, _FAR, "", _FAR)  # a row without a hash relates to nothing
_RELATION_MEMO = 100_000  # remembered pairs (28 MB, measured), then the memo starts over


@dataclass(frozen=True)
class _RowHashes:
    """One row's hashes as Python ints, and how far it may link."""

    full: int
    zooms: tuple[int, ...]  # the centred and corner crops' hashes, NO_HASH left out
    cuts: tuple[int, ...]  # the side cuts' hashes, in SIDES order (NO_HASH kept: by position)
    mirror: int
    allowed: int  # the largest distance it may link at (-1: none)
    regular: bool  # not tiny: its crop hashes are matched too


def _crop_boxes() -> tuple[tuple[float, float, float, float], ...]:
    """(left, top, right, bottom) fractions: the full frame, then the crops whose hashes
    are matched against full frames (audit.hashing's centred and corner crops)."""
    boxes = [(0.0, 0.0, 1.0, 1.0)]
    for left, top, right, bottom in variant_boxes()[ZOOM_SLICE].tolist():
        boxes.append((left, top, right, bottom))
    return tuple(boxes)


_CROP_BOXES = _crop_boxes()


def pixel_views(image: Image.Image) -> np.ndarray:
    """(len(_CROP_BOXES) + 1, PIXEL_VIEW, PIXEL_VIEW) float32: the grayscale full frame
    and its crops, each area-resampled to PIXEL_VIEW a side and normalised to mean 0 and
    RMS 1 (so brightness and contrast do not count), then the full frame mirrored."""
    gray = grayscale(image)
    if max(gray.size) > _VIEW_SOURCE:
        gray = gray.copy()
        gray.thumbnail((_VIEW_SOURCE, _VIEW_SOURCE), Image.Resampling.BOX)
    width, height = gray.size
    views = []
    for left, top, right, bottom in _CROP_BOXES:
        view = gray.resize(
            (PIXEL_VIEW, PIXEL_VIEW),
            Image.Resampling.BOX,
            box=(left * width, top * height, right * width, bottom * height),
        )
        views.append(np.asarray(view, dtype=np.float64))
    views.append(views[0][:, ::-1])
    stacked = np.stack(views)
    stacked -= stacked.mean(axis=(1, 2), keepdims=True)
    rms = np.sqrt((stacked * stacked).mean(axis=(1, 2), keepdims=True))
    return (stacked / np.maximum(rms, 1e-6)).astype(np.float32)


def pixel_similarity(views: np.ndarray, other: np.ndarray, mirrored: bool = False) -> float:
    """The best correlation of two files' pixel_views: full frame against full frame, and
    each one's crops against the other's full frame; mirrored: one's mirrored frame
    against the other's full frame."""
    if mirrored:
        pairs = [(views[-1], other[0]), (other[-1], views[0])]
    else:
        crops = len(_CROP_BOXES)
        pairs = [(views[0], other[0])]
        pairs += [(views[index], other[0]) for index in range(1, crops)]
        pairs += [(views[0], other[index]) for index in range(1, crops)]
    return max(float(np.mean(a * b)) for a, b in pairs)


class _PixelViews:
    """Decoded pixel views of rows, for the few pairs whose hashes alone do not decide
    (cross-label pairs within the copy cut, mirror candidates). Bounded cache."""

    def __init__(self, table):
        self.table = table
        self._views: OrderedDict[int, np.ndarray | None] = OrderedDict()
        self._pairs: dict[tuple[int, int, bool], float | None] = {}

    def views(self, row: int) -> np.ndarray | None:
        if row in self._views:
            self._views.move_to_end(row)
            return self._views[row]
        found: np.ndarray | None
        try:
            path = resolve(self.table.root, self.table.paths[row])
            with c_stderr_silenced(), Image.open(path) as image:
                image.draft("L", (_VIEW_SOURCE, _VIEW_SOURCE))
                found = pixel_views(image)
        except Exception:  # a file that no longer decodes gives no pixel evidence
            found = None
        self._views[row] = found
        if len(self._views) > _VIEW_CACHE:
            self._views.popitem(last=False)
        return found

    def similarity(self, row: int, other: int, mirrored: bool = False) -> float | None:
        """pixel_similarity of two rows (None when either cannot be decoded)."""
        key = (min(row, other), max(row, other), mirrored)
        if key not in self._pairs:
            left, right = self.views(key[0]), self.views(key[1])
            self._pairs[key] = (
                None if left is None or right is None else pixel_similarity(left, right, mirrored)
            )
        return self._pairs[key]


class _Hashes:
    """The hashes of the rows near search may link, and the relation between two rows.

    Rows are converted to Python ints once, on first use (pairwise work is per pair in
    Python: a few bit counts, faster than numpy calls on two values). Relations are
    remembered: grouping and describing ask for the same pair again and again (photos-20000:
    36,386 questions about 15,205 pairs, 0.23 s CPU of 0.87 s for the whole check)."""

    def __init__(self, table, allowed, regular, hashed_rows: np.ndarray, mirror: bool):
        self.table = table
        self.allowed = allowed
        self.regular = regular
        self.mirror = mirror
        self.hashed = np.zeros(len(table), dtype=bool)
        self.hashed[hashed_rows] = True
        self._phash, self._variants = table.phash, table.phash_zoom
        self._cached: dict[int, _RowHashes] = {}
        self._relations: dict[tuple[int, int], _Relation] = {}
        self.pixels = _PixelViews(table)

    def _of(self, row: int) -> _RowHashes:
        found = self._cached.get(row)
        if found is None:
            variants = [int(value) for value in self._variants[row]]
            found = _RowHashes(
                int(self._phash[row]),
                tuple(value for value in variants[ZOOM_SLICE] if value != NO_HASH),
                tuple(variants[CUT_SLICE]),
                variants[MIRROR_INDEX],
                int(self.allowed[row]),
                bool(self.regular[row]),
            )
            self._cached[row] = found
        return found

    def relation(self, row: int, other: int) -> _Relation:
        """The link between two rows that near search may link (kind None when none).

        Symmetric, so remembered once per unordered pair (up to _RELATION_MEMO pairs, then
        forgotten and recomputed: a bounded cost at a million files)."""
        key = (row, other) if row < other else (other, row)
        found = self._relations.get(key)
        if found is None:
            if len(self._relations) >= _RELATION_MEMO:
                self._relations.clear()
            found = self._relations[key] = self._relate(*key)
        return found

    def _relate(self, row: int, other: int) -> _Relation:
        if not (self.hashed[row] and self.hashed[other]):
            return _UNRELATED
        a, b = self._of(row), self._of(other)
        full_a, full_b = a.full, b.full
        limit = min(a.allowed, b.allowed)
        full = (full_a ^ full_b).bit_count()
        zoom = cut = _FAR
        if a.regular and b.regular:
            # The crop hashes hold no NO_HASH (dropped in _of); a side cut counts only
            # where both files have it.
            for z in a.zooms:
                zoom = min(zoom, (z ^ full_b).bit_count())
            for z in b.zooms:
                zoom = min(zoom, (z ^ full_a).bit_count())
            for x, y in zip(a.cuts, b.cuts, strict=True):
                if x != NO_HASH and y != NO_HASH:
                    cut = min(cut, (x ^ y).bit_count())
        evidence = min(full, zoom)
        candidates = [(full, "full frame")]
        if zoom <= min(limit, ZOOM_RADIUS):
            candidates.append((zoom, "centred crop"))
        if cut <= min(limit, CUT_RADIUS):
            candidates.append((cut, "side cut"))
        distance, via = min(candidates)
        if distance <= limit:
            return _Relation("near", distance, via, evidence)
        if self.mirror:
            mirror_a, mirror_b = a.mirror, b.mirror
            mirrored = min(
                [(mirror_a ^ full_b).bit_count()] * (mirror_a != NO_HASH)
                + [(mirror_b ^ full_a).bit_count()] * (mirror_b != NO_HASH)
                + [_FAR]
            )
            # A mirrored hash alone matches distinct pictures at 6-8 bits (low-contrast
            # crops, symmetric scenes): the flipped pixels must correlate too.
            if mirrored <= min(limit, MIRROR_RADIUS):
                similarity = self.pixels.similarity(row, other, mirrored=True)
                if similarity is not None and similarity >= PIXEL_COPY_CUT:
                    return _Relation("mirror", mirrored, "mirrored", evidence)
        return _Relation(None, distance, via, evidence)

    def linked(self, row: int, other: int) -> bool:
        return self.relation(row, other).kind is not None


@dataclass(frozen=True)
class _DistinctHashes:
    """The distinct pHash values among the hashed rows: ten thousand copies are one entry."""

    rows: np.ndarray  # the hashed table rows
    values: np.ndarray  # distinct pHash values, sorted
    inverse: np.ndarray  # per hashed row: its index into values
    representative: np.ndarray  # per value: a table row holding it
    allowed: np.ndarray  # per value: the smallest radius allowed to any row holding it
    searched: int  # hashes searched: the values and their rows' variant hashes

    @staticmethod
    def of(table, rows: np.ndarray, allowed: np.ndarray, radius: int) -> _DistinctHashes:
        values, first_index, inverse = np.unique(
            table.phash[rows], return_index=True, return_inverse=True
        )
        value_allowed = np.full(values.size, radius, dtype=np.int64)
        np.minimum.at(value_allowed, inverse, allowed[rows])
        searched = values.size * (1 + len(VARIANTS))
        return _DistinctHashes(rows, values, inverse, rows[first_index], value_allowed, searched)


def _link_identical_hashes(distinct: _DistinctHashes, hashes: _Hashes, union: _UnionFind) -> int:
    """Join rows with the same pHash (distance 0), unless their size bucket forbids it."""
    links = 0
    for members in _equal_groups(distinct.inverse, np.arange(distinct.rows.size)):
        if distinct.allowed[distinct.inverse[members[0]]] >= 0:
            rows = distinct.rows[members].tolist()
            for row in rows[1:]:
                links += _try_join(rows[0], row, hashes, union)
    return links


def _near_candidate_pairs(
    table, distinct: _DistinctHashes, regular: np.ndarray, mirror: bool, rank: np.ndarray
) -> tuple[list[int], list[int]]:
    """Row pairs whose hashes relate within their radius, closest first (rank: keeper_rank
    of every row, computed once: a sort of every row, 0.02 s per 100,000).

    One exact search per relation, each at its own radius: full frame against full
    frame (the radius), centred crop against full frame (ZOOM_RADIUS), a side cut
    against the same side cut (CUT_RADIUS) and, with mirror, mirrored against full
    frame (MIRROR_RADIUS). Variants that are NO_HASH are left out of the searches.
    """
    count = distinct.values.size
    if not count or int(distinct.allowed.max()) < 0:
        return [], []
    representative = distinct.representative
    variants = table.phash_zoom[representative]
    is_regular = regular[representative]
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []  # first, second, d, order

    full_pairs = pairs_within(distinct.values, int(distinct.allowed.max()))
    found.append((full_pairs.first, full_pairs.second, full_pairs.distance, 0))
    cross = [(variants[:, ZOOM_SLICE], ZOOM_RADIUS, 1)]
    if mirror:
        cross.append((variants[:, [MIRROR_INDEX]], MIRROR_RADIUS, 3))
    for columns, limit, relation in cross:
        first, second, distance = _full_against(distinct.values, columns, is_regular, limit)
        found.append((first, second, distance, relation))
    for side in range(len(SIDES)):
        column = variants[:, CUT_SLICE][:, side]
        usable = np.flatnonzero((column != NO_HASH) & is_regular)
        if usable.size < 2:
            continue
        pairs = pairs_within(column[usable], CUT_RADIUS)
        found.append((usable[pairs.first], usable[pairs.second], pairs.distance, 2))

    rank = rank[representative]
    first = np.concatenate([f[0] for f in found]).astype(np.int64)
    second = np.concatenate([f[1] for f in found]).astype(np.int64)
    distance = np.concatenate([f[2] for f in found]).astype(np.int64)
    kind = np.concatenate([np.full(f[0].size, f[3]) for f in found]).astype(np.int64)
    low, high = np.minimum(first, second), np.maximum(first, second)
    pair_limit = np.minimum(distinct.allowed[low], distinct.allowed[high])
    keep = (low != high) & (distance <= pair_limit)
    # Closest first; at equal distance the pair with the better keeper first (the best
    # files seed the groups), then a fixed order (the search's own order varies).
    low, high, distance, kind = low[keep], high[keep], distance[keep], kind[keep]
    best = np.maximum(rank[low], rank[high])
    order = np.lexsort((high, low, -best, kind, distance))
    return representative[low[order]].tolist(), representative[high[order]].tolist()


def _full_against(
    values: np.ndarray, columns: np.ndarray, is_regular: np.ndarray, limit: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (value index, value index) where one's variant in columns is within limit of
    the other's full hash (regular sizes only; NO_HASH variants left out)."""
    owners, slots = np.nonzero((columns != NO_HASH) & is_regular[:, None])
    if not owners.size:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8)
    full_rows = np.flatnonzero(is_regular)
    # One search between the crops and the full frames: a search over both together also
    # found every crop-crop and full-full pair and threw them away (photos-20000: 0.175 s
    # CPU; across, 0.08 s).
    pairs = pairs_across(columns[owners, slots], values[full_rows], limit)
    return owners[pairs.first], full_rows[pairs.second], pairs.distance


def _try_join(left: int, right: int, hashes: _Hashes, union: _UnionFind) -> int:
    """Join the groups of left and right when the merged group stays keeper-centred:
    every member of the group whose keeper loses is a copy of the merged keeper.
    Returns 1 for a join, 0 otherwise."""
    root_left, root_right = union.find(left), union.find(right)
    if root_left == root_right:
        return 0
    keeper_left, keeper_right = union.keeper(left), union.keeper(right)
    keeper = union.better(keeper_left, keeper_right)
    joining = union.members(root_right if keeper == keeper_left else root_left)
    same_bytes = hashes.table.sha256
    keeper_digest = bytes(same_bytes[keeper])
    for member in joining:
        if member == keeper or hashes.linked(keeper, member):
            continue
        if bytes(same_bytes[member]) == keeper_digest:
            continue
        return 0
    union.join(left, right)
    return 1


def _link_near_pairs(
    lefts: list[int], rights: list[int], hashes: _Hashes, union: _UnionFind
) -> int:
    """Join candidate pairs in order, each only if the merged group stays keeper-centred.
    Returns the links made."""
    links = 0
    for left, right in zip(lefts, rights, strict=True):
        if not hashes.linked(left, right):
            continue
        links += _try_join(left, right, hashes, union)
    return links


def _near_summary(radius: int, buckets: dict, near_links: int, searched: int, mirror: bool) -> dict:
    """The "near" section of the duplicates summary: hash, search, radii, links."""
    return {
        "hash": "pHash, 64 bits (32x32 grayscale, 8x8 lowest DCT frequencies), of the full "
        f"frame; centred crops 95% and 90% matched against full frames within {ZOOM_RADIUS} "
        f"bits; the frame with a third cut off each side matched against the same cut "
        f"within {CUT_RADIUS} bits"
        + (f"; mirrored against full frames within {MIRROR_RADIUS} bits" if mirror else ""),
        "search": "exact: multi-index hashing over four 16-bit blocks"
        if searched > BRUTE_FORCE_UP_TO
        else "exact: brute force",
        "radius_requested": radius,
        "size_buckets": buckets,
        "near_links": near_links,
        "mirror": mirror,
    }


CLEAN_KEEPER_LIMIT = 64  # groups up to this size may hand the keeper to a clean member


def _clean_keeper(members: list[int], keeper: int, hashes: _Hashes, rank: np.ndarray) -> int:
    """The group's keeper, handed to a member without a quality warning (blurry, dark,
    overexposed, low_information) when the keeper has one and that member is itself a
    copy of every other member (so the group stays keeper-centred): a blurred or
    darkened copy, often the larger file, never outranks its clean original.

    Applied after grouping, not in keeper_rank: ranking flagged files last while
    groups form lets a borderline flag (a soft original judged blurry, its overlay copy
    not) seed the group at the wrong file and split its copies off (measured: recall
    0.982 -> 0.969 on bench/near_duplicates_quality.py)."""
    flagged = getattr(hashes.table, "quality_warning", None)
    if flagged is None or not flagged[keeper] or len(members) > CLEAN_KEEPER_LIMIT:
        return keeper
    sha = hashes.table.sha256
    usable = hashes.table.usable
    candidates = sorted(
        (row for row in members if not flagged[row] and usable[row] >= usable[keeper]),
        key=lambda row: -rank[row],
    )
    for candidate in candidates:
        digest = bytes(sha[candidate])
        if all(
            row == candidate or bytes(sha[row]) == digest or hashes.linked(candidate, row)
            for row in members
        ):
            return candidate
    return keeper


def keeper_rank(table) -> np.ndarray:
    """Rank of each row as a group's keeper (higher is better): usable first, then the most
    pixels, then the most bytes per pixel (the least compressed), then walk order. After
    grouping, _clean_keeper prefers a member without a quality warning."""
    pixels = np.maximum(table.width, 0).astype(np.int64) * np.maximum(table.height, 0)
    bytes_per_pixel = table.bytes / np.maximum(pixels, 1)
    order = np.lexsort((-np.arange(len(table)), bytes_per_pixel, pixels, table.usable))
    rank = np.empty(len(table), dtype=np.int64)
    rank[order] = np.arange(len(table))
    return rank


def measured_radius(hashes: np.ndarray, requested: int) -> tuple[int, dict]:
    """The largest radius <= requested at which distinct pictures rarely collide.

    Random pairs of the bucket's hashes (obvious copies, within COPY_COLLAPSE_RADIUS,
    collapsed first) estimate how often two distinct pictures fall within each radius;
    the radius kept predicts spurious pairs for at most SPURIOUS_BUDGET of the images.
    Returns (radius, a report for summary.json); radius -1 means near search is off.
    """
    distinct = _collapse_copies(unique_sorted(hashes))
    count = distinct.size
    report: dict = {"radius_requested": requested, "distinct_hashes": int(count)}
    if count < 2:
        report.update(radius_used=requested, how="a single distinct picture: nothing to measure")
        return requested, report
    distances = _random_pair_distances(distinct)
    pair_count = count * (count - 1) / 2
    budget = max(1.0, SPURIOUS_BUDGET * count)
    # One pass over the (up to 2 million) distances, not one per radius; count / size is
    # the same float as the mean of the 0/1 flags (an exact sum, then one division).
    within = np.cumsum(np.bincount(distances, minlength=requested + 1))
    rates = {t: float(within[t] / distances.size) for t in range(requested + 1)}
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


def unique_sorted(values: np.ndarray) -> np.ndarray:
    """np.unique(values), by a sort. numpy 2.3 and later find unique values by hashing
    and then sort them: 0.45-0.85 s CPU for a million distinct 64-bit hashes, against
    0.06 s by sorting first (measured with numpy 2.4)."""
    ordered = np.sort(values)
    if ordered.size < 2:
        return ordered
    first = np.empty(ordered.size, dtype=bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return ordered[first]


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
class _Member:
    """One member's relation to its group's keeper, as duplicates.csv shows it."""

    kind: str  # exact, near or mirror
    distance: int | None
    via: str  # bytes, pixels, full frame, centred crop, side cut, mirrored


@dataclass(frozen=True)
class _Conflict:
    """The strongest cross-label evidence one member has: error or warning."""

    code: str  # label_conflict or possible_label_conflict
    other: int  # the other file (another label)
    evidence: str  # what links them, for the reason


@dataclass
class _Group:
    """One group to describe: its rows (sorted), its keeper, and what makes it an error."""

    members: list[int]
    keeper: int
    labels: int  # how many labels its members have
    leak: bool  # members in several splits
    relations: dict[int, _Member]
    conflicts: dict[int, _Conflict]

    @property
    def strong(self) -> bool:
        return any(c.code == "label_conflict" for c in self.conflicts.values())


class _Columns:
    """The table's columns, read once (each ScanTable property builds a new view)."""

    def __init__(self, hashes: _Hashes):
        table = hashes.table
        self.table, self.hashes = table, hashes
        self.sha = table.sha256
        self.width, self.height = table.width, table.height
        self._label, self._split = table.label, table.split
        self.pixel_digests: dict[int, str | None] = {}

    def path(self, row: int) -> str:
        return self.table.paths[row]

    def label(self, row: int) -> str:
        return self.table.classes[self._label[row]]

    def split(self, row: int) -> str:
        return self.table.splits[self._split[row]]

    def same_bytes(self, row: int, other: int) -> bool:
        return bytes(self.sha[row]) == bytes(self.sha[other])

    def identity(self, row: int, other: int, relation: _Relation | None = None) -> str | None:
        """ "bytes" or "pixels" when the two files are identical, else None. Pixels are
        compared (decoded) only for same-size files whose hashes are this close."""
        if self.same_bytes(row, other):
            return "bytes"
        if (self.width[row], self.height[row]) != (self.width[other], self.height[other]):
            return None
        if relation is None:
            relation = self.hashes.relation(row, other)
        close = relation.evidence <= PIXEL_CHECK_RADIUS or not (
            self.hashes.hashed[row] or self.hashes.hashed[other]
        )
        if close and _same_pixels(self.table, row, other, self.pixel_digests):
            return "pixels"
        return None


def _describe_groups(groups: list[list[int]], keepers: list[int], hashes: _Hashes) -> DatasetResult:
    """Kind and distance of every member, its findings, and the duplicates.csv rows."""
    columns = _Columns(hashes)
    described = [
        _group(sorted(members), keeper, columns)
        for members, keeper in zip(groups, keepers, strict=True)
    ]
    described.sort(
        key=lambda group: (
            not group.strong,
            not group.conflicts,
            not group.leak,
            -len(group.members),
            min(group.members),
        )
    )
    findings: dict[int, list[Finding]] = defaultdict(list)
    rows: list[dict] = []
    exact_groups = mirror_groups = 0
    largest_distance = 0
    for group_id, group in enumerate(described, start=1):
        for row in group.members:
            member = group.relations[row]
            rows.append(_duplicates_row(columns, group_id, row, group.keeper, member))
            if row != group.keeper:
                findings[row].append(_duplicate_finding(columns, group_id, group.keeper, member))
                if member.distance is not None:
                    largest_distance = max(largest_distance, member.distance)
            if row in group.conflicts:
                findings[row].append(
                    _conflict_finding(columns, group_id, row, group.conflicts[row])
                )
            if group.leak:
                findings[row].append(_split_leak(columns, group_id, group.members, row))
        # Disjoint counts: exact (every member exact), mirror (a mirrored member), near
        # (the rest: a near member and no mirrored one).
        kinds = {group.relations[row].kind for row in group.members}
        exact_groups += kinds == {"exact"}
        mirror_groups += "mirror" in kinds

    in_groups = sum(len(members) for members in groups)
    summary = {
        "groups": len(groups),
        "exact_groups": exact_groups,
        "near_groups": len(groups) - exact_groups - mirror_groups,
        "mirror_groups": mirror_groups,
        "files_in_groups": in_groups,
        "redundant_files": in_groups - len(groups),
        "largest_group": max((len(members) for members in groups), default=0),
        "largest_distance_to_keeper": largest_distance,
        "grouping": GROUPING_RULE,
        "label_conflict_groups": sum(group.strong for group in described),
        "possible_label_conflict_groups": sum(
            bool(group.conflicts) and not group.strong for group in described
        ),
        "conflict_cut": CONFLICT_CUT,
        "pixel_copy_cut": PIXEL_COPY_CUT,
        "split_leak_groups": sum(group.leak for group in described),
    }
    return DatasetResult(summary, dict(findings), [], report_rows={DUPLICATES.name: rows})


def _group(members: list[int], keeper: int, columns: _Columns) -> _Group:
    relations = {row: _member(columns, row, keeper) for row in members}
    labels = {columns.label(row) for row in members}
    conflicts = _conflicts(members, keeper, columns) if len(labels) > 1 else {}
    return _Group(
        members,
        keeper,
        len(labels),
        len({columns.split(row) for row in members}) > 1,
        relations,
        conflicts,
    )


def _member(columns: _Columns, row: int, keeper: int) -> _Member:
    """A member's kind and distance to the keeper (None when either has no hash)."""
    if row == keeper:
        return _Member("exact", 0, "bytes")
    relation = columns.hashes.relation(row, keeper)
    identity = columns.identity(row, keeper, relation)
    if identity is not None:
        distance = 0 if identity == "bytes" or relation.kind is None else relation.distance
        return _Member("exact", distance, identity)
    if relation.kind is None:
        return _Member("near", None, "")
    return _Member(relation.kind, relation.distance, relation.via)


def _conflicts(members: list[int], keeper: int, columns: _Columns) -> dict[int, _Conflict]:
    """Per member under two labels: its strongest evidence against a file of another label.

    Pairwise over the group's distinct files (one per sha256) up to PAIRWISE_LIMIT;
    past that, against the keeper only (then the keeper against every member)."""
    by_digest: dict[bytes, list[int]] = defaultdict(list)
    for row in members:
        by_digest[bytes(columns.sha[row])].append(row)
    candidates = members if len(by_digest) <= PAIRWISE_LIMIT else None
    conflicts: dict[int, _Conflict] = {}
    for row in members:
        others = candidates if candidates is not None else [keeper] if row != keeper else members
        best: _Conflict | None = None
        best_rank: tuple[int, int] = (2, _FAR)
        for other in others:
            if columns.label(other) == columns.label(row):
                continue
            found = _evidence(columns, row, other)
            if found is not None and found[0] < best_rank:
                best_rank = found[0]
                best = _Conflict(found[1], other, found[2])
        if best is not None:
            conflicts[row] = best
    return conflicts


def _evidence(columns: _Columns, row: int, other: int) -> tuple[tuple[int, int], str, str] | None:
    """(rank, code, evidence text) of two files under two labels; None when unrelated."""
    relation = columns.hashes.relation(row, other)
    identity = columns.identity(row, other, relation)
    if identity is not None:
        return (0, 0), "label_conflict", f"identical {identity}"
    if relation.kind is None:
        return None
    tiny = not (columns.hashes.regular[row] and columns.hashes.regular[other])
    # The distance judged against the copy cut: full frame or centred/corner crop (side
    # cuts and mirrors link groups but never make a copy).
    judged = (
        f"pHash distance {relation.evidence} ({relation.via})"
        if relation.via in ("full frame", "centred crop") and relation.evidence == relation.distance
        else f"full-frame or crop pHash distance {_shown_distance(relation.evidence)}"
    )
    if relation.evidence <= CONFLICT_CUT and not tiny:
        similarity = columns.hashes.pixels.similarity(row, other)
        if similarity is not None and similarity >= PIXEL_COPY_CUT:
            return (
                (0, relation.evidence),
                "label_conflict",
                f"pHash distance {relation.evidence}, within the copy cut {CONFLICT_CUT}; "
                f"pixel correlation {similarity:.2f}",
            )
        why = f"{judged}, within the copy cut {CONFLICT_CUT}, but " + (
            "a file does not decode now: no pixel evidence"
            if similarity is None
            else f"the pixel correlation {similarity:.2f} is under {PIXEL_COPY_CUT:.2f}: "
            "not the same picture by its pixels"
        )
    elif tiny:
        why = (
            f"pHash distance {relation.distance} ({relation.via}); tiny images: only "
            "identical pixels make an error"
        )
    elif relation.via in ("side cut", "mirrored"):
        why = (
            f"pHash distance {relation.distance} ({relation.via}); a {relation.via} match "
            f"never counts as a copy; {judged}, past the copy cut {CONFLICT_CUT}"
        )
    else:
        why = f"{judged}, past the copy cut {CONFLICT_CUT}"
    return (1, relation.distance), "possible_label_conflict", why


def _shown_distance(distance: int) -> str:
    return f"over {_FAR - 1}" if distance >= _FAR else str(distance)


def _same_pixels(table, row: int, keeper: int, pixel_digests: dict[int, str | None]) -> bool:
    keeper_pixels = _pixel_digest(table, keeper, pixel_digests)
    return keeper_pixels is not None and _pixel_digest(table, row, pixel_digests) == keeper_pixels


def _duplicates_row(
    columns: _Columns, group_id: int, row: int, keeper: int, member: _Member
) -> dict:
    return {
        "group": group_id,
        "kind": member.kind,
        "path": columns.path(row),
        "label": columns.label(row),
        "split": columns.split(row),
        "distance": "" if member.distance is None else member.distance,
        "keeper": row == keeper,
    }


def _duplicate_finding(columns: _Columns, group_id: int, keeper: int, member: _Member) -> Finding:
    """exact_duplicate or near_duplicate of a member that is not the keeper."""
    if member.kind == "exact":
        return Finding(
            "exact_duplicate", f"same {member.via} as {columns.path(keeper)} (group {group_id})"
        )
    shown = "unknown" if member.distance is None else member.distance
    how = f", {member.via}" if member.via and member.via != "full frame" else ""
    return Finding(
        "near_duplicate",
        f"pHash distance {shown}{how} to {columns.path(keeper)} (group {group_id})",
    )


def _conflict_finding(columns: _Columns, group_id: int, row: int, conflict: _Conflict) -> Finding:
    """label_conflict or possible_label_conflict: the other file, its label, the evidence."""
    other = conflict.other
    if conflict.code == "label_conflict":
        text = (
            f"the same picture is filed under {columns.label(row)} and "
            f"{columns.label(other)}: {columns.path(other)} ({conflict.evidence}; group {group_id})"
        )
    else:
        text = (
            f"near {columns.path(other)}, filed under {columns.label(other)}: "
            f"{conflict.evidence}; check by eye (group {group_id})"
        )
    return Finding(conflict.code, text)


def _split_leak(columns: _Columns, group_id: int, members: list[int], row: int) -> Finding:
    """The split_leak of one member: the group's files in the other splits."""
    here = columns.split(row)
    others = [columns.path(other) for other in members if columns.split(other) != here]
    other_splits = sorted({columns.split(other) for other in members} - {here})
    return Finding(
        "split_leak", f"also in {', '.join(other_splits)}: {_some(others)} (group {group_id})"
    )


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
    # Slice out only the runs of two or more: np.split made one array per run, singletons
    # included (most keys are unique), 0.09 s CPU of 100,000 rows, twice per scan.
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [order.size]))
    repeated = ends - starts > 1
    return [
        order[start:end]
        for start, end in zip(starts[repeated].tolist(), ends[repeated].tolist(), strict=True)
    ]


class _UnionFind:
    """Disjoint sets over rows with path halving, each set knowing its best keeper and
    its members.

    Iterative (no recursion limit), and only rows ever joined are tracked, so a
    million singletons cost nothing. rank: higher is a better keeper.
    """

    def __init__(self, rank: np.ndarray):
        self.rank = rank
        self.parent: dict[int, int] = {}
        self.best: dict[int, int] = {}  # root -> keeper
        self._members: dict[int, list[int]] = {}  # root -> members (joined sets only)

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

    def better(self, left: int, right: int) -> int:
        """The better keeper of two rows."""
        return left if self.rank[left] >= self.rank[right] else right

    def members(self, root: int) -> list[int]:
        return self._members.get(root, [root])

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
        merged = self._members.pop(low, [low])
        merged.extend(self._members.pop(high, [high]))
        self._members[low] = merged

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
    """Exact, near and (opt-in) mirrored duplicate groups; label conflicts graded by
    evidence; split leaks (dataset)."""

    name = "duplicates"
    version = 2  # variant hashes (side cuts, mirror), keeper-centred groups, graded conflicts
    codes = (
        "exact_duplicate",
        "near_duplicate",
        "label_conflict",
        "possible_label_conflict",
        "split_leak",
    )
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
        Threshold(
            "mirror",
            0,
            "also find mirrored (left-right flipped) copies, reported as kind 'mirror' in "
            "duplicates.csv (off by default: mirror images are sometimes different classes)",
            minimum=0,
            maximum=1,
            flag=True,
        ),
    )
    tables = (DUPLICATES,)

    def check_dataset(self, table, thresholds):
        return check_dataset(table, thresholds)

    def report_values(self, section: dict) -> dict:
        return {"duplicates": section}
