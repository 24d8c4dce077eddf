"""On-disk run folders: runs/<run-id>/<NN-stage>/ with everything a stage produced.

Each stage folder holds config.json, history.csv (one row per evaluation: a run's steps are
split evenly into `evaluations` rounds, each ending with a validation pass; the column keeps
Keras's name, epoch), metrics.json (the hypothesis, the stage's status and the verdicts as
{name, value, threshold, passed, status}), model.keras when the stage has a model, and
batch_preview.png: the first batch of the stage's real training pipeline (shuffled,
augmented when the run is, at its image size; with shuffled labels for shuffled_labels)
above a validation batch at the same size, each image labelled; batch_preview.json says what
the preview shows (sizes, augmentation, labels).

A stage's status (STATUSES) is one of:

* pass: every verdict holds;
* fail: a verdict does not hold, and the run's training loss did move: the pipeline learned
  something, and the claim is false;
* not_converged: a verdict does not hold and the budget was spent before the training loss
  moved from the prior's entropy: raise --steps before reading anything into it;
* collapsed: the run ended with a validation accuracy below the majority rate (always
  predicting the most common training class), beyond validation noise;
* invalid_reference: the run it is compared with is fail, collapsed or not_converged, so
  the comparison says nothing (the stage's own verdicts are still written);
* skipped: the stage could not run (the reason is in metrics.json).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from audit.errors import AlreadyExists, CannotWrite, InvalidArgument
from audit.lock import folder_lock
from audit.reportio import atomic_text


@dataclass(frozen=True)
class RunSpec:
    """What one training run is: the model and everything around it."""

    model: str
    options: dict  # keyword arguments of the model builder (train.models.MODELS)
    learning_rate: float
    image_size: int
    batch_size: int
    steps: int  # the budget in optimisation steps
    evaluations: int  # validation passes, evenly over the steps
    augment: bool = False
    early_stopping: bool = False
    weight_decay: float = 0.0  # AdamW's decoupled weight decay (0: Adam)

    @property
    def images_per_evaluation(self) -> int:
        """Training images seen between two validation passes."""
        return self.batch_size * steps_per_evaluation(self.steps, self.evaluations)

    def describe(self) -> dict:
        """The spec as a plain dict (the first keys of a run summary)."""
        return asdict(self)


# RUN/run.json: the configuration, stages and split a run was started with (what --resume
# compares with).
RUN_FILE = "run.json"

STATUSES = ("pass", "fail", "not_converged", "collapsed", "invalid_reference", "skipped")
# Statuses that make a run unfit to be compared with (invalid_reference downstream).
BROKEN = ("fail", "not_converged", "collapsed", "invalid_reference")


@dataclass
class Verdict:
    """One checked claim of a stage: `passed` is `value <rule> threshold`.

    applicable False: the claim means nothing for this configuration (for example the prior
    bias against a zero bias when the model has a zero bias); it is written with status
    not_applicable and does not decide the stage."""

    name: str
    value: float
    threshold: float
    passed: bool
    rule: str  # e.g. "value <= threshold", said in words in `meaning`
    meaning: str = ""
    applicable: bool = True

    @property
    def status(self) -> str:
        if not self.applicable:
            return "not_applicable"
        return "pass" if self.passed else "fail"


@dataclass
class StageResult:
    """What a stage did and concluded."""

    name: str
    hypothesis: str
    verdicts: list[Verdict] = field(default_factory=list)
    history: dict[str, list[float]] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    seconds: float = 0.0
    skipped: str | None = None  # the reason, when the stage could not run
    # A keras.Model (Any: this module stays importable without TensorFlow), saved as
    # model.keras, not serialised in metrics.json.
    model: Any = None
    summary: dict = field(default_factory=dict)  # the run's figures (metrics.json "summary")
    extras: dict = field(default_factory=dict)  # artefacts written beside it (predictions, tables)
    # Set by the stage when the verdicts alone do not tell (see STATUSES); None: from verdicts.
    judged: str | None = None
    note: str = ""  # why the status is what it is, in words (a hint for not_converged)
    cause: str = ""  # for a broken status, the first stage up the chain that broke

    @property
    def verdicts_hold(self) -> bool:
        return all(verdict.passed for verdict in self.verdicts if verdict.applicable)

    @property
    def status(self) -> str:
        if self.skipped is not None:
            return "skipped"
        if self.judged is not None:
            return self.judged
        return "pass" if self.verdicts_hold else "fail"

    @property
    def passed(self) -> bool:
        return self.status == "pass"


class RunStore:
    """runs/<run-id>/ and its numbered stage folders."""

    def __init__(
        self, runs_dir: str | os.PathLike = "runs", run_id: str | None = None, resume: bool = False
    ):
        """resume: open an existing run folder to continue it (train.recipe, --resume): its
        finished stage folders are kept and counted, a stage folder cut off before its
        metrics.json was written is removed (the stage runs again)."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        self.run_id = run_id or stamp
        if not re.fullmatch(r"[A-Za-z0-9._-]+", self.run_id):
            raise InvalidArgument(
                f"run id may hold letters, digits, '.', '_' and '-' only: {self.run_id!r}"
            )
        self.path = Path(runs_dir) / self.run_id
        # One process per run folder: a second run with the same id, or a --resume of a run
        # still going, is refused (exit 2) before anything is read or removed. Held until
        # close() or the end of the process (a SIGKILL releases it).
        self._lock = ExitStack()
        self._lock.enter_context(folder_lock(self.path, "train run"))
        if resume:
            if not (self.path / RUN_FILE).is_file():
                raise InvalidArgument(
                    f"{self.path} is no run that can be resumed (no {RUN_FILE}: a run written "
                    "before --resume existed, or not a run folder)"
                )
            for folder in sorted(self.path.glob("[0-9][0-9]-*")):
                if _stage_metrics(folder) is None:
                    shutil.rmtree(folder)
            self.stages_written = len(finished_stages(self.path))
            return
        # A folder holding only a log (the app starts runs that way) is fine; an earlier run is not.
        if (self.path / "events.jsonl").exists() or any(self.path.glob("[0-9][0-9]-*")):
            raise AlreadyExists(
                f"run folder {self.path} already holds a run; choose another --run-id"
            )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CannotWrite(
                f"cannot create the run folder {self.path}: {error.strerror or error}"
            ) from None
        self.stages_written = 0

    def close(self) -> None:
        """Release the run folder's lock (the run is over)."""
        self._lock.close()

    def write_stage(
        self,
        result: StageResult,
        preview: dict | None = None,
        extras: Callable[[Path], None] | None = None,
    ) -> Path:
        """Write one stage's folder; returns it. preview: train.stages.Context.preview's dict;
        extras: writes the stage's other files into the folder (train.ablation.write_extras).
        metrics.json is written last, whole or not at all: a folder without it is a stage cut
        off while being written (readers leave it out; --resume removes it and runs the stage
        again from its checkpoint)."""
        self.stages_written += 1
        folder = self.path / f"{self.stages_written:02d}-{result.name}"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(result.config, indent=2, default=str) + "\n")
        write_history(folder / "history.csv", result.history)
        if result.model is not None:
            result.model.save(folder / "model.keras")
        if preview is not None:
            save_batch_preview(folder / "batch_preview.png", preview)
        if extras is not None:
            extras(folder)
        metrics = {
            "stage": result.name,
            "hypothesis": result.hypothesis,
            "passed": result.passed,
            "status": result.status,
            "note": result.note,
            "skipped": result.skipped,
            "seconds": round(result.seconds, 2),
            "verdicts": [
                _finite({**asdict(verdict), "status": verdict.status})
                for verdict in result.verdicts
            ],
            "summary": _finite(result.summary),
        }
        with atomic_text(folder / "metrics.json") as handle:
            handle.write(json.dumps(metrics, indent=2) + "\n")
        return folder


