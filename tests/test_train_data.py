"""From the audit report to training data: usable files only, stale reports refused, no leaks."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from PIL import Image

from audit.scan import scan
from tests.conftest import jpeg, write_dataset
from tests.imagegen import colour_dataset, encode, photo_like
from train.data import ReportError, load_examples, make_dataset, split_examples


@pytest.fixture
def audited(tmp_path):
    root = colour_dataset(tmp_path / "data", {"blue": 30, "red": 10})
    (root / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # truncated: an error
    scan(root, tmp_path / "report", jobs=1)
    return root, tmp_path / "report"


def test_only_usable_files_labels_in_folder_order(audited):
    root, report = audited
    examples = load_examples(report, root=root)
    assert examples.class_names == ("blue", "red")
    assert len(examples.paths) == 40 and examples.skipped_errors == 1
    assert all(os.path.isfile(path) for path in examples.paths)
    assert np.bincount(examples.labels).tolist() == [30, 10]


def test_missing_and_foreign_reports(audited, tmp_path):
    root, report = audited
    with pytest.raises(ReportError, match=r"re-scan the dataset \(python -m audit scan"):
        load_examples(tmp_path / "nowhere")
    with pytest.raises(ReportError, match="is for"):
        load_examples(report, root=tmp_path)


@pytest.mark.parametrize("change", ["modify", "add", "remove"])
def test_stale_report_is_refused(audited, change):
    root, report = audited
    target = root / "blue" / "000.png"
    if change == "modify":
        time.sleep(0.01)
        target.write_bytes(target.read_bytes() + b"\x00")
    elif change == "add":
        (root / "red" / "new.png").write_bytes(target.read_bytes())
    else:
        target.unlink()
    with pytest.raises(ReportError, match="stale"):
        load_examples(report, root=root)


def test_split_keeps_duplicate_groups_on_one_side(tmp_path):
    files = {f"cat/{i:02d}.jpg": jpeg(i, 96, 72) for i in range(30)}
    files.update({f"dog/{i:02d}.jpg": jpeg(100 + i, 96, 72) for i in range(30)})
    for copy in range(4):  # one picture four more times in cat/, resized and recompressed
        files[f"cat/copy{copy}.jpg"] = encode(
            photo_like(96, 72, seed=0).resize((96 - 8 * copy, 72 - 6 * copy)), "JPEG", quality=70
        )
    root = write_dataset(tmp_path / "d", files)
    scan(root, tmp_path / "r", jobs=1)
    examples = load_examples(tmp_path / "r")
    grouped = [
        path for path, group in zip(examples.relpaths, examples.groups, strict=True) if group >= 0
    ]
    assert len(grouped) == 5
    for seed in range(8):
        split = split_examples(examples, 0.3, seed)
        sides = {
            ("train" if path in split.train_paths else "val")
            for path in (os.path.join(str(root), p) for p in grouped)
        }
        assert len(sides) == 1, f"seed {seed}: a duplicate group was split"
        assert len(split.val_paths) + len(split.train_paths) == len(examples.paths)
        assert 0.2 <= len(split.val_paths) / len(examples.paths) <= 0.4


def test_split_is_seeded(audited):
    _, report = audited
    examples = load_examples(report)
    assert (
        split_examples(examples, 0.25, 3).val_paths == split_examples(examples, 0.25, 3).val_paths
    )
    assert (
        split_examples(examples, 0.25, 3).val_paths != split_examples(examples, 0.25, 4).val_paths
    )


def test_the_datasets_own_split_folders_are_used(tmp_path):
    root = tmp_path / "d"
    colour_dataset(root / "train", {"blue": 8, "red": 8})
    colour_dataset(root / "val", {"blue": 3, "red": 3}, seed=1)
    scan(root, tmp_path / "r", jobs=1)
    split = split_examples(load_examples(tmp_path / "r"), 0.5, 0)
    # Tiny shapes can be near duplicates across the folders: those are left out of validation.
    leaked = split.details["leaked_validation_files"]
    assert len(split.train_paths) == 16 and len(split.val_paths) + len(leaked) == 6
    assert "own split folders" in split.how


def test_pipeline_shapes_and_an_endless_pipeline(audited):
    _, report = audited
    examples = load_examples(report)
    batch = next(iter(make_dataset(examples.paths[:10], examples.labels[:10], 24, 4, True, 1)))
    assert tuple(batch[0].shape) == (4, 24, 24, 3) and batch[0].dtype.name == "float32"
    assert float(batch[0].numpy().max()) > 0
    # repeat: a budget in steps runs past the end of the data, reshuffled on every pass.
    endless = make_dataset(examples.paths[:10], examples.labels[:10], 24, 4, True, 1, repeat=True)
    labels = [batch[1].numpy() for batch in endless.take(9)]
    assert sum(len(part) for part in labels) == 30  # 3 passes of 4 + 4 + 2
    passes = [np.concatenate(labels[index : index + 3]) for index in (0, 3, 6)]
    for seen in passes:
        assert sorted(seen.tolist()) == sorted(examples.labels[:10].tolist())


def test_classes_without_usable_images_are_left_out_with_a_note(tmp_path):
    root = colour_dataset(tmp_path / "d", {"blue": 6, "empty": 0, "red": 6})
    (root / "broken").mkdir()
    (root / "broken" / "x.jpg").write_bytes(b"")
    scan(root, tmp_path / "r", jobs=1)
    split = split_examples(load_examples(tmp_path / "r"), 0.3, 0)
    assert split.class_names == ("blue", "red")
    assert split.details["left_out_classes"] == ["broken", "empty"]
    assert set(split.train_labels.tolist()) == {0, 1}


def test_every_class_keeps_a_training_image(tmp_path):
    root = colour_dataset(tmp_path / "d", {"blue": 10, "red": 1})
    scan(root, tmp_path / "r", jobs=1)
    split = split_examples(load_examples(tmp_path / "r"), 0.5, 0)
    assert split.train_counts() == [5, 1]


def test_an_empty_stage_list_is_refused():
    """`--stages ''` once ran the sanity stages as if none had been given."""
    from audit.errors import InvalidArgument
    from train.cli import select_stages

    with pytest.raises(InvalidArgument, match="none given"):
        select_stages("")


def test_names_that_are_not_utf8_round_trip_to_the_pipeline(tmp_path):
    """A class folder and a file whose names are not UTF-8: one row each (undecodable_name),
    the right label, and TensorFlow reads the file through its bytes path."""
    root = tmp_path / "data"
    channels = {b"blue": 2, b"r\xe9d": 0}  # latin-1 'rouge', not UTF-8
    for name, channel in channels.items():
        folder = os.path.join(os.fsencode(root), name)
        os.makedirs(folder)
        for index in range(4):
            pixels = np.zeros((40, 40, 3), dtype=np.uint8)
            detail = np.asarray(photo_like(40, 40, seed=10 * channel + index).convert("L"))
            pixels[..., channel] = 128 + detail // 2  # distinct pictures, one colour
            path = os.path.join(folder, b"f\xff%d.png" % index)
            Image.fromarray(pixels).save(os.fsdecode(path), "PNG")
    scan(root, tmp_path / "report", jobs=1)
    examples = load_examples(tmp_path / "report")
    assert len(examples.paths) == 8 and all(os.path.exists(path) for path in examples.paths)
    assert sorted(np.bincount(examples.labels).tolist()) == [4, 4]
    batch = next(iter(make_dataset(examples.paths, examples.labels, 40, 8, False, None)))
    pixels = batch[0].numpy().reshape(8, -1, 3).mean(axis=1)
    blue = examples.labels == examples.class_names.index("blue")
    assert (pixels[blue][:, 2] > 150).all() and (pixels[~blue][:, 0] > 150).all()


def _own_split_with_a_leak(tmp_path):
    """Own train/val folders; one val picture is a byte copy of a training picture."""
    counts = {"train": {"blue": 8, "red": 8, "green": 3}, "val": {"blue": 3, "red": 3, "green": 1}}
    files, seed = {}, 0
    for side, classes in counts.items():
        for name, count in classes.items():
            for number in range(count):
                seed += 1
                files[f"{side}/{name}/{number:02d}.jpg"] = jpeg(seed, 48, 40)
    # The val-side copy of a training picture: a cross-split duplicate group.
    files["val/red/copy.jpg"] = files["train/red/02.jpg"]
    root = write_dataset(tmp_path / "d", files)
    scan(root, tmp_path / "r", jobs=1)
    return root, tmp_path / "r"


def test_cross_split_duplicates_leave_validation_with_a_note(tmp_path):
    root, report = _own_split_with_a_leak(tmp_path)
    split = split_examples(load_examples(report), 0.5, 0)
    copy = os.path.join(str(root), "val", "red", "copy.jpg")
    assert copy not in split.val_paths and copy not in split.train_paths
    assert len(split.val_paths) == 7  # 3 + 3 + 1, the copy left out
    assert split.details["leaked_groups"] == 1
    assert split.details["leaked_validation_files"] == ["val/red/copy.jpg"]
    assert "left 1 validation file(s) out of validation" in split.details["leak_note"]
    # green has one validation image: named as too few to measure.
    assert split.details["thin_validation_classes"] == {"green": 1}


def test_cross_split_duplicates_refused_on_request(tmp_path, capsys):
    from audit.errors import InvalidArgument
    from train import cli
    from train.data import SplitLeak

    root, report = _own_split_with_a_leak(tmp_path)
    with pytest.raises(SplitLeak, match="--on-leak drop") as caught:
        split_examples(load_examples(report), 0.5, 0, on_leak="refuse")
    assert isinstance(caught.value, InvalidArgument) and "val/red/copy.jpg" in str(caught.value)
    code = cli.main(
        ["run", str(root), "--report", str(report), "--on-leak", "refuse", "--stages", "init_loss"]
    )
    assert code == 2
    assert "span the dataset's train and validation folders" in capsys.readouterr().err


def test_a_class_of_one_image_is_named(tmp_path):
    root = colour_dataset(tmp_path / "d", {"blue": 20, "red": 20, "rare": 1})
    scan(root, tmp_path / "r", jobs=1)
    split = split_examples(load_examples(tmp_path / "r"), 0.25, 0)
    assert split.details["thin_validation_classes"] == {"rare": 0}
    assert "leaked_groups" not in split.details  # a seeded split keeps groups on one side


def test_the_mirror_note_only_where_flips_meet_an_audit_without_mirrors():
    from train.cli import mirror_note

    assert mirror_note(True, False, ["xception", "augment"]) is not None
    assert mirror_note(True, False, ["bigger_model"]) is not None
    assert mirror_note(False, False, ["augment"]) is None  # --no-flip
    assert mirror_note(True, True, ["augment"]) is None  # scanned with --mirror
    assert mirror_note(True, False, ["init_loss", "baseline", "xception"]) is None  # no flips
