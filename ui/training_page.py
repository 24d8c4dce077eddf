"""The training page: start the recipe in the background, follow it live, read past runs."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import streamlit as st

from train.config import SANITY, STAGE_NAMES, TrainConfig
from train.runs import list_runs, read_events, read_stage_metrics, stage_status
from ui import data
from ui.safety import OutsideAllowedRoots, checked, workdir

FIGURES = ("ablation.png", "first_layer_filters.png", "prediction_dynamics.png")


def render() -> None:
    st.header("Training recipe")
    runs_dir = workdir() / "runs"
    _start_form(workdir() / "reports", runs_dir)
    active = st.session_state.get("training")
    if active:
        _live(Path(active["run_path"]), active["pid"])
    st.subheader("Runs")
    runs = list_runs(runs_dir)
    if not runs:
        st.info(f"No runs yet under {runs_dir}.")
        return
    chosen = st.selectbox("Run", runs, format_func=lambda path: path.name, key="run_choice")
    show_run(chosen)


def _start_form(reports_dir: Path, runs_dir: Path) -> None:
    reports = data.recent_reports(reports_dir)
    if not reports:
        st.info(
            "No audit report yet: scan a dataset on the Audit page first; "
            "training reads its report."
        )
        return
    defaults = TrainConfig()
    with st.form("start_training"):
        report = st.selectbox("Audit report", reports, format_func=lambda path: path.name)
        stages = st.multiselect("Stages", list(STAGE_NAMES), default=list(SANITY))
        columns = st.columns(4)
        image_size = columns[0].number_input("Image size", 8, 512, defaults.image_size)
        batch_size = columns[1].number_input("Batch size", 1, 1024, defaults.batch_size)
        steps = columns[2].number_input("Steps per run", 1, 1_000_000, defaults.steps)
        seed = columns[3].number_input("Seed", 0, 2**31 - 1, defaults.seed)
        submitted = st.form_submit_button("Start in the background")
    if submitted and stages:
        try:
            report_dir = checked(report)
            runs = checked(runs_dir)
        except OutsideAllowedRoots as error:
            st.error(f"Refused: {error}")
            return
        summary = data.summary(str(report_dir), data.mtime(report_dir / "summary.json"))
        run_id = datetime.now(timezone.utc).strftime("app-%Y%m%d-%H%M%S")
        run_path = runs / run_id
        run_path.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "train",
            "run",
            summary["root"],
            "--report",
            str(report_dir),
            "--stages",
            ",".join(stages),
            "--image-size",
            str(image_size),
            "--batch-size",
            str(batch_size),
            "--steps",
            str(steps),
            "--seed",
            str(seed),
            "--runs-dir",
            str(runs),
            "--run-id",
            run_id,
        ]
        with open(run_path / "train.log", "w") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        st.session_state["training"] = {
            "pid": process.pid,
            "run_path": str(run_path),
            "process": process,
        }
        st.success(f"Started run {run_id} (process {process.pid}).")


@st.fragment(run_every=2.0)
def _live(run_path: Path, pid: int) -> None:
    process = st.session_state.get("training", {}).get("process")
    running = process is not None and process.poll() is None
    events = read_events(run_path)
    planned: list[str] = next(
        (event["stages"] for event in events if event["event"] == "start"), []
    )
    finished = [event for event in events if event["event"] == "stage_end"]
    st.subheader(f"Run {run_path.name}: {'running' if running else 'finished'}")
    if planned:
        st.progress(
            len(finished) / len(planned), text=f"{len(finished)} of {len(planned)} stages done"
        )
    epochs = [event for event in events if event["event"] == "epoch"]
    if epochs:
        curves = pd.DataFrame(
            [
                {"step": index, "run": event["run"], **event["metrics"]}
                for index, event in enumerate(epochs)
            ]
        )
        columns = st.columns(2)
        losses = [column for column in ("loss", "val_loss") if column in curves]
        accuracies = [column for column in ("accuracy", "val_accuracy") if column in curves]
        columns[0].line_chart(curves.set_index("step")[losses])
        columns[1].line_chart(curves.set_index("step")[accuracies])
    if not running and process is not None:
        log = run_path / "train.log"
        if process.returncode not in (0, 1) and log.exists():
            st.error(f"The run stopped with exit code {process.returncode}; last lines of its log:")
            st.code("\n".join(log.read_text(errors="replace").splitlines()[-15:]))


def show_run(run_path: Path) -> None:
    metrics = read_stage_metrics(run_path)
    if not metrics:
        st.info("This run has no finished stage yet.")
        return
    rows = []
    for stage in metrics:
        status = stage_status(stage)
        if stage.get("skipped"):
            rows.append(
                {
                    "stage": stage["stage"],
                    "status": status,
                    "verdict": "(skipped)",
                    "value": None,
                    "threshold": None,
                    "result": f"SKIPPED: {stage['skipped']}",
                }
            )
        for verdict in stage["verdicts"]:
            rows.append(
                {
                    "stage": stage["stage"],
                    "status": status,
                    "verdict": verdict["name"],
                    "value": verdict["value"],
                    "threshold": verdict["threshold"],
                    "result": verdict.get("status", "pass" if verdict["passed"] else "fail"),
                }
            )
    notes = [
        f"{stage['stage']} ({stage_status(stage)}): {stage['note']}"
        for stage in metrics
        if stage.get("note")
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    for note in notes:
        st.warning(note)
    for name in FIGURES:
        figure = run_path / name
        if figure.exists():
            st.image(str(figure), caption=name)
    previews = sorted(run_path.glob("[0-9][0-9]-*/batch_preview.png"))
    if previews:
        st.text("Batch previews (the input tensor just before the network, with labels):")
        for preview in previews[:3]:
            st.image(str(preview), caption=preview.parent.name)
        filters = sorted(run_path.glob("[0-9][0-9]-*/first_layer_filters.png"))
        for image in filters[:3]:
            st.image(str(image), caption=f"first-layer filters: {image.parent.name}")
