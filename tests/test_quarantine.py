"""Quarantine and restore: round trips leave the tree byte-identical; changed files are refused."""

from __future__ import annotations

import errno
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit import cli
from audit.quarantine import QuarantineRefused, quarantine, restore, select
from audit.scan import scan
from tests.conftest import jpeg, tree_fingerprint, write_dataset


@pytest.fixture
def flagged(tmp_path):
    cut = jpeg(5)
    files = {f"cat/{i}.jpg": jpeg(i) for i in range(4)}
    files.update(
        {
            "cat/deep/nested/cut.jpg": cut[:300],
            "dog/empty.jpg": b"",
            "dog/ok.jpg": jpeg(9),
            "dog/page.jpg": b"<html>nope</html>",
        }
    )
    root = write_dataset(tmp_path / "data", files)
    scan(root, tmp_path / "report", jobs=1)
    return root, tmp_path / "report"


def test_quarantine_errors_then_restore(flagged, tmp_path, capsys):
    root, report = flagged
    before = tree_fingerprint(root, directory_times=False)
    assert cli.main(["quarantine", str(report), "--to", str(tmp_path / "q")]) == 0
    out = capsys.readouterr().out
    assert "3 file(s) moved" in out
    assert (
        not (root / "dog" / "empty.jpg").exists()
        and (tmp_path / "q" / "cat/deep/nested/cut.jpg").is_file()
    )
    lines = [
        json.loads(line) for line in (tmp_path / "q" / "manifest.jsonl").read_text().splitlines()
    ]
    assert {line["relpath"] for line in lines} == {
        "cat/deep/nested/cut.jpg",
        "dog/empty.jpg",
        "dog/page.jpg",
    }
    assert all(
        {"original", "quarantined", "sha256", "bytes", "reason"} <= set(line) for line in lines
    )
    assert cli.main(["restore", str(tmp_path / "q" / "manifest.jsonl")]) == 0
    assert tree_fingerprint(root, directory_times=False) == before
    assert cli.main(["restore", str(tmp_path / "q" / "manifest.jsonl")]) == 2  # places taken again


def test_select_by_codes_and_dry_run(flagged, tmp_path):
    root, report = flagged
    assert [row.path for row in select(report, codes=["empty_file"])] == ["dog/empty.jpg"]
    with pytest.raises(ValueError, match="unknown issue code"):
        select(report, codes=["broken"])
    before = tree_fingerprint(root, directory_times=False)
    assert (
        cli.main(
            [
                "quarantine",
                str(report),
                "--codes",
                "not_an_image",
                "--dry-run",
                "--to",
                str(tmp_path / "q"),
            ]
        )
        == 0
    )
    assert tree_fingerprint(root, directory_times=False) == before and not (tmp_path / "q").exists()


def test_refuses_when_a_file_changed_since_the_report(flagged, tmp_path):
    root, report = flagged
    page = root / "dog" / "page.jpg"
    page.write_bytes(b"<html>edited</html>")  # same size, new content and mtime
    before = tree_fingerprint(root, directory_times=False)
    with pytest.raises(QuarantineRefused, match="changed since the report"):
        quarantine(report, ["dog/empty.jpg", "dog/page.jpg"], tmp_path / "q")
    assert (
        tree_fingerprint(root, directory_times=False) == before
    )  # nothing moved, not even the unchanged file


def test_never_overwrites(flagged, tmp_path):
    root, report = flagged
    (tmp_path / "q" / "dog").mkdir(parents=True)
    (tmp_path / "q" / "dog" / "empty.jpg").write_bytes(b"someone else's")
    with pytest.raises(QuarantineRefused, match="already exist"):
        quarantine(report, ["dog/empty.jpg"], tmp_path / "q")
    assert (tmp_path / "q" / "dog" / "empty.jpg").read_bytes() == b"someone else's"


def test_across_filesystems(flagged, tmp_path, monkeypatch):
    """When rename cannot cross devices: copy, verify, then remove the original."""
    root, report = flagged
    before = tree_fingerprint(root, directory_times=False)
    real_rename = os.rename

    def cross_device(source, target):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "rename", cross_device)
    manifest, moves = quarantine(
        report, ["cat/deep/nested/cut.jpg", "dog/page.jpg"], tmp_path / "q"
    )
    assert not (root / "dog" / "page.jpg").exists() and len(moves) == 2
    restore(manifest)
    monkeypatch.setattr(os, "rename", real_rename)
    assert tree_fingerprint(root, directory_times=False) == before


def test_quarantine_inside_the_dataset_is_refused(flagged):
    root, report = flagged
    with pytest.raises(QuarantineRefused, match="inside the dataset"):
        quarantine(report, ["dog/empty.jpg"], root / "q")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_any_selection_round_trips_byte_identical(tmp_path_factory, data):
    work = tmp_path_factory.mktemp("prop")
    names = data.draw(
        st.lists(
            st.sampled_from(["a", "b", "c/d", "c/e", "f/g/h", "i"]),
            min_size=1,
            max_size=6,
            unique=True,
        )
    )
    files = {
        f"{label}/{name}.jpg": (jpeg(index) if index % 3 else jpeg(index)[:200])
        for index, (label, name) in enumerate(
            (label, name) for label in ("cat", "dog") for name in names
        )
    }
    root = write_dataset(work / "data", files)
    scan(root, work / "report", jobs=1, cache=False)
    chosen = data.draw(st.lists(st.sampled_from(sorted(files)), unique=True, max_size=len(files)))
    before = tree_fingerprint(root, directory_times=False)
    manifest, _ = quarantine(work / "report", chosen, work / "q")
    assert all(not (root / path).exists() for path in chosen)
    if chosen:
        restore(manifest)
    assert tree_fingerprint(root, directory_times=False) == before
