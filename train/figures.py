"""Figures of a run: the four-panel comparison, prediction dynamics, first-layer filters.

matplotlib with the Agg backend (no display needed); every function writes one PNG.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

PANELS = (
    ("accuracy", "training accuracy"),
    ("loss", "training loss"),
    ("val_accuracy", "validation accuracy"),
    ("val_loss", "validation loss"),
)


def four_panel(histories: dict[str, dict[str, list[float]]], path: Path) -> Path:
    """Training/validation accuracy and loss of every run, one line per run (the source
    article's figure)."""
    figure, axes = plt.subplots(2, 2, figsize=(12, 8), constrained_layout=True)
    for axis, (key, title) in zip(axes.ravel(), PANELS, strict=True):
        for name, history in histories.items():
            values = history.get(key)
            if values:
                axis.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=name)
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside right center", fontsize=8)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def class_colour(label: int, classes: int):
    """One colour per class: tab10 up to ten classes, tab20 up to twenty, then repeating."""
    palette = plt.cm.tab10 if classes <= 10 else plt.cm.tab20
    return palette(int(label) % palette.N)


def prediction_dynamics(
    probabilities: np.ndarray,
    labels: np.ndarray,
    path: Path,
    class_names=None,
    prior=None,
) -> Path:
    """How the probability of each example's true class moves, epoch after epoch.

    probabilities: (epochs, examples, classes); labels: (examples,). One line per example,
    coloured by its class, with a legend. The reference is the prior: a dashed line per class at
    the probability that predicting the training prior gives that class (1 / classes without a
    prior). A model that collapses onto one class shows its lines going to 1 and every other
    class's to 0.
    """
    probabilities = np.asarray(probabilities)
    labels = np.asarray(labels).astype(int)
    classes = probabilities.shape[2]
    names = (
        [str(name) for name in class_names]
        if class_names is not None and len(class_names) == classes
        else [f"class {index}" for index in range(classes)]
    )
    reference = (
        np.asarray(prior, dtype=np.float64)
        if prior is not None and len(prior) == classes
        else np.full(classes, 1.0 / classes)
    )
    epochs = np.arange(1, probabilities.shape[0] + 1)
    true_class = probabilities[:, np.arange(len(labels)), labels]
    figure, axis = plt.subplots(figsize=(9, 5), constrained_layout=True)
    present = sorted(set(labels.tolist()))
    for label in present:
        colour = class_colour(label, classes)
        members = np.flatnonzero(labels == label)
        for position, index in enumerate(members):
            axis.plot(
                epochs,
                true_class[:, index],
                color=colour,
                alpha=0.6,
                marker="o" if len(epochs) == 1 else None,
                markersize=3,
                label=f"{names[label]} ({len(members)})" if position == 0 else None,
            )
        axis.axhline(reference[label], color=colour, linestyle="--", linewidth=1)
    axis.plot([], [], color="grey", linestyle="--", linewidth=1, label="prior (per class)")
    axis.set_ylim(0, 1)
    axis.set_xlabel("epoch")
    axis.set_ylabel("probability of the true class")
    axis.set_title(
        f"Predictions on one fixed validation batch ({len(labels)} images of {len(present)} "
        "classes; colour = class)"
    )
    axis.legend(
        loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, title="true class (images)"
    )
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def first_layer_filters(
    kernel: np.ndarray,
    path: Path,
    columns: int = 8,
    initial: np.ndarray | None = None,
    grayscale: bool = False,
) -> Path:
    """The first convolution's filters as small images, trained beside initial weights.

    One shared scale for every filter (and for the initial weights): mid-grey is 0, the
    largest absolute weight of either kernel is black or white, so filters compare by strength.
    grayscale: the input's channels are all equal, so each filter acts as the sum of its
    input channels: drawn as one grey image. Otherwise the first three input channels as RGB.
    """
    kernels = {"trained": np.asarray(kernel, dtype=np.float32)}
    if initial is not None and np.shape(initial) == np.shape(kernel):
        kernels = {"at initialisation": np.asarray(initial, dtype=np.float32), **kernels}
    tiles = {
        name: (
            value.sum(axis=2, keepdims=True)  # (height, width, 1, filters)
            if grayscale or value.shape[2] < 3
            else value[:, :, :3]
        )
        for name, value in kernels.items()
    }
    scale = max(float(np.abs(value).max()) for value in tiles.values()) or 1.0
    count = kernel.shape[-1]
    rows = int(np.ceil(count / columns))
    figure, axes = plt.subplots(
        rows,
        columns * len(tiles) + len(tiles) - 1,
        figsize=((columns * len(tiles) + 1) * 0.9, rows * 0.9 + 0.6),
        squeeze=False,
    )
    for axis in axes.ravel():
        axis.axis("off")
    for part, (name, value) in enumerate(tiles.items()):
        offset = part * (columns + 1)
        axes[0, offset].set_title(name, loc="left", fontsize=9)
        for index in range(count):
            axis = axes[index // columns, offset + index % columns]
            tile = 0.5 + 0.5 * value[..., index] / scale
            if tile.shape[-1] == 1:
                axis.imshow(tile[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                axis.imshow(np.clip(tile, 0, 1), interpolation="nearest")
    figure.suptitle(
        f"First-layer filters ({count}, {kernel.shape[0]}x{kernel.shape[1]}"
        f"{', grayscale input' if grayscale else ''}); one shared scale: grey = 0, "
        f"extremes = +/-{scale:.3g}"
    )
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
