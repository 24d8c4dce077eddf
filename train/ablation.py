"""The recipe after the sanity checks: an ablation chain, tuning, an ensemble, and its report.

Each ablation stage changes one thing in the run it builds on and states what that change
should do; its verdict compares the two runs' best validation loss (or, for the cheaper
variants, allows a small loss for the saving):

    baseline -> xception -> augment -> dropout -> pretrained
                                    dropout -> smaller_input -> smaller_batch -> early_stopping -> bigger_model

Every run reseeds before building and training, so runs that share an architecture start
from the same weights and see the same batches. A run the chain needs for a comparison but
that was not asked for is trained on demand (and logged), never silently skipped.

Each stage folder also gets predictions.npz and prediction_dynamics.png (one fixed
validation batch after every epoch) and first_layer_filters.png. write_report() builds
ablation.csv, ablation.md and ablation.png (the seed's four panels) from the run folders.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import keras
import numpy as np

from train import figures, models
from train.runs import StageResult, Verdict, read_history, run_summary
from train.stages import Context


@dataclass(frozen=True)
class RunSpec:
    """What one training run is: the model and everything around it."""

    model: str
    options: dict = field(default_factory=dict)
    learning_rate: float = 1e-3
    image_size: int = 32
    batch_size: int = 32
    augment: bool = False
    early_stopping: bool = False

    def describe(self) -> dict:
        return asdict(self)


@dataclass
class Trained:
    """A finished run: its spec, history, model and the fixed-batch predictions."""

    spec: RunSpec
    history: dict[str, list[float]]
    model: object
    predictions: dict | None  # {"probabilities": (epochs, n, classes), "labels": (n,)}
    seconds: float

    @property
    def best_val_loss(self) -> float:
        return min(self.history["val_loss"])


# stage -> (builds on, what changes, hypothesis, how the spec changes)
def _chain(config) -> dict:
    return {
        "xception": (
            "baseline",
            f"small Xception, Adam {config.xception_learning_rate:g} constant",
            "A small Xception (residual separable convolutions) reaches a lower best validation loss than the simple CNN.",
            lambda spec: replace(
                spec,
                model="small_xception",
                learning_rate=config.xception_learning_rate,
                options={
                    "sizes": config.xception_sizes,
                    "final": config.xception_final,
                    "batchnorm_momentum": config.batchnorm_momentum,
                },
            ),
        ),
        "augment": (
            "xception",
            "random flip, rotation, zoom and crop (tf.data, CPU)",
            "Augmentation regularises: the best validation loss drops below the unaugmented Xception's.",
            lambda spec: replace(spec, augment=True),
        ),
        "dropout": (
            "augment",
            f"dropout {config.dropout} before the head",
            "Dropout regularises further: the best validation loss drops below the augmented run's.",
            lambda spec: replace(spec, options={**spec.options, "dropout": config.dropout}),
        ),
        "pretrained": (
            "dropout",
            "frozen MobileNetV2 backbone from local weights, new head",
            "Features pretrained on ImageNet beat training from scratch: a lower best validation loss.",
            lambda spec: replace(
                spec,
                model="pretrained",
                options={"weights_path": config.weights, "dropout": config.dropout},
                learning_rate=config.xception_learning_rate,
            ),
        ),
        "smaller_input": (
            "dropout",
            f"input side x{config.smaller_input_factor:g}",
            "A smaller input costs little: the best validation loss stays within 10% of the full-size run's.",
            lambda spec: replace(
                spec, image_size=max(8, round(spec.image_size * config.smaller_input_factor))
            ),
        ),
        "smaller_batch": (
            "smaller_input",
            f"batch size x{config.smaller_batch_factor:g}",
            "Smaller batches (more, noisier steps) generalise at least as well: within 5% of the larger batch.",
            lambda spec: replace(
                spec, batch_size=max(1, round(spec.batch_size * config.smaller_batch_factor))
            ),
        ),
        "early_stopping": (
            "smaller_batch",
            "EarlyStopping(restore_best_weights) and ReduceLROnPlateau",
            "Early stopping keeps the best epoch's weights, and the run is no worse than without it (within 5%).",
            lambda spec: replace(spec, early_stopping=True),
        ),
        "bigger_model": (
            "early_stopping",
            "bigger Xception",
            "A bigger model reaches a lower best validation loss than the smaller one.",
            lambda spec: replace(
                spec,
                model="small_xception",
                options={
                    **spec.options,
                    "sizes": config.bigger_sizes,
                    "final": config.bigger_final,
                },
            ),
        ),
    }


TOLERANCE = {"smaller_input": 1.10, "smaller_batch": 1.05, "early_stopping": 1.05}


class Ablation:
    """The runs of one recipe, memoised by stage name, on one Context."""

    def __init__(self, context: Context):
        self.context = context
        self.config = context.config
        self.chain = _chain(context.config)
        self.trained: dict[str, Trained] = {}

    def spec(self, stage: str) -> RunSpec:
        if stage == "baseline":
            return RunSpec(
                "simple_cnn",
                {"width": self.config.width},
                self.config.learning_rate,
                self.config.image_size,
                self.config.batch_size,
            )
        builds_on, _, _, change = self.chain[stage]
        return change(self.spec(builds_on))

    def run(self, stage: str) -> Trained:
        """Train the stage's run (once), including any run it is compared with."""
        if stage not in self.trained:
            spec = self.spec(stage)
            if stage == "baseline":
                model, history = self.context.baseline()
                self.trained[stage] = Trained(spec, history, model, None, 0.0)
            else:
                self.trained[stage] = self.train(stage, spec)
        return self.trained[stage]

    def train(self, label: str, spec: RunSpec, epochs: int | None = None) -> Trained:
        started = time.monotonic()
        model = self.context.build(
            spec.model, learning_rate=spec.learning_rate, image_size=spec.image_size, **spec.options
        )
        watch = FixedBatch(self.context, spec.image_size)
        callbacks = [watch]
        if spec.early_stopping:
            callbacks += [
                keras.callbacks.EarlyStopping(
                    monitor="val_loss",
                    patience=self.config.early_stopping_patience,
                    restore_best_weights=True,
                ),
                keras.callbacks.ReduceLROnPlateau(
                    monitor="val_loss", factor=0.5, patience=self.config.reduce_lr_patience
                ),
            ]
        history = self.context.fit(
            model,
            label,
            epochs=epochs,
            image_size=spec.image_size,
            batch_size=spec.batch_size,
            augment=spec.augment,
            callbacks=tuple(callbacks),
        )
        history.pop("learning_rate", None)  # ReduceLROnPlateau's log is not a metric to compare
        predictions = (
            {"probabilities": np.stack(watch.probabilities), "labels": watch.labels}
            if watch.probabilities
            else None
        )
        return Trained(spec, history, model, predictions, time.monotonic() - started)


