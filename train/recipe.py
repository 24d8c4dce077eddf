"""Run a list of stages on a split, write each one's folder, and tabulate the verdicts.

The one library call behind `python -m train run` and the app's training page.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from train import ablation
from train.config import ABLATION, SANITY, TrainConfig
from train.data import SplitExamples
from train.runs import RunStore, StageResult
from train.stages import STAGES, Context

# Every stage of the recipe, by name (train.config.STAGE_NAMES lists them without TensorFlow).
ALL_STAGES = {
    **STAGES,
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


def run_recipe(
    split: SplitExamples,
    config: TrainConfig,
    stage_names: list[str],
    runs_dir: str = "runs",
    run_id: str | None = None,
    log: Callable[[str], None] | None = None,
) -> RecipeOutcome:
    """Run stage_names in order on split; every stage's folder is written as it ends."""
    store = RunStore(runs_dir, run_id)
    events = store.path / "events.jsonl"

    def record(event: dict) -> None:
        with open(events, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"time": time.time(), **event}) + "\n")

    context = Context(split, config, log=log, on_event=record)
    context.log(f"run {store.run_id}: stages {', '.join(stage_names)}; split: {split.how}")
    record({"event": "start", "stages": stage_names, "split": split.how})
    results = []
    grayscale = is_grayscale(context.preview())  # from real images, before any stage zeroes them
    for name in stage_names:
        context.log(f"--- {name}")
        started = time.monotonic()
        record({"event": "stage_start", "stage": name})
        result = ALL_STAGES[name](context)
        result.seconds = result.seconds or time.monotonic() - started
        folder = store.write_stage(result, preview=context.preview_for(result))
        ablation.write_extras(folder, result, grayscale=grayscale)
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
        results.append(result)
    outcome = RecipeOutcome(results, store.path)
    if any(name not in SANITY for name in stage_names) or "baseline" in stage_names:
        outcome.report = ablation.write_report(store.path)
    record({"event": "done", "sanity_failed": outcome.sanity_failed})
    return outcome
