"""Signal over noise (issue 19): an info code most usable files carry is said once, as a
dataset finding with its count, not on every row of report.html; images.csv keeps it per
file, and severity counts and exit codes do not change."""

from __future__ import annotations

import csv
import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from audit.report import WIDESPREAD_MIN_FILES, widespread_info_codes
from audit.scan import scan
from tests.conftest import jpeg, write_dataset
from tests.imagegen import encode, photo_like, strip_jfif


def cutout(seed: int, width: int = 48, height: int = 40, mode: str = "RGBA") -> bytes:
    """A product cut-out as shops and segmentation tools export it: a photo inside an
    ellipse, transparent around it, saved as PNG (RGBA; or P, LA, L)."""
    picture = photo_like(width, height, seed=seed).convert("RGBA")
    y, x = np.mgrid[0:height, 0:width]
    inside = ((x - width / 2) / (width / 2)) ** 2 + ((y - height / 2) / (height / 2)) ** 2 <= 1
    picture.putalpha(Image.fromarray((inside * 255).astype(np.uint8)))
    return encode(picture if mode == "RGBA" else picture.convert(mode), "PNG")


def camera_jpeg(seed: int) -> bytes:
    """A phone photo: Exif with a rotation, no JFIF segment."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return strip_jfif(encode(photo_like(48, 40, seed=seed), "JPEG", exif=exif.tobytes()))


def section(html: str, name: str) -> str:
    start = html.index(f'<section id="{name}">')
    return html[start : html.index("</section>", start)]


def rows_of(out) -> list[dict]:
    with open(out / "images.csv", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_widespread_info_is_said_once(tmp_path):
    """Most files are PNG cut-outs: non_rgb_mode and missing_jfif_marker describe the dataset."""
    files = {f"mug/cut_{i:02d}.png": cutout(i) for i in range(14)}
    files.update({f"shoe/cut_{i:02d}.png": cutout(100 + i) for i in range(12)})
    files.update({f"shoe/pal_{i:02d}.png": cutout(200 + i, mode="P") for i in range(3)})
    files["mug/studio.jpg"] = jpeg(300)
    files["shoe/studio.jpg"] = jpeg(301)
    files["mug/camera.jpg"] = camera_jpeg(302)  # exif_rotated: rare, stays on its row
    files["shoe/banner.png"] = cutout(303, 160, 40)  # odd_aspect_ratio (a warning)
    broken = cutout(304)
    files["shoe/broken.png"] = broken[: len(broken) // 2]  # truncated (an error)
    root = write_dataset(tmp_path / "cutouts", files)
    out = tmp_path / "out"

    summary = scan(root, out, jobs=1).summary

    # Nothing a scheduled job or a filter relies on changes.
    rows = rows_of(out)
    by_path = {row["path"]: row for row in rows}
    assert (summary["files"], summary["usable"]) == (34, 33)
    assert (
        summary["severity_counts"]
        == dict(Counter(row["severity"] for row in rows))
        == {
            "ok": 2,
            "info": 30,
            "warning": 1,
            "error": 1,
        }
    )
    issues = Counter(code for row in rows for code in row["issues"].split(";") if code)
    assert {code: n for code, n in summary["issue_counts"].items() if n} == dict(issues)
    assert "non_rgb_mode" in by_path["mug/cut_00.png"]["issues"].split(";")
    assert "missing_jfif_marker" in by_path["mug/cut_00.png"]["issues"].split(";")
    assert (summary["worst_severity"], summary["exit_code"]) == ("error", 1)

    # One dataset line per widespread code, with its count among the usable files.
    widespread = {f["code"]: f for f in summary["dataset_findings"] if f.get("widespread")}
    assert list(widespread) == ["missing_jfif_marker", "non_rgb_mode"]
    assert (widespread["missing_jfif_marker"]["files"], widespread["non_rgb_mode"]["files"]) == (
        31,
        30,
    )
    line = widespread["non_rgb_mode"]
    assert (line["severity"], line["usable"]) == ("info", 33)
    # A few kinds of reason are each counted; a single one is said as it is.
    assert line["reason"].startswith("30 of 33 usable files: mode RGBA: has an alpha channel")
    assert "(27); mode P: palette image" in line["reason"] and line["reason"].count("(3)") == 1
    assert line["reason"].endswith(
        "Said once here instead of on each file; per file in images.csv."
    )
    assert widespread["missing_jfif_marker"]["reason"].startswith(
        "31 of 33 usable files: no b'JFIF' in the first buffer of the file. Said once"
    )
    assert summary == json.loads((out / "summary.json").read_text())

    html = (out / "report.html").read_text()
    overview = section(html, "overview")
    assert "<code>non_rgb_mode</code></td><td>30 of 33 usable files" in overview
    assert "<code>missing_jfif_marker</code></td><td>31 of 33 usable files" in overview

    flagged = section(html, "flagged")
    # A file whose only findings are widespread is no problem row.
    assert "cut_00.png" not in flagged and "pal_01.png" not in flagged
    assert "29 file(s) with nothing else are not listed here" in flagged
    # Rows keep their own findings and leave the widespread ones to the dataset line.
    assert "shoe/banner.png" in flagged and "<code>odd_aspect_ratio</code>:" in flagged
    assert "shoe/broken.png" in flagged and "<code>truncated</code>:" in flagged
    assert "<code>non_rgb_mode</code>:" not in flagged
    assert "<code>missing_jfif_marker</code>:" not in flagged
    assert "1 file(s) with information only" in flagged
    assert "mug/camera.jpg" in flagged and "<code>exif_rotated</code>:" in flagged

    markdown = (out / "report.md").read_text()
    dataset_part = markdown[markdown.index("## Dataset findings") : markdown.index("## Classes")]
    assert "- **info** `non_rgb_mode`: 30 of 33 usable files" in dataset_part
    assert "- **info** `missing_jfif_marker`: 31 of 33 usable files" in dataset_part


def test_all_info_dataset_keeps_its_exit_code(tmp_path):
    """The issue's case: every file is a PNG cut-out, so every file is info only."""
    count, modes = 12, ("RGBA", "P", "LA", "L")
    files = {f"c{i % 2}/cut_{i:02d}.png": cutout(i, mode=modes[i % 4]) for i in range(count)}
    root = write_dataset(tmp_path / "cutouts", files)
    out = tmp_path / "out"

    summary = scan(root, out, jobs=1, fail_on="info").summary

    assert summary["severity_counts"] == {"ok": 0, "info": count, "warning": 0, "error": 0}
    assert (summary["worst_severity"], summary["exit_code"]) == ("info", 1)  # --fail-on info
    widespread = [
        (f["code"], f["files"]) for f in summary["dataset_findings"] if f.get("widespread")
    ]
    assert widespread == [("missing_jfif_marker", count), ("non_rgb_mode", count)]
    flagged = section((out / "report.html").read_text(), "flagged")
    assert "No file has an error or a warning." in flagged
    assert "with information only" not in flagged and "cut_" not in flagged
    assert f"{count} file(s) with nothing else are not listed here" in flagged
    markdown = (out / "report.md").read_text()
    # Four modes are too many to count in one line: the code's meaning stands for them.
    assert f"`non_rgb_mode`: {count} of {count} usable files: not 8-bit RGB" in markdown