class FixedBatch(keras.callbacks.Callback):
    """Probabilities on one fixed validation batch after every epoch (prediction dynamics)."""

    def __init__(self, context: Context, image_size: int):
        super().__init__()
        self.binary = context.init.binary
        images, labels = next(
            iter(context.dataset("val", shuffle=False, image_size=image_size, cache=False))
        )
        self.images, self.labels, self.probabilities = images, labels.numpy(), []

    def on_epoch_end(self, epoch, logs=None):
        # A direct call, not predict_on_batch: no tf.function is traced again every epoch.
        self.probabilities.append(
            probabilities(self.model(self.images, training=False), self.binary)
        )


def probabilities(logits, binary: bool) -> np.ndarray:
    """Class probabilities from logits: (n, 2) for a sigmoid head, (n, k) for softmax."""
    logits = np.asarray(logits, dtype=np.float64)
    if binary:
        positive = 1.0 / (1.0 + np.exp(-logits[:, 0]))
        return np.stack([1 - positive, positive], axis=1)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _summary(trained: Trained) -> dict:
    return run_summary(trained.spec.describe(), trained.history, trained.seconds)


def chain_stage(name: str):
    """The stage function for one ablation stage."""

    def stage(context: Context) -> StageResult:
        ablation = _ablation(context)
        builds_on, change, hypothesis, _ = ablation.chain[name]
        result = StageResult(
            name=name,
            hypothesis=hypothesis,
            config={**asdict(context.config), "change": change, "builds_on": builds_on},
        )
        spec = ablation.spec(name)
        if spec.model == "pretrained" and not (
            context.config.weights and Path(context.config.weights).is_file()
        ):
            result.skipped = (
                "no local MobileNetV2 weights file (--weights PATH); nothing is downloaded"
                if not context.config.weights
                else f"weights file {context.config.weights} does not exist"
            )
            return result
        reference = ablation.run(builds_on)
        trained = ablation.run(name)
        ours, theirs = trained.best_val_loss, reference.best_val_loss
        tolerance = TOLERANCE.get(name, 1.0)
        verdicts = []
        if name == "early_stopping":
            final = float(
                trained.model.evaluate(
                    context.dataset(
                        "val", shuffle=False, image_size=spec.image_size, batch_size=spec.batch_size
                    ),
                    verbose=0,
                )[0]
            )
            verdicts.append(
                Verdict(
                    "final_weights_are_the_best_epoch",
                    final - ours,
                    1e-4,
                    final - ours <= 1e-4,
                    "value <= threshold",
                    f"validation loss of the final weights {final:.4f} vs the best epoch's {ours:.4f}",
                )
            )
        if tolerance == 1.0:
            verdicts.append(
                Verdict(
                    f"best_val_loss_below_{builds_on}",
                    ours,
                    theirs,
                    ours < theirs,
                    "value < threshold",
                    f"best validation loss {ours:.4f} vs {theirs:.4f} for {builds_on}",
                )
            )
        else:
            ratio = ours / theirs if theirs > 0 else float("inf")
            verdicts.append(
                Verdict(
                    f"best_val_loss_within_{tolerance:g}x_of_{builds_on}",
                    ratio,
                    tolerance,
                    ratio <= tolerance,
                    "value <= threshold",
                    f"best validation loss {ours:.4f} vs {theirs:.4f} for {builds_on}",
                )
            )
        result.verdicts = verdicts
        result.history, result.model, result.seconds = (
            trained.history,
            trained.model,
            trained.seconds,
        )
        result.summary = {
            **_summary(trained),
            "builds_on": builds_on,
            "delta_best_val_loss": ours - theirs,
        }
        result.extras = {"predictions": trained.predictions}
        return result

    stage.__name__ = name
    return stage


