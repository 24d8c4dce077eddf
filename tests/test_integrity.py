"""Integrity decisions, checked against TensorFlow's own decoder on every fixture kind."""

from __future__ import annotations

import os

import pytest

from audit.checks import Thresholds, check_file
from audit.dataset import FileEntry
from audit.hashing import ZOOMS
from audit.inspect import inspect_file
from tests.imagegen import FIXTURES, encode, photo_like, png_bomb

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")

from audit.formats import keras_keeps  # noqa: E402


def judge(tmp_path, name: str, data: bytes, thresholds: Thresholds | None = None):
    thresholds = thresholds or Thresholds()
    folder = tmp_path / "cls"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    facts = inspect_file(FileEntry(str(path), f"cls/{name}", "cls"), thresholds.max_pixels)
    return facts, check_file(facts, thresholds)


def training_accepts(name: str, data: bytes) -> bool:
    """The ground truth: Keras's loader keeps the file and tf.io.decode_image decodes it."""
    if not keras_keeps(name):
        return False
    try:
        tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, ValueError):
        return False
    return True


@pytest.mark.parametrize("kind", sorted(FIXTURES))
def test_decision_matches_tensorflow(tmp_path, kind):
    name, data, _ = FIXTURES[kind]
    _, findings = judge(tmp_path, name, data)
    errors = [f"{f.code}: {f.reason}" for f in findings if f.severity == "error"]
    assert (not errors) == training_accepts(name, data), f"{kind}: audit errors={errors}"


@pytest.mark.parametrize("kind", sorted(FIXTURES))
def test_expected_codes(tmp_path, kind):
    name, data, expected = FIXTURES[kind]
    _, findings = judge(tmp_path, name, data)
    codes = {finding.code for finding in findings}
    assert expected <= codes, f"{kind}: expected {expected}, got {codes}"
    assert all(finding.reason for finding in findings), "every finding carries a reason"


VALID_KINDS = [
    "jpeg_jfif",
    "jpeg_progressive",
    "jpeg_grayscale",
    "jpeg_cmyk",
    "jpeg_exif_no_jfif",
    "png_rgb",
    "png_16bit",
    "png_palette",
    "png_rgba",
    "gif",
    "bmp_24bit",
    "bmp_8bit_gray",
]


@pytest.mark.parametrize("kind", VALID_KINDS)
def test_valid_variants_are_not_errors(tmp_path, kind):
    """Exif/Adobe JPEGs without JFIF, progressive, CMYK, grayscale, 16-bit, palette, RGBA."""
    name, data, _ = FIXTURES[kind]
    facts, findings = judge(tmp_path, name, data)
    assert facts.decoded and facts.phash is not None and 0 <= facts.phash < 2**64
    assert len(facts.phash_zoom) == len(ZOOMS)
    assert not [f for f in findings if f.severity in ("error", "warning")], findings


def test_decompression_bomb_is_never_decoded(tmp_path):
    facts, findings = judge(tmp_path, "bomb.png", png_bomb(40_000, 40_000))
    assert [f.code for f in findings if f.severity == "error"] == ["decompression_bomb"]
    assert not facts.decoded and facts.phash is None and facts.phash_zoom == ()
    assert (facts.width, facts.height) == (40_000, 40_000)


def test_bomb_limit_is_configurable(tmp_path):
    data = encode(photo_like(64, 64), "PNG")
    _, default = judge(tmp_path, "a.png", data)
    _, strict = judge(tmp_path, "a.png", data, Thresholds(max_pixels=64 * 64 - 1))
    assert "decompression_bomb" not in {f.code for f in default}
    assert "decompression_bomb" in {f.code for f in strict}


def test_jfif_check_matches_the_tutorial_expression(tmp_path):
    """missing_jfif_marker reproduces `b"JFIF" in open(path, "rb").peek(10)` exactly."""
    for kind, (name, data, _) in FIXTURES.items():
        path = tmp_path / f"{kind}_{name}"
        path.write_bytes(data)
        with open(path, "rb") as handle:
            tutorial_keeps = b"JFIF" in handle.peek(10)
        facts, findings = judge(tmp_path, f"{kind}_{name}", data)
        assert ("missing_jfif_marker" in {f.code for f in findings}) == (not tutorial_keeps), kind


def test_unreadable_fifo_and_broken_symlink(tmp_path):
    folder = tmp_path / "cls"
    folder.mkdir()
    os.mkfifo(folder / "pipe.jpg")
    (folder / "link.jpg").symlink_to(tmp_path / "missing.jpg")
    for name, words in (("pipe.jpg", "FIFO"), ("link.jpg", "broken symlink")):
        facts = inspect_file(
            FileEntry(str(folder / name), f"cls/{name}", "cls"), Thresholds().max_pixels
        )
        findings = check_file(facts, Thresholds())
        assert [f.code for f in findings] == ["unreadable"]
        assert words in findings[0].reason


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_permission_denied_is_unreadable(tmp_path):
    path = tmp_path / "cls" / "secret.jpg"
    path.parent.mkdir()
    path.write_bytes(FIXTURES["jpeg_jfif"][1])
    path.chmod(0)
    facts = inspect_file(FileEntry(str(path), "cls/secret.jpg", "cls"), Thresholds().max_pixels)
    assert [f.code for f in check_file(facts, Thresholds())] == ["unreadable"]


@pytest.mark.parametrize(
    "kind",
    ["jpeg_jfif", "png_rgb", "png_bad_ancillary_crc", "jpeg_truncated_60", "bmp_trailing_bytes"],
)
def test_memory_mapped_path_gives_the_same_facts(tmp_path, monkeypatch, kind):
    """Large files are memory-mapped instead of read; the verdict must not change."""
    import audit.inspect

    name, data, _ = FIXTURES[kind]
    read_facts, read_findings = judge(tmp_path, name, data)
    monkeypatch.setattr(audit.inspect, "_MMAP_ABOVE_BYTES", 0)
    mapped_facts, mapped_findings = judge(tmp_path, name, data)
    from dataclasses import replace

    # judge() writes the file again, so only the modification time may differ.
    assert replace(mapped_facts, mtime_ns=0) == replace(read_facts, mtime_ns=0)
    assert mapped_findings == read_findings