def steps_per_evaluation(steps: int, evaluations: int) -> int:
    """Steps between two validation passes: the budget split evenly over the evaluations (at
    most one per step), rounded up, so a run takes this many times its evaluations."""
    return math.ceil(steps / min(evaluations, steps))


def stage_status(metrics: dict) -> str:
    """A stage's status from its metrics.json; runs written before statuses existed (no
    "status" key) read as pass, fail or skipped."""
    status = metrics.get("status")
    if status in STATUSES:
        return str(status)
    if metrics.get("skipped"):
        return "skipped"
    return "pass" if metrics.get("passed") else "fail"


def run_summary(spec: dict, history: dict[str, list[float]], seconds: float) -> dict:
    """The figures a training run is compared by (metrics.json "summary", ablation.csv).
    steps_run: the optimisation steps the run took (fewer than its budget when early stopping
    ended it)."""
    best = int(np.argmin(history["val_loss"]))
    missing = [float("nan")] * len(history["val_loss"])
    rounds = len(history["loss"])
    steps = spec.get("steps")
    evaluations = spec.get("evaluations")
    return {
        **spec,
        "epochs_run": rounds,
        # Steps are rounded up to a whole number per evaluation (Context.fit).
        "steps_run": rounds * steps_per_evaluation(steps, evaluations)
        if steps and evaluations
        else None,
        "best_epoch": best + 1,
        "best_val_loss": history["val_loss"][best],
        "best_val_accuracy": history.get("val_accuracy", missing)[best],
        "final_loss": history["loss"][-1],
        "final_accuracy": history.get("accuracy", missing)[-1],
        "final_val_loss": history["val_loss"][-1],
        "final_val_accuracy": history.get("val_accuracy", missing)[-1],
        "train_seconds": round(seconds, 1),
    }


def _finite(row: dict) -> dict:
    """JSON has no NaN/inf: write them as strings a person can read."""
    return {
        key: (str(value) if isinstance(value, float) and not math.isfinite(value) else value)
        for key, value in row.items()
    }


