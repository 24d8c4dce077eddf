"""One writer per output folder, and no worker process outliving its scan."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audit import cli
from tests.conftest import write_dataset
from tests.imagegen import encode, photo_like

REPOSITORY = Path(__file__).resolve().parent.parent
HOLD = (
    "import sys, time; from pathlib import Path; from audit.lock import folder_lock\n"
    "with folder_lock(Path(sys.argv[1]), 'scan data --out elsewhere'):\n"
    "    print('held', flush=True); time.sleep(60)\n"
)


@pytest.fixture
def held(tmp_path, small_dataset):
    """A report folder whose lock another process holds (killed at the end)."""
    folder = tmp_path / "out"
    (small_dataset / "cat" / "empty.jpg").write_bytes(b"")  # something for quarantine to move
    argv = ["scan", str(small_dataset), "--out", str(folder), "--jobs", "1", "--quiet"]
    assert cli.main(argv) == 1
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], cwd=REPOSITORY, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    yield folder, holder
    holder.kill()
    holder.wait()


def test_a_second_writer_is_refused_at_once_naming_the_holder(
    held, small_dataset, tmp_path, capsys
):
    """Before: two scans into one folder; one died with exit 3, "database is locked"."""
    folder, holder = held
    suite = str(tmp_path / "suite.json")
    init = ["suite", "init", str(small_dataset), "--out", suite, "--report", str(tmp_path / "r")]
    assert cli.main(init) == 0
    for argv in (
        ["scan", str(small_dataset), "--out", str(folder), "--jobs", "1"],
        ["quarantine", str(folder)],
        ["check", str(small_dataset), "--out", str(folder), "--jobs", "1", "--suite", suite],
    ):
        started = time.monotonic()
        assert cli.main(argv) == 2, argv
        assert time.monotonic() - started < 1.0
        err = capsys.readouterr().err.strip().splitlines()
        assert (
            len(err) == 1 and f"in use by process {holder.pid} (scan data --out elsewhere" in err[0]
        )


def test_the_lock_dies_with_its_holder(held, small_dataset):
    folder, holder = held
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (folder / ".image-audit.lock").exists()  # left behind, and no obstacle
    argv = ["scan", str(small_dataset), "--out", str(folder), "--jobs", "1", "--quiet"]
    assert cli.main(argv) == 1  # the empty file


def running(group: int) -> list[tuple[int, str]]:
    """Members of the group that still run (a zombie has ended; its parent has not reaped it)."""
    return [(pid, state) for pid, state in group_members(group) if state != "Z"]


def group_members(group: int) -> list[tuple[int, str]]:
    """(pid, state) of every process in a process group, from /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:
            members.append((int(entry), fields[0].decode()))
    return members


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process table from /proc")
def test_no_worker_outlives_a_killed_or_finished_scan(tmp_path):
    """Before: after SIGKILL of the scan, the forkserver and its workers ran on, parent 1."""
    picture = encode(photo_like(320, 240, seed=3), "JPEG", quality=90)
    root = write_dataset(
        tmp_path / "data", {f"{label}/{i}.jpg": picture for label in "ab" for i in range(700)}
    )
    command = [sys.executable, "-m", "audit", "scan", str(root), "--jobs", "2", "--quiet"]

    scan = subprocess.Popen(
        [*command, "--no-cache", "--out", str(tmp_path / "killed")],
        cwd=REPOSITORY,
        start_new_session=True,  # its own process group: every helper process it starts
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while len(group_members(scan.pid)) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)  # the scan, the forkserver and at least two workers
    assert len(group_members(scan.pid)) >= 4, "the workers never started"
    scan.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    alive = group_members(scan.pid)
    while time.monotonic() - killed_at < 5:
        alive = running(scan.pid)
        if not alive:
            break
        time.sleep(0.05)
    scan.wait()
    assert not alive, f"alive 5 s after the scan was killed: {alive}"

    finished = subprocess.Popen(
        [*command, "--out", str(tmp_path / "finished")],
        cwd=REPOSITORY,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
    )
    assert finished.wait() == 1  # 1,400 copies of one picture under two labels: conflicts
    # Nothing left once the scan has returned but multiprocessing's resource tracker, which
    # ends on its own when it sees the scan's end (within milliseconds; allow a second).
    deadline = time.monotonic() + 1.0
    while running(finished.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert running(finished.pid) == []


def test_a_lock_file_that_is_a_symlink_is_refused_and_its_target_untouched(tmp_path, small_dataset):
    """Before: a `.image-audit.lock` symlink into the dataset made the scan truncate the
    linked dataset file."""
    out = tmp_path / "out"
    out.mkdir()
    target = small_dataset / "dog" / "dog_0.jpg"
    before = target.read_bytes()
    (out / ".image-audit.lock").symlink_to(target)
    argv = ["scan", str(small_dataset), "--out", str(out), "--jobs", "1", "--quiet"]
    assert cli.main(argv) == 2
    assert target.read_bytes() == before
