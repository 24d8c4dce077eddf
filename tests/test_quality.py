"""Quality checks and channel statistics, on scikit-learn's two real photos and edits of them.

Every check has a real photo it must pass and an edited copy it must flag, decoded
through the scan's own path (audit.inspect), JPEG and PNG.
"""

from __future__ import annotations

import io
import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from sklearn.datasets import load_sample_image

from audit import hashing, measures
from audit.cache import SCHEMA_VERSION
from audit.checks import REGISTRY
from audit.dataset import FileEntry
from audit.inspect import inspect_file
from audit.scan import scan

THRESHOLDS = REGISTRY.thresholds()


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {name: load_sample_image(f"{name}.jpg") for name in ("china", "flower")}


def encoded(pixels: np.ndarray, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(pixels)
    image.save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def facts_of(tmp_path: Path, data: bytes, name: str = "x.jpg"):
    path = tmp_path / "c" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return inspect_file(FileEntry(str(path), f"c/{name}", "c"), THRESHOLDS.max_pixels)


def codes_of(tmp_path: Path, data: bytes, name: str = "x.jpg") -> set[str]:
    facts = facts_of(tmp_path, data, name)
    assert facts.decoded and facts.measures is not None
    return {finding.code for finding in REGISTRY.check_file(facts, THRESHOLDS)}


QUALITY = {"low_information", "dark", "overexposed", "blurry"}


def darkened(pixels: np.ndarray, factor: float = 0.2) -> np.ndarray:
    return (pixels.astype(np.float32) * factor).astype(np.uint8)


def washed_out(pixels: np.ndarray) -> np.ndarray:
    return (pixels.astype(np.float32) * 0.3 + 180).astype(np.uint8)


def blurred(pixels: np.ndarray, share: float = 0.03) -> np.ndarray:
    image = Image.fromarray(pixels)
    return np.asarray(image.filter(ImageFilter.GaussianBlur(share * min(image.size))))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_real_photos_pass_every_quality_check(tmp_path, photos, fmt):
    for name, pixels in photos.items():
        found = codes_of(tmp_path, encoded(pixels, fmt), f"{name}.{fmt.lower()}")
        assert not found & QUALITY, (name, found)


@pytest.mark.parametrize(
    ("edit", "code"),
    [(darkened, "dark"), (washed_out, "overexposed"), (blurred, "blurry")],
)
def test_edited_real_photos_are_flagged(tmp_path, photos, edit, code):
    for name, pixels in photos.items():
        for fmt in ("JPEG", "PNG"):
            found = codes_of(tmp_path, encoded(edit(pixels), fmt), f"{name}.{fmt.lower()}")
            assert code in found, (name, fmt, found)
            assert "low_information" not in found


def test_reasons_carry_the_measured_value_and_the_threshold(tmp_path, photos):
    facts = facts_of(tmp_path, encoded(darkened(photos["china"])))
    (finding,) = [f for f in REGISTRY.check_file(facts, THRESHOLDS) if f.code == "dark"]
    assert f"{facts.measures.dark_level:.2f}" in finding.reason
    assert f"{THRESHOLDS.dark_below:g}" in finding.reason


def test_thresholds_are_options_and_move_the_verdict(tmp_path, photos):
    facts = facts_of(tmp_path, encoded(photos["china"]))
    strict = REGISTRY.thresholds(blurry_below=facts.measures.focus + 0.01)
    assert "blurry" in {f.code for f in REGISTRY.check_file(facts, strict)}
    off = REGISTRY.thresholds(blurry_below=0)
    facts = facts_of(tmp_path, encoded(blurred(photos["china"])))
    assert "blurry" not in {f.code for f in REGISTRY.check_file(facts, off)}


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((240, 320, 3), np.uint8),  # black frame
        np.full((240, 320, 3), 255, np.uint8),  # blank white
        np.broadcast_to(np.array([200, 30, 60], np.uint8), (240, 320, 3)).copy(),  # solid colour
    ],
)
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_flat_frames_are_low_information_only(tmp_path, frame, fmt):
    rng = np.random.default_rng(0)
    noisy = np.clip(frame.astype(np.int16) + rng.integers(-2, 3, frame.shape), 0, 255)
    found = codes_of(tmp_path, encoded(noisy.astype(np.uint8), fmt), f"f.{fmt.lower()}")
    assert found & QUALITY == {"low_information"}


def test_a_real_photo_is_not_low_information(tmp_path, photos):
    # The least contrasted real photo measured (README) is far above the threshold.
    for pixels in photos.values():
        facts = facts_of(tmp_path, encoded(pixels))
        assert facts.measures.contrast > 4 * THRESHOLDS.low_information_below


