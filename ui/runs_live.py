"""Training runs the app starts: launched in the background, one at a time per runs folder,
followed from their event log (RUN/events.jsonl), stopped cleanly.

Streamlit runs a page's script again on every click, in every browser tab, and a second
click may arrive while the first one's rerun is still running: a run started inside the
script was started twice by a double click. Here a run is started only under a
server-wide lock and only when no run of the same runs folder is going (RunBusy
otherwise), whichever session asks; the page disables Start meanwhile.

A run is `python -m train run ...` in a process group of its own, writing RUN/train.log;
RUN/app_process.json says which process it is (so a run still going is recognised after
the app restarts or the browser reloads) and, once seen, that it ended and its exit code
(null when the app had restarted meanwhile: not its child, so not its to know). Stop sends SIGINT
to the group (the CLI's Ctrl-C: exit 130), then SIGTERM and SIGKILL if it does not end in
time; stage folders are whole or reported incomplete (train.runs.incomplete_stages), and
events.jsonl gets a last "stopped" event, so the folder says what happened to it.

Everything here but `start` and `stop` only reads; the page lays out what it returns.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from audit.errors import UserError
from audit.reportio import atomic_text
from train.runs import finished_stages, incomplete_stages, list_runs, read_events, stage_status

APP_FILE = "app_process.json"
LOG_FILE = "train.log"
START_LOCK = ".app-start.lock"
STOP_LOCK = ".app-stop.lock"  # in the run folder: two sessions pressing Stop at once
PROJECT = Path(__file__).resolve().parents[1]  # where `python -m train` is importable from

# Server-wide: every session and rerun of this Streamlit server sees the same runs.
_processes: dict[str, subprocess.Popen] = {}
_guard = threading.Lock()

# How each stage status reads on the page (train.runs.STATUSES, plus the live states).
STATUS_LABELS = {
    "pass": "✅ pass",
    "fail": "❌ fail",
    "not_converged": "⏳ not_converged",
    "collapsed": "💥 collapsed",
    "invalid_reference": "⚠️ invalid_reference",
    "skipped": "⏭️ skipped",
    "running": "▶️ running",
    "waiting": "… waiting",
    "cut off": "✂️ cut off",
    "not run": "⏹️ not run",  # planned, never started: the run stopped or ended before it
}

# TensorFlow's own log lines (absl's "I0000 00:00:17.. 123 file.cc:12] ...", the older
# "2026-01-01 00:00:00.000: W tensorflow/...", and absl's preamble): noise under a refusal.
_TF_NOISE = re.compile(
    r"^([IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\]"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] "
    r"|WARNING: All log messages before absl::InitializeLog\(\)"
    r"|To enable the following instructions:"
    r"|oneDNN custom operations are on)"
)


class RunBusy(UserError):
    """A run of the same runs folder is still going: one at a time."""


@dataclass
class RunState:
    """What a run folder says about its run, live or finished."""

    path: Path
    status: str  # running, finished, stopped, refused, failed, interrupted, unfinished
    events: list[dict] = field(default_factory=list)
    exit_code: int | None = None
    started_by_app: bool = False

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def planned(self) -> list[str]:
        """The stages the run was started with (its "start" event)."""
        return next((list(e["stages"]) for e in self.events if e.get("event") == "start"), [])


def train_command(
    root: str, report_dir: Path, runs_dir: Path, run_id: str, options: Mapping[str, object]
) -> list[str]:
    """`python -m train run` with options {"stages": [...], "preset": str | None,
    "image_size": int, ...} (None values left out)."""
    command = [sys.executable, "-m", "train", "run", root, "--report", str(report_dir)]
    for name, value in options.items():
        if value is None or value == "":
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(str(item) for item in value)
        command += [f"--{name.replace('_', '-')}", str(value)]
    return command + ["--runs-dir", str(runs_dir), "--run-id", run_id]


def new_run_id(runs_dir: Path) -> str:
    """app-<UTC time>, with a suffix when that folder exists (two starts in one second)."""
    stamp = datetime.now(timezone.utc).strftime("app-%Y%m%d-%H%M%S")
    run_id, number = stamp, 1
    while (runs_dir / run_id).exists():
        number += 1
        run_id = f"{stamp}-{number}"
    return run_id


def start(runs_dir: Path, command_for) -> Path:
    """Start a run under runs_dir in the background; returns its folder. command_for(run_id)
    gives the command line. RunBusy while another run of runs_dir is going."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    # The thread lock covers this server's sessions, the file lock other app servers on the
    # same folder.
    with _guard, open(runs_dir / START_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        going = active_runs(runs_dir)
        if going:
            raise RunBusy(f"run {going[0].name} is still going: stop it or wait for it")
        run_id = new_run_id(runs_dir)
        run_path = runs_dir / run_id
        run_path.mkdir()
        command = command_for(run_id)
        env = {
            **os.environ,
            # The project importable wherever the app was started from.
            "PYTHONPATH": os.pathsep.join(
                part for part in (str(PROJECT), os.environ.get("PYTHONPATH", "")) if part
            ),
            "PYTHONUNBUFFERED": "1",  # the log follows the run
        }
        with open(run_path / LOG_FILE, "w", encoding="utf-8") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: Stop reaches its children
                cwd=PROJECT,
                env=env,
            )
        _processes[str(run_path)] = process
        _write_app_file(
            run_path,
            {
                "pid": process.pid,
                "run_id": run_id,
                "command": command,
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "ended": False,
                "exit_code": None,
            },
        )
        return run_path