def _ablation(context: Context) -> Ablation:
    if not hasattr(context, "ablation"):
        context.ablation = Ablation(context)
    return context.ablation


def tuning(context: Context) -> StageResult:
    """Random search over learning rate, width, dropout and batch size around the Xception run."""
    ablation = _ablation(context)
    config = context.config
    rng = np.random.default_rng(config.seed)
    base = ablation.spec("xception")
    trials = [("default", base)]
    for index in range(1, config.tuning_trials):
        width = float(rng.choice([0.5, 1.0, 2.0]))
        trials.append(
            (
                f"trial{index}",
                replace(
                    base,
                    learning_rate=float(10 ** rng.uniform(-4, -2.5)),
                    batch_size=int(rng.choice([16, 32, 64])),
                    options={
                        "sizes": tuple(
                            max(4, round(size * width)) for size in config.xception_sizes
                        ),
                        "final": max(8, round(config.xception_final * width)),
                        "dropout": float(rng.choice([0.0, 0.25, 0.5])),
                        "batchnorm_momentum": config.batchnorm_momentum,
                    },
                ),
            )
        )
    rows, runs = [], {}
    for label, spec in trials:
        trained = ablation.train(f"tuning {label}", spec, epochs=config.tuning_epochs)
        runs[label] = trained
        rows.append(
            {
                "trial": label,
                "learning_rate": spec.learning_rate,
                "batch_size": spec.batch_size,
                "sizes": "x".join(map(str, spec.options["sizes"])),
                "dropout": spec.options.get("dropout", 0.0),
                "best_val_loss": trained.best_val_loss,
                "seconds": round(trained.seconds, 1),
            }
        )
    best_label = min(runs, key=lambda label: runs[label].best_val_loss)
    best, default = runs[best_label], runs["default"]
    ablation.trained["tuning"] = best
    result = StageResult(
        name="tuning",
        hypothesis=f"The best of {len(trials)} random configurations (learning rate, width, dropout, batch size; "
        f"{config.tuning_epochs} epochs each) beats the default Xception configuration.",
        config={**asdict(config), "trials": rows, "best_trial": best_label},
    )
    result.verdicts = [
        Verdict(
            "best_trial_below_default",
            best.best_val_loss,
            default.best_val_loss,
            best.best_val_loss < default.best_val_loss,
            "value < threshold",
            f"best trial {best_label}: {best.best_val_loss:.4f} vs default {default.best_val_loss:.4f}",
        )
    ]
    result.history, result.model, result.seconds = (
        best.history,
        best.model,
        sum(run.seconds for run in runs.values()),
    )
    result.summary = {
        **_summary(best),
        "builds_on": "xception",
        "delta_best_val_loss": best.best_val_loss - default.best_val_loss,
    }
    result.extras = {"predictions": best.predictions, "tables": {"tuning.csv": rows}}
    return result


