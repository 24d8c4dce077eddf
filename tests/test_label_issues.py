"""python -m train label-issues: leakage-free folds, cleanlab as an optional extra, and known
label flips in real digit scans found by out-of-fold confident learning."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from audit.demo import build_demo
from audit.model_findings import CODE, COLUMNS, ModelFindingsError, load
from audit.scan import scan
from tests.conftest import jpeg, write_dataset
from train import cli, data
from train import label_issues as li


def test_folds_keep_duplicate_groups_together_and_spread_every_class():
    labels = np.repeat(np.arange(3), [40, 25, 12])
    groups = np.full(labels.size, -1)
    groups[[0, 1, 2]] = 7  # a group of three copies in class 0
    groups[[45, 46]] = 3  # a pair in class 1
    groups[[5, 70]] = 9  # a group spanning classes 0 and 2 (a possible label conflict)
    folds = li.assign_folds(labels, groups, 4, seed=1)
    for group in (7, 3, 9):
        assert len(set(folds[groups == group].tolist())) == 1
    for label in range(3):
        counts = np.bincount(folds[labels == label], minlength=4)
        assert counts.max() - counts.min() <= 3  # the group of three may tip one fold
    assert sorted(set(folds.tolist())) == [0, 1, 2, 3]
    assert (li.assign_folds(labels, groups, 4, seed=1) == folds).all()  # seeded
    with pytest.raises(ValueError, match="at least 2"):
        li.assign_folds(labels, groups, 1, seed=1)


def test_a_class_missing_from_a_folds_training_part_is_refused():
    labels = np.array([0, 0, 0, 1, 1, 1, 2])
    folds = li.assign_folds(labels, np.full(7, -1), 2, seed=0)
    with pytest.raises(ValueError, match="no image of c"):
        li.check_folds(folds, labels, ("a", "b", "c"), 2)
    li.check_folds(folds[:6], labels[:6], ("a", "b"), 2)  # every class in both parts: fine
    few = np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="would hold no image"):
        li.check_folds(li.assign_folds(few, np.full(4, -1), 5, seed=0), few, ("a", "b"), 5)


def test_precision_recall_at_k():
    assert li.precision_recall_at_k(["a", "x", "b", "y"], ["a", "b"]) == (0.5, 0.5)
    assert li.precision_recall_at_k(["b"], ["a", "b"]) == (1.0, 0.5)  # fewer ranked than k
    assert li.precision_recall_at_k([], ["a"]) == (0.0, 0.0)


def test_a_weak_model_is_named_on_both_sides():
    assert li.is_weak(0.23, 0.11)  # 30 steps per fold on the demo digits: 38% flagged
    assert not li.is_weak(0.98, 0.11)
    assert li.is_weak(0.70, 0.5) and not li.is_weak(0.80, 0.5)  # two balanced classes


def test_without_cleanlab_the_command_exits_2_with_the_install_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cleanlab", None)  # import cleanlab... -> ImportError
    monkeypatch.setitem(sys.modules, "cleanlab.filter", None)
    code = cli.main(["label-issues", str(tmp_path), "--report", str(tmp_path / "r")])
    assert code == 2
    assert "pip install 'image-audit[labels]'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def flipped_digits(tmp_path_factory):
    """20 real digit scans per class (the demo's), 5% of them filed under another class."""
    work = tmp_path_factory.mktemp("digits")
    demo = build_demo(work / "demo")
    flipped = li.copy_with_flipped_labels(
        demo, work / "data", 0.05, seed=1, pattern="digit_*.jpg", per_class=20
    )
    scan(work / "data", work / "report", jobs=1)
    return work / "data", work / "report", flipped


def test_known_flips_are_found_and_the_scan_imports_them(flipped_digits, capsys):
    root, report, flipped = flipped_digits
    # A cheap setting (2 folds, 100 steps, the scans' own 8 px) to stay within the test
    # budget; bench/label_issues.py measures the defaults on the whole demo, on 3 seeds.
    args = ["label-issues", str(root), "--report", str(report), "--folds", "2"]
    args += ["--steps", "100", "--image-size", "8", "--seed", "1"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "fold 1/2: trained on " in out and "fold 2/2: trained on " in out
    assert f"python -m audit scan {root} --out {report}" in out

    with open(report / "label_issues.csv", encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        rows = list(reader)
    scores = [float(row["score"]) for row in rows]
    assert scores == sorted(scores)  # worst first
    assert all(row["suggested_label"] != row["label"] for row in rows[: len(flipped)])
    precision, recall = li.precision_recall_at_k([row["path"] for row in rows], flipped)
    # Measured 0.80 / 0.80 at this setting (10 flips of 200): the goal, 0.6, holds here too.
    assert precision >= 0.6 and recall >= 0.6, (precision, recall)

    summary = json.loads((report / "label_issues.json").read_text())
    assert summary["images"] == 200 and summary["folds"] == 2
    assert summary["label_issues"] == len(rows)
    assert 0.7 <= summary["out_of_fold_accuracy"] <= 1.0
    assert summary["weak_model"] is False and "weak held-out model" not in out
    assert len(summary["per_class"]) == 10
    with open(report / "label_issues_confusion.csv", encoding="utf-8") as handle:
        confusion = [list(map(int, line[1:])) for line in list(csv.reader(handle))[1:]]
    assert sum(map(sum, confusion)) == 200
    assert (report / "label_issues_confusion.png").stat().st_size > 0

    scan(root, report, jobs=1)
    with open(report / "images.csv", encoding="utf-8", newline="") as handle:
        marked = {row["path"] for row in csv.DictReader(handle) if CODE in row["issues"]}
    assert marked == {row["path"] for row in rows}
    html = (report / "report.html").read_text(encoding="utf-8")
    assert "held-out model (small_xception, 2 folds) was right on" in html


@pytest.mark.parametrize("classes", [2, 3])
def test_find_issues_ranks_doubtful_labels_worst_first(classes):
    rng = np.random.default_rng(3)
    labels = np.arange(60) % classes
    probabilities = np.full((60, classes), 0.15 / (classes - 1))
    probabilities[np.arange(60), labels] = 0.85  # confident and right...
    wrong = {7: 0.02, 20: 0.10}  # ...but for two images, whose label gets little
    for index, given in wrong.items():
        other = (labels[index] + 1) % classes
        probabilities[index] = 0.0
        probabilities[index, labels[index]] = given
        probabilities[index, other] = 1 - given
    names = tuple("abc"[:classes])
    paths = [f"{names[label]}/<i>{index}</i>.png" for index, label in enumerate(labels)]
    examples = data.Examples(
        root=Path("/data"),
        class_names=names,
        paths=["/data/" + path for path in paths],
        relpaths=paths,
        labels=labels.astype(np.int32),
        splits=[""] * 60,
        groups=np.full(60, -1),
    )
    oof = li.OutOfFold(examples, probabilities, folds=rng.integers(1, 4, 60))
    issues = li.find_issues(oof, {path: f"{index:064x}" for index, path in enumerate(paths)})
    assert [issue.path for issue in issues] == [paths[7], paths[20]]
    assert [issue.score for issue in issues] == pytest.approx([0.02, 0.10])
    first = issues[0]
    assert (
        first.label == names[labels[7]]
        and first.suggested_label == names[(labels[7] + 1) % classes]
    )
    assert first.sha256 == f"{7:064x}" and first.fold == oof.folds[7]


def _tiny_report(tmp_path: Path, classes: tuple[str, ...]) -> tuple[Path, Path]:
    files = {
        f"{label}/{label}_{i}.jpg": jpeg(10 * n + i)
        for n, label in enumerate(classes)
        for i in range(4)
    }
    root = write_dataset(tmp_path / "data", files)
    scan(root, tmp_path / "report", jobs=1)
    return root, tmp_path / "report"


@pytest.fixture
def no_training(monkeypatch):
    """label-issues may not reach the folds, nor load TensorFlow."""

    def refuse(*args, **kwargs):
        raise AssertionError("trained although the input was refused")

    monkeypatch.setattr(li, "out_of_fold", refuse)
    for name in ("tensorflow", "keras"):
        if name not in sys.modules:
            monkeypatch.setitem(sys.modules, name, None)  # an import fails


def test_one_class_is_refused_before_training(tmp_path, no_training, capsys):
    root, report = _tiny_report(tmp_path, ("cat",))
    assert cli.main(["label-issues", str(root), "--report", str(report)]) == 2
    assert "at least two classes with usable images" in capsys.readouterr().err
    assert not (report / "label_issues.csv").exists()


def test_an_output_that_cannot_be_written_is_refused_before_training(tmp_path, no_training):
    root, report = _tiny_report(tmp_path, ("cat", "dog"))
    li.check_outputs(report)  # a report folder as scan leaves it: writable
    (report / "label_issues.csv").mkdir()  # used to crash (exit 3) after all the training
    code = cli.main(["label-issues", str(root), "--report", str(report), "--folds", "2"])
    assert code == 2


def _oof(root: Path) -> li.OutOfFold:
    names = ("cat", "dog")
    labels = np.array([0, 0, 0, 1, 1, 1], dtype=np.int32)
    relpaths = [f"{names[label]}/{index}.jpg" for index, label in enumerate(labels)]
    probabilities = np.eye(2)[labels] * 0.8 + 0.1
    probabilities[2] = (0.05, 0.95)  # cat/2.jpg looks like a dog
    examples = data.Examples(
        root=root,
        class_names=names,
        paths=[str(root / path) for path in relpaths],
        relpaths=relpaths,
        labels=labels,
        splits=[""] * 6,
        groups=np.full(6, -1),
    )
    per_fold = [{"fold": fold, "accuracy": 0.67} for fold in (1, 2)]
    return li.OutOfFold(examples, probabilities, np.array([1, 2, 1, 2, 1, 2]), per_fold)


def _issues() -> list:
    return [li.LabelIssue("cat/2.jpg", "c" * 64, "cat", "dog", 0.05, 1)]


def test_outputs_never_write_through_planted_links(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me", encoding="utf-8")
    for name in (".label_issues.csv.tmp", ".label_issues.json.tmp", *li.OUTPUT_NAMES):
        (out / name).symlink_to(victim)  # the old fixed temporary names, and the outputs
    leftover = out / f"{li.STAGING_PREFIX}killed"
    leftover.mkdir()  # a run killed while writing
    document = li.write_outputs(out, _oof(tmp_path), _issues(), {"model": "simple_cnn"})
    assert victim.read_text(encoding="utf-8") == "keep me"
    assert all((out / name).is_file() and not (out / name).is_symlink() for name in li.OUTPUT_NAMES)
    assert not leftover.exists() and not list(out.glob(f"{li.STAGING_PREFIX}*"))
    assert document["files"] == sorted(li.OUTPUT_NAMES)
    found = load(out)  # the pair belongs together: read by the scan
    assert found.model["label_issues_sha256"] == document["label_issues_sha256"]
    assert [issue.path for issue in found.issues] == ["cat/2.jpg"]


def test_a_run_stopped_between_its_writes_leaves_a_pair_the_scan_refuses(tmp_path, monkeypatch):
    out = tmp_path / "report"
    out.mkdir()
    li.write_outputs(out, _oof(tmp_path), [], {"model": "simple_cnn"})  # an earlier run
    assert load(out).issues == []
    renamed = []

    def replace_then_die(source, target):
        if Path(target).name == li.SUMMARY_NAME:
            raise KeyboardInterrupt  # killed after label_issues.csv, before the JSON
        renamed.append(Path(target).name)
        os.rename(source, target)

    monkeypatch.setattr(li.os, "replace", replace_then_die)
    with pytest.raises(KeyboardInterrupt):
        li.write_outputs(out, _oof(tmp_path), _issues(), {"model": "simple_cnn"})
    assert renamed[-1] == "label_issues.csv"  # the JSON comes last
    with pytest.raises(ModelFindingsError, match="does not belong"):
        load(out)
