"""The incremental cache: unchanged files are not decoded again; every change is seen."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from audit import cli
from audit.checks import Thresholds
from audit.scan import scan
from tests.conftest import jpeg, write_dataset


def cache_rows(out) -> int:
    with sqlite3.connect(out / ".scan-cache.sqlite") as connection:
        return connection.execute("SELECT count(*) FROM files").fetchone()[0]


def test_hits_changes_new_and_deleted(small_dataset, tmp_path):
    out = tmp_path / "out"
    first = scan(small_dataset, out, jobs=1)
    assert first.summary["cache"] == {
        "used": True,
        "path": str(out / ".scan-cache.sqlite"),
        "hits": 0,
        "misses": 12,
        "rehashed": 0,
        "warnings": [],
    }
    images = (out / "images.csv").read_bytes()

    again = scan(small_dataset, out, jobs=1)
    assert (again.summary["cache"]["hits"], again.summary["cache"]["misses"]) == (12, 0)
    assert (out / "images.csv").read_bytes() == images  # identical report from the cache

    (small_dataset / "cat" / "cat_0.jpg").write_bytes(jpeg(0)[:400])  # changed: now truncated
    (small_dataset / "dog" / "new.jpg").write_bytes(jpeg(77))  # new
    (small_dataset / "fox" / "fox_3.jpg").unlink()  # deleted
    third = scan(small_dataset, out, jobs=1)
    assert (third.summary["cache"]["hits"], third.summary["cache"]["misses"]) == (10, 2)
    rows = {line.split(",")[0]: line for line in (out / "images.csv").read_text().splitlines()[1:]}
    assert (
        "truncated" in rows["cat/cat_0.jpg"]
        and "dog/new.jpg" in rows
        and "fox/fox_3.jpg" not in rows
    )
    assert cache_rows(out) == 12  # the deleted file's row is gone


def test_other_thresholds_are_misses(small_dataset, tmp_path):
    scan(small_dataset, tmp_path / "out", jobs=1)
    changed = scan(small_dataset, tmp_path / "out", jobs=1, thresholds=Thresholds(min_side=64))
    assert changed.summary["cache"]["misses"] == 12
    assert changed.summary["issue_counts"]["tiny_image"] == 12  # recomputed with the new limit


def test_relabelled_file_keeps_its_new_label(small_dataset, tmp_path):
    scan(small_dataset, tmp_path / "out", jobs=1)
    os.rename(
        small_dataset / "cat" / "cat_1.jpg", small_dataset / "dog" / "cat_1.jpg"
    )  # same inode, new class
    result = scan(small_dataset, tmp_path / "out", jobs=1)
    rows = (tmp_path / "out" / "images.csv").read_text()
    assert "dog/cat_1.jpg,dog," in rows and result.summary["files"] == 12


def test_no_cache_and_refusals(small_dataset, tmp_path, capsys):
    assert (
        cli.main(
            [
                "scan",
                str(small_dataset),
                "--out",
                str(tmp_path / "o"),
                "--no-cache",
                "--quiet",
                "--jobs",
                "1",
            ]
        )
        == 0
    )
    assert not (tmp_path / "o" / ".scan-cache.sqlite").exists()
    assert (
        cli.main(
            [
                "scan",
                str(small_dataset),
                "--out",
                str(tmp_path / "o"),
                "--cache",
                str(small_dataset / "c.sqlite"),
            ]
        )
        == 2
    )
    assert "inside the dataset" in capsys.readouterr().err
    custom = tmp_path / "elsewhere" / "cache.sqlite"
    assert (
        cli.main(
            [
                "scan",
                str(small_dataset),
                "--out",
                str(tmp_path / "o"),
                "--cache",
                str(custom),
                "--quiet",
                "--jobs",
                "1",
            ]
        )
        == 0
    )
    assert custom.is_file()


@pytest.mark.slow
def test_a_scan_killed_midway_then_rerun_equals_an_uninterrupted_one(tmp_path):
    files = {f"c{i % 4}/{i:04d}.jpg": jpeg(i, 64, 48) for i in range(1500)}
    root = write_dataset(tmp_path / "d", files)
    command = [
        sys.executable,
        "-m",
        "audit",
        "scan",
        str(root),
        "--out",
        str(tmp_path / "killed"),
        "--jobs",
        "1",
        "--quiet",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    database = tmp_path / "killed" / ".scan-cache.sqlite"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(database, timeout=1) as connection:
                if connection.execute("SELECT count(*) FROM files").fetchone()[0] >= 300:
                    break
        except sqlite3.Error:
            pass
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "images.csv").exists()  # it really died mid-way

    resumed = scan(root, tmp_path / "killed", jobs=1)
    assert resumed.summary["cache"]["hits"] >= 256  # the work committed before the kill is reused
    scan(root, tmp_path / "clean", jobs=1, cache=False)
    assert (tmp_path / "killed" / "images.csv").read_bytes() == (
        tmp_path / "clean" / "images.csv"
    ).read_bytes()