def ensemble(context: Context) -> StageResult:
    """Average the validation probabilities of the best k runs trained so far."""
    ablation = _ablation(context)
    config = context.config
    if len(ablation.trained) < 2:  # asked for alone: train what it needs, and say so in the log
        context.log("ensemble: training baseline and xception to have members")
        ablation.run("baseline")
        ablation.run("xception")
    candidates = dict(ablation.trained)
    ranked = sorted(candidates, key=lambda name: candidates[name].best_val_loss)[
        : max(2, config.ensemble_size)
    ]
    labels = context.split.val_labels
    members = {}
    for name in ranked:
        run = candidates[name]
        logits = run.model.predict(
            context.dataset("val", shuffle=False, image_size=run.spec.image_size), verbose=0
        )
        members[name] = probabilities(logits, context.init.binary)

    def loss_and_accuracy(probs: np.ndarray) -> tuple[float, float]:
        picked = np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1.0)
        return float(-np.log(picked).mean()), float((probs.argmax(axis=1) == labels).mean())

    singles = {name: loss_and_accuracy(probs) for name, probs in members.items()}
    best_single = min(singles, key=lambda name: singles[name][0])
    mean = np.mean(list(members.values()), axis=0)
    ensemble_loss, ensemble_accuracy = loss_and_accuracy(mean)
    result = StageResult(
        name="ensemble",
        hypothesis=f"Averaging the probabilities of the best {len(ranked)} runs ({', '.join(ranked)}) beats the best single run on validation loss.",
        config={**asdict(config), "members": ranked},
    )
    result.verdicts = [
        Verdict(
            "ensemble_val_loss_below_best_single",
            ensemble_loss,
            singles[best_single][0],
            ensemble_loss < singles[best_single][0],
            "value < threshold",
            f"ensemble {ensemble_loss:.4f} (accuracy {ensemble_accuracy:.3f}) vs {best_single} "
            f"{singles[best_single][0]:.4f} (accuracy {singles[best_single][1]:.3f})",
        )
    ]
    result.summary = {
        "members": ranked,
        "val_loss": ensemble_loss,
        "val_accuracy": ensemble_accuracy,
        "best_single": best_single,
        "best_single_val_loss": singles[best_single][0],
        "best_single_val_accuracy": singles[best_single][1],
    }
    result.extras = {
        "tables": {
            "ensemble.csv": [
                {"run": name, "val_loss": value[0], "val_accuracy": value[1]}
                for name, value in singles.items()
            ]
            + [{"run": "ensemble", "val_loss": ensemble_loss, "val_accuracy": ensemble_accuracy}]
        }
    }
    return result


