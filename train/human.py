"""Karpathy's human baseline: how well a person labels the run's own validation images.

"A Recipe for Training Neural Networks" asks for a human baseline before reading a model's
accuracy: if a person gets 80% of these images right, a model at 78% is near what the data
allows, and one at 99% may be reading something other than the picture (a watermark, the
file size). Here a seeded random sample of the run's validation images is shown without
labels (and without file names, which often carry the label), the person picks a class or
"can't tell" for each, and the answers are stored with the run:

* RUN/validation_images.json: the validation images of the run, written when the run starts
  (class names, absolute paths, labels), so the sample is drawn from what the model was
  measured on;
* RUN/human_baseline.json: the sample (seed, paths, the true labels, never shown) and each
  answer, rewritten whole (temporary file, then rename) under a lock on every answer: two
  tabs answering at once both land, and a crash never leaves half a file.

The human accuracy counts "can't tell" as wrong (a forced guess would be right by chance
sometimes, so this is a lower bound) and comes with its count and a Wilson 95% interval,
which stays inside 0..1 and is honest at the small counts a person labels (30 to 100). The
run's ablation.md gets a "Human baseline" section beside the model's validation accuracy.
No TensorFlow here: the app imports it.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audit.errors import InvalidArgument, UserError
from audit.reportio import atomic_text
from train.runs import finished_stages, stage_status

VALIDATION_FILE = "validation_images.json"
VALIDATION_FORMAT = "image-audit-validation-images/1"
BASELINE_FILE = "human_baseline.json"
BASELINE_FORMAT = "image-audit-human-baseline/1"
# "Can't tell" is no string a class could be named: answer(..., CANT_TELL) stores it as
# "cant_tell": true beside "answer": null.
CANT_TELL = None
Z_95 = 1.959963984540054  # the standard normal's 97.5% quantile
SECTION = "## Human baseline"


class HumanBaselineError(UserError):
    """The run has no validation list, or a baseline file that cannot be read."""


@dataclass(frozen=True)
class Score:
    """The human accuracy on the answered images."""

    answered: int
    correct: int
    cant_tell: int
    sample: int  # images drawn

    @property
    def accuracy(self) -> float:
        return self.correct / self.answered if self.answered else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.correct, self.answered)


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson's score interval for a binomial proportion ((nan, nan) without trials)."""
    if trials <= 0:
        return (float("nan"), float("nan"))
    if not 0 <= successes <= trials:
        raise InvalidArgument(f"successes must be within 0..{trials}, got {successes}")
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def record_validation_set(run_path: Path, class_names, paths, labels) -> Path:
    """Write RUN/validation_images.json (the recipe calls it when a run starts)."""
    path = Path(run_path) / VALIDATION_FILE
    document = {
        "format": VALIDATION_FORMAT,
        "class_names": [str(name) for name in class_names],
        "paths": [str(item) for item in paths],
        "labels": [int(label) for label in np.asarray(labels).reshape(-1)],
    }
    with atomic_text(path) as handle:
        handle.write(json.dumps(document) + "\n")
    return path


def validation_set(run_path: Path) -> tuple[list[str], list[str], list[int]]:
    """(class names, paths, labels) of a run's validation images."""
    path = Path(run_path) / VALIDATION_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HumanBaselineError(
            f"{Path(run_path).name} has no {VALIDATION_FILE} (runs started before the human "
            "baseline existed, or cut off before their first stage): start a new run"
        ) from None
    except (OSError, ValueError) as error:
        raise HumanBaselineError(f"cannot read {path}: {error}") from None
    names, paths, labels = (document.get(key) for key in ("class_names", "paths", "labels"))
    if (
        document.get("format") != VALIDATION_FORMAT
        or not isinstance(names, list)
        or not isinstance(paths, list)
        or not isinstance(labels, list)
        or len(paths) != len(labels)
        or any(not isinstance(label, int) or not 0 <= label < len(names) for label in labels)
    ):
        raise HumanBaselineError(f"{path} is not a validation list this version writes")
    return names, paths, labels


