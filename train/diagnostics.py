"""Per-class view and top losses of a classifier: what accuracy alone hides.

A model that always predicts one class can show a respectable accuracy on an imbalanced
validation set; its confusion matrix shows every prediction in one column, and the recall of
every other class is 0. This module owns that view, for any labelled set of predictions
(a stage's validation images, the held-out test split, out-of-fold predictions):

* `predicted_classes(log_probabilities)`: the argmax, NO_PREDICTION where the model's output
  is NaN (a diverged model: argmax would read it as class 0);
* `confusion_matrix(labels, predicted, classes)`: counts, rows = given label, columns =
  predicted class (NO_PREDICTION rows left out; `unpredicted` counts them per label);
* `per_class_metrics(confusion, class_names, unpredicted)`: support, predictions, precision,
  recall, F1, NaN predictions per class (0.0 where a ratio is undefined; a class without
  support shows support 0; a NaN prediction counts as wrong);
* `worst_class_recall(rows)`: the lowest recall among the classes that have support;
* `write_confusion(folder, confusion, class_names, prefix)`: confusion.csv, confusion.png and
  per_class.csv;
* `top_losses(log_probabilities, labels, paths, class_names, count)` and `write_top_losses`:
  the highest-loss images (NaN outputs first) with given label, prediction and loss, as
  top_losses.csv and a grid figure top_losses.png.

Losses are cross-entropies from log-probabilities computed from the logits
(train.bias.log_probabilities), never from clipped probabilities: a diverged model whose
Keras loss was 1.7e6 read 0.848 with probabilities clipped at 1e-7, below the prior's
entropy, and every confidently wrong image tied at 16.118.

Only numpy and csv at import (matplotlib is imported inside the figure functions), so readers
of the tables need neither TensorFlow nor a plotting library.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from audit.reportio import atomic_text

PER_CLASS_COLUMNS = (
    "class",
    "support",
    "predicted",
    "precision",
    "recall",
    "f1",
    "nan_predictions",
)
TOP_LOSS_COLUMNS = ("rank", "path", "label", "predicted", "loss", "probability")
# The prediction of an image whose model output is NaN: no class.
NO_PREDICTION = -1
NO_PREDICTION_NAME = "(none: NaN output)"
# confusion.csv's first column and its NaN column: every class column is "predicted:NAME", so
# no class name can collide with them.
GIVEN_LABEL_HEADER = "given_label"
NAN_HEADER = "nan_predictions"
# Images in the top-losses grid figure, and rows of a stage's top_losses.csv (enough for the
# app and the audit to page through; the figure stays legible).
TOP_LOSSES = 16
TOP_LOSS_ROWS = 100


def predicted_classes(log_probabilities: np.ndarray) -> np.ndarray:
    """The predicted class of each row (argmax), NO_PREDICTION where the row holds a NaN."""
    values = np.asarray(log_probabilities, dtype=np.float64)
    if not values.size:
        return np.zeros(values.shape[:1], dtype=np.int64)
    missing = np.isnan(values).any(axis=1)
    return np.where(missing, NO_PREDICTION, np.nan_to_num(values, nan=0.0).argmax(axis=1))


def _checked(
    labels: np.ndarray, predicted: np.ndarray, classes: int
) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    predicted = np.asarray(predicted).astype(np.int64).reshape(-1)
    if labels.shape != predicted.shape:
        raise ValueError(
            f"labels and predictions differ in length: {labels.size} vs {predicted.size}"
        )
    if classes < 1:
        raise ValueError(f"classes must be at least 1, got {classes}")
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"a label is outside 0..{classes - 1}")
    if predicted.size and (predicted.min() < NO_PREDICTION or predicted.max() >= classes):
        raise ValueError(f"a prediction is outside 0..{classes - 1}")
    return labels, predicted


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Counts (int64, classes x classes): row = given (true) label, column = predicted class.
    Images whose prediction is NO_PREDICTION are not in it (`unpredicted` counts them).

    ValueError when the two arrays differ in length or hold a class outside 0..classes-1."""
    labels, predicted = _checked(labels, predicted, classes)
    kept = predicted != NO_PREDICTION
    counts = np.bincount(labels[kept] * classes + predicted[kept], minlength=classes * classes)
    return counts.reshape(classes, classes).astype(np.int64)


