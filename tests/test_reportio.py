"""The one reader of the report contract: typed rows, complete files, one clear refusal."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from audit import cli
from audit.quarantine import select
from audit.reportio import Report, ReportError, report_is_stale
from audit.scan import scan
from train.data import load_examples

OLD_REPORT = Path(__file__).parent / "data" / "report-0.1.0"


@pytest.fixture
def report(small_dataset, tmp_path) -> Path:
    (small_dataset / "dog" / "empty.jpg").write_bytes(b"")
    scan(small_dataset, tmp_path / "report", jobs=1, cache=False)
    return tmp_path / "report"


def test_reads_a_report_written_by_0_1_0():
    """A report from the previous version (committed as written by it) reads as it is."""
    old = Report(OLD_REPORT)
    rows = {row.path: row for row in old.images()}
    assert len(rows) == 8 and old.class_names == ("cat", "dog")
    assert rows["dog/empty.jpg"].width is None and rows["dog/empty.jpg"].codes[0] == "empty_file"
    assert rows["cat/c1.jpg"].width == 48 and len(rows["cat/c1.jpg"].phash) == 16
    assert isinstance(rows["cat/c1.jpg"].mtime_ns, int)
    groups = old.duplicates()
    assert {row.path for row in groups} == {"cat/c0.jpg", "dog/copy_of_c0.jpg"}
    assert sum(row.keeper for row in groups) == 1
    assert {finding.code for finding in old.findings()} >= {"empty_file", "label_conflict"}
    conflicts = select(OLD_REPORT, codes=["label_conflict"])
    assert sorted(row.path for row in conflicts) == ["cat/c0.jpg", "dog/copy_of_c0.jpg"]


def test_typed_rows_match_the_written_csv(report):
    with open(report / "images.csv", encoding="utf-8", newline="") as handle:
        raw = list(csv.DictReader(handle))
    rows = Report(report).images()
    assert [row.path for row in rows] == [values["path"] for values in raw]
    for row, values in zip(rows, raw, strict=True):
        assert str(row.bytes) == values["bytes"] and row.severity == values["severity"]
        assert ("" if row.width is None else str(row.width)) == values["width"]
        assert row.phash == values["phash"] and row.mtime_ns == int(values["mtime_ns"])


def _cut(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda r: _cut(r / "images.csv", (r / "images.csv").stat().st_size - 30), "line 1[0-9]"),
        (
            lambda r: _cut(r / "images.csv", (r / "images.csv").read_bytes().index(b"\n") + 1),
            "has 0 row",
        ),
        (lambda r: (r / "images.csv").write_text("name,size\na.jpg,3\n"), "lacks column"),
        (lambda r: (r / "images.csv").write_bytes(b"path,label\n\xff\xfe\n"), "not UTF-8"),
        (lambda r: (r / "summary.json").unlink(), "summary.json is missing"),
        (lambda r: (r / "summary.json").write_text('{"tool": "image-audit"}'), "lacks root"),
        (lambda r: (r / "summary.json").write_text("[1, 2]"), "not a JSON object"),
        (lambda r: (r / "summary.json").write_text('{"root": "/x", "fi'), "cannot read"),
    ],
)
def test_damaged_reports_are_one_exit_2_line(report, capsys, damage, message):
    damage(report)
    with pytest.raises(ReportError, match=message) as refused:
        opened = Report(report)
        opened.images()
        opened.duplicates()
    assert "re-scan" in str(refused.value)
    # Every reader refuses the same way: quarantine through the CLI, training's loader.
    assert cli.main(["quarantine", str(report), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("audit: error: ") and "re-scan" in err[0]
    with pytest.raises(ReportError):
        load_examples(report, check_stale=False)


def test_a_foreign_duplicates_table_is_refused_by_its_readers(report):
    (report / "duplicates.csv").write_text("group,kind\n1,exact\n")
    with pytest.raises(ReportError, match="duplicates.csv lacks column"):
        Report(report).duplicates()
    with pytest.raises(ReportError, match="duplicates.csv lacks column"):
        load_examples(report, check_stale=False)


def test_a_truncated_report_is_not_an_empty_selection(report, capsys):
    """Cut right after the header, images.csv once read as 'nothing to quarantine', exit 0."""
    images = report / "images.csv"
    _cut(images, images.read_bytes().index(b"\n") + 1)
    assert cli.main(["quarantine", str(report)]) == 2
    assert "has 0 row(s) but summary.json counts 13 file(s)" in capsys.readouterr().err


def test_staleness_names_changed_removed_and_added_files(report, small_dataset):
    opened = Report(report)
    assert not report_is_stale(opened)
    changed = small_dataset / "cat" / "cat_0.jpg"
    changed.write_bytes(changed.read_bytes() + b"\0")
    (small_dataset / "dog" / "dog_1.jpg").unlink()
    shutil.copy(small_dataset / "fox" / "fox_0.jpg", small_dataset / "fox" / "new.jpg")
    stale = report_is_stale(opened)
    assert stale.changed == ("cat/cat_0.jpg",)
    assert stale.removed == ("dog/dog_1.jpg",)
    assert stale.added == ("fox/new.jpg",)
    assert "1 file(s) changed, 1 new, 1 removed" in stale.describe()


def test_summary_json_is_strict_json(report):
    """No NaN or Infinity can reach summary.json (thresholds are finite by construction)."""
    text = (report / "summary.json").read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in summary.json"))
    assert os.path.getsize(report / "summary.json") > 0


def _edit_summary(report: Path, **changes) -> None:
    summary = json.loads((report / "summary.json").read_text())
    summary.update(changes)
    (report / "summary.json").write_text(json.dumps(summary))


def _edit_first_row(report: Path, column: str, value: str) -> None:
    with open(report / "images.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows[0][column] = value
    with open(report / "images.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda r: _edit_summary(r, root=None), "root is not a path"),
        (lambda r: _edit_summary(r, classes="x"), "classes is not a list"),
        (lambda r: _edit_summary(r, files=-1), "files is not a count"),
        (
            lambda r: (r / "summary.json").write_text(
                (r / "summary.json").read_text().replace('"usable": ', '"usable": NaN, "x": ', 1)
            ),
            "NaN is not a JSON number",
        ),
        (lambda r: _edit_first_row(r, "severity", "catastrophic"), "severity 'catastrophic'"),
        (lambda r: _edit_first_row(r, "bytes", "-5"), "-5 is negative"),
        (lambda r: _edit_first_row(r, "path", "/etc/passwd"), "not a relative path"),
        (lambda r: _edit_first_row(r, "path", "cat/a\0b.jpg"), "x00b.jpg. is not a relative"),
    ],
)
def test_wrong_values_in_a_report_are_refused(report, damage, message):
    """Before: KeyError, TypeError or ValueError tracebacks (exit 3) in quarantine and train."""
    damage(report)
    with pytest.raises(ReportError, match=message):
        Report(report).images()
    with pytest.raises(ReportError):
        load_examples(report, check_stale=False)


def test_a_row_leading_out_of_the_dataset_is_never_moved(report, small_dataset, tmp_path, capsys):
    """An edited images.csv naming ../outside.txt (with its real size, mtime and sha256)
    once made quarantine move a file from outside ROOT."""
    outside = small_dataset.parent / "outside.txt"
    outside.write_bytes(b"")  # the same content as dog/empty.jpg, so its row matches
    with open(report / "images.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        if row["path"] == "dog/empty.jpg":
            row["path"] = "../outside.txt"
            row["mtime_ns"] = str(outside.stat().st_mtime_ns)
    with open(report / "images.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert cli.main(["quarantine", str(report), "--to", str(tmp_path / "q")]) == 2
    assert "leads out of the scanned dataset" in capsys.readouterr().err
    assert outside.exists()


def test_atomic_writes_never_follow_a_planted_link(tmp_path):
    """A link planted at the temporary name (or at the target) is replaced, never written
    through; a block that raises leaves the old file and no temporary file."""
    from audit.reportio import atomic_file, atomic_text

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".report.html.tmp").symlink_to(victim)
    (out / "report.md").symlink_to(victim)
    with atomic_text(out / "report.html") as handle:
        handle.write("<p>new</p>")
    with atomic_text(out / "report.md") as handle:
        handle.write("# new")
    assert victim.read_text() == "keep me"
    assert (out / "report.html").read_text() == "<p>new</p>"
    assert not (out / "report.md").is_symlink() and (out / "report.md").read_text() == "# new"
    with pytest.raises(RuntimeError):
        with atomic_file(out / "report.md", binary=True, sync=True) as handle:
            handle.write(b"half")
            raise RuntimeError("cut off")
    assert (out / "report.md").read_text() == "# new"
    assert sorted(path.name for path in out.iterdir()) == ["report.html", "report.md"]
