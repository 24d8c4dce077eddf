"""Duplicates end to end: each transform found, distinct pictures apart, labels and splits."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from collections.abc import Iterable

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter

from audit.checks import Thresholds, duplicates
from audit.checks.duplicates import check_dataset, measured_radius
from audit.hashing import CUT_SLICE, MIRROR_INDEX, NO_HASH, VARIANTS, hamming
from audit.neighbors import Pairs
from audit.records import FileRecord
from audit.reportio import DUPLICATES
from audit.scan import scan
from audit.table import ScanTable
from tests.conftest import write_dataset
from tests.imagegen import TRANSFORMS, encode, mirrored, photo_like


def duplicate_rows(out) -> list[dict]:
    return list(csv.DictReader(open(out / "duplicates.csv", encoding="utf-8")))


def issues_by_path(out) -> dict[str, set[str]]:
    rows = csv.DictReader(open(out / "images.csv", encoding="utf-8"))
    return {row["path"]: set(filter(None, row["issues"].split(";"))) for row in rows}


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    """Four originals (PNG, the least compressed) with every transform, and 30 distinct ones."""
    files = {}
    for number in range(4):
        original = photo_like(240, 180, seed=500 + number)
        files[f"pets/orig{number}.png"] = encode(original, "PNG")
        for name, transform in TRANSFORMS.items():
            files[f"pets/orig{number}_{name}.jpg"] = encode(transform(original), "JPEG", quality=90)
    for number in range(30):
        files[f"pets/distinct{number:02d}.jpg"] = encode(
            photo_like(200, 150, seed=900 + number), "JPEG", quality=90
        )
    root = write_dataset(tmp_path_factory.mktemp("dups") / "data", files)
    out = tmp_path_factory.mktemp("out")
    result = scan(root, out, jobs=1)
    return out, result


@pytest.mark.parametrize("transform", sorted(TRANSFORMS))
def test_each_transform_lands_with_its_original(transformed, transform):
    out, _ = transformed
    groups: dict[str, set[str]] = {}
    for row in duplicate_rows(out):
        groups.setdefault(row["group"], set()).add(row["path"])
    for number in range(4):
        group = [members for members in groups.values() if f"pets/orig{number}.png" in members]
        assert group and f"pets/orig{number}_{transform}.jpg" in group[0], f"original {number}"


def test_groups_are_whole_and_distinct_pictures_stay_apart(transformed):
    out, result = transformed
    rows = duplicate_rows(out)
    assert result.summary["checks"]["duplicates"]["groups"] == 4
    assert not [row for row in rows if "distinct" in row["path"]]
    keepers = sorted(row["path"] for row in rows if row["keeper"] == "True")
    assert keepers == [f"pets/orig{number}.png" for number in range(4)]
    issues = issues_by_path(out)
    assert issues["pets/orig0_jpeg_q30.jpg"] == {"near_duplicate"}
    assert (
        "near_duplicate" not in issues["pets/orig0.png"]
        and "exact_duplicate" not in issues["pets/orig0.png"]
    )
    assert all(int(row["distance"]) <= 10 for row in rows)


def test_exact_bytes_and_exact_pixels(tmp_path):
    jpeg = encode(photo_like(160, 120, seed=7), "JPEG", quality=95)
    picture = photo_like(160, 120, seed=9)
    files = {
        "a/one.jpg": jpeg,
        "a/two.jpg": jpeg,
        "a/three.jpg": jpeg,
        "b/pixels.png": encode(picture, "PNG"),
        "b/pixels.bmp": encode(picture, "BMP"),
        "b/other.jpg": encode(photo_like(160, 120, seed=8), "JPEG"),
    }
    out = tmp_path / "out"
    scan(write_dataset(tmp_path / "d", files), out, jobs=1)
    rows = duplicate_rows(out)
    by_group: dict[str, list[dict]] = {}
    for row in rows:
        by_group.setdefault(row["group"], []).append(row)
    kinds = sorted(
        sorted((row["path"], row["kind"]) for row in members) for members in by_group.values()
    )
    assert kinds == [
        [("a/one.jpg", "exact"), ("a/three.jpg", "exact"), ("a/two.jpg", "exact")],
        [("b/pixels.bmp", "exact"), ("b/pixels.png", "exact")],
    ]
    issues = issues_by_path(out)
    assert sum("exact_duplicate" in found for found in issues.values()) == 3
    reasons = open(out / "findings.csv", encoding="utf-8").read()
    assert "same bytes as a/one.jpg" in reasons and "same pixels as" in reasons


def test_cross_class_copy_is_a_label_conflict(tmp_path):
    picture = encode(photo_like(160, 120, seed=3), "JPEG")
    files = {
        "cat/x.jpg": picture,
        "dog/x_copy.jpg": picture,
        "cat/y.jpg": encode(photo_like(160, 120, seed=4), "JPEG"),
        "dog/z.jpg": encode(photo_like(160, 120, seed=5).resize((120, 90)), "JPEG"),
    }
    out = tmp_path / "out"
    result = scan(write_dataset(tmp_path / "d", files), out, jobs=1)
    issues = issues_by_path(out)
    assert "label_conflict" in issues["cat/x.jpg"] and "label_conflict" in issues["dog/x_copy.jpg"]
    assert "label_conflict" not in issues["cat/y.jpg"]
    assert result.exit_code() == 1  # label_conflict is an error
    assert result.summary["checks"]["duplicates"]["label_conflict_groups"] == 1
    html = (out / "report.html").read_text()
    assert "label_conflict" in html and 'class="dupgroup conflict"' in html


def test_split_leak_with_against_both_ways(tmp_path):
    shared = photo_like(160, 120, seed=11)
    train = write_dataset(
        tmp_path / "train",
        {
            "cat/a.jpg": encode(shared, "JPEG"),
            "cat/b.jpg": encode(photo_like(160, 120, seed=12), "JPEG"),
        },
    )
    val = write_dataset(
        tmp_path / "val",
        {
            "cat/a_again.jpg": encode(shared.resize((120, 90)), "JPEG", quality=60),
            "cat/c.jpg": encode(photo_like(160, 120, seed=13), "JPEG"),
        },
    )
    out = tmp_path / "out"
    scan(train, out, against=val, jobs=1)
    issues = issues_by_path(out)
    assert "split_leak" in issues["cat/a.jpg"] and "split_leak" in issues["../val/cat/a_again.jpg"]
    assert not issues["cat/b.jpg"] and not issues["../val/cat/c.jpg"]
    rows = {row["path"]: row for row in csv.DictReader(open(out / "images.csv", encoding="utf-8"))}
    assert (
        rows["cat/a.jpg"]["split"] == "train" and rows["../val/cat/a_again.jpg"]["split"] == "val"
    )


def test_split_leak_in_a_split_layout(tmp_path):
    shared = encode(photo_like(160, 120, seed=21), "JPEG")
    root = write_dataset(
        tmp_path / "d",
        {
            "train/cat/a.jpg": shared,
            "validation/cat/a.jpg": shared,
            "train/dog/b.jpg": encode(photo_like(160, 120, seed=22), "JPEG"),
            "validation/dog/c.jpg": encode(photo_like(160, 120, seed=23), "JPEG"),
        },
    )
    out = tmp_path / "out"
    result = scan(root, out, jobs=1)
    issues = issues_by_path(out)
    assert (
        "split_leak" in issues["train/cat/a.jpg"] and "split_leak" in issues["validation/cat/a.jpg"]
    )
    assert [c["name"] for c in result.summary["classes"]] == ["cat", "dog"]
    assert result.summary["checks"]["duplicates"]["split_leak_groups"] == 1


def test_tiny_set_without_duplicates_stays_clean(tmp_path):
    """28 px pictures: pHash collides often; the radius is tightened and says so."""
    files = {
        f"c{number % 3}/{number:03d}.png": encode(photo_like(28, 28, seed=3000 + number), "PNG")
        for number in range(300)
    }
    files["c0/copy_of_000.png"] = files["c0/000.png"]
    out = tmp_path / "out"
    result = scan(write_dataset(tmp_path / "d", files), out, jobs=1)
    near = result.summary["checks"]["duplicates"]["near"]["size_buckets"]["tiny"]
    grouped = {row["path"] for row in duplicate_rows(out)}
    assert {"c0/000.png", "c0/copy_of_000.png"} <= grouped  # a true copy is still found
    assert len(grouped - {"c0/000.png", "c0/copy_of_000.png"}) <= 3  # (nearly) no spurious group
    assert "how" in near and near["radius_used"] <= near["radius_requested"]


def test_measured_radius_tightens_only_when_hashes_collide():
    rng = np.random.default_rng(0)
    spread = rng.integers(0, 2**63, 400, dtype=np.uint64)
    assert measured_radius(spread, 10)[0] == 10
    # Hashes confined to 20 varying bits: distinct pictures collide at radius 10.
    crowded = rng.integers(0, 2**20, 400, dtype=np.uint64)
    radius, report = measured_radius(crowded, 10)
    assert radius < 10 and "tightened" in report["how"]
    json.dumps(report)  # it goes into summary.json


def flip(value: int, bits: Iterable[int]) -> int:
    """value with the given bit positions flipped."""
    for bit in bits:
        value ^= 1 << bit
    return value


def hashed_record(path: str, label: str, phash: int, side: int) -> FileRecord:
    # No variant hashes (NO_HASH never matches): only the full-frame distances decide.
    # Distinct sha256 digests: no byte-exact copies.
    crops = (NO_HASH,) * len(VARIANTS)
    digest = hashlib.sha256(path.encode()).hexdigest()
    return FileRecord(path, label, 1000, "PNG", "RGB", side, side, digest, phash, 0, (), "", crops)


def test_keeper_linkage_keeps_two_originals_chained_through_their_copies_apart():
    """A ~ A' (3 bits), B ~ B' (3 bits) and A' ~ B' (8 bits): all within radius 10, but
    A and B are 14 bits apart. Connected components would make one group (and, the two
    sides being under two labels, a false label_conflict); keeper linkage makes two."""
    original_a = 0x0123456789ABCDEF
    copy_a = flip(original_a, range(0, 3))
    copy_b = flip(copy_a, range(3, 11))
    original_b = flip(copy_b, range(11, 14))
    assert [hamming(x, y) for x, y in ((original_a, copy_a), (copy_a, copy_b))] == [3, 8]
    assert hamming(copy_b, original_b) == 3 and hamming(original_a, original_b) == 14
    assert min(hamming(original_a, copy_b), hamming(copy_a, original_b)) > 10
    table = ScanTable(None, ("cat", "dog"))
    for record in (
        hashed_record("cat/a.png", "cat", original_a, 200),  # originals: most pixels, keepers
        hashed_record("cat/a_copy.png", "cat", copy_a, 100),
        hashed_record("dog/b_copy.png", "dog", copy_b, 100),
        hashed_record("dog/b.png", "dog", original_b, 200),
    ):
        table.append(record)

    result = check_dataset(table, Thresholds(near_radius=10))

    groups: dict[int, set[str]] = {}
    for row in result.report_rows[DUPLICATES.name]:
        groups.setdefault(row["group"], set()).add(row["path"])
    assert sorted(map(sorted, groups.values())) == [
        ["cat/a.png", "cat/a_copy.png"],
        ["dog/b.png", "dog/b_copy.png"],
    ]
    keepers = {row["path"] for row in result.report_rows[DUPLICATES.name] if row["keeper"]}
    assert keepers == {"cat/a.png", "dog/b.png"}
    assert result.summary["label_conflict_groups"] == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_groups_do_not_depend_on_the_order_the_search_returns_pairs(monkeypatch, seed):
    """The multi-index search returns pairs in an order that varies with the thread count;
    grouping must not (measured before: 468 vs 469 groups on 1 vs 2 threads)."""
    rng = np.random.default_rng(seed)
    centres = [int(value) for value in rng.integers(0, 2**63, size=6, dtype=np.int64)]
    table = ScanTable(None, ("cat", "dog"))
    for index in range(60):
        centre = centres[index % len(centres)]
        bits = rng.choice(64, size=int(rng.integers(0, 7)), replace=False)
        label = ("cat", "dog")[int(rng.integers(0, 2))]
        value = flip(centre, (int(bit) for bit in bits))
        table.append(hashed_record(f"{label}/{index}.png", label, value, 100))

    def groups_with(order) -> list[list[str]]:
        search = duplicates.pairs_within

        def reordered(hashes, radius, **options):
            found = search(hashes, radius, **options)
            permutation = order(len(found))
            return Pairs(
                found.first[permutation], found.second[permutation], found.distance[permutation]
            )

        monkeypatch.setattr(duplicates, "pairs_within", reordered)
        rows = check_dataset(table, Thresholds(near_radius=10)).report_rows[DUPLICATES.name]
        monkeypatch.undo()
        grouped: dict[int, list[str]] = {}
        for row in rows:
            grouped.setdefault(row["group"], []).append(row["path"])
        return sorted(sorted(members) for members in grouped.values())

    as_found = groups_with(np.arange)
    assert groups_with(lambda n: np.arange(n)[::-1]) == as_found
    assert groups_with(lambda n: np.random.default_rng(seed).permutation(n)) == as_found


def build_table(records, classes=("cat", "dog")) -> ScanTable:
    table = ScanTable(None, classes)
    for record in records:
        table.append(record)
    return table


def groups_of(result) -> list[list[str]]:
    grouped: dict[int, list[str]] = {}
    for row in result.report_rows[DUPLICATES.name]:
        grouped.setdefault(row["group"], []).append(row["path"])
    return sorted(sorted(members) for members in grouped.values())


def codes_by_path(table, result) -> dict[str, set[str]]:
    return {
        table.paths[row]: {finding.code for finding in found}
        for row, found in result.file_findings.items()
    }


def test_a_chain_of_edits_is_not_one_group():
    """A ~ B (6 bits), B ~ C (6 bits), A and C 12 bits apart: with A the keeper (most
    pixels), C is not within the radius of the keeper, so it is not in A's group.
    Every member of every group is within the radius of its keeper."""
    a = 0x0123456789ABCDEF
    b = flip(a, range(0, 6))
    c = flip(b, range(6, 12))
    assert (hamming(a, b), hamming(b, c), hamming(a, c)) == (6, 6, 12)
    table = build_table(
        [
            hashed_record("cat/a.png", "cat", a, 300),
            hashed_record("cat/b.png", "cat", b, 200),
            hashed_record("cat/c.png", "cat", c, 100),
        ]
    )
    result = check_dataset(table, Thresholds(near_radius=10))
    assert groups_of(result) == [["cat/a.png", "cat/b.png"]]
    assert result.summary["largest_group"] == 2
    assert result.summary["largest_distance_to_keeper"] == 6
    assert "keeper-centred" in result.summary["grouping"]


def test_a_long_chain_never_grows_one_group_past_the_radius():
    """Twenty hashes, each 2 bits from the next (a walk 38 bits long): every member ends
    within the radius of its keeper; connected components would make one group."""
    rng = np.random.default_rng(5)
    value = 0x0F0F0F0F0F0F0F0F
    records = []
    order = rng.permutation(64)
    for step in range(20):
        records.append(hashed_record(f"cat/{step:02d}.png", "cat", value, 100 + step))
        value = flip(value, order[2 * step % 64 : 2 * step % 64 + 2].tolist())
    table = build_table(records)
    result = check_dataset(table, Thresholds(near_radius=10))
    rows = result.report_rows[DUPLICATES.name]
    assert len(groups_of(result)) > 1
    assert all(row["distance"] <= 10 for row in rows)
    assert result.summary["largest_distance_to_keeper"] <= 10


@pytest.fixture(scope="module")
def photos():
    """Two real photos (scikit-learn's samples) at 320x214, as RGB images."""
    from sklearn.datasets import load_sample_image

    return {
        name: Image.fromarray(load_sample_image(f"{name}.jpg")).resize((320, 214))
        for name in ("china", "flower")
    }


def files_table(root, named: dict[str, tuple[Image.Image, int]], mirror_of=None) -> ScanTable:
    """A table over real files written under root (PNG): path -> (image, synthetic pHash).
    mirror_of: path -> the synthetic mirrored hash of that file (other variants NO_HASH)."""
    table = ScanTable(root, ("cat", "dog"))
    for path, (image, value) in named.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        image.save(root / path)
        record = hashed_record(path, path.split("/")[0], value, 200)
        if mirror_of and path in mirror_of:
            variants = [NO_HASH] * len(VARIANTS)
            variants[MIRROR_INDEX] = mirror_of[path]
            record = dataclasses.replace(record, phash_zoom=tuple(variants))
        table.append(record)
    return table


@pytest.mark.parametrize(
    ("bits", "expected"),
    [(0, "label_conflict"), (2, "label_conflict"), (8, "possible_label_conflict")],
)
def test_conflicts_are_graded_by_distance(tmp_path, photos, bits, expected):
    """Across classes: a copy (here brightened) within the copy cut, its pixels agreeing,
    is an error; a pair at the radius edge is a warning that names its distance."""
    a = 0x0123456789ABCDEF
    copy = ImageEnhance.Brightness(photos["china"]).enhance(1.2)
    table = files_table(
        tmp_path, {"cat/a.png": (photos["china"], a), "dog/b.png": (copy, flip(a, range(bits)))}
    )
    result = check_dataset(table, Thresholds(near_radius=10))
    codes = codes_by_path(table, result)
    other = {"label_conflict", "possible_label_conflict"} - {expected}
    assert expected in codes["cat/a.png"] and expected in codes["dog/b.png"]
    assert not (other & codes["cat/a.png"]) and not (other & codes["dog/b.png"])
    summary = result.summary
    assert summary["label_conflict_groups"] == (expected == "label_conflict")
    assert summary["possible_label_conflict_groups"] == (expected != "label_conflict")
    reasons = [f.reason for f in result.file_findings[1] if f.code == expected]
    assert f"pHash distance {bits}" in reasons[0]
    if expected == "label_conflict" and bits:
        assert "pixel correlation" in reasons[0]


def test_a_hash_collision_of_distinct_pictures_is_not_an_error(tmp_path, photos):
    """Two distinct pictures whose pHashes collide within the copy cut (as low-contrast
    crops of one retina photo did, 2 bits apart): the pixels disagree, so the pair is a
    possible_label_conflict (warning) that says why, never a label_conflict."""
    a = 0x0123456789ABCDEF
    faint = {name: ImageEnhance.Contrast(image).enhance(0.3) for name, image in photos.items()}
    table = files_table(
        tmp_path,
        {
            "cat/china.png": (faint["china"], a),
            "dog/flower.png": (faint["flower"], flip(a, [1, 9])),
        },
    )
    result = check_dataset(table, Thresholds(near_radius=10))
    codes = codes_by_path(table, result)
    assert codes["cat/china.png"] >= {"possible_label_conflict"}
    assert not any("label_conflict" in found for found in codes.values())
    reason = next(f.reason for f in result.file_findings[0] if f.code == "possible_label_conflict")
    assert "within the copy cut 3, but the pixel correlation" in reason
    assert result.summary["label_conflict_groups"] == 0


def test_a_mirrored_hash_needs_mirrored_pixels(tmp_path, photos):
    """With --mirror, a mirrored hash within the mirror radius of another file's hash
    links the two only when the flipped pixels agree: a real mirrored copy is a mirror
    duplicate, a distinct picture at the same hash distance is left alone."""
    a = 0x0123456789ABCDEF
    near_mirror = flip(a, range(8))  # at the edge of the mirror radius
    table = files_table(
        tmp_path,
        {
            "cat/china.png": (photos["china"], a),
            "cat/china_flipped.png": (mirrored(photos["china"]), 0x7777777777777777),
            "dog/flower.png": (photos["flower"], 0x1111111111111111),
        },
        mirror_of={"cat/china_flipped.png": near_mirror, "dog/flower.png": near_mirror},
    )
    result = check_dataset(table, Thresholds(near_radius=10, mirror=1))
    rows = result.report_rows[DUPLICATES.name]
    assert {row["path"] for row in rows} == {"cat/china.png", "cat/china_flipped.png"}
    assert {row["kind"] for row in rows} == {"exact", "mirror"}
    summary = result.summary
    assert (summary["groups"], summary["mirror_groups"], summary["near_groups"]) == (1, 1, 0)


def test_side_cut_conflicts_name_the_distance_that_was_judged():
    """A pair linked by a side cut (identical cut hashes) but far apart as whole frames is
    a warning whose reason says a side cut never makes a copy and which distance was
    judged against the copy cut."""
    full_a, full_b = 0x0123456789ABCDEF, 0x0123456789ABCDEF ^ 0xFFFF_0000_0000_0000
    cut = 0x5A5A5A5A5A5A5A5A
    variants = [NO_HASH] * len(VARIANTS)
    variants[CUT_SLICE.start] = cut
    records = [
        dataclasses.replace(hashed_record(path, path[:3], value, 200), phash_zoom=tuple(variants))
        for path, value in (("cat/a.png", full_a), ("dog/b.png", full_b))
    ]
    table = build_table(records)
    result = check_dataset(table, Thresholds(near_radius=10))
    reason = next(f.reason for f in result.file_findings[0] if f.code == "possible_label_conflict")
    assert "pHash distance 0 (side cut); a side cut match never counts as a copy" in reason
    assert "full-frame or crop pHash distance 16, past the copy cut 3" in reason


def test_the_keeper_is_the_clean_file(tmp_path, photos):
    """A blurred and a darkened copy (bigger files, PNG) lose the keeper to their sharp,
    well-exposed originals (smaller JPEGs): quality warnings rank below pixel count."""
    files = {
        "cat/china.jpg": encode(photos["china"], "JPEG", quality=85),
        "cat/china_blurred.png": encode(photos["china"].filter(ImageFilter.GaussianBlur(4)), "PNG"),
        "dog/flower.jpg": encode(photos["flower"], "JPEG", quality=85),
        "dog/flower_dark.png": encode(
            ImageEnhance.Brightness(photos["flower"]).enhance(0.15), "PNG"
        ),
    }
    out = tmp_path / "out"
    scan(write_dataset(tmp_path / "d", files), out, jobs=1, cache=False)
    issues = issues_by_path(out)
    assert "blurry" in issues["cat/china_blurred.png"] and "dark" in issues["dog/flower_dark.png"]
    keepers = {row["path"] for row in duplicate_rows(out) if row["keeper"] == "True"}
    assert keepers == {"cat/china.jpg", "dog/flower.jpg"}
    assert len(groups_of_csv(out)) == 2


def test_flat_files_with_errors_are_not_grouped_by_hash(tmp_path):
    """Black TIFFs in two classes (an error each: TensorFlow does not decode TIFF, so the
    quality check does not judge them and gives no low_information finding): their
    contrast still marks them near-constant, so their pHash noise groups nothing."""
    files = {
        "cat/black.tif": encode(Image.new("RGB", (300, 200)), "TIFF"),
        "dog/black.tif": encode(Image.new("RGB", (640, 480)), "TIFF"),
    }
    out = tmp_path / "out"
    result = scan(write_dataset(tmp_path / "d", files), out, jobs=1, cache=False)
    issues = issues_by_path(out)
    assert all("low_information" not in found for found in issues.values()), issues
    assert duplicate_rows(out) == []
    assert result.summary["checks"]["duplicates"]["low_information_files"] == 2


def test_a_distance_edge_pair_across_classes_is_a_warning_in_a_scan(tmp_path):
    """One picture and a copy rotated 2 degrees (8 bits apart: past the copy cut, within
    the radius) in two classes: possible_label_conflict (warning) with its distance, so
    the scan exits 0 and the default quarantine selection (errors) leaves them."""
    from audit.quarantine import select

    base = photo_like(200, 150, seed=41)
    files = {
        "cat/a.png": encode(base, "PNG"),
        "dog/b.png": encode(base.rotate(2, resample=Image.Resampling.BILINEAR), "PNG"),
    }
    out = tmp_path / "out"
    result = scan(write_dataset(tmp_path / "d", files), out, jobs=1, cache=False)
    rows = {row["path"]: row for row in duplicate_rows(out)}
    assert int(rows["dog/b.png"]["distance"]) == 8
    issues = issues_by_path(out)
    for path in ("cat/a.png", "dog/b.png"):
        assert "possible_label_conflict" in issues[path] and "label_conflict" not in issues[path]
    reasons = open(out / "findings.csv", encoding="utf-8").read()
    assert "pHash distance 8" in reasons
    assert result.exit_code() == 0
    assert result.summary["checks"]["duplicates"]["possible_label_conflict_groups"] == 1
    assert select(out) == []  # the default quarantine selection: errors only


def test_low_information_files_group_only_when_identical():
    """Near-constant files hash to noise (often to the same value): with the flag set,
    they are never near duplicates, only byte-identical copies group."""
    records = [
        hashed_record("cat/blank1.png", "cat", 0, 100),
        hashed_record("cat/blank2.png", "cat", 0, 100),
        hashed_record("dog/blank3.png", "dog", 1, 100),
    ]
    records.append(dataclasses.replace(records[0], path="cat/blank1_copy.png"))

    class Flagged(ScanTable):
        @property
        def low_information(self):
            return np.ones(len(self), dtype=bool)

    table = Flagged(None, ("cat", "dog"))
    for record in records:
        table.append(record)
    result = check_dataset(table, Thresholds(near_radius=10))
    assert groups_of(result) == [["cat/blank1.png", "cat/blank1_copy.png"]]
    assert result.summary["low_information_files"] == 4
    assert not any(
        f.code in ("near_duplicate", "label_conflict", "possible_label_conflict")
        for found in result.file_findings.values()
        for f in found
    )


@pytest.fixture(scope="module")
def blank_scan(tmp_path_factory):
    """Blank, solid-colour and black-frame files, some identical in pixels."""
    white = Image.new("RGB", (120, 90), (255, 255, 255))
    noisy = np.clip(
        np.full((90, 120, 3), 250.0) + np.random.default_rng(1).normal(0, 1.5, (90, 120, 3)),
        0,
        255,
    ).astype(np.uint8)
    files = {
        "cat/white.png": encode(white, "PNG"),
        "cat/white_again.bmp": encode(white, "BMP"),  # same pixels, other bytes
        "dog/white_copy.png": encode(white, "PNG"),  # same bytes, other class
        "cat/near_white.jpg": encode(Image.fromarray(noisy), "JPEG", quality=90),
        "cat/grey.png": encode(Image.new("RGB", (120, 90), (128, 128, 128)), "PNG"),
        "dog/red.png": encode(Image.new("RGB", (120, 90), (200, 30, 30)), "PNG"),
        "dog/black.jpg": encode(Image.new("RGB", (160, 90), (0, 0, 0)), "JPEG"),
        "dog/black2.jpg": encode(Image.new("RGB", (100, 100), (3, 3, 3)), "JPEG"),
        "cat/photo.jpg": encode(photo_like(160, 120, seed=77), "JPEG"),
    }
    root = write_dataset(tmp_path_factory.mktemp("blank") / "d", files)
    out = tmp_path_factory.mktemp("blank_out")
    return out, scan(root, out, jobs=1, cache=False)


def test_blank_and_solid_colour_files_are_not_near_duplicates(blank_scan):
    out, result = blank_scan
    issues = issues_by_path(out)
    flat = [path for path in issues if path != "cat/photo.jpg"]
    assert all("low_information" in issues[path] for path in flat), issues
    assert groups_of_csv(out) == [["cat/white.png", "cat/white_again.bmp", "dog/white_copy.png"]]
    assert "label_conflict" in issues["dog/white_copy.png"]  # identical: an error
    for path in ("cat/near_white.jpg", "cat/grey.png", "dog/red.png", "dog/black.jpg"):
        assert not issues[path] & {"near_duplicate", "exact_duplicate", "label_conflict"}


def groups_of_csv(out) -> list[list[str]]:
    grouped: dict[str, list[str]] = {}
    for row in duplicate_rows(out):
        grouped.setdefault(row["group"], []).append(row["path"])
    return sorted(sorted(members) for members in grouped.values())


def test_mirrored_copies_only_with_mirror(tmp_path):
    picture = photo_like(200, 150, seed=61)
    files = {
        "cat/a.jpg": encode(picture, "JPEG", quality=95),
        "cat/a_mirrored.jpg": encode(mirrored(picture), "JPEG", quality=90),
        "cat/other.jpg": encode(photo_like(200, 150, seed=62), "JPEG"),
    }
    root = write_dataset(tmp_path / "d", files)
    scan(root, tmp_path / "plain", jobs=1, cache=False)
    assert duplicate_rows(tmp_path / "plain") == []
    result = scan(root, tmp_path / "mirror", jobs=1, cache=False, thresholds=Thresholds(mirror=1))
    rows = {row["path"]: row for row in duplicate_rows(tmp_path / "mirror")}
    assert set(rows) == {"cat/a.jpg", "cat/a_mirrored.jpg"}
    assert rows["cat/a_mirrored.jpg"]["kind"] == "mirror"
    counts = result.summary["checks"]["duplicates"]
    assert (counts["mirror_groups"], counts["near_groups"], counts["exact_groups"]) == (1, 0, 0)
    assert "near_duplicate" in issues_by_path(tmp_path / "mirror")["cat/a_mirrored.jpg"]


def test_mirror_is_a_cli_flag(tmp_path):
    from audit.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["scan", "x", "--mirror"]).mirror == 1
    assert parser.parse_args(["scan", "x"]).mirror == 0
