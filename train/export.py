"""Export of a run's best model, and predictions from an export (`python -m train predict`).

RUN/export/ holds model.keras (a copy of the chosen stage's) and model.json: the class names
in output order, the input size, the input the model expects (RGB, float32 0..255, decoded
and resized as in training: its normalisation is inside the model), how the output reads
(one sigmoid unit or one softmax unit per class, as logits), the source stage and its
validation figures, the tool version.

Which model: among the stages whose status is pass and that are training runs of the
comparison (metrics.json's summary names a model: baseline, the ablation chain, tuning), the
one whose saved model has the lowest validation loss, as measured on validation after the
stage ended (validation.json in its folder: the real cross-entropy from the logits), and
below the loss of predicting the training prior (prior_loss there): a diverged model is
never exported. That is the loss of the weights shipped, not the
run's best evaluation: a run keeps its final weights unless early stopping restored the best.
No such stage: no export, and the reason is said.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, TypeGuard

import numpy as np

from audit.errors import InvalidArgument, UserError
from audit.reportio import atomic_text
from train.runs import finished_stages, stage_status

EXPORT_FOLDER = "export"
FORMAT = 1  # model.json "format": raised when a reader of an older export would misread it
VALIDATION_FILE = "validation.json"


def candidates(run_path: Path) -> list[tuple[float, str, Path, dict]]:
    """(saved model's validation loss, stage, folder, validation.json) of every stage that may
    be exported, lowest loss first."""
    found = []
    for folder, metrics in finished_stages(run_path):
        summary = metrics.get("summary") or {}
        if stage_status(metrics) != "pass" or "model" not in summary:
            continue
        try:
            figures = json.loads((folder / VALIDATION_FILE).read_text(encoding="utf-8"))
            loss = float(figures["loss"])  # None (NaN outputs): TypeError, not exported
            prior = float(figures.get("prior_loss", math.inf))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # written before the per-class view, or no model: nothing to rank by
        # A saved model no better than predicting the prior (diverged after its best
        # evaluation, say) is not exported even when its stage passed.
        if (folder / "model.keras").is_file() and math.isfinite(loss) and loss < prior:
            found.append((loss, str(metrics["stage"]), folder, figures))
    return sorted(found, key=lambda item: item[0])


def describe_input(model: Any, stage_config: dict, summary: dict) -> dict:
    """What the model expects and does with its input, for model.json."""
    size = int(model.input_shape[1])
    if summary.get("model") == "pretrained":
        inside = "x / 127.5 - 1 (MobileNetV2's scaling), inside the model"
        statistics = None
    else:
        statistics = None
        for layer in model.layers:
            if layer.name == "normalize":
                mean = np.asarray(layer.mean, dtype=np.float64).reshape(-1)
                variance = np.asarray(layer.variance, dtype=np.float64).reshape(-1)
                statistics = {
                    "mean": [round(float(value), 6) for value in mean],
                    "std": [round(float(value), 6) for value in np.sqrt(variance)],
                }
        inside = (
            "x / 255, then standardised per channel with the training images' mean and std "
            "(0..1 scale, below), inside the model"
            if statistics
            else "x / 255, inside the model"
        )
    return {
        "image_size": size,
        "input": {
            "channels": "RGB",
            "dtype": "float32",
            "range": [0, 255],
            "decode": "tf.io.decode_image(channels=3, expand_animations=False), as Keras's "
            "directory loader",
            "resize": f"tf.image.resize to {size} x {size}, bilinear, aspect ratio not kept",
        },
        "normalization": {
            "setting": stage_config.get("normalization", ""),
            "inside_model": inside,
            "statistics": statistics,
        },
    }


def export_best(
    run_path: Path, class_names: list[str] | tuple[str, ...]
) -> tuple[Path | None, str]:
    """Copy the best model (see the module docstring) to RUN/export/ with model.json.
    Returns (the export folder, a line saying what was exported) or (None, why not)."""
    import keras

    from audit import __version__

    ranked = candidates(run_path)
    if not ranked:
        return None, (
            "no model exported: no training stage of the comparison passed (baseline, the "
            "ablation chain, tuning) with a saved model whose validation loss beats "
            "predicting the prior"
        )
    loss, stage, folder, figures = ranked[0]
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    try:
        stage_config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stage_config = {}
    model = keras.models.load_model(folder / "model.keras", compile=False)
    target = Path(run_path) / EXPORT_FOLDER
    target.mkdir(exist_ok=True)
    meta = {
        "format": FORMAT,
        "class_names": [str(name) for name in class_names],
        **describe_input(model, stage_config, metrics.get("summary") or {}),
        "output": {
            "units": int(model.output_shape[-1]),
            "kind": "logits",
            "activation": "sigmoid: the probability of class_names[1]"
            if model.output_shape[-1] == 1
            else "softmax over class_names",
        },
        "source": {
            "run": Path(run_path).name,
            "stage": stage,
            "folder": folder.name,
            "rule": "status pass, lowest validation loss of the saved model (validation.json), "
            "below predicting the prior",
            "validation_loss": loss,
            "validation_accuracy": figures.get("accuracy"),
            "worst_class_recall": figures.get("worst_class_recall"),
            "validation_images": figures.get("images"),
        },
        "tool_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    # Written last and whole: an export cut off by a kill has no model.json (predict says so).
    (target / "model.json").unlink(missing_ok=True)
    shutil.copyfile(folder / "model.keras", target / "model.keras")
    with atomic_text(target / "model.json") as handle:
        handle.write(json.dumps(meta, indent=2) + "\n")
    return target, (
        f"exported {stage}'s model (validation loss {loss:.4f}, the lowest of "
        f"{len(ranked)} passing training stage(s)) to {target}"
    )


@dataclass
class Export:
    """An export read back: the model and its model.json."""

    model: Any
    meta: dict
    folder: Path

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    @property
    def image_size(self) -> int:
        return int(self.meta["image_size"])


def load_export(path: str | Path) -> Export:
    """An export folder (or its model.json or model.keras) read back and checked against
    itself: UserError (exit 2) with the reason when model.json or model.keras is missing or
    unreadable, or the model does not match it (class count against the output units, input
    size against the model's input)."""
    path = Path(path)
    folder = path.parent if path.is_file() or path.suffix in (".json", ".keras") else path
    meta_path, model_path = folder / "model.json", folder / "model.keras"
    if not folder.is_dir():
        raise InvalidArgument(f"no export at {path}: expected a folder RUN/export/")
    if not meta_path.is_file():
        raise InvalidArgument(
            f"{meta_path} is missing: an export is model.keras with its model.json "
            "(python -m train run writes both to RUN/export/)"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InvalidArgument(
            f"{meta_path} is not a readable export description: {error}"
        ) from None
    reason = meta_problem(meta)
    if reason:
        raise InvalidArgument(f"{meta_path} is not a readable export description: {reason}")
    names, size = meta["class_names"], meta["image_size"]
    if not model_path.is_file():
        raise InvalidArgument(f"{model_path} is missing")
    import keras

    try:
        model = keras.models.load_model(model_path, compile=False)
    except Exception as error:  # Keras raises many kinds for a damaged archive
        raise InvalidArgument(f"{model_path} cannot be loaded as a Keras model: {error}") from None
    units = int(model.output_shape[-1])
    expected = _units(names)
    if units != expected:
        raise InvalidArgument(
            f"the export does not match itself: model.json names {len(names)} classes, which "
            f"needs {expected} output unit(s), and the model has {units}"
        )
    shape = tuple(model.input_shape[1:3])
    if shape != (size, size):
        raise InvalidArgument(
            f"the export does not match itself: model.json says {size} x {size} input, the "
            f"model takes {shape[0]} x {shape[1]}"
        )
    statistics = meta["normalization"]["statistics"]
    channels = int(model.input_shape[-1])
    standardises = any(layer.name == "normalize" for layer in model.layers)
    if standardises != (statistics is not None):
        raise InvalidArgument(
            "the export does not match itself: model.json gives "
            f"{'no ' if statistics is None else ''}normalisation statistics, the model "
            f"{'standardises' if standardises else 'does not standardise'} its input"
        )
    if statistics is not None and len(statistics["mean"]) != channels:
        raise InvalidArgument(
            f"the export does not match itself: model.json gives normalisation statistics for "
            f"{len(statistics['mean'])} channel(s), the model takes {channels}"
        )
    return Export(model, meta, folder)


def _units(names: list) -> int:
    """Output units for the classes: one sigmoid unit for two, else one per class."""
    return 1 if len(names) == 2 else len(names)


def _is_integer(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def meta_problem(meta: Any) -> str | None:
    """What is wrong with a model.json document, in words, or None. Checked: format (a positive
    integer, at most FORMAT), class_names (at least two distinct strings), image_size (an
    integer from 8 to 4096), normalization (an object; its statistics null, or mean and std
    lists of equal length of finite numbers, std positive), output (units: 1 for two classes,
    else one per class)."""
    if not isinstance(meta, dict):
        return f"expected a JSON object, got {type(meta).__name__}"
    version = meta.get("format")
    if not _is_integer(version) or version < 1:
        return f"format must be a positive integer, got {version!r}"
    if version > FORMAT:
        return f"export format {version} is newer than this tool reads ({FORMAT})"
    names = meta.get("class_names")
    if (
        not isinstance(names, list)
        or len(names) < 2
        or not all(isinstance(name, str) and name for name in names)
    ):
        return "class_names must list at least two class names (non-empty strings)"
    if len(set(names)) != len(names):
        return "class_names must be distinct"
    size = meta.get("image_size")
    if not _is_integer(size) or not 8 <= size <= 4096:  # --image-size's range
        shown = repr(size) if len(repr(size)) < 40 else f"{repr(size)[:20]}..."
        return f"image_size must be an integer from 8 to 4096, got {shown}"
    normalization = meta.get("normalization")
    if not isinstance(normalization, dict):
        return "normalization must be an object"
    statistics = normalization.get("statistics")
    if statistics is not None:
        mean = statistics.get("mean") if isinstance(statistics, dict) else None
        std = statistics.get("std") if isinstance(statistics, dict) else None
        if (
            not isinstance(mean, list)
            or not isinstance(std, list)
            or not mean
            or len(mean) != len(std)
            or not all(_is_number(value) for value in mean + std)
            or not all(value > 0 for value in std)
        ):
            return (
                "normalization statistics must be null or mean and std lists of equal length "
                "(one value per channel) of finite numbers, std positive"
            )
    output = meta.get("output")
    units = output.get("units") if isinstance(output, dict) else None
    if units != _units(names) or not _is_integer(units):
        return (
            f"output units must be {_units(names)} for {len(names)} classes "
            f"({'one sigmoid unit' if len(names) == 2 else 'one per class'}), got {units!r}"
        )
    return None


def read_images(paths: list[str], image_size: int) -> tuple[list[int], list[Any], list[str]]:
    """Decode each file as training does (train.data.decode_image). Returns the indices read,
    their images, and one line per file that could not be read (with the reason)."""
    import os
    import stat

    import tensorflow as tf

    from audit.escaping import terminal
    from train.data import decode_image

    read, pictures, problems = [], [], []
    for index, path in enumerate(paths):
        try:
            # A FIFO, socket or device is not opened: open() on a FIFO blocks until a writer
            # comes, and `predict` hung on one.
            kind = os.stat(path).st_mode
            if not stat.S_ISREG(kind):
                what = "a folder" if stat.S_ISDIR(kind) else "not a regular file"
                problems.append(f"cannot read {terminal(path)}: {what}")
                continue
            with open(path, "rb"):  # the OS's reason (permission) in words
                pass
            pictures.append(decode_image(tf.constant(os.fsencode(path)), image_size))
            read.append(index)
        except OSError as error:
            problems.append(f"cannot read {terminal(path)}: {error.strerror or error}")
        except (tf.errors.OpError, ValueError) as error:
            problems.append(f"cannot read {terminal(path)}: {terminal(_op_reason(error))}")
    return read, pictures, problems


def _op_reason(error: Exception) -> str:
    """TensorFlow's message without its op decorations ("{{function_node ...}}", "[Op:...]")."""
    import re

    text = str(getattr(error, "message", None) or error)
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
    text = re.sub(r"\s*\[Op:[^\]]*\].*$", "", text, flags=re.S)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def predict(export: Export, paths: list[str], batch_size: int = 64):
    """Probabilities (n read, classes) for the files, as in training; returns (indices read,
    probabilities, problem lines)."""
    import tensorflow as tf

    from train.bias import probabilities

    read, pictures, problems = read_images(paths, export.image_size)
    if not read:
        return read, np.zeros((0, len(export.class_names))), problems
    # The same batching as training's evaluation pipeline: results do not depend on it in
    # inference mode, and one predict call over a dataset avoids a graph per batch size.
    dataset = tf.data.Dataset.from_tensor_slices(tf.stack(pictures)).batch(batch_size)
    logits = export.model.predict(dataset, verbose=0)
    return read, probabilities(logits, binary=np.shape(logits)[-1] == 1), problems


def write_predictions(
    handle: IO[str], paths: list[str], read: list[int], probs: np.ndarray, class_names: list[str]
) -> None:
    """CSV: path, predicted, probability (of the predicted class), then one probability column
    per class (p_<class>); one row per image read."""
    from audit.escaping import for_report

    writer = csv.writer(handle)
    writer.writerow(["path", "predicted", "probability", *(f"p_{name}" for name in class_names)])
    for row, index in enumerate(read):
        best = int(probs[row].argmax())
        writer.writerow(
            [
                for_report(paths[index]),
                class_names[best],
                f"{probs[row, best]:.9g}",
                *(f"{value:.9g}" for value in probs[row]),
            ]
        )


def run_predict(model_path: str, image_paths: list[str], out: str | None = None) -> int:
    """`python -m train predict`: 0 when every image was read, 1 when some could not be
    (each named on stderr, left out of the CSV); UserError (exit 2) for a bad export or when
    no image could be read."""
    from train.cli import EXIT_FAILED, EXIT_PASSED

    export = load_export(model_path)
    read, probs, problems = predict(export, image_paths)
    for line in problems:
        print(line, file=sys.stderr)
    if not read:
        raise UserError(f"none of the {len(image_paths)} image(s) could be read")
    if out:
        try:
            with open(out, "w", newline="", encoding="utf-8") as handle:
                write_predictions(handle, image_paths, read, probs, export.class_names)
        except OSError as error:
            raise UserError(f"cannot write {out}: {error.strerror or error}") from None
        print(f"{len(read)} prediction(s) written to {out}", file=sys.stderr)
    else:
        write_predictions(sys.stdout, image_paths, read, probs, export.class_names)
    return EXIT_FAILED if problems else EXIT_PASSED


def evaluate_held_out(run_path: Path, export_folder: Path | None, split) -> dict:
    """The held-out test split (train.data.SplitExamples.test_paths), evaluated once with the
    exported model: RUN/test.json (images, loss, accuracy, worst_class_recall, per class, the
    stage whose model it is) and test_confusion.csv/.png, test_per_class.csv,
    test_top_losses.csv/.png beside it. Without an export, test.json says why nothing was
    evaluated. No stage reads the split: this is its only use."""
    from train import diagnostics

    run_path = Path(run_path)
    figures: dict[str, Any] = {
        "images": len(split.test_paths),
        "how": split.details.get("test_how"),
        # Classes with fewer than train.data.MIN_VALIDATION_IMAGES test images: their recall
        # rests on a handful of images.
        "thin_test_classes": split.details.get("thin_test_classes") or {},
    }
    if export_folder is None:
        figures |= {"evaluated": False, "reason": "no model was exported (see the run's log)"}
    else:
        exported = load_export(export_folder)
        logs = diagnostics.predict_log_probabilities(exported.model, split.test_paths)
        view = diagnostics.write_view(
            run_path,
            logs,
            split.test_labels,
            split.test_paths,
            exported.class_names,
            image_size=exported.image_size,
            prefix="test_",
            subject="held-out test split",
        )
        figures |= {"evaluated": True, "stage": exported.meta["source"]["stage"], **view}
    with atomic_text(run_path / "test.json") as handle:
        handle.write(json.dumps(figures, indent=2) + "\n")
    return figures
