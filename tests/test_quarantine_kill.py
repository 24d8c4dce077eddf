"""SIGKILL a real quarantine process at random moments: restore always brings everything back."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from audit.quarantine import MANIFEST_NAME, restore
from audit.scan import scan
from tests.conftest import tree_fingerprint

FILES = 1000
KILLS = 30
REPOSITORY = Path(__file__).resolve().parent.parent

# The quarantine runs in its own process. os.fsync is switched off there: it matters for a
# power cut, not for SIGKILL (written lines stay in the kernel's page cache when the process
# dies), and with it 1,000 files take 7 s instead of 0.5 s, too long to kill 30 times.
QUARANTINE = (
    "import os, sys; os.fsync = lambda descriptor: None; "
    "from audit.cli import main; sys.exit(main(sys.argv[1:]))"
)


def phase(manifest: Path) -> str:
    """Where in the journal the process died."""
    if not manifest.exists():
        return "before the journal"
    operations = [json.loads(line).get("op") for line in manifest.read_text().splitlines()[1:]]
    if not operations:
        return "before the first intent"
    if operations[-1] == "intent":
        return "between intent and done"
    if operations.count("done") == FILES:
        return "after the last done"
    return "between two files"


@pytest.mark.slow
def test_sigkill_at_random_moments_never_loses_a_file(tmp_path):
    root = tmp_path / "data"
    for index in range(FILES):  # not images: every one is an error, so every one moves
        path = root / ("cat", "dog")[index % 2] / f"{index // 100}" / f"{index:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not an image, number %d" % index)
    report = tmp_path / "report"
    scan(root, report, jobs=1, cache=False)
    before = tree_fingerprint(root, directory_times=False)

    def run(folder: Path) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-c", QUARANTINE, "quarantine", str(report), "--to", str(folder)],
            cwd=REPOSITORY,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    # One uninterrupted run: when the journal starts, and when the process ends.
    started = time.monotonic()
    whole = run(tmp_path / "whole")
    journal_starts = None
    while whole.poll() is None:
        if journal_starts is None and (tmp_path / "whole" / MANIFEST_NAME).exists():
            journal_starts = time.monotonic() - started
        time.sleep(0.002)
    assert whole.returncode == 0
    duration = time.monotonic() - started
    journal_starts = journal_starts or 0.0
    restore(tmp_path / "whole" / MANIFEST_NAME)
    assert tree_fingerprint(root, directory_times=False) == before

    rng = random.Random(20261127)
    hits: Counter[str] = Counter()
    for kill in range(KILLS):
        folder = tmp_path / f"q{kill:02d}"
        process = run(folder)
        manifest = folder / MANIFEST_NAME
        if kill % 6 == 0:  # a few kills during start-up, before any journal line
            time.sleep(rng.uniform(0.0, journal_starts))
        else:  # the others while files move (or just after): wait for the journal first
            while not manifest.exists() and process.poll() is None:
                time.sleep(0.001)
            time.sleep(rng.uniform(0.0, (duration - journal_starts) * 1.05))
        process.send_signal(signal.SIGKILL)
        process.wait()
        hits[phase(manifest)] += 1
        if manifest.exists():
            for _ in range(3):  # as often as needed; once is enough after a kill
                if not restore(manifest).refused:
                    break
            assert not restore(manifest).refused
            leftover = [path for path in folder.rglob("*") if path.name != MANIFEST_NAME]
            assert leftover == [], f"kill {kill}: left in the quarantine folder: {leftover[:3]}"
        assert tree_fingerprint(root, directory_times=False) == before, f"kill {kill}"
    print(
        f"\n{KILLS} kills over {FILES} files (a run: {duration:.2f} s, the journal from "
        f"{journal_starts:.2f} s): {dict(hits)}"
    )
    assert hits["between intent and done"] >= 5, dict(hits)
    assert os.listdir(root)  # the dataset is all there (checked file by file above)