def test_jpeg_hashes_are_those_of_the_grayscale_draft(tmp_path, photos):
    """The colour decode leaves the pHash as the grayscale draft gave it."""
    for pixels in photos.values():
        data = encoded(pixels)
        image = Image.open(io.BytesIO(data))
        image.draft("L", (32, 32))
        image.load()
        facts = facts_of(tmp_path, data)
        assert facts.phash == hashing.phash(image)
        assert facts.phash_zoom == hashing.zoom_phashes(image)


def test_jpeg_stored_in_rgb_is_measured_in_colour(tmp_path, photos):
    buffer = io.BytesIO()
    Image.fromarray(photos["flower"]).save(buffer, "JPEG", quality=90, keep_rgb=True)
    facts = facts_of(tmp_path, buffer.getvalue())
    assert facts.decoded and facts.measures is not None
    assert facts.measures.colour_spread > 50
    # Decoded once, in RGB: its hashes are still those of the grayscale draft.
    image = Image.open(io.BytesIO(buffer.getvalue()))
    image.draft("L", (32, 32))
    image.load()
    assert facts.phash == hashing.phash(image)
    assert facts.phash_zoom == hashing.zoom_phashes(image)


def scan_folder(tmp_path: Path, files: dict[str, bytes], **kwargs):
    root = tmp_path / "data"
    for relpath, data in files.items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_bytes(data)
    out = tmp_path / "out"
    result = scan(root, out, jobs=1, fail_on="never", **kwargs)
    rows = {}
    with open(out / "images.csv", encoding="utf-8") as handle:
        import csv

        for row in csv.DictReader(handle):
            rows[row["path"]] = row
    return result, rows


def crops(pixels: np.ndarray, count: int) -> list[np.ndarray]:
    """Distinct non-overlapping 100x100 crops of a photo, with clear content (no sky)."""
    out = []
    for top in range(0, pixels.shape[0] - 100, 100):
        for left in range(0, pixels.shape[1] - 100, 100):
            crop = pixels[top : top + 100, left : left + 100]
            if crop.std(axis=(0, 1)).max() > 30:
                out.append(crop)
    return out[:count]


def test_gray_copy_in_a_colour_dataset_is_flagged_and_not_in_a_gray_one(tmp_path, photos):
    colour = crops(photos["flower"], 6)
    files = {f"a/c{i}.png": encoded(c, "PNG") for i, c in enumerate(colour)}
    gray_copy = np.repeat(
        np.asarray(Image.fromarray(photos["china"]).convert("L"))[..., None], 3, 2
    )
    files["b/gray.jpg"] = encoded(gray_copy)
    files["b/china.jpg"] = encoded(photos["china"])
    _, rows = scan_folder(tmp_path / "colour", files)
    assert "grayscale_in_color" in rows["b/gray.jpg"]["issues"].split(";")
    assert "equal" in rows["b/gray.jpg"]["reasons"]
    assert all(
        "grayscale_in_color" not in row["issues"] for p, row in rows.items() if p != "b/gray.jpg"
    )
    assert float(rows["b/gray.jpg"]["color_spread"]) <= THRESHOLDS.grayscale_spread

    # The same gray copy among one-channel grayscale images: normal there.
    gray_files = {
        f"a/g{i}.png": encoded(np.asarray(Image.fromarray(c).convert("L")), "PNG")
        for i, c in enumerate(colour)
    }
    gray_files["b/gray.jpg"] = encoded(gray_copy)
    _, rows = scan_folder(tmp_path / "gray", gray_files)
    assert all("grayscale_in_color" not in row["issues"] for row in rows.values())


def test_channel_stats_pool_the_true_standard_deviation(tmp_path, photos):
    halves = {
        "a/dark.png": np.full((64, 48, 3), (20, 40, 60), np.uint8),
        "b/light.png": np.full((64, 48, 3), (220, 200, 180), np.uint8),
    }
    files = {path: encoded(pixels, "PNG") for path, pixels in halves.items()}
    files["b/china.png"] = encoded(photos["china"], "PNG")
    result, _ = scan_folder(tmp_path, files)
    stats = result.summary["channel_stats"]
    assert stats["input_range"] == [0, 1] and stats["channels"] == 3 and stats["images"] == 3
    assert "64 px" in stats["decode"]
    # Expected: the pixels of each view (long side <= 64, box filter), pooled.
    views = [measures.view(Image.fromarray(p))[0] for p in (*halves.values(), photos["china"])]
    pooled = np.concatenate([v.reshape(-1, 3) for v in views]) / 255.0
    np.testing.assert_allclose(stats["mean"], pooled.mean(axis=0), atol=2e-4)
    np.testing.assert_allclose(stats["std"], pooled.std(axis=0), atol=2e-4)
    # Not the mean of per-image deviations (the flat frames have none).
    assert stats["std"][0] > 0.3
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["channel_stats"] == stats


