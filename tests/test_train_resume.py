"""Checkpoint and resume (issue 15): a run killed with SIGKILL after the first checkpoint of a
stage, resumed with `--resume`, ends with the weights an uninterrupted run reaches.

The stage killed is `dropout`: a small Xception with seeded Dropout, trained on an augmented
pipeline, so the Dropout's seed state, the optimizer's moments and the augmentation layers'
random state all have to come back; the xception and augment runs it builds on are trained on
demand (augment before the kill, xception after it); on resume augment is served whole from
its final checkpoint. The runs are subprocesses,
so the interrupted one dies as a user's would; the configuration comes from the CLI with the
Xception's sizes cut down (they have no option).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from audit.lock import folder_lock
from audit.scan import scan
from tests.imagegen import colour_dataset
from train.checkpoints import Checkpoints
from train.cli import main

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
# The CLI, with a tiny Xception (no option sets its sizes).
RUN = (
    "import sys; from train import config; "
    "config.PRESETS['cpu-small'] = dict(xception_sizes=(8,), xception_final=8); "
    "from train.cli import main; sys.exit(main(sys.argv[1:]))"
)
OPTIONS = [
    "--stages",
    "baseline,dropout",
    "--preset",
    "cpu-small",
    "--image-size",
    "16",
    "--batch-size",
    "8",
    "--steps",
    "24",
    "--evaluations",
    "3",
    "--seed",
    "7",
    "--learning-rate",
    "0.003",
    "--no-flip",
]


def train(arguments: list[str]) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", RUN, *arguments],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def weights(folder: Path) -> list[np.ndarray]:
    from train.models import keras

    return keras.models.load_model(folder / "model.keras", compile=False).get_weights()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted run and one SIGKILLed after dropout's first checkpoint, then resumed;
    returns (dataset root, report, runs folder, resume output)."""
    folder = tmp_path_factory.mktemp("resume")
    root = colour_dataset(folder / "data", {"blue": 30, "red": 30}, seed=2, side=16)
    report = folder / "report"
    scan(root, report, jobs=1)
    runs = folder / "runs"
    common = ["run", str(root), "--report", str(report), *OPTIONS, "--runs-dir", str(runs)]
    whole = train([*common, "--run-id", "whole"])
    cut = train([*common, "--run-id", "cut"])
    checkpoints = runs / "cut" / "checkpoints"
    deadline = time.monotonic() + 300
    while not any(checkpoints.glob("dropout-*.npz")):
        assert cut.poll() is None, cut.communicate()[0][-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    cut.send_signal(signal.SIGKILL)
    cut.wait()
    assert whole.wait(timeout=300) == 0, whole.communicate()[0][-2000:]
    # Killed mid-stage: baseline finished, dropout's folder never written.
    assert [path.name for path in sorted((runs / "cut").glob("[0-9][0-9]-*"))] == ["01-baseline"]
    resumed = train([*common, "--resume", str(runs / "cut")])
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output[-2000:]
    return root, report, runs, output


def test_a_sigkilled_run_resumes_to_the_same_weights(runs):
    _, _, folder, output = runs
    assert "baseline: PASS (finished before; read back)" in output
    # dropout trains the run it builds on (augment) first: served whole from its checkpoint.
    assert "[augment] resumed after evaluation 3/3 (finished)" in output
    assert "[dropout] resumed after evaluation 1/3" in output
    for stage in ("01-baseline", "02-dropout"):
        pairs = zip(weights(folder / "whole" / stage), weights(folder / "cut" / stage), strict=True)
        assert max(float(np.abs(a - b).max()) for a, b in pairs) == 0.0, stage
    whole = json.loads((folder / "whole" / "02-dropout" / "metrics.json").read_text())
    cut = json.loads((folder / "cut" / "02-dropout" / "metrics.json").read_text())
    assert whole["verdicts"] == cut["verdicts"] and whole["status"] == cut["status"]
    assert not list((folder / "cut" / "checkpoints").glob(".*.tmp"))


def test_resume_refuses_another_configuration(runs, capsys):
    root, report, folder, _ = runs
    arguments = ["run", str(root), "--report", str(report), *OPTIONS]
    changed = [*arguments, "--resume", str(folder / "cut"), "--steps", "30", "--seed", "8"]
    assert main(changed) == 2
    message = capsys.readouterr().err
    assert "another configuration" in message
    assert "steps (run: 24, now: 30)" in message and "seed (run: 7, now: 8)" in message
    assert "split" in message  # the seed draws another validation set
    # A run still going (its folder's lock held) is not resumed, nor touched.
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with folder_lock(folder / "whole"):
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(30)
    try:
        assert main([*arguments, "--resume", str(folder / "whole")]) == 2
    finally:
        release.set()
        holder.join()
    assert "in use by" in capsys.readouterr().err
    # A folder that is no resumable run.
    (folder / "empty").mkdir()
    assert main([*arguments, "--resume", str(folder / "empty")]) == 2
    assert "no run that can be resumed" in capsys.readouterr().err
    # Same names, other pixels (two files swapped across classes), the report made again.
    blue, red = sorted((root / "blue").iterdir())[0], sorted((root / "red").iterdir())[0]
    pixels = blue.read_bytes()
    blue.write_bytes(red.read_bytes())
    red.write_bytes(pixels)
    scan(root, report, jobs=1)
    assert main([*arguments, "--resume", str(folder / "cut")]) == 2
    assert "split (" in (message := capsys.readouterr().err) and "dataset content" in message


def test_a_checkpoint_that_does_not_read_is_ignored(tmp_path):
    lines: list[str] = []
    store = Checkpoints(tmp_path, log=lines.append)
    (tmp_path / ".run_one.npz.123.tmp").write_bytes(b"a write cut off by a kill")
    store = Checkpoints(tmp_path, log=lines.append)  # removes what a killed writer left
    store.save("run one", {"done": 1}, {"m0": np.arange(3.0)})
    loaded = store.load("run one")
    assert loaded is not None
    meta, arrays = loaded
    assert meta == {"done": 1} and arrays["m0"].tolist() == [0.0, 1.0, 2.0]
    assert [path.name for path in tmp_path.iterdir()] == [store.path("run one").name]
    store.path("run one").write_bytes(b"PK\x03\x04 cut off")
    assert store.load("run one") is None and "does not read" in lines[-1]
    # Labels that are no file names get distinct, safe files.
    assert store.path("a/b") != store.path("a_b") and "/" not in store.path("a/b").name


def test_metrics_json_is_written_after_every_other_file_of_a_stage(tmp_path):
    """A kill while a stage folder is written leaves it without metrics.json, so --resume
    removes it and runs the stage again (before: metrics.json came first and a folder
    lacking model.keras or the extras read as finished for good)."""
    from train.runs import RUN_FILE, RunStore, StageResult, finished_stages, incomplete_stages

    store = RunStore(tmp_path, run_id="r")
    (store.path / RUN_FILE).write_text("{}\n")
    seen: list[list[str]] = []

    def extras(folder: Path) -> None:
        seen.append(sorted(path.name for path in folder.iterdir()))
        (folder / "validation.json").write_text("{}\n")
        raise KeyboardInterrupt  # the kill, while the extras are written

    with pytest.raises(KeyboardInterrupt):
        store.write_stage(StageResult(name="baseline", hypothesis="learns"), extras=extras)
    assert seen == [["config.json", "history.csv"]]
    assert finished_stages(store.path) == [] and len(incomplete_stages(store.path)) == 1
    store.close()
    store = RunStore(tmp_path, run_id="r", resume=True)  # the cut-off folder goes
    assert not list(store.path.glob("[0-9][0-9]-*")) and store.stages_written == 0
    folder = store.write_stage(StageResult(name="baseline", hypothesis="learns"))
    assert (folder / "metrics.json").is_file() and len(finished_stages(store.path)) == 1
    store.close()


def test_changed_content_under_the_same_names_is_another_split():
    """The split fingerprint holds each file's sha256 from the report: changed pixels under
    the same names refuse --resume (before: paths and labels only, resumed silently)."""
    from train.data import SplitExamples
    from train.resume import split_fingerprint

    def split(sha: str) -> SplitExamples:
        return SplitExamples(
            class_names=("a", "b"),
            train_paths=["/d/a/1.png", "/d/b/1.png"],
            train_labels=np.array([0, 1]),
            val_paths=["/d/a/2.png"],
            val_labels=np.array([0]),
            how="test",
            sha256={"/d/a/1.png": sha, "/d/b/1.png": "22", "/d/a/2.png": "33"},
        )

    assert split_fingerprint(split("11")) == split_fingerprint(split("11"))
    assert split_fingerprint(split("11")) != split_fingerprint(split("44"))


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        ([], "not a JSON object"),
        ({"config": [1, 2], "stages": ["baseline"]}, "'config' is not an object"),
        ({"config": {}, "stages": "baseline"}, "'stages' is not a list"),
        ({"config": {}, "stages": [1]}, "no name"),
    ],
)
def test_a_run_json_of_the_wrong_shape_is_refused(tmp_path, stored, reason):
    from audit.errors import InvalidArgument
    from train import resume
    from train.runs import RUN_FILE

    (tmp_path / RUN_FILE).write_text(json.dumps(stored))
    description = {"config": {"steps": 1}, "stages": ["baseline"], "split": "x"}
    with pytest.raises(InvalidArgument, match=reason):
        resume.check(tmp_path, description)


def test_a_folder_in_place_of_a_checkpoint_is_removed_and_the_run_starts_over(tmp_path):
    lines: list[str] = []
    store = Checkpoints(tmp_path, log=lines.append)
    store.path("run").mkdir()
    (store.path("run") / "inside").write_text("x")
    assert store.load("run") is None and "is no file" in lines[-1]
    store.path("other").mkdir()  # a save over a folder (before: IsADirectoryError)
    store.save("other", {"done": 2}, {"m0": np.zeros(2)})
    loaded = store.load("other")
    assert loaded is not None and loaded[0] == {"done": 2}
