"""Integrity decisions, checked against TensorFlow's own decoder on every fixture kind."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

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


def test_header_sizes_past_int32_give_a_row_not_a_crash(tmp_path):
    """A BMP declaring a width of 4,294,967,169 (and a PNG of 2**32 - 1) once stopped the
    whole scan with OverflowError in the int32 table: now each is a corrupt_data row."""
    from audit.scan import scan

    root = tmp_path / "data"
    (root / "cls").mkdir(parents=True)
    for kind in ("bmp_width_past_int32", "png_width_past_int32", "jpeg_jfif"):
        name, data, _ = FIXTURES[kind]
        (root / "cls" / f"{kind}{os.path.splitext(name)[1]}").write_bytes(data)
    scan(root, tmp_path / "out", jobs=1, cache=False)
    with open(tmp_path / "out" / "images.csv", newline="", encoding="utf-8") as handle:
        rows = {row["path"]: row for row in csv.DictReader(handle)}
    for kind in ("bmp_width_past_int32", "png_width_past_int32"):
        row = next(row for path, row in rows.items() if kind in path)
        assert "corrupt_data" in row["issues"].split(";"), row
        assert row["width"] == "" and row["height"] == "", row
    assert len(rows) == 3


def test_stderr_silenced_only_while_decoding(capfd):
    from audit.inspect import c_stderr_silenced

    with c_stderr_silenced():
        os.write(2, b"from C\n")
        with c_stderr_silenced():  # nested (another thread decoding): still silenced
            os.write(2, b"nested\n")
        os.write(2, b"after nested\n")
    os.write(2, b"outside\n")
    assert capfd.readouterr().err == "outside\n"


def _noisy_tiff() -> bytes:
    """An LZW TIFF whose strip is garbage: libtiff prints 'Using code not yet in table.'"""
    from PIL import Image

    data = bytearray(encode(photo_like(64, 48), "TIFF", compression="tiff_lzw"))
    with Image.open(io.BytesIO(bytes(data))) as image:
        strips = zip(image.tag_v2[273], image.tag_v2[279], strict=True)
    for offset, count in strips:
        data[offset + 4 : offset + count] = b"\xff" * (count - 4)
    return bytes(data)


def test_c_library_warnings_never_reach_the_terminal(tmp_path):
    """libtiff writes its complaints to fd 2 from C; a scan's stderr stays the tool's own."""
    root = tmp_path / "data"
    (root / "tiffs").mkdir(parents=True)
    (root / "photos").mkdir()
    (root / "tiffs" / "noisy.tif").write_bytes(_noisy_tiff())
    (root / "photos" / "a.jpg").write_bytes(FIXTURES["jpeg_jfif"][1])
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "from PIL import Image\ntry: Image.open(r'%s').load()\n"
            "except Exception: pass" % (root / "tiffs" / "noisy.tif"),
        ],
        capture_output=True,
        text=True,
    )
    if not probe.stderr.strip():
        pytest.skip("this Pillow's libtiff prints nothing for the garbled strip")
    for jobs in ("1", "2"):
        run = subprocess.run(
            [sys.executable, "-m", "audit", "scan", str(root), "--out", str(tmp_path / jobs)]
            + ["--no-cache", "--quiet", "--jobs", jobs],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert run.returncode == 1, run.stderr  # the TIFF is an error finding
        assert run.stderr == "", f"jobs={jobs}: {run.stderr}"
    loud = subprocess.run(
        [sys.executable, "-m", "audit", "scan", str(root), "--out", str(tmp_path / "loud")]
        + ["--no-cache", "--jobs", "1"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert probe.stderr.strip().splitlines()[0] not in loud.stderr
    assert "noisy.tif" in loud.stderr  # the tool's own per-error line still shows


def test_an_image_nested_in_the_file_is_held_to_the_pixel_limit(tmp_path):
    """An ICNS declaring 256x256 whose PNG member is 60,000 x 60,000 is refused before
    the member is decoded (Pillow's oom-8ed3...icns took 8.2 GB and once an OOM kill)."""
    import struct

    member = png_bomb(60_000, 60_000)
    element = b"ic08" + struct.pack(">I", 8 + len(member)) + member
    facts, findings = judge(
        tmp_path, "icon.icns", b"icns" + struct.pack(">I", 8 + len(element)) + element
    )
    assert (facts.width, facts.height) == (256, 256) and not facts.decoded
    assert "3600000000 pixels" in (facts.decode_error or "")
    assert {"unsupported_format", "corrupt_data"} <= {finding.code for finding in findings}
