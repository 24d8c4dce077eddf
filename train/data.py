"""From an audit report to tf.data pipelines: usable files only, no leakage across the split.

* `load_examples(report_dir)` reads images.csv and duplicates.csv and refuses a report
  that no longer matches the files (changed, new or removed since the scan).
* `split_examples()` uses the dataset's own train/validation folders when it has them (the
  validation-side copies of a duplicate group that spans both are left out of validation,
  or the run is refused with `on_leak="refuse"`); otherwise it draws a seeded validation set,
  class by class, that keeps every duplicate group on one side, so no picture is in both.
  Either way, classes with fewer than MIN_VALIDATION_IMAGES validation images are named.
  With a test fraction, a held-out test split is then drawn from the training side the same
  way (whole duplicate groups, none with a member in validation), so no picture of the test
  split is in training or validation; no stage reads it (train.recipe evaluates it once).
* `make_dataset()` decodes exactly as Keras's directory loader does
  (`tf.io.decode_image(channels=3, expand_animations=False)`), resizes, caches, shuffles
  with the seed, batches and prefetches. TensorFlow is imported by make_dataset
  only, so reading and splitting a report needs no TensorFlow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audit.dataset import resolve
from audit.errors import InvalidArgument
from audit.escaping import for_report
from audit.reportio import Report, ReportError, report_is_stale

VALIDATION_SPLITS = ("val", "valid", "validation", "dev", "eval")
TRAINING_SPLITS = ("train", "training")
ON_LEAK = ("drop", "refuse")
# A class with fewer validation images than this cannot be measured on validation.
MIN_VALIDATION_IMAGES = 2


class SplitLeak(InvalidArgument):
    """The dataset's own split folders hold the same picture on both sides (exit 2)."""


@dataclass
class Examples:
    """Usable files of an audited dataset, labels in folder (Keras) order."""

    root: Path
    class_names: tuple[str, ...]
    paths: list[str]  # absolute
    relpaths: list[str]
    labels: np.ndarray  # int32 index into class_names
    splits: list[str]  # the report's split of each file ('' without splits)
    groups: np.ndarray  # duplicate group id, -1 when none
    skipped_errors: int = 0  # files left out because the audit found an error
    # Whether the scan also looked for mirrored copies (--mirror): without it, a mirrored
    # copy on the other side of the split is not in any group.
    mirrors_searched: bool = False
    # The report's sha256 of each file, by absolute path (train.resume's split fingerprint).
    sha256: dict[str, str] = field(default_factory=dict)


@dataclass
class SplitExamples:
    """Training and validation parts; `how` says how the split was made."""

    class_names: tuple[str, ...]
    train_paths: list[str]
    train_labels: np.ndarray
    val_paths: list[str]
    val_labels: np.ndarray
    how: str
    details: dict = field(default_factory=dict)
    # The held-out test split (empty without a test fraction): never read by a stage.
    test_paths: list[str] = field(default_factory=list)
    test_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    # The report's sha256 of each file, by absolute path (Examples.sha256).
    sha256: dict[str, str] = field(default_factory=dict)

    def train_counts(self) -> list[int]:
        return np.bincount(self.train_labels, minlength=len(self.class_names)).tolist()


def load_examples(
    report_dir: str | os.PathLike, root: str | os.PathLike | None = None, check_stale: bool = True
) -> Examples:
    """Read the usable files from an audit report; ReportError (exit 2) when it is missing,
    incomplete, made from another folder, or stale for the files on disk."""
    report = Report(report_dir)
    report_root = report.root
    if root is not None and Path(root).expanduser().resolve() != report_root.resolve():
        raise ReportError(
            f"the report in {report.folder} is for {report_root}, not {Path(root).resolve()}"
        )
    rows = report.images()
    if check_stale:
        stale = report_is_stale(report, rows)
        if stale:
            raise ReportError(
                f"the audit report in {report.folder} is stale: {stale.describe()}; "
                "re-run `python -m audit scan`"
            )
    class_names = report.class_names
    groups = {row.path: row.group for row in report.duplicates()}
    usable = [row for row in rows if row.severity != "error"]
    index = {name: position for position, name in enumerate(class_names)}
    return Examples(
        root=report_root,
        class_names=class_names,
        paths=[resolve(report_root, row.path) for row in usable],
        relpaths=[row.path for row in usable],
        labels=np.array([index[for_report(row.label)] for row in usable], dtype=np.int32),
        splits=[row.split for row in usable],
        groups=np.array([groups.get(row.report_path, -1) for row in usable], dtype=np.int64),
        skipped_errors=len(rows) - len(usable),
        mirrors_searched=bool((report.summary.get("thresholds") or {}).get("mirror")),
        sha256={resolve(report_root, row.path): row.sha256 for row in usable},
    )


