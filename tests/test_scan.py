"""The scan end to end: golden counts, reports, read-only promise, parallelism, crashes."""

from __future__ import annotations

import csv
import json
import os
import re

import pytest

from audit import cli
from audit.checks import Thresholds
from audit.dataset import discover
from audit.engines import FileWork, PoolEngine
from audit.outputs import OutputInsideDataset
from audit.scan import inspect_all, scan
from tests.conftest import jpeg, tree_fingerprint, write_dataset
from tests.crashing_worker import crash_in_chunk, crash_on_marked_files
from tests.imagegen import encode, photo_like


@pytest.fixture
def golden(tmp_path):
    """A tiny dataset with one of several problems; its counts are asserted exactly."""
    clean = jpeg
    files = {f"cat/c{i}.jpg": clean(i) for i in range(6)}
    files["cat/nested/c6.jpg"] = clean(6)
    files["cat/.DS_Store"] = b"\x00\x00\x00\x01Bud1"
    files.update({f"dog/d{i}.jpg": clean(10 + i) for i in range(3)})
    cut = clean(20)
    files["dog/truncated.jpg"] = cut[: len(cut) // 2]
    files["dog/empty.jpg"] = b""
    files["dog/photo.png"] = encode(photo_like(48, 40, seed=21), "PNG")
    files.update({f"fox/f{i}.jpg": clean(30 + i) for i in range(2)})
    files["fox/scan.tif"] = encode(photo_like(48, 40, seed=32), "TIFF")
    files["fox/wide.jpg"] = clean(33, 120, 36)
    files["fox/big.jpg"] = clean(34, 200, 160)
    files["notes.txt"] = b"stray"
    root = write_dataset(tmp_path / "golden", files)
    (root / "owl").mkdir()
    return root


def test_golden_summary_counts(golden, tmp_path):
    result = scan(golden, tmp_path / "out", jobs=1)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary == result.summary
    assert (summary["files"], summary["usable"], summary["unusable"]) == (18, 15, 3)
    assert summary["severity_counts"] == {"ok": 12, "info": 1, "warning": 2, "error": 3}
    assert {code: n for code, n in summary["issue_counts"].items() if n} == {
        "truncated": 1,
        "empty_file": 1,
        "unsupported_format": 1,
        "missing_jfif_marker": 3,
        "odd_aspect_ratio": 1,
        "resolution_outlier": 1,
    }
    assert [(c["name"], c["files"], c["usable"]) for c in summary["classes"]] == [
        ("cat", 7, 7),
        ("dog", 6, 4),
        ("fox", 5, 4),
        ("owl", 0, 0),
    ]
    assert summary["imbalance_ratio"] == 1.75
    assert summary["empty_classes"] == ["owl"]
    assert summary["stray_files"] == ["notes.txt"]
    assert [item["path"] for item in summary["ignored_files"]] == ["cat/.DS_Store"]
    assert [f["code"] for f in summary["dataset_findings"]] == ["stray_files", "empty_class"]
    assert summary["thresholds"]["resolution_outlier"]["outliers"] == 1
    assert summary["jfif_filter_comparison"] == {
        "description": summary["jfif_filter_comparison"]["description"],
        "would_delete": 3,
        "would_delete_usable": 1,
        "errors_it_keeps": 1,
    }
    assert (summary["exit_code"], summary["worst_severity"], summary["version"]) == (
        1,
        "error",
        "0.1.0",
    )


def test_report_contract(golden, tmp_path):
    scan(golden, tmp_path / "out", jobs=1)
    out = tmp_path / "out"
    rows = list(csv.DictReader(open(out / "images.csv", encoding="utf-8")))
    assert len(rows) == 18
    for column in (
        "path",
        "label",
        "bytes",
        "format",
        "width",
        "height",
        "sha256",
        "phash",
        "severity",
        "issues",
    ):
        assert column in rows[0]
    by_path = {row["path"]: row for row in rows}
    assert by_path["dog/truncated.jpg"]["severity"] == "error"
    assert by_path["dog/truncated.jpg"]["issues"] == "truncated"
    assert by_path["dog/empty.jpg"]["phash"] == "" and by_path["dog/empty.jpg"]["format"] == ""
    assert by_path["cat/nested/c6.jpg"]["label"] == "cat"
    assert re.fullmatch(r"[0-9a-f]{16}", by_path["cat/c0.jpg"]["phash"])
    assert re.fullmatch(r"[0-9a-f]{64}", by_path["cat/c0.jpg"]["sha256"])
    assert by_path["fox/big.jpg"]["issues"] == "resolution_outlier"
    findings = list(csv.DictReader(open(out / "findings.csv", encoding="utf-8")))
    assert len(findings) == sum(
        int(bool(row["issues"])) and len(row["issues"].split(";")) for row in rows
    )
    assert all(finding["reason"] for finding in findings)
    header = open(out / "duplicates.csv").readline().strip().split(",")
    assert {"group", "kind", "path", "label", "distance", "keeper"} <= set(header)
    markdown = (out / "report.md").read_text()
    assert "3 file(s) must not reach training" in markdown and "dog/truncated.jpg" in markdown


def test_html_is_self_contained(golden, tmp_path):
    scan(golden, tmp_path / "out", jobs=1)
    html = (tmp_path / "out" / "report.html").read_text()
    assert (
        "<script" not in html
        and "<link" not in html
        and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    )
    sources = re.findall(r'<img src="([^"]*)"', html)
    assert sources and all(source.startswith("data:image/jpeg;base64,") for source in sources)
    for section in ("First look", "Class balance", "Resolution", "Flagged files"):
        assert section in html
    assert "dog/truncated.jpg" in html and "<svg" in html
    assert 'class="pt-out"' in html  # the outlier is marked on the scatter
    assert html.count('class="bound"') == 2  # and the usual range drawn
    assert html.count("<g ") == html.count("</g>")


def test_file_names_are_escaped(tmp_path):
    evil = "<img src=x onerror=alert(1)>.jpg"
    cut = jpeg(1)
    root = write_dataset(
        tmp_path / "d",
        {f"cat/{evil}": cut[: len(cut) // 2], "cat/ok.jpg": jpeg(2), "<b>dog</b>/x.jpg": jpeg(3)},
    )
    scan(root, tmp_path / "out", jobs=1)
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<img src=x onerror=alert(1)>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;.jpg" in html
    assert "<b>dog</b>" not in html and "&lt;b&gt;dog&lt;/b&gt;" in html
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "<img src=x" not in markdown


def test_scan_never_modifies_root(golden, tmp_path):
    before = tree_fingerprint(golden)
    scan(golden, tmp_path / "out", jobs=2)
    assert tree_fingerprint(golden) == before


def test_output_inside_root_is_refused(golden):
    with pytest.raises(OutputInsideDataset):
        scan(golden, golden / "reports", jobs=1)
    assert not (golden / "reports").exists()


def test_parallel_equals_serial(golden, tmp_path):
    scan(golden, tmp_path / "one", jobs=1)
    scan(golden, tmp_path / "two", jobs=2)
    assert (tmp_path / "one" / "images.csv").read_bytes() == (
        tmp_path / "two" / "images.csv"
    ).read_bytes()
    assert (tmp_path / "one" / "findings.csv").read_bytes() == (
        tmp_path / "two" / "findings.csv"
    ).read_bytes()


def inspect_with_a_crash(tmp_path, crash_name: str, in_chunk: bool = False, files: int = 40):
    """Records of `files` files plus one that kills its worker process, and the layout
    walked. in_chunk: the crash comes from the pool's own chunk task (else a per-file one)."""
    found = {f"cat/{i:03d}.jpg": jpeg(i) for i in range(files)}
    found[f"cat/{crash_name}"] = jpeg(99)
    layout = discover(write_dataset(tmp_path / "d", found))
    engine = PoolEngine(
        2,
        FileWork(Thresholds()),
        worker=crash_on_marked_files,
        chunk_worker=crash_in_chunk if in_chunk else None,
    )
    try:
        return list(inspect_all(layout, engine)), layout
    finally:
        engine.close()


@pytest.mark.parametrize("in_chunk", [False, True])
def test_a_worker_crash_costs_one_row_not_the_scan(tmp_path, in_chunk):
    # 150 files: the crash in the middle of the second chunk of 64, others before and after.
    records, layout = inspect_with_a_crash(tmp_path, "100_crash.jpg", in_chunk, files=150)
    assert [r.path for r in records] == [e.relpath for e in layout.iter_files()]
    crashed = [r for r in records if r.findings]
    assert [(r.path, r.codes) for r in crashed] == [("cat/100_crash.jpg", ("unreadable",))]
    assert "crashed" in crashed[0].findings[0].reason
    assert all(r.phash is not None for r in records if r is not crashed[0])


def test_progress_is_reported(small_dataset, tmp_path):
    calls = []
    scan(
        small_dataset,
        tmp_path / "out",
        jobs=1,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls[-1] == (12, 12) and len(calls) == 12


def test_bad_options_raise_value_error(small_dataset, tmp_path):
    with pytest.raises(ValueError, match="fail_on"):
        scan(small_dataset, tmp_path / "out", fail_on="sometimes")
    with pytest.raises(ValueError, match="min_side"):
        Thresholds(min_side=-1)


def test_a_crash_while_later_batches_wait_costs_one_row(tmp_path, monkeypatch):
    """Small batches: the batch queued behind the crash is resubmitted whole, in order."""
    import audit.scan

    monkeypatch.setattr(audit.scan, "BATCH_SIZE", 8)
    records, layout = inspect_with_a_crash(tmp_path, "13_crash.jpg")
    assert [r.path for r in records] == [e.relpath for e in layout.iter_files()]
    assert [r.path for r in records if r.findings] == ["cat/13_crash.jpg"]


def test_a_truncated_file_is_judged_whatever_pillow_is_told_elsewhere(tmp_path, monkeypatch):
    """Thumbnails let Pillow read truncated files (a process-wide switch); an inline scan in
    the same process once judged a truncated JPEG decodable while that switch was on."""
    from PIL import ImageFile

    cut = jpeg(20)
    root = write_dataset(
        tmp_path / "d", {"dog/cut.jpg": cut[: len(cut) // 2], "cat/a.jpg": jpeg(1)}
    )
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    result = scan(root, tmp_path / "out", jobs=1, cache=False)
    assert result.summary["issue_counts"]["truncated"] == 1
    rows = (tmp_path / "out" / "images.csv").read_text().splitlines()
    cut_row = next(row for row in rows if row.startswith("dog/cut.jpg"))
    assert "decoder: image file is truncated" in cut_row
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # left as the caller set it


def test_a_link_to_an_ancestor_reads_nothing_twice(tmp_path):
    """Before: with fox/loop -> .., every cat and dog file was read again as a fox and
    became a label_conflict error (246 rows for 134 files)."""
    files = {
        f"{label}/{i}.jpg": jpeg(10 * n + i) for n, label in enumerate("cdf") for i in range(4)
    }
    root = write_dataset(tmp_path / "d", files)
    (root / "f" / "loop").symlink_to("..")
    result = scan(root, tmp_path / "out", jobs=1)
    assert result.summary["files"] == 12
    assert result.summary["issue_counts"]["label_conflict"] == 0
    (finding,) = [f for f in result.summary["dataset_findings"] if f["code"] == "linked_folder"]
    assert finding["severity"] == "warning" and finding["subjects"] == ["f/loop"]
    assert "f/loop -> ." in finding["reason"]


def test_an_unlistable_folder_is_an_error_finding(tmp_path, monkeypatch, capsys):
    """Before: it appeared only under ignored_files, exit 0 even with --fail-on info."""
    root = write_dataset(tmp_path / "d", {"cat/a.jpg": jpeg(1), "dog/sub/b.jpg": jpeg(2)})
    real_scandir = os.scandir

    def refuse(path):
        if str(path).endswith("sub"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", refuse)
    argv = ["scan", str(root), "--out", str(tmp_path / "o"), "--jobs", "1", "--quiet"]
    assert cli.main(argv) == 1
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    (finding,) = [f for f in summary["dataset_findings"] if f["code"] == "unlistable_folder"]
    assert finding["severity"] == "error" and finding["subjects"] == ["dog/sub"]
    assert summary["worst_severity"] == "error"
