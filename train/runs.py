"""On-disk run folders: runs/<run-id>/<NN-stage>/ with everything a stage produced.

Each stage folder holds config.json, history.csv (one row per epoch), metrics.json
(the hypothesis and the verdicts as {name, value, threshold, passed}), model.keras when the
stage has a model, and batch_preview.png: the first batch of the stage's real training
pipeline (shuffled, augmented when the run is, at its image size; zeroed for
input_independence) above a validation batch at the same size, each image labelled;
batch_preview.json says what the preview shows (sizes, augmentation, labels).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from audit.errors import AlreadyExists, CannotWrite, InvalidArgument


@dataclass(frozen=True)
class RunSpec:
    """What one training run is: the model and everything around it."""

    model: str
    options: dict  # keyword arguments of the model builder (train.models.MODELS)
    learning_rate: float
    image_size: int
    batch_size: int
    augment: bool = False
    early_stopping: bool = False

    def describe(self) -> dict:
        """The spec as a plain dict (the first keys of a run summary)."""
        return asdict(self)


@dataclass
class Verdict:
    """One checked claim of a stage: `passed` is `value <rule> threshold`."""

    name: str
    value: float
    threshold: float
    passed: bool
    rule: str  # e.g. "value <= threshold", said in words in `meaning`
    meaning: str = ""


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

    @property
    def passed(self) -> bool:
        return self.skipped is None and all(verdict.passed for verdict in self.verdicts)


class RunStore:
    """runs/<run-id>/ and its numbered stage folders."""

    def __init__(self, runs_dir: str | os.PathLike = "runs", run_id: str | None = None):
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        self.run_id = run_id or stamp
        if not re.fullmatch(r"[A-Za-z0-9._-]+", self.run_id):
            raise InvalidArgument(
                f"run id may hold letters, digits, '.', '_' and '-' only: {self.run_id!r}"
            )
        self.path = Path(runs_dir) / self.run_id
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

    def write_stage(self, result: StageResult, preview: dict | None = None) -> Path:
        """Write one stage's folder; returns it. preview: train.stages.Context.preview's dict."""
        self.stages_written += 1
        folder = self.path / f"{self.stages_written:02d}-{result.name}"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(result.config, indent=2, default=str) + "\n")
        metrics = {
            "stage": result.name,
            "hypothesis": result.hypothesis,
            "passed": result.passed,
            "skipped": result.skipped,
            "seconds": round(result.seconds, 2),
            "verdicts": [_finite(asdict(verdict)) for verdict in result.verdicts],
            "summary": _finite(result.summary),
        }
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        write_history(folder / "history.csv", result.history)
        if result.model is not None:
            result.model.save(folder / "model.keras")
        if preview is not None:
            save_batch_preview(folder / "batch_preview.png", preview)
        return folder


def run_summary(spec: dict, history: dict[str, list[float]], seconds: float) -> dict:
    """The figures a training run is compared by (metrics.json "summary", ablation.csv)."""
    best = int(np.argmin(history["val_loss"]))
    missing = [float("nan")] * len(history["val_loss"])
    return {
        **spec,
        "epochs_run": len(history["loss"]),
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
    """One row per epoch, one column per metric (shorter series padded with blanks)."""
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


def read_stage_metrics(run_path: Path) -> list[dict]:
    """metrics.json of every stage folder of a run, in stage order."""
    return [
        json.loads(path.read_text())
        for path in sorted(Path(run_path).glob("[0-9][0-9]-*/metrics.json"))
    ]


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
            f", {size} px{', zeroed inputs' if preview.get('zero_inputs') else ''}",
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
        "zero_inputs": bool(preview.get("zero_inputs", False)),
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
