"""A re-scan of an unchanged tree reuses the previous reports (audit.reuse), and only then."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil

import pytest

from audit import model_findings, reportio, reuse
from audit import scan as scan_module
from audit.checks import Thresholds
from audit.scan import scan
from audit.thumbnails import Thumbnailer
from tests.conftest import jpeg
from tests.test_model_findings import _publish as publish

REPORTS = ("images.csv", "findings.csv", "duplicates.csv", "report.md")
RUN_FIELDS = ("created_utc", "duration_s", "cache", "jobs", "engine")


def reused(result) -> bool:
    return "reused_from" in result.summary["cache"]


def without_run_line(html: str) -> str:
    return re.sub(r'<div class="muted"><span class="path">.*?</div>', "", html, count=1)


def assert_same_reports(first, second) -> None:
    """Equal apart from when and how the scan ran."""
    for name in REPORTS:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    summaries = [json.loads((folder / "summary.json").read_text()) for folder in (first, second)]
    for summary in summaries:
        for field in RUN_FIELDS:
            summary.pop(field)
        for section in summary["checks"].values():
            section.pop("seconds", None)  # how long the check took
    assert summaries[0] == summaries[1]
    pages = [without_run_line((folder / "report.html").read_text()) for folder in (first, second)]
    assert pages[0] == pages[1]


@pytest.fixture
def scanned(small_dataset, tmp_path):
    """small_dataset with one corrupt file, scanned once into out; a copy of those reports."""
    (small_dataset / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    out = tmp_path / "out"
    first = scan(small_dataset, out, jobs=1)
    assert not reused(first)
    cold = tmp_path / "cold"
    shutil.copytree(out, cold, ignore=shutil.ignore_patterns(".*"))
    return small_dataset, out, cold, first


def test_an_unchanged_tree_reuses_the_reports(scanned):
    root, out, cold, first = scanned
    again = scan(root, out, jobs=1)
    assert again.summary["cache"]["reused_from"] == first.summary["created_utc"]
    assert again.summary["cache"]["hits"] == again.summary["files"] == 13
    assert again.summary["cache"]["misses"] == 0
    assert again.error_lines == first.error_lines and len(first.error_lines) == 1
    assert list(again.files) == list(first.files)
    assert again.exit_code() == first.exit_code() == 1
    assert_same_reports(cold, out)
    # The page's run line is the new run's.
    assert again.summary["created_utc"] in (out / "report.html").read_text()
    third = scan(root, out, jobs=1)  # a reuse of a reuse still points at the computation
    assert third.summary["cache"]["reused_from"] == first.summary["created_utc"]
    assert_same_reports(cold, out)


def _change_threshold(root, out):
    return {"thresholds": Thresholds(min_side=64)}


def _change_a_file(root, out):
    (root / "dog" / "dog_1.jpg").write_bytes(jpeg(seed=999))
    return {}


def _rename_a_file(root, out):
    os.rename(root / "dog" / "dog_1.jpg", root / "dog" / "dog_9.jpg")  # same count, same sizes
    return {}


def _rehash(root, out):
    return {"rehash": True}


def _new_version(root, out):
    return {"version": "99.0"}


def _label_issues(root, out):
    sha256 = hashlib.sha256((root / "dog" / "dog_1.jpg").read_bytes()).hexdigest()
    publish(out, [model_findings.LabelIssue("dog/dog_1.jpg", sha256, "dog", "cat", 0.01, 1)])
    return {}


def _fail_on(root, out):
    return {"fail_on": "never"}


def _edited_report(root, out):
    with open(out / "images.csv", "a", encoding="utf-8") as handle:
        handle.write("edited by hand\n")
    return {}


def _deleted_report(root, out):
    (out / "report.md").unlink()
    return {}


def _no_cache(root, out):
    return {"cache": False}


@pytest.mark.parametrize(
    "change",
    [
        _change_threshold,
        _change_a_file,
        _rename_a_file,
        _rehash,
        _new_version,
        _label_issues,
        _fail_on,
        _edited_report,
        _deleted_report,
        _no_cache,
    ],
)
def test_anything_the_reports_depend_on_bypasses_the_reuse(scanned, change, monkeypatch):
    root, out, cold, first = scanned
    options = change(root, out)
    version = options.pop("version", None)
    if version is not None:
        monkeypatch.setattr(scan_module, "__version__", version)
    again = scan(root, out, jobs=1, **options)
    assert not reused(again)
    if version is not None:
        assert again.summary["version"] == version
    if change in (_edited_report, _deleted_report):
        assert_same_reports(cold, out)  # written again, whole
    if change is _change_a_file:
        assert again.summary["cache"]["misses"] == 1
    if change is _label_issues:
        assert again.summary["label_issues"]["applied"] == 1
    if change is _rename_a_file:
        assert "dog/dog_9.jpg" in (out / "images.csv").read_text()
    if change in (_change_threshold, _change_a_file, _label_issues):
        # The bypassing scan left its own state: the same scan again reuses its reports.
        repeated = scan(root, out, jobs=1, **options)
        assert repeated.summary["cache"].get("reused_from") == again.summary["created_utc"]


def test_a_scan_killed_while_writing_reports_leaves_nothing_to_reuse(scanned, monkeypatch):
    root, out, cold, first = scanned

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # images.csv and findings.csv are new, the rest is old

    monkeypatch.setattr(reportio, "write_summary", killed)
    with pytest.raises(KeyboardInterrupt):
        scan(root, out, jobs=1, thresholds=Thresholds(min_side=64))  # not a reuse: it runs
    monkeypatch.undo()
    assert not (out / reuse.STATE_NAME).exists()
    # The tree and the first scan's inputs again: the mix of reports is not served.
    again = scan(root, out, jobs=1)
    assert not reused(again)
    assert_same_reports(cold, out)


def test_a_reuse_killed_while_rewriting_leaves_nothing_to_reuse(scanned, monkeypatch):
    root, out, cold, first = scanned
    real = reportio.atomic_text

    def killed(path):
        if path.name == "report.html":
            raise KeyboardInterrupt
        return real(path)

    monkeypatch.setattr(reportio, "atomic_text", killed)
    with pytest.raises(KeyboardInterrupt):
        scan(root, out, jobs=1)
    monkeypatch.undo()
    assert not (out / reuse.STATE_NAME).exists()
    assert not reused(scan(root, out, jobs=1))
    assert_same_reports(cold, out)


def test_a_state_file_that_does_not_check_is_ignored(scanned):
    root, out, cold, first = scanned
    state = out / reuse.STATE_NAME
    document = json.loads(state.read_text())
    document["body"]["error_lines"] = ["error: forged"]
    state.write_text(json.dumps(document))
    again = scan(root, out, jobs=1)
    assert not reused(again)
    assert again.error_lines == first.error_lines
    state.write_text("{not json")
    assert not reused(scan(root, out, jobs=1))


def test_thumbnails_made_on_the_workers_equal_those_made_here(scanned, tmp_path, monkeypatch):
    root, out, cold, first = scanned
    (root / "dog" / "copy.jpg").write_bytes((root / "dog" / "dog_0.jpg").read_bytes())
    made_here = []
    original = Thumbnailer.__call__
    monkeypatch.setattr(
        Thumbnailer, "__call__", lambda self, path: made_here.append(path) or original(self, path)
    )
    pages, counts = [], []
    for jobs in (1, 2):  # 2: a worker pool, which makes the thumbnails ahead
        made_here.clear()
        scan(root, tmp_path / f"jobs{jobs}", jobs=jobs, cache=False)
        pages.append(without_run_line((tmp_path / f"jobs{jobs}" / "report.html").read_text()))
        counts.append(len(made_here))
    assert pages[0].count("data:image/jpeg;base64,") >= 13
    assert pages[0] == pages[1]
    assert counts[0] >= 13 and counts[1] == 0  # none left to make in the scan's process