def unpredicted(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Per given label, the images whose prediction is NO_PREDICTION (a NaN output)."""
    labels, predicted = _checked(labels, predicted, classes)
    return np.bincount(labels[predicted == NO_PREDICTION], minlength=classes).astype(np.int64)


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else 0.0


def per_class_metrics(
    confusion: np.ndarray, class_names: list[str], nan_predictions: np.ndarray | None = None
) -> list[dict]:
    """One dict per class, in class order: class, support (images with that label), predicted
    (images predicted as it), precision, recall, f1, nan_predictions (images with that label
    whose model output was NaN: in the support, wrong, in no column). A ratio whose
    denominator is 0 is 0.0 (a class never predicted has precision 0; a class without images
    has support 0 and recall 0: read support before reading recall)."""
    confusion = np.asarray(confusion)
    missing = np.zeros(len(class_names), dtype=np.int64)
    if nan_predictions is not None:
        missing = np.asarray(nan_predictions, dtype=np.int64).reshape(-1)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"a confusion matrix is square, got shape {confusion.shape}")
    if len(class_names) != confusion.shape[0]:
        raise ValueError(
            f"{len(class_names)} class names for a {confusion.shape[0]}-class confusion matrix"
        )
    rows = []
    for index, name in enumerate(class_names):
        hits = int(confusion[index, index])
        support = int(confusion[index].sum()) + int(missing[index])
        predicted = int(confusion[:, index].sum())
        precision = _ratio(hits, predicted)
        recall = _ratio(hits, support)
        rows.append(
            {
                "class": str(name),
                "support": support,
                "predicted": predicted,
                "precision": precision,
                "recall": recall,
                "f1": _ratio(2 * precision * recall, precision + recall),
                "nan_predictions": int(missing[index]),
            }
        )
    return rows


def worst_class_recall(rows: list[dict]) -> float | None:
    """The lowest recall among classes with support (per_class_metrics rows, or per_class.csv
    read back); None when no class has support."""
    recalls = [float(row["recall"]) for row in rows if int(row["support"]) > 0]
    return min(recalls) if recalls else None


def read_per_class(path: Path) -> list[dict] | None:
    """per_class.csv back into rows (numbers as numbers); None when absent or unreadable (a
    run folder written before the per-class view)."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        return [
            {
                "class": row["class"],
                "support": int(row["support"]),
                "predicted": int(row["predicted"]),
                "precision": float(row["precision"]),
                "recall": float(row["recall"]),
                "f1": float(row["f1"]),
                # per_class.csv files written before the NaN count read as 0.
                "nan_predictions": int(row.get("nan_predictions") or 0),
            }
            for row in rows
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_rows(path: Path, columns: tuple[str, ...] | list[str], rows: list[dict]) -> Path:
    from audit.escaping import for_report  # a name that is not UTF-8 as the reports store it

    with atomic_text(path) as handle:
        writer = csv.DictWriter(handle, list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    key: for_report(value) if isinstance(value, str) else value
                    for key, value in row.items()
                }
            )
    return path


def write_confusion(
    folder: Path,
    confusion: np.ndarray,
    class_names: list[str],
    prefix: str = "",
    nan_predictions: np.ndarray | None = None,
    subject: str | None = None,
) -> dict[str, Path]:
    """{prefix}confusion.csv, {prefix}confusion.png and {prefix}per_class.csv in folder;
    returns them by name without the prefix ("confusion.csv", "confusion.png",
    "per_class.csv"). confusion.csv: a header row GIVEN_LABEL_HEADER, "predicted:NAME" per
    class, NAN_HEADER (distinct from every class by construction), then one row per given
    label. subject (e.g. "validation", "held-out test split") heads the figure's title."""
    from audit.escaping import for_report  # a name that is not UTF-8 as the reports store it

    folder = Path(folder)
    confusion = np.asarray(confusion, dtype=np.int64)
    rows = per_class_metrics(confusion, class_names, nan_predictions)
    names = [str(name) for name in class_names]
    paths = {
        name: folder / f"{prefix}{name}"
        for name in ("confusion.csv", "confusion.png", "per_class.csv")
    }
    with atomic_text(paths["confusion.csv"]) as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [GIVEN_LABEL_HEADER, *(f"predicted:{for_report(name)}" for name in names), NAN_HEADER]
        )
        for name, counts, row in zip(names, confusion, rows, strict=True):
            writer.writerow([for_report(name), *map(int, counts), row["nan_predictions"]])
    _write_rows(paths["per_class.csv"], PER_CLASS_COLUMNS, rows)
    confusion_figure(confusion, names, rows, paths["confusion.png"], subject)
    return paths