@contextmanager
def _locked(run_path: Path) -> Iterator[None]:
    with open(Path(run_path) / f".{BASELINE_FILE}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load(run_path: Path) -> dict | None:
    """The stored baseline (sample and answers), or None before the first draw."""
    path = Path(run_path) / BASELINE_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise HumanBaselineError(f"cannot read {path}: {error}") from None
    items = document.get("items") if isinstance(document, dict) else None
    if not isinstance(items, list) or document.get("format") != BASELINE_FORMAT:
        raise HumanBaselineError(f"{path} is not a human baseline this version writes")
    return document


def _save(run_path: Path, document: dict) -> None:
    with atomic_text(Path(run_path) / BASELINE_FILE) as handle:
        handle.write(json.dumps(document, indent=1) + "\n")


def draw(run_path: Path, count: int = 50, seed: int = 0, replace: bool = False) -> dict:
    """The sample to label: `count` validation images drawn at random with `seed` (all of
    them when there are fewer). An existing sample is kept (its answers belong to it) unless
    replace=True, which starts over."""
    if count < 1:
        raise InvalidArgument(f"count must be at least 1, got {count}")
    names, paths, labels = validation_set(run_path)
    if not paths:
        raise HumanBaselineError(f"{Path(run_path).name} has no validation image")
    with _locked(run_path):
        existing = load(run_path)
        if existing is not None and not replace:
            return existing
        chosen = np.random.default_rng(seed).permutation(len(paths))[:count]
        document = {
            "format": BASELINE_FORMAT,
            "seed": int(seed),
            "class_names": names,
            "items": [
                {
                    "path": paths[index],
                    "label": names[labels[index]],
                    "answer": None,
                    "cant_tell": False,
                }
                for index in chosen.tolist()
            ],
        }
        _save(run_path, document)
    return document


def answer(run_path: Path, position: int, given: str | None) -> dict:
    """Store the answer for the sample's image at `position`: a class name, or CANT_TELL
    (None) when the person cannot tell or the image cannot be shown."""
    with _locked(run_path):
        document = load(run_path)
        if document is None:
            raise HumanBaselineError("draw a sample first")
        if given is not CANT_TELL and given not in document["class_names"]:
            raise InvalidArgument(
                f"answer must be a class ({', '.join(document['class_names'])}) or can't tell"
            )
        if not 0 <= position < len(document["items"]):
            raise InvalidArgument(f"no image {position} in a sample of {len(document['items'])}")
        document["items"][position]["answer"] = given
        document["items"][position]["cant_tell"] = given is CANT_TELL
        _save(run_path, document)
        refresh_report(run_path)
    return document


def next_unanswered(document: dict) -> int | None:
    """The position of the first image without an answer (None when all are answered)."""
    return next(
        (index for index, item in enumerate(document["items"]) if not _answered(item)), None
    )


def _answered(item: dict) -> bool:
    return item.get("answer") is not None or bool(item.get("cant_tell"))


def score(document: dict | None) -> Score:
    """The human accuracy of a stored baseline."""
    items = (document or {}).get("items") or []
    answered = [item for item in items if _answered(item)]
    return Score(
        answered=len(answered),
        correct=sum(
            item.get("answer") == item["label"] and not item.get("cant_tell") for item in answered
        ),
        cant_tell=sum(bool(item.get("cant_tell")) for item in answered),
        sample=len(items),
    )


def model_accuracy(run_path: Path) -> dict | None:
    """The model to compare with: the trained stage with the lowest best validation loss
    ({stage, best_val_accuracy, status}); None before any trained stage."""
    best = None
    for _, metrics in finished_stages(run_path):
        summary = metrics.get("summary") or {}
        loss, accuracy = summary.get("best_val_loss"), summary.get("best_val_accuracy")
        if not isinstance(loss, (int, float)) or not isinstance(accuracy, (int, float)):
            continue
        if best is None or loss < best[0]:
            best = (loss, metrics["stage"], accuracy, stage_status(metrics))
    if best is None:
        return None
    return {"stage": best[1], "best_val_accuracy": float(best[2]), "status": best[3]}


def report_section(run_path: Path) -> str:
    """The Markdown section ablation.md ends with ("" before the first answer)."""
    try:
        result = score(load(run_path))
    except HumanBaselineError as error:
        return f"\n{SECTION}\n\nNot read: {error}\n"
    if not result.answered:
        return ""
    low, high = result.interval
    lines = [
        "",
        SECTION,
        "",
        f"- A person labelled {result.answered} of {result.sample} random validation images "
        f"without seeing their labels: {result.correct} right, accuracy {result.accuracy:.3f} "
        f'(95% Wilson interval {low:.3f} to {high:.3f}; {result.cant_tell} "can\'t tell" '
        "counted as wrong).",
    ]
    model = model_accuracy(run_path)
    if model is not None:
        try:
            images = f"all {len(validation_set(run_path)[1])}"
        except HumanBaselineError:  # the list went missing since the draw: still report
            images = "all the"
        lines.append(
            f"- The model: {model['stage']} (status {model['status']}), best validation "
            f"accuracy {model['best_val_accuracy']:.3f} on {images} validation images."
        )
    return "\n".join(lines) + "\n"


def refresh_report(run_path: Path) -> Path | None:
    """Replace the human-baseline section of RUN/ablation.md (when the run has one)."""
    path = Path(run_path) / "ablation.md"
    if not path.exists():
        return None
    text = path.read_text(encoding="utf-8")
    head = text.split(f"\n{SECTION}\n", 1)[0]
    if not head.endswith("\n"):
        head += "\n"
    with atomic_text(path) as handle:
        handle.write(head + report_section(run_path))
    return path


def image_bytes(path: str) -> bytes | None:
    """An image's bytes for display (None when it cannot be read any more)."""
    try:
        with open(os.fsencode(path), "rb") as handle:
            return handle.read()
    except OSError:
        return None