def without_empty_classes(examples: Examples) -> tuple[Examples, list[str]]:
    """Leave out classes with no usable image (an empty folder, or only broken files):
    a label that never gets an example cannot be learned. Returns the names left out."""
    counts = np.bincount(examples.labels, minlength=len(examples.class_names))
    kept = [index for index, count in enumerate(counts) if count > 0]
    left_out = [name for index, name in enumerate(examples.class_names) if counts[index] == 0]
    if len(kept) < 2:
        # Refused here, before a run folder exists: the prior bias needs two classes.
        from audit.escaping import terminal

        found = ", ".join(terminal(examples.class_names[index]) for index in kept)
        raise InvalidArgument(
            f"training needs at least two classes with usable images; found {len(kept)}"
            + (f": {found}" if found else "")
            + (f" (left out, no usable image: {terminal(', '.join(left_out))})" if left_out else "")
        )
    if not left_out:
        return examples, []
    remap = np.full(len(examples.class_names), -1, dtype=np.int32)
    remap[kept] = np.arange(len(kept), dtype=np.int32)
    narrowed = Examples(
        root=examples.root,
        class_names=tuple(examples.class_names[index] for index in kept),
        paths=examples.paths,
        relpaths=examples.relpaths,
        labels=remap[examples.labels],
        splits=examples.splits,
        groups=examples.groups,
        skipped_errors=examples.skipped_errors,
        mirrors_searched=examples.mirrors_searched,
        sha256=examples.sha256,
    )
    return narrowed, left_out


