"""The per-class view, top losses and the held-out test split: numpy only, no TensorFlow."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

from audit.errors import InvalidArgument
from train import diagnostics
from train.data import Examples, split_examples

NAMES = ["cat", "dog", "fox"]


def test_importing_the_module_needs_neither_tensorflow_nor_matplotlib():
    import subprocess

    code = (
        "import sys, train.diagnostics; "
        "print(sorted(m for m in ('tensorflow', 'matplotlib', 'keras') if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"


def test_a_collapsed_model_shows_every_prediction_in_one_column(tmp_path):
    labels = np.array([0] * 6 + [1] * 3 + [2] * 2)
    collapsed = np.zeros_like(labels)  # always the majority class: accuracy 6/11
    confusion = diagnostics.confusion_matrix(labels, collapsed, 3)
    assert confusion.dtype == np.int64
    assert confusion[:, 1:].sum() == 0 and confusion[:, 0].tolist() == [6, 3, 2]
    rows = diagnostics.per_class_metrics(confusion, NAMES)
    assert [row["recall"] for row in rows] == [1.0, 0.0, 0.0]
    assert [row["predicted"] for row in rows] == [11, 0, 0]
    assert rows[1]["precision"] == 0.0 and rows[1]["f1"] == 0.0  # never predicted: 0, not NaN
    assert diagnostics.worst_class_recall(rows) == 0.0
    # A model that learned: the diagonal, and the worst recall is that of its weakest class.
    learned = labels.copy()
    learned[-1] = 0
    good = diagnostics.per_class_metrics(diagnostics.confusion_matrix(labels, learned, 3), NAMES)
    assert diagnostics.worst_class_recall(good) == 0.5
    assert good[0]["precision"] == pytest.approx(6 / 7) and good[2]["recall"] == 0.5
    paths = diagnostics.write_confusion(tmp_path, confusion, NAMES, prefix="x_")
    assert {path.name for path in paths.values()} == {
        "x_confusion.csv",
        "x_confusion.png",
        "x_per_class.csv",
    }
    table = list(csv.reader(open(paths["confusion.csv"], encoding="utf-8")))
    assert table[0] == ["given_label", *(f"predicted:{name}" for name in NAMES), "nan_predictions"]
    assert [row[1:] for row in table[1:]] == [
        ["6", "0", "0", "0"],
        ["3", "0", "0", "0"],
        ["2", "0", "0", "0"],
    ]
    assert diagnostics.read_per_class(paths["per_class.csv"]) == rows


def test_a_class_without_support_shows_support_zero_and_does_not_count_as_worst():
    confusion = diagnostics.confusion_matrix(np.array([0, 0, 1]), np.array([0, 0, 1]), 3)
    rows = diagnostics.per_class_metrics(confusion, NAMES)
    assert rows[2] == {
        "class": "fox",
        "support": 0,
        "predicted": 0,
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "nan_predictions": 0,
    }
    assert diagnostics.worst_class_recall(rows) == 1.0
    assert diagnostics.worst_class_recall(rows[2:]) is None
    assert diagnostics.read_per_class(Path("/nonexistent/per_class.csv")) is None


def test_bad_input_is_refused_with_what_is_allowed():
    with pytest.raises(ValueError, match="outside 0..2"):
        diagnostics.confusion_matrix(np.array([0, 3]), np.array([0, 0]), 3)
    with pytest.raises(ValueError, match="differ in length"):
        diagnostics.confusion_matrix(np.array([0, 1]), np.array([0]), 3)
    with pytest.raises(ValueError, match="2 class names"):
        diagnostics.per_class_metrics(np.zeros((3, 3)), NAMES[:2])


def test_top_losses_highest_first_with_label_prediction_and_loss(tmp_path):
    probabilities = np.array(
        [
            [0.90, 0.05, 0.05],  # right, confident: loss 0.105
            [0.10, 0.80, 0.10],  # labelled fox, predicted dog: loss 2.303
            [0.00, 1.00, 0.00],  # labelled cat, certain of dog: clipped at the floor
            [0.30, 0.40, 0.30],  # labelled dog, unsure: loss 0.916
        ]
    )
    labels = np.array([0, 2, 0, 1])
    hostile = "cat/a\nb<i>\udcff.png"  # newline, HTML, a byte that is not UTF-8
    paths = ["cat/ok.png", "fox/f.png", hostile, "dog/d.png"]
    with np.errstate(divide="ignore"):
        logs = np.log(probabilities)
    rows = diagnostics.top_losses(logs, labels, paths, NAMES, 3)
    assert [row["rank"] for row in rows] == [1, 2, 3]
    assert [row["path"] for row in rows] == [hostile, "fox/f.png", "dog/d.png"]
    assert rows[0]["loss"] == np.inf and rows[0]["probability"] == 0.0  # certain and wrong
    assert (rows[1]["label"], rows[1]["predicted"]) == ("fox", "dog")
    assert rows[1]["loss"] == pytest.approx(-np.log(0.1))
    assert rows[1]["probability"] == pytest.approx(0.1)
    written = diagnostics.write_top_losses(tmp_path, rows, np.zeros((3, 8, 8, 3)))
    assert written["top_losses.png"].stat().st_size > 0
    read = list(csv.DictReader(open(written["top_losses.csv"], encoding="utf-8", newline="")))
    assert list(read[0]) == list(diagnostics.TOP_LOSS_COLUMNS)
    assert read[0]["path"] == "cat/a\nb<i>\\xff.png"  # as the audit's reports store such names
    assert [row["label"] for row in read] == ["cat", "fox", "dog"]
    # Nothing asked, nothing listed; no figure without images.
    assert diagnostics.top_losses(logs, labels, paths, NAMES, 0) == []
    assert "top_losses.png" not in diagnostics.write_top_losses(tmp_path / ".", rows[:1], None)


def test_summarise_gives_loss_accuracy_and_the_worst_class():
    probabilities = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.2, 0.7, 0.1]])
    with np.errstate(divide="ignore"):
        figures = diagnostics.summarise(np.log(probabilities), np.array([0, 1, 1]), NAMES)
    assert figures["images"] == 3 and figures["accuracy"] == pytest.approx(2 / 3)
    assert figures["loss"] == pytest.approx(-(np.log(0.9) + np.log(0.2) + np.log(0.7)) / 3)
    assert figures["worst_class_recall"] == 0.5
    assert figures["nan_predictions"] == 0 and "note" not in figures


# ---------------------------------------------------------------- the held-out test split


def examples(groups: list[int], labels: list[int], splits: list[str] | None = None) -> Examples:
    count = len(labels)
    return Examples(
        root=Path("/data"),
        class_names=("a", "b"),
        paths=[f"/data/{index}.png" for index in range(count)],
        relpaths=[f"{index}.png" for index in range(count)],
        labels=np.array(labels, dtype=np.int32),
        splits=splits or [""] * count,
        groups=np.array(groups, dtype=np.int64),
    )


def group_of(items: Examples) -> dict[str, int]:
    return dict(zip(items.paths, items.groups.tolist(), strict=True))


def test_the_test_split_is_disjoint_and_keeps_duplicate_groups_on_one_side():
    # 80 images of two classes; groups of 3 copies every 10 images (some groups span classes).
    labels = [index % 2 for index in range(80)]
    groups = [index // 10 if index % 10 < 3 else -1 for index in range(80)]
    items = examples(groups, labels)
    plain = split_examples(items, 0.2, 11)
    assert plain.test_paths == [] and len(plain.test_labels) == 0  # no test split unless asked
    split = split_examples(items, 0.2, 11, test_fraction=0.25)
    train, val, test = set(split.train_paths), set(split.val_paths), set(split.test_paths)
    assert not (train & test) and not (val & test) and not (train & val)
    assert len(train | val | test) == 80
    assert split.val_paths == plain.val_paths  # validation does not move
    group = group_of(items)
    sides = {}
    for name, part in (("train", train), ("val", val), ("test", test)):
        for path in part:
            if group[path] >= 0:
                sides.setdefault(group[path], set()).add(name)
    assert sides and all(len(where) == 1 for where in sides.values()), sides
    assert any(where == {"test"} for where in sides.values())  # groups do reach the test split
    counts = np.bincount(split.test_labels, minlength=2)
    assert all(8 <= count <= 14 for count in counts), counts  # about 25% of each class's 40
    assert "duplicate groups kept on one side" in split.details["test_how"]
    assert split.details["thin_test_classes"] == {}


def test_with_own_split_folders_a_group_with_a_validation_copy_stays_out_of_test():
    # Group 7: two training copies and a validation copy (dropped from validation as a leak);
    # its training copies must not be held out either: the test would share a picture.
    labels = [0, 1] * 20
    splits = ["train"] * 30 + ["val"] * 10
    groups = [7 if index < 2 else -1 for index in range(40)]
    groups[30] = 7
    items = examples(groups, labels, splits)
    for seed in range(8):
        split = split_examples(items, 0.2, seed, test_fraction=0.5)
        assert "/data/0.png" not in split.test_paths and "/data/1.png" not in split.test_paths
        assert "/data/30.png" not in split.val_paths  # the leak rule still holds
        assert not set(split.test_paths) & set(split.val_paths)
        assert len(split.test_paths) >= 14


@pytest.mark.parametrize("fraction", [0.0, 1.0, 0.8, -0.1])
def test_a_test_fraction_that_leaves_no_training_is_refused(fraction):
    items = examples([-1] * 20, [0, 1] * 10)
    with pytest.raises(InvalidArgument, match="test_fraction"):
        split_examples(items, 0.2, 1, test_fraction=fraction)


def test_the_command_line_refuses_a_test_fraction_outside_0_1(tmp_path, capsys):
    from train import cli

    assert cli.main(["run", str(tmp_path), "--test-fraction", "1.5"]) == 2
    assert "--test-fraction" in capsys.readouterr().err
    assert cli.main(["predict", str(tmp_path / "none"), "x.png"]) == 2
    assert "no export at" in capsys.readouterr().err


# ---------------------------------------------------------------- losses, NaN outputs, files


def test_losses_are_the_real_cross_entropy_of_the_logits_not_a_clipped_one():
    from train.bias import log_probabilities

    # Confidently wrong by 50 and by 80 nats, and right: a 1e-7 clip tied the first two at
    # 16.118 and put the mean (43.3) below the prior's entropy.
    logits = np.array([[50.0, 0.0, 0.0], [0.0, 80.0, 0.0], [9.0, 0.0, 0.0]])
    labels = np.array([2, 0, 0])
    logs = log_probabilities(logits, binary=False)
    expected = [50.0 + np.log1p(2 * np.exp(-50.0)), 80.0 + np.log1p(2 * np.exp(-80.0))]
    rows = diagnostics.top_losses(logs, labels, ["a", "b", "c"], NAMES, 3)
    assert [row["path"] for row in rows] == ["b", "a", "c"]
    assert [row["loss"] for row in rows[:2]] == pytest.approx(expected[::-1], rel=1e-12)
    summary = diagnostics.summarise(logs, labels, NAMES)
    right = np.log1p(2 * np.exp(-9.0))
    assert summary["loss"] == pytest.approx((sum(expected) + right) / 3, rel=1e-12)
    # A sigmoid head: log-sigmoid, exact at a logit of 1e6 (softmax of [0, z] is sigmoid(z)).
    binary = log_probabilities(np.array([[1e6], [-3.0]]), binary=True)
    assert diagnostics.losses(binary, np.array([0, 1])).tolist() == pytest.approx(
        [1e6, 3.0 + np.log1p(np.exp(-3.0))], rel=1e-12
    )
    np.testing.assert_allclose(
        binary, log_probabilities(np.array([[0.0, 1e6], [0.0, -3.0]]), False), rtol=1e-12
    )


def test_nan_outputs_are_counted_apart_wrong_and_listed_first(tmp_path):
    labels = np.array([0] * 4 + [1] * 3 + [2] * 3)
    logs = np.log(np.tile([0.2, 0.2, 0.6], (10, 1)))
    logs[[1, 5]] = np.nan  # a diverged model's outputs for two images
    figures = diagnostics.write_view(tmp_path, logs, labels, [f"f{i}" for i in range(10)], NAMES)
    assert figures["nan_predictions"] == 2 and figures["loss"] is None
    assert "2 of 10 image(s) got a NaN output" in figures["note"]
    assert figures["accuracy"] == pytest.approx(3 / 10)  # only class 2's three are right
    assert [row["nan_predictions"] for row in figures["per_class"]] == [1, 1, 0]
    # argmax would put both in class 0's column; they are in none, and still in the support.
    assert [row["support"] for row in figures["per_class"]] == [4, 3, 3]
    assert [row["predicted"] for row in figures["per_class"]] == [0, 0, 8]
    table = list(csv.reader(open(tmp_path / "confusion.csv", encoding="utf-8")))
    assert [row[-1] for row in table] == ["nan_predictions", "1", "1", "0"]
    assert diagnostics.read_per_class(tmp_path / "per_class.csv") == figures["per_class"]
    top = list(csv.DictReader(open(tmp_path / "top_losses.csv", encoding="utf-8")))
    assert [row["path"] for row in top[:2]] == ["f1", "f5"]
    assert top[0]["predicted"] == diagnostics.NO_PREDICTION_NAME and top[0]["loss"] == "nan"
    # No NaN: no count, no note.
    clean = diagnostics.summarise(np.nan_to_num(logs, nan=-1.0), labels, NAMES)
    assert clean["nan_predictions"] == 0 and "note" not in clean and clean["loss"] > 0


def test_confusion_header_cannot_collide_with_a_class_and_losses_are_never_minus_zero(tmp_path):
    names = ["given_label", "label \\ predicted", "nan_predictions"]
    confusion = np.array([[1, 0, 0], [0, 2, 0], [0, 1, 3]])
    diagnostics.write_confusion(tmp_path, confusion, names)
    table = list(csv.reader(open(tmp_path / "confusion.csv", encoding="utf-8")))
    assert len(set(table[0])) == 5 and table[0][0] == "given_label"
    assert [row[0] for row in table[1:]] == names
    assert [list(map(int, row[1:4])) for row in table[1:]] == confusion.tolist()
    # Certain and right: the loss is +0.0, written "0.0", not "-0.0".
    rows = diagnostics.top_losses(np.array([[0.0, -np.inf]]), np.array([0]), ["x"], ["a", "b"], 1)
    written = diagnostics.write_top_losses(tmp_path, rows)
    assert next(csv.DictReader(open(written["top_losses.csv"])))["loss"] == "0.0"
    assert (
        str(diagnostics.summarise(np.array([[0.0, -np.inf]]), np.array([0]), ["a", "b"])["loss"])
        == "0.0"
    )


def test_a_single_class_is_refused_before_anything_is_trained():
    with pytest.raises(
        InvalidArgument, match="at least two classes with usable images; found 1: a"
    ):
        split_examples(examples([-1] * 10, [0] * 10), 0.2, 1)