def _write_app_file(run_path: Path, record: dict) -> None:
    with atomic_text(run_path / APP_FILE) as handle:
        handle.write(json.dumps(record, indent=2) + "\n")


def _app_file(run_path: Path) -> dict | None:
    try:
        record = json.loads((run_path / APP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("pid"), int) else None


def _alive(run_path: Path, record: dict | None) -> bool:
    """Whether the run's process is going: ours (a child of this server) or, after a restart,
    the recorded process id when it still runs this run (its command line names the run id:
    process ids are reused)."""
    process = _processes.get(str(run_path))
    if process is not None:
        return process.poll() is None
    if not record or record.get("ended") or record.get("exit_code") is not None:
        return False
    try:
        command = Path(f"/proc/{record['pid']}/cmdline").read_bytes()
    except OSError:
        return False
    run_id = str(record.get("run_id", "")).encode()
    return bool(run_id) and run_id in command


def state(run_path: Path) -> RunState:
    """The run's state from its folder (and its process, when the app started it)."""
    record = _app_file(run_path)
    alive = _alive(run_path, record)
    process = _processes.get(str(run_path))
    exit_code = record.get("exit_code") if record else None
    if not alive and process is not None and exit_code is None:
        exit_code = process.returncode
        if record is not None:  # remember how it ended, for later sessions and restarts
            _write_app_file(run_path, {**record, "ended": True, "exit_code": exit_code})
    events = read_events(run_path)
    kinds = {event.get("event") for event in events}
    if alive:
        status = "running"
    elif "done" in kinds:
        status = "finished"
    elif "stopped" in kinds or exit_code == 130:
        status = "stopped"
    elif exit_code == 2:
        status = "refused"
    elif exit_code is not None and exit_code < 0:
        status = "interrupted"  # killed by a signal (kill -9, the machine's OOM killer)
    elif exit_code is not None and exit_code not in (0, 1):
        status = "failed"
    elif record is not None:
        status = "interrupted"  # the app's process ended without a word (killed, restart)
    else:
        status = "unfinished" if events else "finished"
    return RunState(run_path, status, events, exit_code, record is not None)


def active_runs(runs_dir: Path) -> list[Path]:
    """Runs under runs_dir whose process is going."""
    return [path for path in list_runs(runs_dir) if _alive(path, _app_file(path))]


def wait(run_path: Path, timeout: float) -> int | None:
    """Wait for a run this server started to end; its exit code (None: not ours, or still
    going after `timeout` seconds)."""
    process = _processes.get(str(run_path))
    if process is None:
        return None
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def stop(run_path: Path, grace: float = 30.0) -> RunState:
    """Stop a running run: SIGINT to its process group (the CLI's Ctrl-C), SIGTERM after
    `grace` seconds, SIGKILL 5 s later; then a "stopped" event closes events.jsonl.
    Stops of one run are serialized: a second one (another session's click) finds the run
    ended and writes nothing (two sessions at once wrote two "stopped" events)."""
    with open(run_path / STOP_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _stop_locked(run_path, grace)


def _stop_locked(run_path: Path, grace: float) -> RunState:
    record = _app_file(run_path)
    if not _alive(run_path, record) or record is None:
        return state(run_path)
    pid = int(record["pid"])
    process = _processes.get(str(run_path))
    for sent, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sent)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _alive(run_path, record):
            time.sleep(0.1)
        if not _alive(run_path, record):
            break
    exit_code = process.wait(timeout=5) if process is not None else None
    # exit_code None: the process was not this server's child (started before a restart).
    _write_app_file(run_path, {**record, "ended": True, "exit_code": exit_code})
    with open(run_path / "events.jsonl", "a", encoding="utf-8") as handle:
        handle.write(
            json.dumps(
                {
                    "time": time.time(),
                    "event": "stopped",
                    "by": "app",
                    "exit_code": exit_code,
                    "incomplete_stages": incomplete_stages(run_path),
                }
            )
            + "\n"
        )
    return state(run_path)


def curves(events: list[dict]) -> pd.DataFrame:
    """The evaluations of every training run of a run folder, one curve per stage and run.

    A stage may train several runs (shuffled_labels trains the baseline and a shuffled-labels
    model; a chain stage trains the runs it builds on when they were not asked for), and each
    starts from its own initial weights: joined into one line, a switch of model looked like
    a loss spike. Columns: curve, stage, run, step (within the run), metric, value."""
    rows = []
    stage = ""
    last_epoch: dict[str, int] = {}
    segments: dict[str, int] = {}
    for event in events:
        kind = event.get("event")
        if kind == "stage_start":
            stage = str(event.get("stage", ""))
        if kind != "epoch":
            continue
        run = str(event.get("run", stage))
        key = run if run == stage else f"{stage}: {run}"
        epoch = int(event.get("epoch", 0))
        if key in last_epoch and epoch <= last_epoch[key]:  # the same label trained again
            segments[key] = segments.get(key, 1) + 1
        last_epoch[key] = epoch
        name = key if segments.get(key, 1) == 1 else f"{key} ({segments[key]})"
        for metric, value in (event.get("metrics") or {}).items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                rows.append(
                    {
                        "curve": name,
                        "stage": stage,
                        "run": run,
                        "step": int(event.get("step", epoch)),
                        "metric": metric,
                        "value": float(value),
                    }
                )
    return pd.DataFrame(rows, columns=["curve", "stage", "run", "step", "metric", "value"])


def curve_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per curve: its evaluations so far and latest figures (the charts' legend)."""
    if frame.empty:
        return pd.DataFrame(columns=["curve", "evaluations", "last step"])
    rows = []
    for name, part in frame.groupby("curve", sort=False):
        latest = part[part["step"] == part["step"].max()]
        row: dict[str, object] = {
            "curve": name,
            "evaluations": int(part["step"].nunique()),
            "last step": int(part["step"].max()),
        }
        for metric in ("loss", "val_loss", "accuracy", "val_accuracy"):
            values = latest.loc[latest["metric"] == metric, "value"]
            row[metric] = float(values.iloc[-1]) if len(values) else None
        rows.append(row)
    return pd.DataFrame(rows)


def stage_rows(run: RunState) -> list[dict]:
    """One row per stage: finished ones from metrics.json (status, note, seconds), the rest
    from the live events (running, waiting, cut off), and "not run" for a planned stage
    never started by a run that has ended (stopped, failed)."""
    finished = {metrics["stage"]: metrics for _, metrics in finished_stages(run.path)}
    started = [e["stage"] for e in run.events if e.get("event") == "stage_start"]
    names = list(dict.fromkeys([*run.planned, *started, *finished]))
    rows = []
    for name in names:
        metrics = finished.get(name)
        if metrics is not None:
            status = stage_status(metrics)
            note = metrics.get("note") or metrics.get("skipped") or ""
            seconds = metrics.get("seconds")
        else:
            status = "waiting" if run.running else "not run"
            if name in started:
                status = "running" if run.running else "cut off"
            note, seconds = "", None
        label = STATUS_LABELS.get(status, status)
        if status == "not run" and run.status == "stopped":
            label += " (stopped)"
        rows.append(
            {
                "stage": name,
                "status": label,
                "seconds": seconds,
                "note": note,
            }
        )
    return rows


def readable_log(text: str, exit_code: int | None, lines: int = 20) -> str:
    """What a person needs from a run's log when it did not finish: for a refusal (exit 2)
    the refusal itself, otherwise its last lines; TensorFlow's own log lines left out."""
    kept = [line for line in text.splitlines() if line.strip() and not _TF_NOISE.match(line)]
    if exit_code == 2:
        refusal = [line for line in kept if ": error:" in line or line.startswith("usage:")]
        if refusal:
            return "\n".join(refusal)
    return "\n".join(kept[-lines:])


def trained_stages(run_path: Path) -> list[tuple[Path, dict]]:
    """Finished stages that trained a model on real data (their summary holds a best
    validation loss), best first: their figures say what training did, unlike those of
    init_loss (untrained) or overfit_one_batch (one batch)."""
    found = []
    for folder, metrics in finished_stages(run_path):
        best = (metrics.get("summary") or {}).get("best_val_loss")
        if stage_status(metrics) != "skipped" and isinstance(best, (int, float)):
            found.append((folder, metrics))
    return sorted(found, key=lambda item: item[1]["summary"]["best_val_loss"])