def split_examples(
    examples: Examples,
    validation_fraction: float = 0.2,
    seed: int = 1337,
    on_leak: str = "drop",
    test_fraction: float | None = None,
) -> SplitExamples:
    """Training/validation split: the dataset's own, or a seeded group-aware stratified one.

    Classes without any usable image are left out first (details["left_out_classes"]).
    With the dataset's own split folders, a duplicate group (duplicates.csv) with members on
    both sides leaks: on_leak="drop" leaves its validation-side members out of validation
    (details["leaked_validation_files"], ["leaked_groups"] and ["leak_note"]); "refuse" raises
    SplitLeak. details["thin_validation_classes"] names the classes with fewer than
    MIN_VALIDATION_IMAGES validation images, with their count.

    test_fraction: the share of each class's usable images held out as a test split, drawn
    after validation (so validation is the same with or without it) from the training side,
    whole duplicate groups at a time and none with a member in validation; at least one
    training image per class stays. details["test_fraction"], ["test_how"] and
    ["thin_test_classes"] (classes with fewer than MIN_VALIDATION_IMAGES test images).
    """
    if not 0.0 < validation_fraction < 1.0:
        raise InvalidArgument(
            f"validation_fraction must be between 0 and 1, got {validation_fraction}"
        )
    if test_fraction is not None and not (
        0.0 < test_fraction < 1.0 and validation_fraction + test_fraction < 1.0
    ):
        raise InvalidArgument(
            f"test_fraction must be between 0 and 1 and leave training images beside the "
            f"validation fraction {validation_fraction:g}, got {test_fraction}"
        )
    if on_leak not in ON_LEAK:
        raise InvalidArgument(f"on_leak must be one of {', '.join(ON_LEAK)}, got {on_leak!r}")
    examples, left_out = without_empty_classes(examples)
    split_names = {name.lower() for name in examples.splits}
    own_val = [name for name in examples.splits if name.lower() in VALIDATION_SPLITS]
    own_train = [name for name in examples.splits if name.lower() in TRAINING_SPLITS]
    if own_val and own_train:
        is_val = np.array([name.lower() in VALIDATION_SPLITS for name in examples.splits])
        is_train = np.array([name.lower() in TRAINING_SPLITS for name in examples.splits])
        how = f"the dataset's own split folders ({own_train[0]} / {own_val[0]})"
        details: dict[str, object] = {
            "ignored_splits": sorted(split_names - set(VALIDATION_SPLITS) - set(TRAINING_SPLITS))
        }
        is_val, leak = _leaked_validation(examples, is_train, is_val, on_leak)
        details.update(leak)
    else:
        is_val = _group_stratified_validation(examples, validation_fraction, seed)
        is_train = ~is_val
        how = (
            f"seeded ({seed}) stratified {validation_fraction:.0%} validation; "
            "duplicate groups kept on one side"
        )
        details = {"seed": seed, "validation_fraction": validation_fraction}
    is_test = np.zeros(len(examples.paths), dtype=bool)
    if test_fraction is not None:
        is_test = _held_out_test(examples, is_train, is_val, test_fraction, seed)
        is_train = is_train & ~is_test
        details["test_fraction"] = test_fraction
        details["test_how"] = (
            f"seeded ({seed}) stratified {test_fraction:.0%} test, drawn from the training side; "
            "duplicate groups kept on one side"
        )
    split = SplitExamples(
        class_names=examples.class_names,
        train_paths=[path for path, keep in zip(examples.paths, is_train, strict=True) if keep],
        train_labels=examples.labels[is_train],
        val_paths=[path for path, keep in zip(examples.paths, is_val, strict=True) if keep],
        val_labels=examples.labels[is_val],
        how=how,
        details={**details, "left_out_classes": left_out},
        test_paths=[path for path, keep in zip(examples.paths, is_test, strict=True) if keep],
        test_labels=examples.labels[is_test],
        sha256=examples.sha256,
    )
    empty = [
        name
        for name, count in zip(split.class_names, split.train_counts(), strict=True)
        if count == 0
    ]
    if empty:
        raise InvalidArgument(
            f"class(es) {', '.join(empty)} have no usable training image: "
            "add images or remove the folder"
        )
    if not split.val_paths:
        raise InvalidArgument("the validation set is empty: too few usable images to split")
    val_counts = np.bincount(split.val_labels, minlength=len(split.class_names)).tolist()
    split.details["thin_validation_classes"] = {
        name: int(count)
        for name, count in zip(split.class_names, val_counts, strict=True)
        if count < MIN_VALIDATION_IMAGES
    }
    if test_fraction is not None:
        test_counts = np.bincount(split.test_labels, minlength=len(split.class_names)).tolist()
        split.details["thin_test_classes"] = {
            name: int(count)
            for name, count in zip(split.class_names, test_counts, strict=True)
            if count < MIN_VALIDATION_IMAGES
        }
        if not split.test_paths:
            raise InvalidArgument("the test split is empty: too few usable images to hold out")
    return split


def _leaked_validation(
    examples: Examples, is_train: np.ndarray, is_val: np.ndarray, on_leak: str
) -> tuple[np.ndarray, dict]:
    """Validation files whose duplicate group also has a training member: left out of
    validation (on_leak "drop") or refused ("refuse"). Returns (is_val, details)."""
    groups = examples.groups
    train_groups = set(groups[is_train & (groups >= 0)].tolist())
    leaked = is_val & (groups >= 0) & np.isin(groups, list(train_groups))
    count = int(leaked.sum())
    if not count:
        return is_val, {"leaked_groups": 0, "leaked_validation_files": []}
    group_count = len(set(groups[leaked].tolist()))
    files = [path for path, leak in zip(examples.relpaths, leaked, strict=True) if leak]
    shown = ", ".join(files[:5]) + (f" and {count - 5} more" if count > 5 else "")
    if on_leak == "refuse":
        raise SplitLeak(
            f"{group_count} duplicate group(s) span the dataset's train and validation folders "
            f"({count} validation file(s): {shown}); remove the copies, or run with "
            "--on-leak drop to leave them out of validation"
        )
    note = (
        f"left {count} validation file(s) out of validation: copies of {group_count} duplicate "
        f"group(s) that also have training images ({shown})"
    )
    return is_val & ~leaked, {
        "leaked_groups": group_count,
        "leaked_validation_files": files,
        "leak_note": note,
    }


