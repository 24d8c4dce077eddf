"""Label issues from out-of-fold predictions (confident learning, with cleanlab).

A model cannot judge the labels it was trained on: it has memorised them. Here every usable
image gets class probabilities from a model that never saw it:

* the usable files of an audit report (train.data.load_examples) are cut into K folds,
  stratified by class, with every duplicate group (duplicates.csv: the same picture, or a
  near copy) inside one fold, so no fold is judged by a model that trained on a copy of it;
* for each fold, the recipe's baseline (train.stages.Context: the same pipeline, the output
  bias from the class prior of the other folds, the same random seed) trains on the other
  K - 1 folds and predicts the held-out one;
* cleanlab's `find_label_issues` picks the images whose given label the out-of-fold
  probabilities contradict (confident learning), ranked by `get_label_quality_scores`
  (self-confidence: the probability the model gives the given label; lower = more doubtful).

`write_label_issues` puts label_issues.csv (audit.model_findings's format) with the
out-of-fold accuracy, the per-class confusion (train.diagnostics) and a JSON summary into the
audit report folder; the next scan of that folder imports them as suspected_label_issue
findings (audit.model_findings.load), while each file still has the sha256 it was judged on.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from audit import __version__
from audit.errors import CannotWrite, InvalidArgument, MissingDependency
from audit.escaping import for_report
from audit.lock import FolderBusy, folder_lock
from audit.model_findings import (
    LABEL_ISSUES_NAME,
    SHA256_KEY,
    LabelIssue,
    file_kind,
    label_issues_csv,
)
from audit.outputs import refuse_inside_dataset
from audit.reportio import Report
from train import data
from train.config import TrainConfig

SUMMARY_NAME = "label_issues.json"
CONFUSION_PREFIX = "label_issues_"
# What write_outputs puts into the report folder, in the order it renames them there:
# label_issues.json last, since it names the sha256 of the label_issues.csv it belongs to (a
# run stopped before it leaves a pair the scan refuses, never new rows under old figures).
CONFUSION_NAMES = tuple(
    f"{CONFUSION_PREFIX}{name}" for name in ("confusion.csv", "confusion.png", "per_class.csv")
)
OUTPUT_NAMES = (*CONFUSION_NAMES, LABEL_ISSUES_NAME, SUMMARY_NAME)
# The outputs are written into a fresh folder of a random name inside the report folder
# (nothing planted there can be followed), then renamed into place; one left by a killed run
# is removed by the next run, under the report folder's lock.
STAGING_PREFIX = ".label_issues-staging-"
DEFAULT_FOLDS = 5
LOCK_WAIT = 600.0  # seconds to wait for another writer of the report folder
# The recipe's models that out_of_fold can train (train.models.MODELS, built by Context.build).
MODELS = ("small_xception", "simple_cnn", "wider_cnn")
# small_xception by default: on the demo digits with 5% of the labels flipped (5 folds, 600
# steps, seed 1) the baseline simple_cnn (learning rate 0.003, 32 px) reached an out-of-fold
# accuracy of 0.72 and ranked 65% of the flips in its worst k; small_xception (0.001, 16 px)
# reached 0.92 and 96% (bench/label_issues.py). Confident learning is only as good as the
# held-out model.
DEFAULT_MODEL = "small_xception"
# Budget per fold when no --steps or --preset says otherwise: 600 steps of 32 images is about
# 15 passes over a 1,300-image training part.
DEFAULT_STEPS = 600
INSTALL_HINT = "pip install 'image-audit[labels]' (or pip install 'cleanlab>=2.6')"


def label_issues_config(
    preset: str | None = None,
    model_name: str = DEFAULT_MODEL,
    image_size: int | None = None,
    batch_size: int | None = None,
    steps: int | None = None,
    learning_rate: float | None = None,
    seed: int | None = TrainConfig.seed,
) -> TrainConfig:
    """The training configuration of each fold: the preset's (or the recipe's defaults with
    DEFAULT_STEPS), then the options given. One evaluation per fold: nothing is chosen on the
    held-out fold, it is only predicted."""
    from train.config import PRESETS

    if preset is not None and preset not in PRESETS:
        raise InvalidArgument(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    if model_name not in MODELS:
        raise InvalidArgument(f"model must be one of {', '.join(MODELS)}, got {model_name!r}")
    settings: dict[str, Any] = dict(PRESETS[preset]) if preset else {"steps": DEFAULT_STEPS}
    given = {"image_size": image_size, "batch_size": batch_size, "steps": steps}
    settings.update({key: value for key, value in given.items() if value is not None})
    if learning_rate is not None:
        settings["learning_rate"] = learning_rate
    settings.update(evaluations=1, seed=seed)
    return TrainConfig(**settings)


def rescan_hint(root: str, report: str) -> str:
    """What to run so that the report shows the label issues (the scan imports them)."""
    return (
        "Re-scan (with your scan's options; unchanged files come from the cache) to bring "
        f"them into the report: python -m audit scan {root} --out {report}"
    )


def require_cleanlab():
    """The cleanlab modules used here; MissingDependency (exit 2) with the install hint."""
    try:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores
    except ImportError as error:
        raise MissingDependency(
            f"label issues need the optional cleanlab package ({error}): {INSTALL_HINT}"
        ) from None
    return find_label_issues, get_label_quality_scores


@dataclass
class OutOfFold:
    """Out-of-fold class probabilities of every example, and which fold held it out."""

    examples: data.Examples
    probabilities: np.ndarray  # (n, classes), rows sum to 1
    folds: np.ndarray  # 1-based fold number of each example
    per_fold: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def accuracy(self) -> float:
        return float((self.predicted == self.examples.labels).mean())


def assign_folds(
    labels: np.ndarray, groups: np.ndarray, folds: int, seed: int | None
) -> np.ndarray:
    """0-based fold of each example: stratified by class, every duplicate group (groups >= 0,
    as train.data.Examples holds them) in one fold, seeded.

    Units are whole duplicate groups or single files (the unit train.data's split keeps on one
    side). Units are dealt, largest first then in a seeded order, each to the fold that holds
    the fewest of its class so far (ties: the smallest fold), so every class spreads evenly.
    """
    if folds < 2:
        raise InvalidArgument(f"folds must be at least 2, got {folds}")
    labels = np.asarray(labels)
    count = labels.size
    unit_of = np.where(groups >= 0, groups, -(np.arange(count) + 1))
    rng = np.random.default_rng(seed)
    units, inverse = np.unique(unit_of, return_inverse=True)
    order = rng.permutation(units.size)
    sizes = np.bincount(inverse, minlength=units.size)
    order = order[np.argsort(-sizes[order], kind="stable")]
    classes = int(labels.max()) + 1 if count else 0
    per_class = np.zeros((folds, classes), dtype=np.int64)
    per_fold = np.zeros(folds, dtype=np.int64)
    fold_of_unit = np.empty(units.size, dtype=np.int64)
    members: list[list[int]] = [[] for _ in range(units.size)]
    for index, unit in enumerate(inverse):
        members[unit].append(index)
    for unit in order:
        unit_labels = labels[members[unit]]
        load = per_class[:, unit_labels].sum(axis=1)
        fold = int(np.lexsort((per_fold, load))[0])
        fold_of_unit[unit] = fold
        np.add.at(per_class[fold], unit_labels, 1)
        per_fold[fold] += len(members[unit])
    return fold_of_unit[inverse]


def check_folds(fold_of: np.ndarray, labels: np.ndarray, class_names, folds: int) -> None:
    """InvalidArgument when a fold's training part (the other folds) lacks a class: the prior
    bias and the model need every class."""
    empty = [str(fold + 1) for fold in range(folds) if not (fold_of == fold).any()]
    if empty:
        raise InvalidArgument(
            f"with {folds} folds, fold(s) {', '.join(empty)} would hold no image (fewer images "
            "or duplicate groups than folds): use fewer --folds"
        )
    for fold in range(folds):
        training = labels[fold_of != fold]
        counts = np.bincount(training, minlength=len(class_names))
        missing = [name for name, n in zip(class_names, counts, strict=True) if n == 0]
        if missing:
            raise InvalidArgument(
                f"with {folds} folds, fold {fold + 1}'s training part has no image of "
                f"{', '.join(for_report(name) for name in missing)} (all of the class's usable "
                "images are copies of one picture, or too few): add images, or use fewer --folds"
            )


def out_of_fold(
    examples: data.Examples,
    config: TrainConfig,
    folds: int = DEFAULT_FOLDS,
    log: Callable[[str], None] | None = None,
    model_name: str = DEFAULT_MODEL,
) -> OutOfFold:
    """Train the recipe's baseline K times, each on all folds but one, and predict the one
    it did not see. log gets each training line and one line per fold."""
    from train.bias import probabilities
    from train.stages import Context

    started = time.monotonic()
    say = log or (lambda line: print(line, flush=True))
    if model_name not in MODELS:
        raise InvalidArgument(f"model must be one of {', '.join(MODELS)}, got {model_name!r}")
    examples, _ = data.without_empty_classes(examples)
    class_names = examples.class_names
    fold_of = assign_folds(examples.labels, examples.groups, folds, config.seed)
    check_folds(fold_of, examples.labels, class_names, folds)
    result = np.zeros((len(examples.paths), len(class_names)), dtype=np.float64)
    per_fold = []
    for fold in range(folds):
        fold_started = time.monotonic()
        held = fold_of == fold
        split = data.SplitExamples(
            class_names=class_names,
            train_paths=[path for path, out in zip(examples.paths, held, strict=True) if not out],
            train_labels=examples.labels[~held],
            val_paths=[path for path, out in zip(examples.paths, held, strict=True) if out],
            val_labels=examples.labels[held],
            how=f"fold {fold + 1} of {folds} held out",
        )
        context = Context(split, config, log=say)
        model = context.build(model_name, **_model_options(model_name, config))
        context.fit(model, f"fold {fold + 1}/{folds}")
        pipeline = context.dataset("val", shuffle=False, cache=False)
        logits = model.predict(pipeline, verbose=0)
        result[held] = probabilities(logits, context.init.binary)
        accuracy = float((result[held].argmax(axis=1) == split.val_labels).mean())
        seconds = time.monotonic() - fold_started
        per_fold.append(
            {
                "fold": fold + 1,
                "trained_on": len(split.train_paths),
                "held_out": len(split.val_paths),
                "accuracy": round(accuracy, 4),
                "seconds": round(seconds, 1),
            }
        )
        say(
            f"fold {fold + 1}/{folds}: trained on {len(split.train_paths)}, predicted "
            f"{len(split.val_paths)} held-out images, accuracy {accuracy:.3f} ({seconds:.0f} s)"
        )
    return OutOfFold(
        examples=examples,
        probabilities=result,
        folds=fold_of + 1,
        per_fold=per_fold,
        seconds=time.monotonic() - started,
    )


def _model_options(name: str, config: TrainConfig) -> dict:
    """The options the recipe builds each model with (as train.stages and train.ablation do)."""
    if name == "small_xception":
        return {
            "sizes": config.xception_sizes,
            "final": config.xception_final,
            "batchnorm_momentum": config.batchnorm_momentum,
        }
    if name == "wider_cnn":
        return {"width": config.width, "multiplier": config.capacity_multiplier}
    return {"width": config.width}


def find_issues(oof: OutOfFold, sha256_of: dict[str, str]) -> list[LabelIssue]:
    """cleanlab's label issues of the out-of-fold probabilities, worst (lowest label-quality
    score) first; sha256_of maps each relative path to the checksum the audit recorded."""
    find_label_issues, get_label_quality_scores = require_cleanlab()
    labels = oof.examples.labels.astype(np.int64)
    # n_jobs=1: cleanlab's process pool costs more than it saves on a few thousand rows.
    flagged = find_label_issues(labels, oof.probabilities, n_jobs=1)
    scores = get_label_quality_scores(labels, oof.probabilities)
    predicted = oof.predicted
    names = oof.examples.class_names
    indices = np.flatnonzero(flagged)
    indices = indices[np.argsort(scores[indices], kind="stable")]
    return [
        LabelIssue(
            path=for_report(oof.examples.relpaths[index]),
            sha256=sha256_of[oof.examples.relpaths[index]],
            label=names[labels[index]],
            suggested_label=names[predicted[index]],
            score=float(scores[index]),
            fold=int(oof.folds[index]),
        )
        for index in indices
    ]


def write_outputs(
    folder: Path,
    oof: OutOfFold,
    issues: list[LabelIssue],
    details: dict,
) -> dict:
    """label_issues.csv, the out-of-fold confusion (label_issues_confusion.csv/.png,
    label_issues_per_class.csv) and label_issues.json (naming the table's sha256) in folder,
    written into a staging folder and renamed into place in OUTPUT_NAMES order (the JSON
    last); returns the JSON document. The caller holds the report folder's lock."""
    from train.diagnostics import (
        confusion_matrix,
        per_class_metrics,
        worst_class_recall,
        write_confusion,
    )

    names = [str(name) for name in oof.examples.class_names]
    confusion = confusion_matrix(oof.examples.labels, oof.predicted, len(names))
    rows = per_class_metrics(confusion, names)
    table = label_issues_csv(issues)
    images = len(oof.examples.paths)
    majority = float(np.bincount(oof.examples.labels).max() / images) if images else 0.0
    weak = is_weak(oof.accuracy, majority)
    document = {
        "tool": "image-audit",
        "version": __version__,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **details,
        "folds": len(oof.per_fold),
        "images": images,
        "classes": names,
        "out_of_fold_accuracy": round(oof.accuracy, 4),
        "worst_class_recall": worst_class_recall(rows),
        "per_class": rows,
        "per_fold": oof.per_fold,
        "majority_rate": round(majority, 4),
        "weak_model": weak,
        "label_issues": len(issues),
        "flagged_share": round(len(issues) / images, 4) if images else 0.0,
        SHA256_KEY: hashlib.sha256(table).hexdigest(),
        "method": "cleanlab.filter.find_label_issues (filter_by prune_by_noise_rate), ranked "
        "by cleanlab.rank.get_label_quality_scores (self_confidence)",
        "cleanlab_version": _version("cleanlab"),
        "seconds": round(oof.seconds, 1),
        "files": sorted(OUTPUT_NAMES),
    }
    _remove_leftovers(folder)
    stage = Path(tempfile.mkdtemp(dir=folder, prefix=STAGING_PREFIX))
    try:
        (stage / LABEL_ISSUES_NAME).write_bytes(table)
        write_confusion(stage, confusion, names, prefix=CONFUSION_PREFIX)
        with open(stage / SUMMARY_NAME, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2, ensure_ascii=False, allow_nan=False)
            handle.write("\n")
        for name in OUTPUT_NAMES:
            os.replace(stage / name, folder / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return document


def _remove_leftovers(folder: Path) -> None:
    """Staging folders of earlier runs that were killed while writing (the caller holds the
    report folder's lock, so no run is writing through one now)."""
    for entry in folder.glob(f"{STAGING_PREFIX}*"):
        if stat.S_ISDIR(os.lstat(entry).st_mode):
            shutil.rmtree(entry, ignore_errors=True)


def check_outputs(folder: Path) -> None:
    """CannotWrite (exit 2) when label-issues could not write its outputs into folder (an
    output name taken by a folder, a pipe or a device; a folder it may not write into):
    said before minutes of training, not after."""
    for name in OUTPUT_NAMES:
        path = folder / name
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue
        except OSError as error:
            raise CannotWrite(f"cannot write {path}: {error}") from None
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):  # a link is replaced, not followed
            raise CannotWrite(
                f"{path} is {file_kind(mode)}: label-issues would replace it with its file "
                "there; remove it, or choose another --report"
            )
    try:
        os.rmdir(tempfile.mkdtemp(dir=folder, prefix=".label_issues-probe-"))
    except OSError as error:
        raise CannotWrite(f"cannot write into {folder}: {error}") from None


def is_weak(accuracy: float, majority_rate: float) -> bool:
    """Whether the held-out model removed less than half of the errors of always predicting
    the most common class: its suggestions then say more about the model than about the
    labels (on the demo digits, 30 steps per fold gave 0.23 out-of-fold accuracy against a
    0.11 majority rate and flagged 38% of the images; 600 steps gave 0.98 and flagged 0.1%)."""
    return accuracy < (1.0 + majority_rate) / 2.0


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def label_issues(
    root: str | os.PathLike,
    report_dir: str | os.PathLike,
    config: TrainConfig,
    folds: int = DEFAULT_FOLDS,
    model_name: str = DEFAULT_MODEL,
    log: Callable[[str], None] | None = None,
) -> dict:
    """The whole command: out-of-fold probabilities for the usable files of the audit report
    in report_dir (made from root, not stale), cleanlab's label issues, and the files
    write_outputs writes into report_dir. Returns label_issues.json's document, with "issues"
    (the LabelIssue rows, worst first) added."""
    require_cleanlab()  # before minutes of training, not after
    report_path = Path(report_dir)
    examples = data.load_examples(report_path, root=root)
    refuse_inside_dataset(examples.root, report_path, "--report")
    # Refused here, before TensorFlow loads and minutes are spent: one class has no label
    # to doubt (train.bias used to refuse it only inside the first fold, exit 3).
    usable = data.without_empty_classes(examples)[0].class_names
    if len(usable) < 2:
        raise InvalidArgument(
            f"label issues need at least two classes with usable images; found {len(usable)}"
        )
    check_outputs(report_path)
    sha256_of = {row.path: row.sha256 for row in Report(report_path).images()}
    oof = out_of_fold(examples, config, folds, log, model_name)
    issues = find_issues(oof, sha256_of)
    left_out = [name for name in examples.class_names if name not in set(oof.examples.class_names)]
    details = {
        "root": str(examples.root),
        "report": str(report_path.absolute()),
        "model": model_name,
        "config": {
            key: getattr(config, key)
            for key in (
                "image_size",
                "batch_size",
                "steps",
                "learning_rate",
                "seed",
                "bias",
                "normalization",
            )
        },
        "skipped_errors": examples.skipped_errors,
        "left_out_classes": left_out,
    }
    say = log or (lambda line: print(line, flush=True))
    with _report_lock(report_path, say):
        document = write_outputs(report_path, oof, issues, details)
    return {**document, "issues": issues}


@contextmanager
def _report_lock(folder: Path, log: Callable[[str], None]) -> Iterator[None]:
    """The report folder's lock (one writer at a time), waited for up to LOCK_WAIT seconds:
    minutes of training are not thrown away because a scan is writing there just then."""
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            with folder_lock(folder, "label-issues"):
                yield
            return
        except FolderBusy as busy:
            if time.monotonic() > deadline:
                raise
            log(f"waiting for the report folder: {busy}")
            time.sleep(2.0)


# ---------------------------------------------------------------- measuring (bench, tests)


def copy_with_flipped_labels(
    source: Path,
    dest: Path,
    fraction: float,
    seed: int,
    pattern: str = "*",
    per_class: int | None = None,
) -> list[str]:
    """Copy the files matching pattern of each class folder of source (the first per_class
    of each, by name, when given) into dest, filing a seeded random `fraction` of them under
    another class (chosen at random): known label noise. Returns the flipped files' paths in
    dest (POSIX, relative)."""
    import shutil

    if not 0.0 <= fraction < 1.0:
        raise InvalidArgument(f"fraction must be in [0, 1), got {fraction}")
    folders = sorted(path.name for path in source.iterdir() if path.is_dir())
    files = [
        (name, path)
        for name in folders
        for path in sorted(p for p in (source / name).glob(pattern) if p.is_file())[:per_class]
    ]
    classes = sorted({name for name, _ in files})  # folders with no such file are no class
    rng = np.random.default_rng(seed)
    chosen = set(rng.choice(len(files), round(fraction * len(files)), replace=False).tolist())
    flipped = []
    for index, (name, path) in enumerate(files):
        label = name
        if index in chosen:
            label = classes[
                (classes.index(name) + int(rng.integers(1, len(classes)))) % len(classes)
            ]
            flipped.append(f"{label}/{path.name}")
        target = dest / label / path.name
        if target.exists():
            raise InvalidArgument(f"two classes of {source} hold {path.name}: names must differ")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return flipped


def precision_recall_at_k(ranked: list[str], truth: list[str], k: int | None = None) -> tuple:
    """Precision and recall of the first k of ranked (worst first) against the truly wrong
    paths; k defaults to their number. Fewer than k ranked: precision over those there are."""
    k = len(truth) if k is None else k
    if k < 1 or not truth:
        raise ValueError("need at least one truly wrong label and k >= 1")
    top = ranked[:k]
    hits = len(set(top) & set(truth))
    return (hits / len(top) if top else 0.0), hits / len(truth)
