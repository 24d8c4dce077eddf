"""The demo dataset: real images from scikit-learn, and every injected problem is found."""

from __future__ import annotations

import csv

import pytest

from audit.scan import scan
from tests.conftest import tree_fingerprint

pytest.importorskip("sklearn")

from audit.demo import INJECTED, build_demo  # noqa: E402


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    root = build_demo(tmp_path_factory.mktemp("demo") / "dataset")
    before = tree_fingerprint(root)
    result = scan(root, tmp_path_factory.mktemp("report"), jobs=2)
    assert tree_fingerprint(root) == before
    return root, result


def test_every_injected_problem_is_reported(demo_report):
    _, result = demo_report
    rows = {
        row["path"]: row
        for row in csv.DictReader(open(result.files["images.csv"], encoding="utf-8"))
    }
    for path, codes in INJECTED.items():
        assert set(codes) <= set(rows[path]["issues"].split(";")), path


def test_demo_layout_findings(demo_report):
    _, result = demo_report
    summary = result.summary
    assert summary["stray_files"] == ["README.txt"]
    assert summary["empty_classes"] == ["unlabeled"]
    assert any(item["path"] == "three/.DS_Store" for item in summary["ignored_files"])
    assert {f["code"] for f in summary["dataset_findings"]} >= {
        "class_imbalance",
        "empty_class",
        "stray_files",
    }
    assert len(summary["classes"]) == 11 and summary["files"] > 1600
    duplicates = summary["checks"]["duplicates"]
    assert duplicates["label_conflict_groups"] == 1  # only the deliberate copy
    assert duplicates["near"]["size_buckets"]["tiny"]["radius_used"] < 10  # 32 px digits: tightened


def test_demo_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        build_demo(tmp_path / "x")
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"
