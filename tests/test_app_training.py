"""The training and checks pages with streamlit.testing.v1.AppTest.

A stand-in trainer (tests/fake_trainer.py) replaces `python -m train run`, so start, live
curves, the disabled Start and Stop are tested in seconds; the real recipe in a browser is
tests/test_app_browser_training.py's.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from audit.outputs import default_report_dir
from tests.imagegen import colour_dataset
from ui.safety import markdown

pytest.importorskip("streamlit")
import pyarrow as pa  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from train.runs import RunStore, StageResult, Verdict  # noqa: E402
from ui import runs_live  # noqa: E402

APP = str(Path(__file__).resolve().parents[1] / "app.py")
FAKE_TRAINER = str(Path(__file__).with_name("fake_trainer.py"))


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """An allowed root with a scanned tiny dataset; runs start the stand-in trainer."""
    from audit.scan import scan

    monkeypatch.setenv("IMAGE_AUDIT_ALLOWED_ROOTS", str(tmp_path))
    monkeypatch.delenv("IMAGE_AUDIT_WORKDIR", raising=False)
    root = colour_dataset(tmp_path / "data", {"blue": 6, "red": 6}, side=16)
    scan(root, default_report_dir(root, base=tmp_path / "reports"), jobs=1, cache=False)
    mode = {"value": "run"}
    monkeypatch.setattr(
        runs_live,
        "train_command",
        lambda root, report, runs, run_id, options: [
            sys.executable,
            FAKE_TRAINER,
            str(runs / run_id),
            mode["value"],
        ],
    )
    yield tmp_path, mode
    for path in runs_live.active_runs(tmp_path / "runs"):  # nothing left running
        runs_live.stop(path, grace=2)


def training_page() -> AppTest:
    test = AppTest.from_file(APP, default_timeout=60).run()
    test.sidebar.radio(key="page").set_value("Training").run()
    assert not test.exception, [e.value for e in test.exception]
    return test


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def events(run: Path) -> list[dict]:
    path = run / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def table(test: AppTest, column: str):
    """The first table on the page with that column (st.dataframe keys are not exposed)."""
    return next(frame.value for frame in test.dataframe if column in frame.value.columns)


def table_or_none(test: AppTest, column: str):
    return next((f.value for f in test.dataframe if column in f.value.columns), None)


def chart_frames(test: AppTest) -> list:
    """The data behind every chart on the page."""
    return [
        pa.ipc.open_stream(chart.proto.datasets[0].data.data).read_pandas()
        for chart in test.get("vega_lite_chart")
        if chart.proto.datasets
    ]


def test_start_selects_the_new_run_disables_start_splits_curves_and_stops(workspace):
    tmp_path, _ = workspace
    old = tmp_path / "runs" / "app-20200101-000000"  # an earlier run, shown before the start
    old.mkdir(parents=True)
    test = training_page()
    assert test.selectbox(key="run_choice").value == old.name
    assert not test.button(key="start_run").disabled
    test.selectbox(key="train_preset").set_value("cpu-small").run()
    assert test.number_input(key="train_steps_cpu-small").value == 240  # the preset's values
    other_tab = training_page()  # drawn before the start: its Start is still enabled
    test.button(key="start_run").click().run()
    (run,) = runs_live.active_runs(tmp_path / "runs")
    assert test.selectbox(key="run_choice").value == run.name  # the new run, not the old one
    assert test.button(key="start_run").disabled  # no second start while it goes
    assert any(run.name in message.value for message in test.success)
    # A second submission that got through anyway (a double click, another tab) is refused.
    other_tab.button(key="start_run").click().run()
    assert len([path for path in (tmp_path / "runs").iterdir() if path.is_dir()]) == 2
    assert other_tab.button(key="start_run").disabled
    wait_for(
        lambda: any(e["event"] == "stage_start" and e["stage"] == "baseline" for e in events(run))
    )
    test.run()
    legend = table(test, "curve")
    assert list(legend["curve"]) == [
        "shuffled_labels: baseline",
        "shuffled_labels: shuffled labels",
    ]
    assert list(legend["evaluations"]) == [3, 3]
    charts = chart_frames(test)  # training loss, validation loss, validation accuracy
    assert len(charts) == 3
    for chart in charts:  # each line's steps only go forward: no line joins two models
        assert sorted(set(chart["curve"])) == list(legend["curve"])
        for _, curve in chart.groupby("curve"):
            assert list(curve["step"]) == [10, 20, 30]
    stages = table(test, "seconds")
    assert list(stages["status"]) == ["✅ pass", "▶️ running"]
    test.button(key="stop_run").click().run()
    assert not runs_live.active_runs(tmp_path / "runs")
    last = events(run)[-1]
    assert last["event"] == "stopped" and last["exit_code"] == 130
    assert json.loads((run / "app_process.json").read_text())["exit_code"] == 130
    assert f"Run {run.name}: stopped" in [header.value for header in test.subheader]
    assert list(table(test, "seconds")["status"]) == ["✅ pass", "✂️ cut off"]
    assert [code.value for code in test.code] == [f"python -m train report {run}"]
    assert not test.button(key="start_run").disabled  # Start is back


def test_two_starts_at_once_start_one_run(workspace):
    tmp_path, _ = workspace
    runs = tmp_path / "runs"
    command = lambda run_id: [sys.executable, FAKE_TRAINER, str(runs / run_id), "run"]  # noqa: E731
    outcomes: list = []

    def start() -> None:
        try:
            outcomes.append(runs_live.start(runs, command))
        except runs_live.RunBusy as error:
            outcomes.append(error)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    started = [outcome for outcome in outcomes if isinstance(outcome, Path)]
    assert len(started) == 1 and len(outcomes) == 3
    assert runs_live.active_runs(runs) == started
    assert [path.name for path in runs.iterdir() if path.is_dir()] == [started[0].name]
    # Killed outright (kill -9, the OOM killer): the folder reads as interrupted, not running.
    os.killpg(json.loads((started[0] / "app_process.json").read_text())["pid"], signal.SIGKILL)
    wait_for(lambda: not runs_live.active_runs(runs))
    assert runs_live.state(started[0]).status == "interrupted"
    assert runs_live.state(started[0]).exit_code == -signal.SIGKILL


def test_a_run_going_is_recognised_and_stopped_after_the_app_restarts(workspace, monkeypatch):
    tmp_path, _ = workspace
    runs = tmp_path / "runs"
    run = runs_live.start(
        runs, lambda run_id: [sys.executable, FAKE_TRAINER, str(runs / run_id), "run"]
    )
    wait_for(lambda: any(e["event"] == "stage_start" for e in events(run)))
    process = runs_live._processes[str(run)]
    monkeypatch.setattr(runs_live, "_processes", {})  # a new server: not its child any more
    assert runs_live.active_runs(runs) == [run]  # found by its process id and command line
    with pytest.raises(runs_live.RunBusy):
        runs_live.start(runs, lambda run_id: ["true"])
    test = training_page()  # Stop on the page: no exit code to say (it said "None")
    test.button(key="stop_run").click().run()
    stopped = runs_live.state(run)
    assert process.wait(timeout=10) == 130 and stopped.status == "stopped"
    warnings = [box.value for box in test.warning]
    assert f"Stopped run {run.name}." in warnings and "None" not in " ".join(warnings)
    assert not runs_live.active_runs(runs)
    record = json.loads((run / "app_process.json").read_text())
    assert record["ended"] and record["exit_code"] is None  # not its child: code unknown


def test_a_refused_run_shows_the_refusal_not_tensorflow_logs(workspace):
    tmp_path, mode = workspace
    mode["value"] = "refuse"
    test = training_page()
    test.button(key="start_run").click().run()
    (run,) = [path for path in (tmp_path / "runs").iterdir() if path.is_dir()]
    assert runs_live.wait(run, timeout=20) == 2
    test.run()
    assert any("refused (exit code 2)" in error.value for error in test.error)
    shown = "\n".join(code.value for code in test.code)
    assert "train: error: the audit report" in shown
    assert "port.cc" not in shown and "cudart" not in shown
    assert "port.cc" in (run / "train.log").read_text()  # still in the log itself


def test_hostile_run_names_and_links_outside_the_allowed_roots(workspace, tmp_path_factory):
    tmp_path, _ = workspace
    runs = tmp_path / "runs"
    runs.mkdir()
    outside = tmp_path_factory.mktemp("outside")
    (runs / "linked").symlink_to(outside, target_is_directory=True)
    os.mkdir(os.fsencode(runs) + b"/[x](javascript:alert(1)) <b>\xff")
    test = training_page()
    options = test.selectbox(key="run_choice").options
    assert "[x](javascript:alert(1)) <b>\\xff" in options  # shown escaped, one line
    test.selectbox(key="run_choice").set_value(os.fsdecode(b"[x](javascript:alert(1)) <b>\xff"))
    test.run()
    assert not test.exception, [e.value for e in test.exception]
    assert "&lt;b&gt;" in test.subheader[0].value and "\\[x\\]" in test.subheader[0].value
    test.selectbox(key="run_choice").set_value("linked").run()
    assert any("outside the allowed roots" in error.value for error in test.error)


def _stage(name: str, status: str, best: float | None = None) -> StageResult:
    result = StageResult(name=name, hypothesis=f"{name} holds")
    result.verdicts = [Verdict(f"{name}_claim", 1.0, 0.5, status == "pass", "value <= threshold")]
    if status == "skipped":
        result.skipped = "no weights file"
    elif status not in ("pass", "fail"):
        result.judged = status
        result.note = f"why {name} is {status}"
    if best is not None:
        result.summary = {"model": "simple_cnn", "best_val_loss": best, "best_val_accuracy": 0.8}
    return result


def test_every_status_shows_and_figures_come_from_the_best_trained_stage(workspace):
    tmp_path, _ = workspace
    from PIL import Image

    store = RunStore(tmp_path / "runs", "statuses")
    plan = [
        ("init_loss", "pass", None),
        ("overfit_one_batch", "not_converged", None),
        ("shuffled_labels", "fail", None),
        ("baseline", "collapsed", 1.2),
        ("xception", "invalid_reference", 0.4),
        ("pretrained", "skipped", None),
    ]
    for name, status, best in plan:
        folder = store.write_stage(_stage(name, status, best))
        for figure in ("first_layer_filters.png", "prediction_dynamics.png"):
            Image.new("RGB", (8, 8)).save(folder / figure)  # the untrained ones too
    test = training_page()
    statuses = list(table(test, "seconds")["status"])
    assert statuses == [
        "✅ pass",
        "⏳ not_converged",
        "❌ fail",
        "💥 collapsed",
        "⚠️ invalid_reference",
        "⏭️ skipped",
    ]
    verdicts = table(test, "verdict")
    assert "SKIPPED: no weights file" in set(verdicts["result"])
    warnings = " ".join(warning.value for warning in test.warning)
    for name, status, _ in plan[1:5]:
        if status != "fail":
            expected = f"{markdown(name)} ({status}): {markdown(f'why {name} is {status}')}"
            assert expected in warnings
    captions = [image.proto.imgs[0].caption for image in test.get("image")]
    assert captions and all(caption.startswith("05-xception:") for caption in captions)
    assert any("prediction dynamics" in caption for caption in captions)
    assert test.selectbox(key="figures_stage_statuses").options == ["05-xception", "04-baseline"]


def test_checks_grid_shows_pass_and_fail_per_run_and_expectation(workspace):
    tmp_path, _ = workspace
    from audit import history

    def run(ok: dict, success: bool) -> history.Run:
        return history.Run(
            0, "2026-11-27T02:15:00+00:00", "/data", "suite.json", success, 10, 9, 1, ok, {}
        )

    path = tmp_path / "reports" / "check-history.sqlite"
    history.append(path, run({"files:no_errors": True, "classes:set": True}, True))
    history.append(path, run({"files:no_errors": False, "classes:set": True, "new": False}, False))
    test = AppTest.from_file(APP, default_timeout=60).run()
    test.sidebar.radio(key="page").set_value("Checks").run()
    grid = table(test, "classes:set")
    assert list(grid.columns) == ["files:no_errors", "classes:set", "new"]
    assert grid.iloc[0].tolist() == ["fail", "pass", "fail"]  # the newest check first
    assert grid.iloc[1].tolist() == ["pass", "pass", "-"]  # not in that check's suite


def test_curves_split_per_stage_and_run_and_a_retrained_label_starts_a_new_line():
    def epoch(run: str, number: int, loss: float) -> dict:
        return {
            "event": "epoch",
            "run": run,
            "epoch": number,
            "step": number,
            "metrics": {"loss": loss},
        }

    frame = runs_live.curves(
        [
            {"event": "stage_start", "stage": "baseline"},
            epoch("baseline", 1, 0.7),
            epoch("baseline", 2, 0.5),
            {"event": "stage_start", "stage": "augment"},
            epoch("xception", 1, 0.69),  # trained on demand inside augment
            epoch("augment", 1, 0.68),
            {"event": "stage_start", "stage": "determinism"},
            epoch("determinism run", 1, 0.6),
            epoch("determinism run", 1, 0.6),  # the same label trained again
        ]
    )
    assert list(dict.fromkeys(frame["curve"])) == [
        "baseline",
        "augment: xception",
        "augment",
        "determinism: determinism run",
        "determinism: determinism run (2)",
    ]


def test_files_linked_outside_the_allowed_roots_are_not_read(workspace, tmp_path_factory):
    """Attack on issue 18, finding 2: only the run or check folder was checked, so a file
    in it linked to elsewhere was shown (ablation.png, a stage's batch_preview.png, the
    embedded check.html). Each file is checked itself; a file inside is shown (both sides)."""
    tmp_path, _ = workspace
    from PIL import Image

    from audit import history

    outside = tmp_path_factory.mktemp("outside")
    Image.new("RGB", (7, 13), (255, 0, 0)).save(outside / "secret.png")
    (outside / "secret.html").write_text("<p>SECRET-PAGE</p>")
    store = RunStore(tmp_path / "runs", "r1")
    store.write_stage(_stage("baseline", "pass", best=0.5))
    run = store.path
    (run / "events.jsonl").write_text(json.dumps({"event": "start", "stages": ["baseline"]}))
    (run / "ablation.png").symlink_to(outside / "secret.png")
    Image.new("RGB", (9, 9)).save(run / "01-baseline" / "first_layer_filters.png")
    (run / "01-baseline" / "batch_preview.png").symlink_to(outside / "secret.png")
    test = training_page()
    captions = [caption for image in test.get("image") for caption in image.captions]
    assert captions == ["01-baseline: first-layer filters (trained, beside the initial ones)"], (
        captions
    )
    notes = [caption.value for caption in test.caption]
    assert any("ablation.png is not shown: it leads outside" in note for note in notes)
    assert any("batch\\_preview.png is not shown" in note for note in notes)
    (run / "train.log").symlink_to(outside / "secret.html")  # a file the page reads as text
    test.run()
    assert any("train.log lead" in error.value and "outside" in error.value for error in test.error)
    assert table_or_none(test, "seconds") is None
    # The checks page: the latest check's check.html is a link to elsewhere.
    out = tmp_path / "reports" / "data-check"
    out.mkdir(parents=True)
    (out / "check.html").symlink_to(outside / "secret.html")
    state = {"out": str(out), "classes": {}, "error_files": []}
    check = history.Run(0, "2026-11-27T02:15:00+00:00", "/data", "s.json", True, 1, 1, 0, {}, state)
    history.append(tmp_path / "reports" / "check-history.sqlite", check)
    test.sidebar.radio(key="page").set_value("Checks").run()
    assert not test.get("iframe") and not test.get("html")
    assert any("leads outside the allowed roots" in box.value for box in test.warning)
    (out / "check.html").unlink()
    (out / "check.html").write_text("<p>the check</p>")
    test.run()
    assert test.get("iframe") or test.get("html")


def test_stop_once_for_two_sessions_and_stages_never_started(workspace, tmp_path):
    """Attack on issue 18, finding 8: two sessions pressing Stop at once wrote two
    "stopped" events; after a stop the stages never started read "waiting"."""
    _, _ = workspace
    runs = tmp_path / "runs"
    run = runs_live.start(
        runs, lambda run_id: [sys.executable, FAKE_TRAINER, str(runs / run_id), "run"]
    )
    wait_for(lambda: any(e["event"] == "stage_start" for e in events(run)))
    threads = [threading.Thread(target=runs_live.stop, args=(run,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [e["event"] for e in events(run)].count("stopped") == 1
    planned = [
        {"event": "start", "stages": ["init_loss", "baseline", "augment"]},
        {"event": "stage_start", "stage": "init_loss"},
    ]
    stopped = runs_live.RunState(tmp_path / "nothing", "stopped", planned, 130)
    assert [row["status"] for row in runs_live.stage_rows(stopped)] == [
        "✂️ cut off",
        "⏹️ not run (stopped)",
        "⏹️ not run (stopped)",
    ]
    going = runs_live.RunState(tmp_path / "nothing", "running", planned, None)
    assert [row["status"] for row in runs_live.stage_rows(going)][1:] == ["… waiting"] * 2
