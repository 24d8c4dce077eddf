"""The learning curve: the source article's first regularisation step, "get more data", measured.

The baseline's simple CNN is trained on growing shares of the training split (nested, stratified
by class, seeded: TrainConfig.learning_curve_fractions, 25%, 50%, 100% by default), each for
the same number of steps, and judged on the same validation images. The 100% point is the
baseline run itself (Context.baseline), trained once.

The verdict compares the last doubling (the largest share below 100% against 100%) on
validation, image by image: `gain` when the mean per-image loss difference is at least twice
its standard error (and the configured margin; train.stages.paired_margin), `no_gain`
otherwise. `gain` says more data of this kind still pays off; `no_gain` is a finding about
the data at this budget (the curve has flattened, or the labels carry nothing the images show),
not a broken pipeline. The stage's status is pass for gain and fail for no_gain (the claim
"more data still pays" does not hold), not_converged or collapsed when the 100% run is
(train.stages.judge); nothing builds on it, so no stage downstream becomes invalid_reference.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from train import figures
from train.runs import StageResult, Verdict
from train.stages import (
    Context,
    _result,
    baseline_verdicts,
    judge,
    paired_margin,
    per_image_losses,
    standard_error,
)


def nested_subsets(labels: np.ndarray, fractions, seed: int | None) -> list[np.ndarray]:
    """Indices of each share of the training split: per class, the first round(share x count)
    images (at least one) of one seeded permutation, so each subset holds the smaller ones and
    keeps the class proportions."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    orders = {
        label: rng.permutation(np.flatnonzero(labels == label)) for label in np.unique(labels)
    }
    subsets = []
    for share in fractions:
        picked = [order[: max(1, round(share * order.size))] for order in orders.values()]
        subsets.append(np.sort(np.concatenate(picked)))
    return subsets


def learning_curve(context: Context) -> StageResult:
    """The simple CNN on growing shares of the training split at equal steps."""
    started = time.monotonic()
    config = context.config
    fractions = tuple(config.learning_curve_fractions)
    result = _result(
        "learning_curve",
        "More data of this kind still pays off: the simple CNN trained on the whole training "
        f"split ({config.steps} steps) reaches a lower validation loss than on "
        f"{fractions[-2]:.0%} of it at the same steps, by at least two standard errors of the "
        "per-image difference, and beats predicting the prior (verdict gain; no_gain "
        "otherwise).",
        context,
        model="simple_cnn",
        fractions=list(fractions),
    )
    split = context.split
    subsets = nested_subsets(split.train_labels, fractions, config.seed)
    losses, rows, histories = [], [], {}
    for share, indices in zip(fractions, subsets, strict=True):
        if share == 1.0:
            model, history = context.baseline()
        else:
            part = replace(
                split,
                train_paths=[split.train_paths[index] for index in indices],
                train_labels=split.train_labels[indices],
            )
            sub = Context(part, config, log=context.log, on_event=context.on_event)
            sub.checkpoints = context.checkpoints  # resumable like every run of the recipe
            model = sub.build("simple_cnn", width=config.width)
            history = sub.fit(model, f"learning curve {share:.0%}")
        per_image = per_image_losses(model, context, "val")
        losses.append(per_image)
        histories[share] = history
        rows.append(
            {
                "fraction": share,
                "train_images": int(indices.size),
                "val_loss": float(per_image.mean()),
                "val_loss_standard_error": standard_error(per_image),
                "best_val_loss": min(history["val_loss"]),
                "final_loss": history["loss"][-1],
            }
        )
    differences = losses[-2] - losses[-1]
    gain = float(differences.mean())
    margin = paired_margin(differences, config.baseline_margin)
    whole = losses[0] - losses[-1]
    # More data must pay in signal, not only in less overfitting: on shuffled labels the 25%
    # model overfit to 1.65 nats and the whole set's came back to 1.10, near the prior's
    # 1.10, a "gain" of 0.12 beyond its noise that learned nothing.
    whole_model, whole_history = context.baseline()
    signal = baseline_verdicts(context, whole_model, whole_history)[0]
    word = "gain" if gain >= margin and signal.passed else "no_gain"
    result.verdicts = [
        Verdict(
            "more_data_lowers_validation_loss",
            gain,
            margin,
            gain >= margin,
            "value >= threshold",
            f"{word}: validation loss {losses[-2].mean():.4f} on {fractions[-2]:.0%} of the "
            f"training images vs {losses[-1].mean():.4f} on all of them (paired per image; "
            f"margin: 2 standard errors, at least {config.baseline_margin:g}); from "
            f"{fractions[0]:.0%}: {whole.mean():+.4f} (2 SE {2 * standard_error(whole):.4f})",
        ),
        Verdict(
            "whole_set_model_beats_prior",
            signal.value,
            signal.threshold,
            signal.passed,
            signal.rule,
            f"what more data bought is signal: {signal.meaning}",
        ),
    ]
    result.summary = {
        "verdict": word,
        "fractions": list(fractions),
        "train_images": [row["train_images"] for row in rows],
        "val_loss": [row["val_loss"] for row in rows],
        "last_doubling_gain": gain,
        "last_doubling_margin": margin,
        "first_to_last_gain": float(whole.mean()),
        "first_to_last_standard_error": standard_error(whole),
    }
    result.history = {
        "train_images": [float(row["train_images"]) for row in rows],
        "val_loss": [row["val_loss"] for row in rows],
    }
    result.extras = {
        "tables": {"learning_curve.csv": rows},
        "figures": {"learning_curve.png": lambda path: plot(rows, context, path)},
    }
    result.model, result.seconds = None, time.monotonic() - started
    judge(result, context, histories[1.0])
    if result.status == "fail":
        result.note = (
            "no_gain: more images of this kind would not lower the validation loss at this "
            "budget (a finding about the data, not a broken pipeline)"
        )
    return result


def plot(rows: list[dict], context: Context, path) -> None:
    """Validation loss (with 2 standard errors) against training-set size, log2 x axis, the
    prior's validation loss as reference."""
    plt = figures.plt
    figure, axis = plt.subplots(figsize=(6, 4))
    sizes = [row["train_images"] for row in rows]
    axis.errorbar(
        sizes,
        [row["val_loss"] for row in rows],
        yerr=[2 * row["val_loss_standard_error"] for row in rows],
        marker="o",
        capsize=3,
        label="validation loss (2 SE)",
    )
    prior = np.asarray(context.init.prior)
    axis.axhline(
        float(-np.log(prior[context.split.val_labels]).mean()),
        linestyle="--",
        color="grey",
        label="predicting the prior",
    )
    axis.set_xscale("log", base=2)
    axis.set_xlabel("training images")
    axis.set_ylabel("validation loss")
    axis.set_title(f"learning curve at {context.config.steps} steps")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