def write_history(path: Path, history: dict[str, list[float]]) -> None:
    """One row per evaluation (Keras calls it an epoch), one column per metric (shorter
    series padded with blanks)."""
    columns = list(history)
    length = max((len(values) for values in history.values()), default=0)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", *columns])
        for epoch in range(length):
            writer.writerow(
                [
                    epoch + 1,
                    *(
                        history[column][epoch] if epoch < len(history[column]) else ""
                        for column in columns
                    ),
                ]
            )


def read_events(run_path: Path) -> list[dict]:
    """The run's progress events (events.jsonl), oldest first; [] before the first one."""
    path = Path(run_path) / "events.jsonl"
    if not path.is_file():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line being written right now
    return events


def list_runs(runs_dir: str | os.PathLike) -> list[Path]:
    """Run folders under runs_dir, newest first."""
    folder = Path(runs_dir)
    if not folder.is_dir():
        return []
    return sorted(
        (path for path in folder.iterdir() if path.is_dir()),
        key=lambda path: path.stat().st_mtime,
        reverse=True,
    )


def finished_stages(run_path: Path) -> list[tuple[Path, dict]]:
    """(folder, metrics.json) of every finished stage folder of a run, in stage order; a folder
    whose metrics.json is missing or unreadable (a run cut off while writing it) is left out:
    see incomplete_stages."""
    found = []
    for folder in sorted(Path(run_path).glob("[0-9][0-9]-*")):
        metrics = _stage_metrics(folder)
        if metrics is not None:
            found.append((folder, metrics))
    return found


def read_stage_metrics(run_path: Path) -> list[dict]:
    """metrics.json of every finished stage folder of a run, in stage order."""
    return [metrics for _, metrics in finished_stages(run_path)]


def incomplete_stages(run_path: Path) -> list[str]:
    """Stage folders of a run without a readable metrics.json (cut off while being written)."""
    return [
        folder.name
        for folder in sorted(Path(run_path).glob("[0-9][0-9]-*"))
        if _stage_metrics(folder) is None
    ]


def _stage_metrics(folder: Path) -> dict | None:
    try:
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) and "stage" in metrics else None


def read_history(path: Path) -> dict[str, list[float]]:
    """history.csv back into columns (blank cells skipped)."""
    columns: dict[str, list[float]] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            for key, value in row.items():
                if key != "epoch" and value != "":
                    columns.setdefault(key, []).append(float(value))
    return columns


def save_batch_preview(path: Path, preview: dict, columns: int = 8, limit: int = 16) -> Path:
    """The training batch (up to `limit` images) above the validation batch, each image
    labelled with its class, each part titled with what it is (shuffled, augmented, size);
    0..255 floats shown unscaled, enlarged (nearest neighbour) to at least 64 px so a 16 px
    input shows as 16 px blocks. Also writes batch_preview.json beside it."""
    names = preview["class_names"]
    size = int(preview["image_size"])
    tile = max(64, size)
    caption = 14
    parts = []
    for part, title in (
        (
            "train",
            f"training batch: shuffled, {'augmented' if preview['augment'] else 'not augmented'}"
            f", {size} px{', labels shuffled' if preview.get('shuffled_labels') else ''}",
        ),
        ("validation", f"validation batch: {size} px, not augmented"),
    ):
        images, labels = preview[part]
        images = np.clip(np.asarray(images, dtype=np.float32), 0, 255).astype(np.uint8)
        labels = np.asarray(labels).reshape(len(images), -1)[:, 0].astype(int)
        parts.append((title, images[:limit], labels[:limit]))
    heights = [
        caption + math.ceil(len(images) / columns) * (tile + caption) for _, images, _ in parts
    ]
    sheet = Image.new("RGB", (columns * tile, sum(heights) + 4), "white")
    draw = ImageDraw.Draw(sheet)
    top = 0
    for (title, images, labels), height in zip(parts, heights, strict=True):
        draw.text((2, top + 1), title, fill="black")
        for index in range(len(images)):
            picture = Image.fromarray(images[index]).resize((tile, tile), Image.Resampling.NEAREST)
            x = (index % columns) * tile
            y = top + caption + (index // columns) * (tile + caption)
            sheet.paste(picture, (x, y))
            draw.text((x + 2, y + tile), str(names[labels[index]])[:12], fill="black")
        top += height
    sheet.save(path)
    described = {
        "image_size": size,
        "batch_size": int(preview.get("batch_size", len(preview["train"][0]))),
        "augment": bool(preview["augment"]),
        "shuffled_labels": bool(preview.get("shuffled_labels", False)),
        "shown": limit,
        **{
            part: {
                "shape": list(np.asarray(preview[part][0]).shape),
                "labels": [
                    str(names[label]) for label in np.asarray(preview[part][1]).reshape(-1)[:limit]
                ],
            }
            for part in ("train", "validation")
        },
    }
    Path(path).with_suffix(".json").write_text(json.dumps(described, indent=2) + "\n")
    return Path(path)