def test_channel_stats_are_null_without_usable_images(tmp_path):
    result, _ = scan_folder(tmp_path, {"a/broken.jpg": b"\xff\xd8\xff\xe0 not really"})
    assert result.summary["channel_stats"] is None


def test_low_information_cluster_and_table_column(tmp_path, photos):
    files = {f"a/p{i}.png": encoded(c, "PNG") for i, c in enumerate(crops(photos["china"], 4))}
    for i in range(3):
        files[f"b/blank{i}.png"] = encoded(np.full((80, 80, 3), 250 - i, np.uint8), "PNG")
    files["b/real.png"] = encoded(crops(photos["flower"], 1)[0], "PNG")
    result, rows = scan_folder(tmp_path, files)
    lines = [f for f in result.summary["dataset_findings"] if f["code"] == "low_information"]
    assert len(lines) == 1 and "b: 3 of 4" in lines[0]["reason"]
    assert result.summary["image_quality"]["low_information_files"] == 3
    # Blank frames of different shades are no near duplicates of each other.
    for i in range(3):
        assert "near_duplicate" not in rows[f"b/blank{i}.png"]["issues"]


def test_scan_table_low_information_column_from_cache_hits(tmp_path, photos):
    from audit.cache import ScanCache
    from audit.dataset import discover
    from audit.engines import FileWork, InlineEngine
    from audit.scan import inspect_all
    from audit.table import ScanTable

    files = {"a/blank.png": encoded(np.zeros((50, 50, 3), np.uint8), "PNG")}
    files["a/photo.jpg"] = encoded(photos["china"])
    root = tmp_path / "data"
    for relpath, data in files.items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_bytes(data)
    layout = discover(root)
    settings = REGISTRY.settings_key(THRESHOLDS, "test")
    for expected_hits in (0, 2):
        table = ScanTable(layout.root, layout.classes, layout.splits)
        with ScanCache(tmp_path / "c.sqlite", settings) as cache:
            for record in inspect_all(layout, InlineEngine(FileWork(THRESHOLDS)), cache):
                table.append(record)
            assert cache.hits == expected_hits
        order = [Path(p).name for p in table.paths]
        assert table.low_information.dtype == np.bool_
        assert dict(zip(order, table.low_information.tolist(), strict=True)) == {
            "blank.png": True,
            "photo.jpg": False,
        }
        assert table.measured.all()


def test_cache_refuses_a_record_without_its_measures(tmp_path, photos):
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (root / "a" / "p.jpg").write_bytes(encoded(photos["china"]))
    cache_path = tmp_path / "c.sqlite"
    scan(root, tmp_path / "out1", jobs=1, cache=cache_path)
    with sqlite3.connect(cache_path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        connection.execute("UPDATE files SET measures = '[]'")
    result = scan(root, tmp_path / "out2", jobs=1, cache=cache_path)
    assert result.summary["cache"]["misses"] == 1  # re-inspected, never served incomplete
    assert result.summary["channel_stats"]["images"] == 1


def test_measures_round_trip_and_reject_bad_values():
    image = Image.fromarray(np.arange(64 * 48 * 3, dtype=np.uint8).reshape(48, 64, 3))
    measured = measures.measure(image)
    assert measures.Measures.from_tuple(measured.as_tuple()) == measured
    bad = list(measured.as_tuple())
    bad[2] = math.nan
    with pytest.raises(ValueError):
        measures.Measures.from_tuple(bad)
    with pytest.raises(TypeError):
        measures.Measures.from_tuple([*measured.as_tuple()[:-1], 1.5])


@pytest.mark.parametrize(
    "field, value",
    [
        ("dark_level", 5.0),  # a level beyond 0..1
        ("focus", 1e308),
        ("contrast", 300.0),
        ("pixels", 10**30),  # more pixels than the view holds: channel_stats went to 0
        ("sum_r", 1e300),  # channel_stats' mean went to 1.8e295
        ("sum_g", 10**400),  # an int no float holds: OverflowError crashed the scan
    ],
)
def test_a_crafted_cache_row_is_a_miss_never_served(tmp_path, photos, field, value):
    # Found by attacking the cache: each of these was served into images.csv or summary.json,
    # or crashed the scan (exit 3).
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (root / "a" / "p.jpg").write_bytes(encoded(photos["china"]))
    cache_path = tmp_path / "c.sqlite"
    first = scan(root, tmp_path / "out1", jobs=1, cache=cache_path)
    with sqlite3.connect(cache_path) as connection:
        stored = json.loads(connection.execute("SELECT measures FROM files").fetchone()[0])
        stored[measures.FIELDS.index(field)] = value
        connection.execute("UPDATE files SET measures = ?", (json.dumps(stored),))
    result = scan(root, tmp_path / "out2", jobs=1, cache=cache_path)
    assert result.summary["cache"]["misses"] == 1
    assert result.summary["channel_stats"] == first.summary["channel_stats"]
