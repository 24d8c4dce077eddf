"""The ROOT/<class>/ walk: nesting, clutter, strays, empty classes, symlink loops, bad roots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from audit.dataset import LayoutError, discover
from tests.conftest import jpeg, write_dataset


def test_nested_files_belong_to_top_level_class(tmp_path):
    root = write_dataset(
        tmp_path / "d",
        {
            "cat/a.jpg": jpeg(1),
            "cat/2019/b.jpg": jpeg(2),
            "cat/2019/x/c.jpg": jpeg(3),
            "dog/d.jpg": jpeg(4),
        },
    )
    layout = discover(root)
    entries = list(layout.iter_files())
    assert layout.classes == ("cat", "dog")
    assert [(e.relpath, e.label) for e in entries] == [
        ("cat/a.jpg", "cat"),
        ("cat/2019/b.jpg", "cat"),
        ("cat/2019/x/c.jpg", "cat"),
        ("dog/d.jpg", "dog"),
    ]
    assert layout.file_count == 4 and layout.files_per_folder == {"cat": 3, "dog": 1}


def test_clutter_is_ignored_and_listed(tmp_path):
    root = write_dataset(
        tmp_path / "d",
        {
            "cat/a.jpg": jpeg(1),
            "cat/.DS_Store": b"x",
            "cat/Thumbs.db": b"x",
            "cat/desktop.ini": b"x",
            "cat/._a.jpg": b"x",
            "cat/.ipynb_checkpoints/a-checkpoint.jpg": jpeg(1),
            ".git/config": b"x",
        },
    )
    layout = discover(root)
    assert [e.relpath for e in layout.iter_files()] == ["cat/a.jpg"]
    ignored = {item.relpath for item in layout.ignored}
    assert ignored == {
        ".git",
        "cat/.DS_Store",
        "cat/Thumbs.db",
        "cat/desktop.ini",
        "cat/._a.jpg",
        "cat/.ipynb_checkpoints",
    }
    assert layout.classes == ("cat",)  # a dot-folder is never a class (Keras skips it too)


def test_stray_files_and_empty_classes(tmp_path):
    root = write_dataset(
        tmp_path / "d", {"cat/a.jpg": jpeg(1), "README.md": b"notes", "labels.csv": b"a,b"}
    )
    (root / "dog").mkdir()
    layout = discover(root)
    assert layout.stray_files == ["README.md", "labels.csv"]
    assert layout.empty_classes == ["dog"]


def test_links_into_the_dataset_are_reported_not_followed(tmp_path):
    """Before: `fox/loop -> ..` read every other class again as class fox (246 rows for
    134 files, every cat and dog a label_conflict), since folders were remembered per class."""
    root = write_dataset(tmp_path / "d", {"cat/a.jpg": jpeg(1), "dog/b.jpg": jpeg(2)})
    (root / "cat" / "loop").symlink_to(root / "cat")
    (root / "cat" / "to_root").symlink_to(root)
    (root / "cat" / "up").symlink_to("..")
    (root / "dog" / "linked.jpg").symlink_to(root / "cat" / "a.jpg")
    (root / "dog" / "cats").symlink_to("../cat")
    layout = discover(root)
    paths = [entry.relpath for entry in layout.iter_files()]
    assert paths == ["cat/a.jpg", "dog/b.jpg"] and layout.file_count == 2
    assert {(link.relpath, link.kind, link.target) for link in layout.linked} == {
        ("cat/loop", "folder", "cat"),
        ("cat/to_root", "folder", "."),
        ("cat/up", "folder", "."),
        ("dog/cats", "folder", "cat"),
        ("dog/linked.jpg", "file", "cat/a.jpg"),
    }


def test_links_to_outside_are_followed_once_under_the_class_holding_them(tmp_path):
    outside = write_dataset(tmp_path / "elsewhere", {"more/x.jpg": jpeg(3), "y.jpg": jpeg(4)})
    root = write_dataset(tmp_path / "d", {"cat/a.jpg": jpeg(1), "dog/b.jpg": jpeg(2)})
    (root / "cat" / "more").symlink_to(outside / "more")
    (root / "dog" / "more_again").symlink_to(outside / "more")  # the same folder: once
    (root / "dog" / "y.jpg").symlink_to(outside / "y.jpg")
    (root / "cat" / "y_again.jpg").symlink_to(outside / "y.jpg")  # the same file: once
    layout = discover(root)
    rows = {entry.relpath: entry.label for entry in layout.iter_files()}
    assert rows == {"cat/a.jpg": "cat", "cat/more/x.jpg": "cat", "dog/b.jpg": "dog",
                    "dog/y.jpg": "dog"} or rows == {"cat/a.jpg": "cat", "cat/more/x.jpg": "cat",
                    "cat/y_again.jpg": "cat", "dog/b.jpg": "dog"}  # fmt: skip
    assert len(rows) == layout.file_count == 4
    assert Path(os.path.realpath(outside / "more")) in layout.real_folders


def test_a_class_folder_linked_to_another_class_is_no_class(tmp_path):
    root = write_dataset(tmp_path / "d", {"cat/a.jpg": jpeg(1), "dog/b.jpg": jpeg(2)})
    (root / "kitten").symlink_to("cat")
    layout = discover(root)
    assert layout.classes == ("cat", "dog")
    assert [(link.relpath, link.target) for link in layout.linked] == [("kitten", "cat")]


def test_an_unlistable_folder_is_reported(tmp_path, monkeypatch):
    root = write_dataset(tmp_path / "d", {"cat/a.jpg": jpeg(1), "cat/sub/b.jpg": jpeg(2)})
    real_scandir = os.scandir

    def refuse(path):
        if str(path).endswith("sub"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", refuse)  # tests run as root: chmod would not stop it
    layout = discover(root)
    assert [entry.relpath for entry in layout.iter_files()] == ["cat/a.jpg"]
    assert [(item.relpath, item.reason) for item in layout.unlistable] == [
        ("cat/sub", "cannot be listed: Permission denied")
    ]


@pytest.mark.parametrize(
    "setup, words",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_bytes(b"x"), "is a file"),
        (lambda p: (p.mkdir(), (p / "a.jpg").write_bytes(jpeg(1))), "no class folders"),
        (lambda p: p.mkdir(), "no class folders"),
    ],
)
def test_bad_roots_say_what_is_expected(tmp_path, setup, words):
    root = tmp_path / "root"
    setup(root)
    with pytest.raises(LayoutError, match=words) as raised:
        discover(root)
    if "class folders" in words:
        assert "ROOT/<class>/<images>" in str(raised.value)


def test_fifo_becomes_a_row_not_a_hang(tmp_path):
    root = write_dataset(tmp_path / "d", {"cat/a.jpg": jpeg(1)})
    os.mkfifo(root / "cat" / "pipe")
    assert [e.relpath for e in discover(root).iter_files()] == ["cat/a.jpg", "cat/pipe"]


def test_split_layout(tmp_path):
    root = write_dataset(
        tmp_path / "d",
        {
            "train/cat/a.jpg": jpeg(1),
            "train/dog/b.jpg": jpeg(2),
            "val/cat/c.jpg": jpeg(3),
            "val/notes.txt": b"x",
            "README.md": b"x",
        },
    )
    (root / "val" / "dog").mkdir()
    layout = discover(root)
    assert layout.splits == ("train", "val") and layout.classes == ("cat", "dog")
    assert [(e.relpath, e.label, e.split) for e in layout.iter_files()] == [
        ("train/cat/a.jpg", "cat", "train"),
        ("train/dog/b.jpg", "dog", "train"),
        ("val/cat/c.jpg", "cat", "val"),
    ]
    assert layout.stray_files == ["README.md", "val/notes.txt"]
    assert layout.empty_classes == ["val/dog"]


def test_a_class_named_train_is_still_a_class(tmp_path):
    root = write_dataset(tmp_path / "d", {"train/a.jpg": jpeg(1), "test/b.jpg": jpeg(2)})
    layout = discover(root)  # split names, but no class folders inside: plain classes
    assert layout.splits == ("",) and layout.classes == ("test", "train")


def test_against_adds_a_second_split_with_paths_relative_to_root(tmp_path):
    train = write_dataset(tmp_path / "train", {"cat/a.jpg": jpeg(1)})
    val = write_dataset(tmp_path / "val", {"cat/b.jpg": jpeg(2), "dog/c.jpg": jpeg(3)})
    layout = discover(train, val)
    entries = list(layout.iter_files())
    assert [(e.relpath, e.split) for e in entries] == [
        ("cat/a.jpg", "train"),
        ("../val/cat/b.jpg", "val"),
        ("../val/dog/c.jpg", "val"),
    ]
    assert all(os.path.isfile(e.path) for e in entries)
    assert layout.classes == ("cat", "dog")
    same_name = write_dataset(tmp_path / "other" / "train", {"cat/d.jpg": jpeg(4)})
    assert discover(train, same_name).splits == ("train", "train (against)")
    with pytest.raises(LayoutError, match="no class folders"):
        discover(train, write_dataset(tmp_path / "flat", {"x.jpg": jpeg(5)}))