def test_minority_info_stays_on_its_rows(tmp_path):
    """A few palette PNGs among JPEGs: non_rgb_mode is about those files, listed per file."""
    files = {
        f"{label}/{label}_{i}.jpg": jpeg(10 * n + i)
        for n, label in enumerate("ab")
        for i in range(6)
    }
    files.update({f"a/logo_{i}.png": cutout(50 + i, mode="P") for i in range(4)})
    root = write_dataset(tmp_path / "mixed", files)
    out = tmp_path / "out"

    summary = scan(root, out, jobs=1).summary

    assert not [f for f in summary["dataset_findings"] if f.get("widespread")]
    assert summary["severity_counts"]["info"] == 4
    html = (out / "report.html").read_text()
    flagged = section(html, "flagged")
    assert "4 file(s) with information only" in flagged
    assert all(f"a/logo_{i}.png" in flagged for i in range(4))
    assert flagged.count("<code>non_rgb_mode</code>:") == 4
    assert "not listed here" not in flagged and "Said once" not in flagged
    assert "usable files:" not in (out / "report.md").read_text()


@pytest.mark.parametrize(
    ("counts", "usable", "expected"),
    [
        ({"non_rgb_mode": 51}, 100, {"non_rgb_mode": 51}),
        ({"non_rgb_mode": 50}, 100, {}),  # half is not most
        ({"non_rgb_mode": WIDESPREAD_MIN_FILES - 1}, WIDESPREAD_MIN_FILES - 1, {}),  # too few
        # Warnings and errors are about their own file, however many files have one.
        (
            {"odd_aspect_ratio": 100, "truncated": 100, "exif_rotated": 100},
            100,
            {"exif_rotated": 100},
        ),
        (
            {"missing_jfif_marker": 60, "non_rgb_mode": 90},
            100,
            {"non_rgb_mode": 90, "missing_jfif_marker": 60},
        ),
        ({}, 0, {}),
    ],
)
def test_widespread_rule(counts, usable, expected):
    found = widespread_info_codes(counts, usable)
    assert found == expected and list(found) == list(expected)  # most common first