def _group_stratified_validation(examples: Examples, fraction: float, seed: int) -> np.ndarray:
    """Mark validation files: per class, whole units (a duplicate group or a single file)."""
    counts = np.bincount(examples.labels, minlength=len(examples.class_names))
    eligible = np.ones(len(examples.paths), dtype=bool)
    return _draw_units(examples, eligible, fraction * counts, np.random.default_rng(seed))


def _held_out_test(
    examples: Examples, is_train: np.ndarray, is_val: np.ndarray, fraction: float, seed: int
) -> np.ndarray:
    """Mark test files: per class, whole units of the training side whose duplicate group has
    no member outside it (in validation, or left out of it as a leak), about `fraction` of the
    class's usable images. Its own random stream, so validation does not move."""
    groups = examples.groups
    elsewhere = set(groups[~is_train & (groups >= 0)].tolist())
    eligible = is_train & ~((groups >= 0) & np.isin(groups, list(elsewhere)))
    counts = np.bincount(examples.labels, minlength=len(examples.class_names))
    # A second stream of the same seed: the test draw never changes the validation draw.
    return _draw_units(examples, eligible, fraction * counts, np.random.default_rng([seed, 1]))


def _draw_units(
    examples: Examples, eligible: np.ndarray, targets: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Mark files among `eligible`: per class, whole units (a duplicate group or a single file)
    in a random order until the class's target count, never taking a class's last eligible
    (training) image."""
    count = len(examples.paths)
    unit_of = np.where(
        examples.groups >= 0, examples.groups, -(np.arange(count) + 1)
    )  # singles: own unit
    chosen = np.zeros(count, dtype=bool)
    for label in range(len(examples.class_names)):
        in_class = np.flatnonzero((examples.labels == label) & eligible)
        units = np.unique(unit_of[in_class])
        rng.shuffle(units)
        target, taken = targets[label], 0
        for unit in units:
            members = np.flatnonzero((unit_of == unit) & eligible)
            if taken >= target or taken + members.size >= in_class.size:
                break  # enough, or this unit would leave the class without training images
            chosen[members] = True
            taken += members.size
    return chosen


# ---------------------------------------------------------------- tf.data


def decode_image(path, image_size: int):
    """One image file (a path tensor or bytes) as the models see it: decoded as Keras's
    directory loader does (3 channels, first frame), resized bilinearly to image_size x
    image_size, float32 0..255. Training, evaluation and `train predict` share it, so an
    exported model gets exactly the input it was trained on."""
    import tensorflow as tf

    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return tf.image.resize(image, (image_size, image_size))


def make_dataset(
    paths: list[str],
    labels: np.ndarray,
    image_size: int,
    batch_size: int,
    shuffle: bool,
    seed: int | None,
    augment=None,
    cache: bool = True,
    repeat: bool = False,
):
    """A batched tf.data pipeline of (float32 images in 0..255, int labels).

    augment: Keras preprocessing layers applied to each batch in the tf.data map (on the
    CPU, after the cache, so every epoch sees new variations); training data only.
    cache: keep decoded images in memory across epochs (off for a pipeline read once).
    repeat: endless (reshuffled on every pass), for a budget in steps rather than epochs.
    """
    import tensorflow as tf

    autotune = tf.data.AUTOTUNE

    def load(path, label):
        return decode_image(path, image_size), label

    # Paths as bytes: a name that is not UTF-8 is no text TensorFlow can convert.
    encoded = [os.fsencode(path) for path in paths]
    dataset = tf.data.Dataset.from_tensor_slices((encoded, np.asarray(labels, dtype=np.int32)))
    dataset = dataset.map(load, num_parallel_calls=autotune, deterministic=True)
    if cache:
        dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if repeat:
        dataset = dataset.repeat()
    if augment is not None:
        dataset = dataset.map(
            lambda images, labels: (augment(images, training=True), labels),
            num_parallel_calls=autotune,
        )
    return dataset.prefetch(autotune)