def confusion_figure(
    confusion: np.ndarray,
    names: list[str],
    rows: list[dict],
    path: Path,
    subject: str | None = None,
) -> Path:
    """The confusion matrix as a figure: each cell's count, shaded by its share of the row (the
    given label), support and recall per row on the left labels, the worst class recall and
    any NaN outputs in the title (wrapped; the figure grows to hold its labels)."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from audit.escaping import terminal  # names shown on one line, control characters escaped

    classes = len(names)
    nan_count = sum(int(row["nan_predictions"]) for row in rows)
    totals = confusion.sum(axis=1, keepdims=True)
    shares = np.divide(confusion, np.maximum(totals, 1))
    side = min(0.6 * classes + 2.5, 24)
    figure, axis = plt.subplots(figsize=(side + 1.5, side))
    axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    if classes <= 30:  # counts stay legible up to about 30 classes
        for row in range(classes):
            for column in range(classes):
                axis.text(
                    column,
                    row,
                    str(int(confusion[row, column])),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if shares[row, column] > 0.5 else "black",
                )
    shown = [terminal(name)[:24] for name in names]
    axis.set_xticks(range(classes), shown, rotation=90 if classes > 4 else 0, fontsize=8)
    axis.set_yticks(
        range(classes),
        [
            f"{name}\n(n={row['support']}, recall {row['recall']:.2f})"
            for name, row in zip(shown, rows, strict=True)
        ],
        fontsize=8,
    )
    axis.set_xlabel("predicted class")
    axis.set_ylabel("given label")
    worst = worst_class_recall(rows)
    total = int(confusion.sum()) + nan_count
    accuracy = _ratio(int(np.trace(confusion)), total)
    title = (
        f"{subject + ': ' if subject else ''}{total} images, accuracy {accuracy:.3f}, "
        f"worst class recall {'-' if worst is None else format(worst, '.3f')}"
        + (f"; {nan_count} NaN output(s), counted wrong, in no column" if nan_count else "")
        + ". Shade: share of the row (all in one column: the model predicts one class)"
    )
    # About 1 character per 0.065 inch at 9 pt: the title wraps inside the figure's width.
    axis.set_title(textwrap.fill(terminal(title), max(30, int((side + 1.5) / 0.075))), fontsize=9)
    # bbox_inches="tight" grows the saved image to hold the title and long labels, which a
    # fixed size clipped with 2 or 3 classes.
    figure.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(figure)
    return path


def _check_shapes(
    log_probabilities: np.ndarray, labels: np.ndarray, paths: list[str] | None, names: list[str]
) -> None:
    count = labels.size if paths is None else len(paths)
    if log_probabilities.ndim != 2 or not log_probabilities.shape[0] == labels.size == count:
        raise ValueError(
            f"log-probabilities {log_probabilities.shape}, {labels.size} labels and {count} "
            "paths do not describe the same images"
        )
    if log_probabilities.shape[1] != len(names):
        raise ValueError(
            f"{log_probabilities.shape[1]} probability columns for {len(names)} class names"
        )


def losses(log_probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cross-entropy of each image: minus the log-probability of its given label (NaN where
    the model's output is NaN). +0.0 where certain and right, never -0.0."""
    values = np.asarray(log_probabilities, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    return -values[np.arange(labels.size), labels] + 0.0


def top_losses(
    log_probabilities: np.ndarray,
    labels: np.ndarray,
    paths: list[str],
    class_names: list[str],
    count: int,
) -> list[dict]:
    """The `count` images with the highest cross-entropy, highest first, the images whose
    output is NaN before all (they are the worst: the model says nothing): rank (1 = worst),
    path, label (given), predicted (argmax, NO_PREDICTION_NAME for a NaN output), loss (minus
    the log-probability of the given label), probability (of the given label). Ties keep
    input order.

    log_probabilities: (n, classes), natural log of the class probabilities, from the logits
    (train.bias.log_probabilities): exact where the probabilities underflow."""
    log_probabilities = np.asarray(log_probabilities, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    _check_shapes(log_probabilities, labels, paths, class_names)
    loss = losses(log_probabilities, labels)
    missing = np.isnan(loss)
    # lexsort: the last key first; stable. NaN first, then the highest loss.
    order = np.lexsort((-np.nan_to_num(loss, nan=0.0), ~missing))[: max(0, count)]
    predicted = predicted_classes(log_probabilities)
    return [
        {
            "rank": rank,
            "path": paths[index],
            "label": str(class_names[labels[index]]),
            "predicted": NO_PREDICTION_NAME
            if predicted[index] == NO_PREDICTION
            else str(class_names[predicted[index]]),
            "loss": float(loss[index]),
            "probability": float(np.exp(-loss[index])),
        }
        for rank, index in enumerate(order.tolist(), start=1)
    ]


def write_top_losses(
    folder: Path, rows: list[dict], images: np.ndarray | None = None, prefix: str = ""
) -> dict[str, Path]:
    """{prefix}top_losses.csv (every row) and, when images (the rows' images as the model saw
    them, 0..255, in row order) are given, the grid figure {prefix}top_losses.png of the first
    TOP_LOSSES. Returns the files written by name without the prefix."""
    folder = Path(folder)
    paths = {
        "top_losses.csv": _write_rows(folder / f"{prefix}top_losses.csv", TOP_LOSS_COLUMNS, rows)
    }
    if images is not None and len(rows):
        paths["top_losses.png"] = top_losses_figure(
            rows[:TOP_LOSSES], images[:TOP_LOSSES], folder / f"{prefix}top_losses.png"
        )
    return paths


def top_losses_figure(rows: list[dict], images: np.ndarray, path: Path, columns: int = 4) -> Path:
    """A grid of the images (enlarged, nearest neighbour, to at least 120 px), each captioned
    with its given label, the prediction, the loss and the given label's probability (red
    where the prediction differs from the label), and its file name below. Drawn with Pillow
    (as batch_preview.png): matplotlib took 2.5 to 5.6 s for 16 panels on two busy cores."""
    from PIL import Image, ImageDraw

    from audit.escaping import for_report

    def shown(text: object, width: int) -> str:
        # The bitmap font draws ASCII only: everything else as escapes, shortened to fit.
        text = for_report(str(text)).encode("ascii", "backslashreplace").decode("ascii")
        return "".join(char if char.isprintable() else "?" for char in text)[: max(1, width)]

    count = len(rows)
    columns = max(1, min(columns, count))
    size = int(np.shape(images)[1]) if count else 0
    tile = max(120, size)
    line = 11
    caption, footer, gap = 3 * line + 2, line + 2, 6
    cell_width, cell_height = tile + gap, caption + tile + footer + gap
    header = 16
    lines = math.ceil(count / columns)
    sheet = Image.new("RGB", (columns * cell_width + gap, header + lines * cell_height), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text(
        (gap, 2),
        f"Highest-loss images ({count}); red: prediction differs from the label",
        fill="black",
    )
    characters = tile // 6  # the default font is 6 px wide
    for index, row in enumerate(rows):
        x = gap + (index % columns) * cell_width
        y = header + (index // columns) * cell_height
        colour = "firebrick" if row["label"] != row["predicted"] else "black"
        for number, text in enumerate(
            (
                f"given {shown(row['label'], characters - 6)}",
                f"predicted {shown(row['predicted'], characters - 10)}",
                f"loss {row['loss']:.2f} (p {row['probability']:.2f})",
            )
        ):
            draw.text((x, y + number * line), text, fill=colour)
        picture = np.clip(np.asarray(images[index], dtype=np.float32), 0, 255).astype(np.uint8)
        sheet.paste(
            Image.fromarray(picture).resize((tile, tile), Image.Resampling.NEAREST),
            (x, y + caption),
        )
        draw.text(
            (x, y + caption + tile + 1),
            shown(Path(str(row["path"])).name, characters),
            fill="dimgray",
        )
    sheet.save(path)
    return path


# ---------------------------------------------------------------- a model on a labelled set


def predict_log_probabilities(model, paths: list[str], batch_size: int = 64) -> np.ndarray:
    """Log class probabilities (n, classes) of model on image files, from its logits
    (train.bias.log_probabilities), decoded and resized as in training
    (train.data.make_dataset, at the model's own input size, no augmentation); a one-unit
    (sigmoid) head gives two columns. Needs TensorFlow (imported here)."""
    from train import data
    from train.bias import log_probabilities

    size = int(model.input_shape[1])
    pipeline = data.make_dataset(
        paths, np.zeros(len(paths), dtype=np.int32), size, batch_size, False, None, cache=False
    )
    logits = model.predict(pipeline, verbose=0)
    return log_probabilities(logits, binary=np.shape(logits)[-1] == 1)


def predict_probabilities(model, paths: list[str], batch_size: int = 64) -> np.ndarray:
    """Class probabilities (n, classes): exp of predict_log_probabilities."""
    return np.exp(predict_log_probabilities(model, paths, batch_size))


def summarise(log_probabilities: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict:
    """images, loss (mean cross-entropy from the log-probabilities: the loss Keras's evaluate
    reports for the same model and images), accuracy, worst_class_recall, nan_predictions
    (images whose output is NaN: counted wrong; the loss is then None, as a NaN is not JSON),
    a note when there are any, and the per-class rows of a set of predictions."""
    log_probabilities = np.asarray(log_probabilities, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    _check_shapes(log_probabilities, labels, None, class_names)
    predicted = predicted_classes(log_probabilities)
    classes = len(class_names)
    missing = unpredicted(labels, predicted, classes)
    rows = per_class_metrics(
        confusion_matrix(labels, predicted, classes), list(class_names), missing
    )
    loss = float(losses(log_probabilities, labels).mean()) + 0.0 if labels.size else None
    nan_count = int(missing.sum())
    figures: dict[str, Any] = {
        "images": int(labels.size),
        # None for a model whose outputs are not finite (a diverged run): JSON has no NaN.
        "loss": loss if loss is not None and math.isfinite(loss) else None,
        "accuracy": float((predicted == labels).mean()) if labels.size else None,
        "worst_class_recall": worst_class_recall(rows),
        "nan_predictions": nan_count,
        "per_class": rows,
    }
    if nan_count:
        figures["note"] = (
            f"{nan_count} of {labels.size} image(s) got a NaN output (a diverged model): "
            "counted as wrong, in no column of the confusion matrix; the loss is undefined"
        )
    return figures


def write_view(
    folder: Path,
    log_probabilities: np.ndarray,
    labels: np.ndarray,
    paths: list[str],
    class_names: list[str],
    image_size: int | None = None,
    prefix: str = "",
    count: int = TOP_LOSS_ROWS,
    subject: str | None = None,
) -> dict:
    """The per-class view and top losses of a set of predictions (log-probabilities, as
    top_losses), in folder: confusion.csv, confusion.png (titled with subject), per_class.csv,
    top_losses.csv and (with image_size, the images reloaded at that size as the model saw
    them; needs TensorFlow) top_losses.png, each name after prefix. Returns summarise()'s
    figures."""
    names = [str(name) for name in class_names]
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    figures = summarise(log_probabilities, labels, names)
    predicted = predicted_classes(log_probabilities)
    write_confusion(
        folder,
        confusion_matrix(labels, predicted, len(names)),
        names,
        prefix,
        unpredicted(labels, predicted, len(names)),
        subject,
    )
    rows = top_losses(log_probabilities, labels, paths, names, count)
    pictures = None
    if image_size and rows:
        from train import data

        shown = rows[:TOP_LOSSES]
        pipeline = data.make_dataset(
            [str(row["path"]) for row in shown],
            np.zeros(len(shown), dtype=np.int32),
            int(image_size),
            len(shown),
            False,
            None,
            cache=False,
        )
        pictures = next(iter(pipeline))[0].numpy()
    write_top_losses(folder, rows, pictures, prefix)
    return figures