# ---------------------------------------------------------------- artefacts and the report


def write_extras(folder: Path, result: StageResult, context: Context) -> None:
    """Per-stage extras: prediction dynamics, first-layer filters, extra tables."""
    predictions = (result.extras or {}).get("predictions")
    if predictions is not None:
        np.savez_compressed(folder / "predictions.npz", **predictions)
        figures.prediction_dynamics(
            predictions["probabilities"],
            predictions["labels"],
            context.split.class_names,
            folder / "prediction_dynamics.png",
        )
    if result.model is not None:
        kernel = models.first_conv_kernel(result.model)
        if kernel is not None:
            figures.first_layer_filters(kernel, folder / "first_layer_filters.png")
    for name, rows in (result.extras or {}).get("tables", {}).items():
        with open(folder / name, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


REPORT_COLUMNS = (
    "stage",
    "model",
    "image_size",
    "batch_size",
    "learning_rate",
    "augment",
    "dropout",
    "early_stopping",
    "best_val_loss",
    "best_val_accuracy",
    "final_loss",
    "final_accuracy",
    "final_val_loss",
    "final_val_accuracy",
    "epochs_run",
    "seconds",
    "verdict",
    "builds_on",
    "delta_best_val_loss",
)


def write_report(run_path: Path) -> dict[str, Path]:
    """ablation.csv, ablation.md and ablation.png from the stage folders of a run."""
    rows, histories = [], {}
    for folder in sorted(run_path.glob("[0-9][0-9]-*")):
        metrics = json.loads((folder / "metrics.json").read_text())
        summary = metrics.get("summary") or {}
        history = read_history(folder / "history.csv") if (folder / "history.csv").exists() else {}
        if "val_loss" not in history or "model" not in summary:
            continue  # sanity checks and the ensemble are not training runs of the comparison
        histories[metrics["stage"]] = history
        verdict = "skipped" if metrics.get("skipped") else ("pass" if metrics["passed"] else "fail")
        rows.append(
            {
                "stage": metrics["stage"],
                "model": summary["model"],
                "image_size": summary["image_size"],
                "batch_size": summary["batch_size"],
                "learning_rate": summary["learning_rate"],
                "augment": summary["augment"],
                "dropout": summary["options"].get("dropout", 0.0),
                "early_stopping": summary["early_stopping"],
                **{key: summary[key] for key in REPORT_COLUMNS[8:15]},
                "seconds": metrics["seconds"],
                "verdict": verdict,
                "builds_on": summary.get("builds_on", ""),
                "delta_best_val_loss": summary.get("delta_best_val_loss", ""),
            }
        )
    paths = {name: run_path / name for name in ("ablation.csv", "ablation.md", "ablation.png")}
    with open(paths["ablation.csv"], "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, REPORT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "| stage | model | size | batch | lr | aug | drop | best val loss | best val acc | final loss | epochs | s | verdict | vs | delta |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for row in rows:
        delta = row["delta_best_val_loss"]
        lines.append(
            f"| {row['stage']} | {row['model']} | {row['image_size']} | {row['batch_size']} | {row['learning_rate']:g} | "
            f"{'yes' if row['augment'] else 'no'} | {row['dropout']:g} | {row['best_val_loss']:.4f} | {row['best_val_accuracy']:.3f} | "
            f"{row['final_loss']:.4f} | {row['epochs_run']} | {row['seconds']:.1f} | {row['verdict']} | {row['builds_on']} | "
            f"{'' if delta == '' else f'{delta:+.4f}'} |"
        )
    paths["ablation.md"].write_text("\n".join(lines) + "\n")
    figures.four_panel(histories, paths["ablation.png"])
    return paths
