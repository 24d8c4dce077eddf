"""Run a list of stages on a split, write each one's folder, and tabulate the verdicts.

The one library call behind `python -m train run` and the app's training page.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from train import ablation, export, human, learning_curve, lr_range, resume, tensorboard_logs
from train.checkpoints import Checkpoints
from train.config import ABLATION, LEARNING_CURVE, LR_RANGE, SANITY, TrainConfig
from train.data import SplitExamples
from train.runs import RunStore, StageResult, finished_stages
from train.stages import STAGES, Context

# Every stage of the recipe, by name (train.config.STAGE_NAMES lists them without TensorFlow).
ALL_STAGES = {
    LR_RANGE: lr_range.lr_range,
    **STAGES,
    LEARNING_CURVE: learning_curve.learning_curve,
    **{name: ablation.chain_stage(name) for name in ABLATION},
    "tuning": ablation.tuning,
    "ensemble": ablation.ensemble,
}


@dataclass
class RecipeOutcome:
    """The stages' results and where they were written."""

    results: list[StageResult]
    run_path: Path
    report: dict[str, Path] | None = None  # ablation.csv, ablation.md, ablation.png
    export: Path | None = None  # RUN/export/ (train.export), None when no stage qualified
    export_note: str = ""  # what was exported, or why nothing was
    test: dict | None = None  # test.json: the held-out test split, evaluated once at the end

    @property
    def sanity_failed(self) -> bool:
        """Whether a sanity stage ended with any status but pass or skipped (exit 1)."""
        return any(
            result.status not in ("pass", "skipped")
            for result in self.results
            if result.name in SANITY
        )

    def table(self) -> str:
        """The verdict table printed at the end of a run: each verdict with its result, each
        stage's status where the verdicts do not say it, and the stage's note."""
        lines = [
            f"{'stage':20s} {'verdict':40s} {'value':>10s} {'rule':>6s} {'threshold':>10s}  result"
        ]
        for result in self.results:
            if result.skipped:
                lines.append(
                    f"{result.name:20s} {'(skipped)':40s} {'':>10s} {'':>6s} {'':>10s}  "
                    f"SKIPPED: {result.skipped}"
                )
            for verdict in result.verdicts:
                rule = verdict.rule.replace("value", "").replace("threshold", "").strip()
                lines.append(
                    f"{result.name:20s} {verdict.name:40s} {verdict.value:10.4f} {rule:>6s} "
                    f"{verdict.threshold:10.4f}  {verdict.status.upper()}"
                )
            if result.status not in ("pass", "fail", "skipped"):
                lines.append(
                    f"{result.name:20s} {'=> stage status':40s} {'':>10s} {'':>6s} {'':>10s}  "
                    f"{result.status.upper()}: {result.note}"
                )
        return "\n".join(lines)


def is_grayscale(preview: dict) -> bool:
    """Whether every image of the preview's validation batch has equal channels (a grayscale
    dataset decoded to RGB)."""
    images = preview["validation"][0]
    return bool(images.size) and bool(
        (images[..., 0] == images[..., 1]).all() and (images[..., 1] == images[..., 2]).all()
    )


def _take_rates(context: Context, result: StageResult) -> None:
    """Under --learning-rate auto, the rates lr_range proposed become the run's (the stage
    folders written after it record them in config.json and their summary)."""
    if result.name == LR_RANGE and context.config.auto_learning_rate:
        context.config, line = lr_range.apply(context.config, result)
        context.log(line)


def run_recipe(
    split: SplitExamples,
    config: TrainConfig,
    stage_names: list[str],
    runs_dir: str = "runs",
    run_id: str | None = None,
    log: Callable[[str], None] | None = None,
    resume_run: bool = False,
) -> RecipeOutcome:
    """Run stage_names in order on split; every stage's folder is written as it ends. Every
    training run is checkpointed after each evaluation (RUN/checkpoints/); resume_run: continue
    the run folder runs_dir/run_id (train.resume): refused, InvalidArgument, when it was made
    with another configuration, stages or split."""
    stage_names = resume.with_lr_range(stage_names, config)
    store = RunStore(runs_dir, run_id, resume=resume_run)
    description = resume.describe(config, stage_names, split)
    if resume_run:
        resume.check(store.path, description)
    else:
        resume.write(store.path, description)
    finished = (
        {metrics["stage"]: metrics for _, metrics in finished_stages(store.path)}
        if resume_run
        else {}
    )
    events = store.path / "events.jsonl"
    # What the model is measured on, for the human baseline (train.human).
    human.record_validation_set(store.path, split.class_names, split.val_paths, split.val_labels)

    def record(event: dict) -> None:
        with open(events, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"time": time.time(), **event}) + "\n")

    context = Context(split, config, log=log, on_event=record)
    context.tensorboard_run = store.path
    context.checkpoints = Checkpoints(store.path / "checkpoints", log=context.log)
    context.log(f"run {store.run_id}: stages {', '.join(stage_names)}; split: {split.how}")
    record({"event": "start", "stages": stage_names, "split": split.how})
    results = []
    grayscale = is_grayscale(context.preview())  # from real images, before any stage zeroes them
    for name in stage_names:
        context.log(f"--- {name}")
        if name in finished:
            result = resume.read_back(finished[name])
            if name in resume.REPLAYED:  # what later stages take from memory, not retrained
                ALL_STAGES[name](context)
            context.log(f"{name}: {result.status.upper()} (finished before; read back)")
            _take_rates(context, result)
            results.append(result)
            continue
        started = time.monotonic()
        record({"event": "stage_start", "stage": name})
        result = ALL_STAGES[name](context)
        result.seconds = result.seconds or time.monotonic() - started
        preview = context.preview_for(result)
        tensorboard_logs.write_preview(store.path, name, preview)
        store.write_stage(
            result,
            preview=preview,
            extras=partial(
                ablation.write_extras, result=result, grayscale=grayscale, context=context
            ),
        )
        note = f": {result.note}" if result.note else ""
        context.log(f"{name}: {result.status.upper()}{note} ({result.seconds:.1f} s)")
        record(
            {
                "event": "stage_end",
                "stage": name,
                "passed": result.passed,
                "status": result.status,
                "skipped": result.skipped,
            }
        )
        _take_rates(context, result)
        results.append(result)
    outcome = RecipeOutcome(results, store.path)
    # After every stage: nothing a stage chose can depend on the test split.
    outcome.export, outcome.export_note = export.export_best(store.path, split.class_names)
    context.log(outcome.export_note)
    if split.test_paths:
        outcome.test = export.evaluate_held_out(store.path, outcome.export, split)
    if any(name not in SANITY for name in stage_names) or "baseline" in stage_names:
        outcome.report = ablation.write_report(store.path)
    record({"event": "done", "sanity_failed": outcome.sanity_failed})
    store.close()
    return outcome
