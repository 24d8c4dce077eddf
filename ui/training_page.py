"""The training page: start the recipe in the background, follow it live, stop it, read past
runs, and take the human baseline. Layout only: ui.runs_live and train.human do the work."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pandas as pd
import streamlit as st

from audit.escaping import terminal
from train import human
from train.config import PRESETS, SANITY, STAGE_NAMES, TrainConfig
from train.runs import list_runs, read_stage_metrics, stage_status
from ui import data, human_page, runs_live
from ui.safety import OutsideAllowedRoots, checked, leading_outside, markdown, readable, workdir

NO_PRESET = "(none: the values below)"
CHART_METRICS = (
    ("loss", "training loss"),
    ("val_loss", "validation loss"),
    ("accuracy", "training accuracy"),
    ("val_accuracy", "validation accuracy"),
)
STAGE_FIGURES = (
    ("prediction_dynamics.png", "prediction dynamics (fixed validation batch, each evaluation)"),
    ("first_layer_filters.png", "first-layer filters (trained, beside the initial ones)"),
    ("batch_preview.png", "batch preview (the input tensor just before the network)"),
)


def render() -> None:
    st.header("Training recipe")
    runs_dir = workdir() / "runs"
    going = runs_live.active_runs(runs_dir)
    _start_form(workdir() / "reports", runs_dir, going)
    flash = st.session_state.pop("training_flash", None)
    if flash:
        getattr(st, flash[0])(flash[1])
    runs = list_runs(runs_dir)
    if not runs:
        st.info(f"No runs yet under {runs_dir}.")
        return
    names = [path.name for path in runs]
    if st.session_state.get("run_choice") not in names:
        st.session_state["run_choice"] = going[0].name if going else names[0]
    chosen = st.selectbox("Run", names, key="run_choice", format_func=terminal)
    view = st.radio(
        "View", ("Progress and verdicts", "Human baseline"), horizontal=True, key="training_view"
    )
    try:  # a run folder, or a file the page reads in it, may be a link to elsewhere
        run_path = checked(runs_dir / chosen)
        outside = leading_outside(_run_files(run_path))
        if outside:
            raise OutsideAllowedRoots(
                f"{', '.join(str(path.relative_to(run_path)) for path in outside[:3])} "
                "lead(s) outside the allowed roots"
            )
    except OutsideAllowedRoots as error:
        st.error(f"Not shown: {markdown(error)}")
        return
    if view == "Human baseline":
        human_page.render(run_path)
    elif runs_live.state(run_path).running:
        _live(run_path)
    else:
        _show(runs_live.state(run_path))


def _run_files(run_path: Path) -> list[Path]:
    """The files of a run the page reads as text (the figures are checked one by one)."""
    names = [
        "events.jsonl",
        runs_live.APP_FILE,
        runs_live.LOG_FILE,
        "ablation.md",
        human.BASELINE_FILE,
        human.VALIDATION_FILE,
    ]
    stages = sorted(run_path.glob("[0-9][0-9]-*/metrics.json"))
    return [run_path / name for name in names] + stages


def _start_form(reports_dir: Path, runs_dir: Path, going: list[Path]) -> None:
    reports = data.recent_reports(reports_dir)
    if not reports:
        st.info(
            "No audit report yet: scan a dataset on the Audit page first; "
            "training reads its report."
        )
        return
    preset = st.selectbox("Preset", (NO_PRESET, *PRESETS), key="train_preset")
    chosen_preset = None if preset == NO_PRESET else preset
    defaults = TrainConfig(**PRESETS.get(preset, {}))
    suffix = chosen_preset or "none"  # the fields below take the preset's values when it changes
    with st.form("start_training"):
        report = st.selectbox("Audit report", reports, format_func=lambda path: terminal(path.name))
        stages = st.multiselect(
            "Stages",
            list(STAGE_NAMES),
            default=list(STAGE_NAMES if chosen_preset else SANITY),
            key=f"train_stages_{suffix}",
        )
        columns = st.columns(5)
        image_size = columns[0].number_input(
            "Image size", 8, 4096, defaults.image_size, key=f"train_size_{suffix}"
        )
        batch_size = columns[1].number_input(
            "Batch size", 1, 65536, defaults.batch_size, key=f"train_batch_{suffix}"
        )
        steps = columns[2].number_input(
            "Steps per run", 1, 10_000_000, defaults.steps, key=f"train_steps_{suffix}"
        )
        evaluations = columns[3].number_input(
            "Evaluations", 1, 100_000, defaults.evaluations, key=f"train_evaluations_{suffix}"
        )
        seed = columns[4].number_input("Seed", 0, 2**32 - 1, defaults.seed, key="train_seed")
        if going:
            st.caption(
                f"Run {markdown(going[0].name)} is going: stop it or wait for it to start another."
            )
        submitted = st.form_submit_button(
            "Start in the background", key="start_run", disabled=bool(going), type="primary"
        )
    if not submitted:
        return
    if not stages:
        st.error("Choose at least one stage.")
        return
    try:
        report_dir = checked(report)
        runs = checked(runs_dir)
        root = data.summary(str(report_dir), data.mtime(report_dir / "summary.json"))["root"]
        options = {
            "stages": stages,
            "preset": chosen_preset,
            "image_size": image_size,
            "batch_size": batch_size,
            "steps": steps,
            "evaluations": evaluations,
            "seed": seed,
        }
        run_path = runs_live.start(
            runs,
            lambda run_id: runs_live.train_command(root, report_dir, runs, run_id, options),
        )
    except (OutsideAllowedRoots, runs_live.RunBusy) as error:
        st.error(f"Not started: {markdown(error)}")
        return
    # The new run is the one shown, and the page is drawn again with Start disabled.
    st.session_state["run_choice"] = run_path.name
    st.session_state["training_flash"] = ("success", f"Started run {markdown(run_path.name)}.")
    st.rerun()


@st.fragment(run_every=2.0)
def _live(run_path: Path) -> None:
    run = runs_live.state(run_path)
    if not run.running:
        st.rerun(scope="app")  # ended: Start comes back, the finished view replaces this one
    st.button(
        "Stop this run",
        key="stop_run",
        on_click=_stop,
        args=(run_path,),
        help="Ctrl-C for the run: the stage in progress is left out (reported as cut off)",
    )
    _show(run)


def _stop(run_path: Path) -> None:
    stopped = runs_live.stop(run_path)
    # No exit code for a run started before an app restart: not this server's child.
    code = "" if stopped.exit_code is None else f" (exit code {stopped.exit_code})"
    st.session_state["training_flash"] = (
        "warning",
        f"Stopped run {markdown(run_path.name)}{code}.",
    )


def _show(run: runs_live.RunState) -> None:
    st.subheader(f"Run {markdown(run.path.name)}: {run.status}")
    rows = runs_live.stage_rows(run)
    planned = run.planned
    if planned:
        unfinished = [
            runs_live.STATUS_LABELS[name] for name in ("running", "waiting", "cut off", "not run")
        ]
        done = sum(1 for row in rows if not row["status"].startswith(tuple(unfinished)))
        done = min(done, len(planned))
        st.progress(done / len(planned), text=f"{done} of {len(planned)} stages done")
    if run.status in ("refused", "failed", "interrupted"):
        _ended_early(run)
    elif run.status == "stopped":
        st.warning(
            "Stopped before the end: the stage in progress is marked cut off, the stages "
            "after it were not run."
        )
        if read_stage_metrics(run.path) and not (run.path / "ablation.md").exists():
            st.caption("The ablation report of the finished stages is built with:")
            st.code(
                terminal(f"python -m train report {shlex.quote(str(run.path))}"), language="bash"
            )
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    _curves(run.events)
    _verdicts(run.path)
    _figures(run.path)
    human_page.summary(run.path)


def _ended_early(run: runs_live.RunState) -> None:
    log = run.path / runs_live.LOG_FILE
    text = log.read_text(encoding="utf-8", errors="replace") if readable(log) else ""
    what = {
        "refused": "The run was refused (exit code 2)",
        "failed": f"The run failed (exit code {run.exit_code})",
        "interrupted": f"The run's process ended without finishing (exit code {run.exit_code}: "
        "killed, or the app restarted)",
    }[run.status]
    st.error(f"{what}; from its log ({markdown(log)}):")
    shown = runs_live.readable_log(text, run.exit_code)
    if shown:
        st.code(shown, language=None)


def _curves(events: list[dict]) -> None:
    frame = runs_live.curves(events)
    if frame.empty:
        return
    st.markdown("**Curves: one line per stage and run** (x: steps of that run)")
    columns = st.columns(2)
    for index, (metric, title) in enumerate(CHART_METRICS):
        part = frame[frame["metric"] == metric]
        if part.empty:
            continue
        with columns[index % 2]:
            st.caption(title)
            st.line_chart(part, x="step", y="value", color="curve", height=260)
    st.dataframe(runs_live.curve_table(frame), hide_index=True, width="stretch")


def _verdicts(run_path: Path) -> None:
    metrics = read_stage_metrics(run_path)
    if not metrics:
        return
    rows = []
    for stage in metrics:
        status = runs_live.STATUS_LABELS.get(stage_status(stage), stage_status(stage))
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
    st.markdown("**Verdicts**")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    for stage in metrics:
        status = stage_status(stage)
        if status != "pass" and stage.get("note"):
            st.warning(f"{markdown(stage['stage'])} ({status}): {markdown(stage['note'])}")


def _figures(run_path: Path) -> None:
    figure = run_path / "ablation.png"
    if _figure(figure):
        st.image(str(figure), caption="ablation.png: every training run of the comparison")
    trained = runs_live.trained_stages(run_path)
    if not trained:
        return
    folders = [folder.name for folder, _ in trained]
    chosen = st.selectbox(
        "Figures of the stage (trained stages, lowest best validation loss first)",
        folders,
        # Escaped: a run folder's name may hold bytes that are not UTF-8.
        key=f"figures_stage_{terminal(run_path.name)}",
    )
    folder = run_path / chosen
    for name, caption in STAGE_FIGURES:
        if _figure(folder / name):
            st.image(str(folder / name), caption=f"{chosen}: {caption}")


def _figure(path: Path) -> bool:
    """Whether the figure at path may be shown; one that leads outside the allowed roots
    is named instead."""
    if readable(path):
        return True
    if os.path.lexists(path):
        st.caption(f"{markdown(path.name)} is not shown: it leads outside the allowed roots.")
    return False
