"""No tool writes inside the dataset it reads, through symlinks included; default folders."""

from __future__ import annotations

import pytest

from audit import cli
from tests.conftest import jpeg, tree_fingerprint, write_dataset


@pytest.fixture
def linked(tmp_path):
    """ROOT/cat/extra is a symlink to a folder outside ROOT, which the scan reads too."""
    outside = write_dataset(tmp_path / "elsewhere", {"x/e.jpg": jpeg(5)})
    files = {"cat/a.jpg": jpeg(1), "dog/b.jpg": jpeg(2), "dog/empty.jpg": b""}
    root = write_dataset(tmp_path / "data", files)
    (root / "cat" / "extra").symlink_to(outside / "x")
    return root, outside / "x"


def test_every_writer_refuses_a_place_inside_the_dataset(linked, tmp_path, capsys):
    """Before: --out inside a symlinked sub-folder of a class was accepted (the next scan
    reported the report's own files as not_an_image); suite init and check --history wrote
    into ROOT."""
    root, linked_folder = linked
    before = tree_fingerprint(root)
    outside_before = tree_fingerprint(linked_folder)
    suite = tmp_path / "s.json"
    assert (
        cli.main(["suite", "init", str(root), "--out", str(suite), "--report", str(tmp_path / "r")])
        == 0
    )
    attempts = [
        ["scan", root, "--out", linked_folder / "report"],
        ["scan", root, "--out", root / "cat" / "extra" / "deeper"],
        ["scan", root, "--out", tmp_path / "ok", "--cache", root / "dog" / "c.sqlite"],
        ["suite", "init", root, "--out", root / "cat" / "x.json"],
        ["check", root, "--suite", suite, "--out", tmp_path / "c",
         "--history", root / "dog" / "h.sqlite"],
        ["check", root, "--suite", suite, "--out", linked_folder / "check"],
        ["quarantine", tmp_path / "r", "--to", root / "q"],
        ["quarantine", tmp_path / "r", "--to", linked_folder / "q"],
    ]  # fmt: skip
    for argv in attempts:
        assert cli.main([str(part) for part in argv]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "is inside the dataset" in err[0], (argv, err)
    assert tree_fingerprint(root) == before
    assert tree_fingerprint(linked_folder) == outside_before


def test_against_itself_is_refused(tmp_path, capsys):
    """Before: every file became a split_leak of itself."""
    root = write_dataset(tmp_path / "data", {"cat/a.jpg": jpeg(1), "dog/b.jpg": jpeg(2)})
    assert cli.main(["scan", str(root), "--against", str(root), "--out", str(tmp_path / "o")]) == 2
    assert "is ROOT itself" in capsys.readouterr().err
