"""The recipe after the sanity checks: an ablation chain, tuning, an ensemble, and its report.

Each ablation stage changes one thing in the run it builds on and states what that change
should do; its verdict compares the two runs' best validation loss (or, for the cheaper
variants, allows a small loss for the saving):

    baseline -> xception -> augment -> dropout -> pretrained
                                       dropout -> weight_decay
                                       dropout -> smaller_input -> smaller_batch
                                                -> early_stopping -> bigger_model

With a random seed set, every run reseeds before building and training, so runs that share an
architecture start from the same weights and see the same batches. A run the chain needs for a
comparison but that was not asked for is trained on demand (its epochs show in the log under
its own name), never silently skipped.

The ablation chain's stages and tuning (the runs trained here, not baseline) also get
predictions.npz and prediction_dynamics.png (one fixed validation batch, stratified by class,
after every evaluation); every training stage gets first_layer_filters.png.
write_report() builds ablation.csv, ablation.md and ablation.png (the source article's four
panels) from the run folders. The source article: Karpathy's "A Recipe for Training Neural
Networks", as a Spanish article applied it to cats vs dogs.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import keras
import numpy as np

from train import data, diagnostics, figures, human, models, stages
from train.bias import log_probabilities, probabilities
from train.config import ABLATION, TrainConfig
from train.runs import (
    RunSpec,
    StageResult,
    Verdict,
    finished_stages,
    incomplete_stages,
    read_history,
    run_summary,
    stage_status,
)
from train.stages import Context, stratified_indices


@dataclass
class Trained:
    """A finished run: its spec, history, model and the fixed-batch predictions."""

    spec: RunSpec
    history: dict[str, list[float]]
    model: keras.Model
    # {"probabilities": (epochs, n, classes), "labels": (n,), "prior": (classes,),
    #  "class_names": (classes,)}
    predictions: dict | None
    seconds: float

    @property
    def best_val_loss(self) -> float:
        return min(self.history["val_loss"])


@dataclass(frozen=True)
class SpecChange:
    """How a stage's run differs from the run it builds on (None: unchanged)."""

    model: str | None = None
    learning_rate: float | None = None
    options: dict | None = None  # replaces the model options of the run built on
    extra_options: dict = field(default_factory=dict)  # set over the (kept or replaced) options
    image_size_factor: float | None = None  # input side times this, rounded, at least 8
    # Batch size times this, rounded, at least 1; the steps change inversely, so the run sees
    # as many images as the one it builds on.
    batch_size_factor: float | None = None
    augment: bool | None = None
    early_stopping: bool | None = None
    weight_decay: float | None = None
    # Loshchilov & Hutter's normalised weight decay: the run's Keras weight_decay follows from
    # its steps and learning rate (train.models.keras_weight_decay).
    weight_decay_normalized: float | None = None

    def apply(self, spec: RunSpec) -> RunSpec:
        """The spec of the run built on, with this change made."""
        image_size, batch_size = spec.image_size, spec.batch_size
        if self.image_size_factor is not None:
            image_size = max(8, round(image_size * self.image_size_factor))
        if self.batch_size_factor is not None:
            batch_size = max(1, round(batch_size * self.batch_size_factor))
        options = spec.options if self.options is None else self.options
        # Another batch size sees as many images as the run built on: steps scale inversely.
        steps = max(spec.evaluations, round(spec.steps * spec.batch_size / batch_size))
        changed = RunSpec(
            model=spec.model if self.model is None else self.model,
            options={**options, **self.extra_options},
            learning_rate=spec.learning_rate if self.learning_rate is None else self.learning_rate,
            image_size=image_size,
            batch_size=batch_size,
            steps=steps,
            evaluations=spec.evaluations,
            augment=spec.augment if self.augment is None else self.augment,
            early_stopping=(
                spec.early_stopping if self.early_stopping is None else self.early_stopping
            ),
            weight_decay=spec.weight_decay if self.weight_decay is None else self.weight_decay,
        )
        if self.weight_decay_normalized is not None:
            changed = replace(
                changed,
                weight_decay=models.keras_weight_decay(
                    self.weight_decay_normalized, changed.steps, changed.learning_rate
                ),
            )
        return changed


@dataclass(frozen=True)
class AblationStep:
    """One stage of the ablation chain: the run it builds on, what changes, what should follow."""

    name: str
    builds_on: str  # the stage whose run this one changes and is compared with
    change: str  # the change in words (config.json "change")
    hypothesis: str
    spec_change: SpecChange
    # 1.0: the best validation loss must drop below the builds-on run's. Above 1.0: it may be
    # up to this many times the builds-on run's (a cheaper variant may lose a little).
    tolerance: float = 1.0


def ablation_chain(config: TrainConfig) -> dict[str, AblationStep]:
    """The chain's stages by name, in train.config.ABLATION order, for this configuration."""
    steps = (
        AblationStep(
            name="xception",
            builds_on="baseline",
            change=f"small Xception, Adam {config.xception_learning_rate:g} constant",
            hypothesis="A small Xception (residual separable convolutions) reaches a lower best "
            "validation loss than the simple CNN.",
            spec_change=SpecChange(
                model="small_xception",
                learning_rate=config.xception_learning_rate,
                options={
                    "sizes": config.xception_sizes,
                    "final": config.xception_final,
                    "batchnorm_momentum": config.batchnorm_momentum,
                },
            ),
        ),
        AblationStep(
            name="augment",
            builds_on="xception",
            change=(
                f"random shift {config.augment_translation:g}, rotation "
                f"{config.augment_rotation:g} turn, zoom {config.augment_zoom:g}"
                f"{', horizontal flip' if config.flip else ', no flip'} "
                "(constant fill, tf.data, CPU)"
            ),
            hypothesis="Augmentation regularises: the best validation loss drops below the "
            "unaugmented Xception's.",
            spec_change=SpecChange(augment=True),
        ),
        AblationStep(
            name="dropout",
            builds_on="augment",
            change=f"dropout {config.dropout} before the head",
            hypothesis="Dropout regularises further: the best validation loss drops below the "
            "augmented run's.",
            spec_change=SpecChange(extra_options={"dropout": config.dropout}),
        ),
        AblationStep(
            name="pretrained",
            builds_on="dropout",
            change="frozen MobileNetV2 backbone from local weights, new head",
            hypothesis="Features pretrained on ImageNet beat training from scratch: a lower best "
            "validation loss.",
            spec_change=SpecChange(
                model="pretrained",
                learning_rate=config.xception_learning_rate,
                options={"weights_path": config.weights, "dropout": config.dropout},
            ),
        ),
        AblationStep(
            name="weight_decay",
            builds_on="dropout",
            change=f"AdamW normalised weight decay {config.weight_decay_normalized:g} "
            "(Loshchilov & Hutter: per step lambda_norm / sqrt(steps); not on biases, "
            "BatchNorm)",
            hypothesis="Weight decay regularises further: the best validation loss drops below "
            "the dropout run's. A side branch, like pretrained: nothing builds on it, so a "
            "decay that does not help leaves the rest of the chain comparable.",
            spec_change=SpecChange(weight_decay_normalized=config.weight_decay_normalized),
        ),
        AblationStep(
            name="smaller_input",
            builds_on="dropout",
            change=f"input side x{config.smaller_input_factor:g}",
            hypothesis="A smaller input costs little: the best validation loss stays within 10% "
            "of the full-size run's.",
            spec_change=SpecChange(image_size_factor=config.smaller_input_factor),
            tolerance=1.10,
        ),
        AblationStep(
            name="smaller_batch",
            builds_on="smaller_input",
            change=f"batch size x{config.smaller_batch_factor:g}",
            hypothesis="Smaller batches (more, noisier steps over the same images) generalise at "
            "least as well: within 5% of the larger batch.",
            spec_change=SpecChange(batch_size_factor=config.smaller_batch_factor),
            tolerance=1.05,
        ),
        AblationStep(
            name="early_stopping",
            builds_on="smaller_batch",
            change="EarlyStopping(restore_best_weights) and ReduceLROnPlateau",
            hypothesis="Early stopping keeps the best epoch's weights, and the run is no worse "
            "than without it (within 5%).",
            spec_change=SpecChange(early_stopping=True),
            tolerance=1.05,
        ),
        AblationStep(
            name="bigger_model",
            builds_on="early_stopping",
            change="bigger Xception",
            hypothesis="A bigger model reaches a lower best validation loss than the smaller one.",
            spec_change=SpecChange(
                model="small_xception",
                extra_options={"sizes": config.bigger_sizes, "final": config.bigger_final},
            ),
        ),
    )
    return {step.name: step for step in steps}


class Ablation:
    """The runs of one recipe, memoised by stage name, on one Context, and each chain stage's
    judged result (so a stage knows the status of the run it builds on even when that stage
    was not asked for)."""

    def __init__(self, context: Context):
        self.context = context
        self.config = context.config
        self.chain = ablation_chain(context.config)
        self.trained: dict[str, Trained] = {}
        self.results: dict[str, StageResult] = {}
        # A stage whose run would repeat another's (early stopping that cannot trigger) uses
        # that run: stage -> the stage whose run it is.
        self.same_run_as: dict[str, str] = {}

    def spec(self, stage: str) -> RunSpec:
        """The stage's run spec: the baseline's, changed by each step on the way to the stage.
        A stage whose run is another's (same_run_as) passes that run's spec on: the stages
        built on it change one thing against the run they are compared with."""
        if stage == "baseline":
            return self.context.baseline_spec
        step = self.chain[stage]
        builds_on = self.same_run_as.get(step.builds_on, step.builds_on)
        return step.spec_change.apply(self.spec(builds_on))

    def idle_early_stopping(self) -> str | None:
        """Why the early_stopping run would repeat the run it builds on (its callbacks could not
        fire on that run's validation curve), or None. Trains that run if needed."""
        step = self.chain["early_stopping"]
        stopping, reduce = self.patience(self.spec("early_stopping"))
        losses = self.run(step.builds_on).history["val_loss"]
        if stalls(losses, stopping) or stalls(losses, reduce, min_delta=1e-4):
            return None
        return (
            f"early stopping would not trigger: {step.builds_on}'s validation loss never "
            f"stalled for {stopping} evaluation(s) (nor {reduce} for the learning-rate "
            f"schedule) in {len(losses)}; the run would repeat {step.builds_on}'s. Raise "
            "--steps or --evaluations to see it act"
        )

    def run(self, stage: str) -> Trained:
        """The stage's run, trained on the first call only (the baseline is Context's; an
        early_stopping run that would repeat the one it builds on is that run)."""
        if stage == "early_stopping" and stage not in self.trained and self.idle_early_stopping():
            builds_on = self.chain[stage].builds_on
            self.same_run_as[stage] = builds_on
            self.trained[stage] = self.run(builds_on)
        if stage not in self.trained:
            spec = self.spec(stage)
            if stage == "baseline":
                model, history = self.context.baseline()
                seconds = self.context.baseline_seconds
                self.trained[stage] = Trained(spec, history, model, None, seconds)
            else:
                self.trained[stage] = self.train(stage, spec)
        return self.trained[stage]

    def patience(self, spec: RunSpec) -> tuple[int, int]:
        """Early stopping's and the learning-rate schedule's patience (in evaluations) for a
        run: the configured ones, cut to a third of the run's evaluations (at least 1) so
        they can trigger within the budget (patience 3 of 6 evaluations never did on the
        demo)."""
        fits = max(1, spec.evaluations // 3)
        stopping = min(self.config.early_stopping_patience, fits)
        return stopping, max(1, min(self.config.reduce_lr_patience, stopping))

    def train(self, label: str, spec: RunSpec, steps: int | None = None) -> Trained:
        """Build and train one run (not memoised); label names it in the log."""
        started = time.monotonic()
        model = self.context.build(
            spec.model,
            learning_rate=spec.learning_rate,
            image_size=spec.image_size,
            weight_decay=spec.weight_decay,
            **spec.options,
        )
        watch = FixedBatch(self.context, spec.image_size)
        callbacks: list[keras.callbacks.Callback] = [watch]
        if spec.early_stopping:
            stopping, reduce = self.patience(spec)
            callbacks += [
                keras.callbacks.EarlyStopping(
                    monitor="val_loss", patience=stopping, restore_best_weights=True
                ),
                keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=reduce),
            ]
        history = self.context.fit(
            model,
            label,
            steps=steps or spec.steps,
            evaluations=spec.evaluations,
            image_size=spec.image_size,
            batch_size=spec.batch_size,
            augment=spec.augment,
            callbacks=tuple(callbacks),
        )
        history.pop("learning_rate", None)  # ReduceLROnPlateau's log is not a metric to compare
        predictions = (
            {
                "probabilities": np.stack(watch.probabilities),
                "labels": watch.labels,
                "prior": watch.prior,
                "class_names": watch.class_names,
            }
            if watch.probabilities
            else None
        )
        return Trained(spec, history, model, predictions, time.monotonic() - started)

    def stage_result(self, stage: str) -> StageResult:
        """The stage's judged result (trained and judged on the first call only)."""
        if stage not in self.results:
            if stage == "baseline":
                self.results[stage] = stages.baseline(self.context)
            else:
                self.results[stage] = judge_chain_stage(self, stage)
        return self.results[stage]

    def reference(self, stage: str) -> stages.Reference:
        """The stage's run as the stages built on it see it (a skipped early_stopping is the
        run it would have repeated)."""
        same = self.same_run_as.get(stage)
        result = self.stage_result(same or stage)
        label = f"{stage}, the same run as {same}" if same else stage
        return stages.Reference(label, result.status, result.cause)


def stalls(losses: list[float], patience: int, min_delta: float = 0.0) -> bool:
    """Whether a run with these validation losses would have stalled for `patience`
    evaluations in a row (what keras.callbacks.EarlyStopping and ReduceLROnPlateau wait for:
    no value below the best so far by more than min_delta)."""
    best, waited = float("inf"), 0
    for index, loss in enumerate(losses):
        if loss < best - min_delta:
            best, waited = loss, 0
            continue
        waited += 1
        if waited >= patience and index > 0:
            return True
    return False


class FixedBatch(keras.callbacks.Callback):
    """Probabilities on one fixed validation batch after every evaluation (prediction dynamics).

    The batch is stratified by class (train.stages.stratified_indices, with the run's random
    seed, so every stage watches the same images): the first validation files in folder order
    are often one class, and a model that collapses onto one class would look perfect there.
    """

    def __init__(self, context: Context, image_size: int):
        super().__init__()
        self.binary = context.init.binary
        split, config = context.split, context.config
        count = max(config.dynamics_examples, len(split.class_names))
        indices = (
            stratified_indices(split.val_labels, count, config.seed)
            if len(split.val_labels)
            else np.zeros(0, dtype=np.int64)
        )
        self.labels = np.asarray(split.val_labels)[indices]
        self.prior = np.asarray(context.init.prior, dtype=np.float64)
        self.class_names = np.asarray(split.class_names, dtype=str)
        self.images = None
        if indices.size:
            batch = data.make_dataset(
                [split.val_paths[index] for index in indices],
                self.labels,
                image_size,
                int(indices.size),
                False,
                config.seed,
                cache=False,
            )
            self.images = next(iter(batch))[0]
        self.probabilities: list[np.ndarray] = []

    def on_epoch_end(self, epoch, logs=None):
        if self.images is None:
            return
        # A direct call, not predict_on_batch: no tf.function is traced again every epoch.
        self.probabilities.append(
            probabilities(self.model(self.images, training=False), self.binary)
        )


def _summary(trained: Trained) -> dict:
    return run_summary(trained.spec.describe(), trained.history, trained.seconds)


def chain_stage(name: str) -> Callable[[Context], StageResult]:
    """The stage function for one ablation stage (run_chain_stage with the name filled in)."""
    return partial(run_chain_stage, name)


def run_chain_stage(name: str, context: Context) -> StageResult:
    """The ablation stage's judged result (see judge_chain_stage)."""
    return _ablation(context).stage_result(name)


def judge_chain_stage(ablation: Ablation, name: str) -> StageResult:
    """Train the stage's run and the one it builds on; compare their best validation loss; the
    status also says whether the run collapsed, whether the budget sufficed, and whether the
    run it builds on can be compared with at all (invalid_reference)."""
    context = ablation.context
    step = ablation.chain[name]
    builds_on = step.builds_on
    result = StageResult(
        name=name,
        hypothesis=step.hypothesis,
        config={**asdict(context.config), "change": step.change, "builds_on": builds_on},
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
    if name == "early_stopping":
        idle = ablation.idle_early_stopping()
        if idle:
            # The same seed, the same steps and callbacks that never fire: the run would be
            # the one it builds on, trained again. Later stages build on that run.
            ablation.run(name)
            result.skipped = idle
            return result
    trained = ablation.run(name)
    ours, theirs = trained.best_val_loss, reference.best_val_loss
    tolerance = step.tolerance
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
                f"validation loss of the final weights {final:.4f} vs the best evaluation's "
                f"{ours:.4f}",
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
    if spec.early_stopping:
        result.summary["early_stopping_patience"] = ablation.patience(spec)[0]
    if name == "weight_decay":
        # weight_decay (from the spec) is Keras's, multiplied by the learning rate each step.
        normalized = context.config.weight_decay_normalized
        result.summary["weight_decay_normalized"] = normalized
        result.summary["weight_decay_per_step"] = models.decay_per_step(normalized, spec.steps)
        result.summary["weight_norm"] = models.kernel_norm(trained.model)
        result.summary[f"{builds_on}_weight_norm"] = models.kernel_norm(reference.model)
    result.extras = {"predictions": trained.predictions}
    return stages.judge(
        result,
        context,
        trained.history,
        reference=ablation.reference(builds_on),
        spec=spec,
    )


def _ablation(context: Context) -> Ablation:
    """The context's Ablation, created by the first stage that needs it."""
    if context.ablation is None:
        context.ablation = Ablation(context)
    return context.ablation


def tuning(context: Context) -> StageResult:
    """Random search over learning rate, width, dropout and batch size around the Xception run."""
    ablation = _ablation(context)
    config = context.config
    rng = np.random.default_rng(config.seed)
    xception = ablation.spec("xception")
    base = replace(xception, steps=config.tuning_steps)
    trials = [("default", base)]
    for index in range(1, config.tuning_trials):
        width = float(rng.choice([0.5, 1.0, 2.0]))
        batch_size = int(rng.choice([16, 32, 64]))
        trials.append(
            (
                f"trial{index}",
                replace(
                    base,
                    learning_rate=float(10 ** rng.uniform(-4, -2.5)),
                    batch_size=batch_size,
                    # As many images as the default trial sees, whatever the batch size.
                    steps=max(base.evaluations, round(base.steps * base.batch_size / batch_size)),
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
        trained = ablation.train(f"tuning {label}", spec)
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
        hypothesis=f"The best of {len(trials)} random configurations "
        f"(learning rate, width, dropout, batch size; each seeing as many images as "
        f"{config.tuning_steps} steps at batch {base.batch_size}) beats the default Xception "
        "configuration.",
        config={**asdict(config), "trials": rows, "best_trial": best_label},
    )
    result.verdicts = [
        Verdict(
            "best_trial_below_default",
            best.best_val_loss,
            default.best_val_loss,
            best.best_val_loss < default.best_val_loss,
            "value < threshold",
            f"best trial {best_label}: {best.best_val_loss:.4f} "
            f"vs default {default.best_val_loss:.4f}",
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
    # The comparison's reference is the default trial: no comparison with a broken one.
    return stages.judge(
        result,
        context,
        best.history,
        reference=stages.Reference(
            "the default trial", stages.run_health(default.history, context, base)
        ),
        spec=best.spec,
    )


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
        members[name] = log_probabilities(logits, context.init.binary)

    def loss_and_accuracy(logs: np.ndarray) -> tuple[float, float]:
        # The real cross-entropy (no clipping: see train.diagnostics); NaN outputs are wrong.
        predicted = diagnostics.predicted_classes(logs)
        return float(diagnostics.losses(logs, labels).mean()), float((predicted == labels).mean())

    singles = {name: loss_and_accuracy(logs) for name, logs in members.items()}
    best_single = min(singles, key=lambda name: singles[name][0])
    # log(mean of the members' probabilities), exact where they underflow: logsumexp - log k.
    stacked = np.stack(list(members.values()))
    peak = np.nan_to_num(stacked.max(axis=0), nan=0.0)
    mean = peak + np.log(np.exp(stacked - peak).mean(axis=0))
    ensemble_loss, ensemble_accuracy = loss_and_accuracy(mean)
    result = StageResult(
        name="ensemble",
        hypothesis=f"Averaging the probabilities of the best {len(ranked)} runs "
        f"({', '.join(ranked)}) beats the best single run on validation loss.",
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
        # Log of the averaged probabilities: the ensemble's per-class view
        # (write_validation_view).
        "validation_log_probabilities": mean,
        "tables": {
            "ensemble.csv": [
                {"run": name, "val_loss": value[0], "val_accuracy": value[1]}
                for name, value in singles.items()
            ]
            + [{"run": "ensemble", "val_loss": ensemble_loss, "val_accuracy": ensemble_accuracy}]
        },
    }
    return result


# ---------------------------------------------------------------- artefacts and the report


def write_extras(
    folder: Path, result: StageResult, grayscale: bool = False, context: Context | None = None
) -> None:
    """Per-stage extras: predictions, prediction dynamics, first-layer filters (beside a fresh
    initialisation of the same model; grey when the input is grayscale), extra tables, and
    with the context the per-class view and top losses on validation (write_validation_view)."""
    if context is not None:
        write_validation_view(folder, result, context)
    predictions = result.extras.get("predictions")
    if predictions is not None:
        np.savez_compressed(folder / "predictions.npz", **predictions)
        figures.prediction_dynamics(
            predictions["probabilities"],
            predictions["labels"],
            folder / "prediction_dynamics.png",
            class_names=predictions.get("class_names"),
            prior=predictions.get("prior"),
        )
    if result.model is not None:
        kernel = models.first_conv_kernel(result.model)
        if kernel is not None:
            initial = models.first_conv_kernel(keras.models.clone_model(result.model))
            figures.first_layer_filters(
                kernel, folder / "first_layer_filters.png", initial=initial, grayscale=grayscale
            )
    for name, rows in result.extras.get("tables", {}).items():
        with open(folder / name, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    # Stage-specific figures (lr_range.png, learning_curve.png): name -> draw(path).
    for name, draw in result.extras.get("figures", {}).items():
        draw(folder / name)


# Stages whose model is not trained (nothing to show per class).
_UNTRAINED = frozenset(("init_loss",))


def write_validation_view(folder: Path, result: StageResult, context: Context) -> dict | None:
    """The stage's model (or its validation log-probabilities,
    extras["validation_log_probabilities"], for the ensemble) on every validation image:
    confusion.csv/.png, per_class.csv,
    top_losses.csv/.png (train.diagnostics) and validation.json (images, loss, accuracy,
    worst_class_recall, nan_predictions, image_size: the figures of the model as saved, which
    the export ranks by). None for a stage without a trained model."""
    split = context.split
    logs = result.extras.get("validation_log_probabilities")
    image_size = context.config.image_size
    if logs is None:
        if result.model is None or result.name in _UNTRAINED or not len(split.val_paths):
            return None
        image_size = int(result.model.input_shape[1])
        logs = diagnostics.predict_log_probabilities(
            result.model, split.val_paths, context.config.batch_size
        )
    figures = diagnostics.write_view(
        folder,
        logs,
        split.val_labels,
        split.val_paths,
        list(split.class_names),
        image_size=image_size,
        subject="validation",
    )
    figures.pop("per_class")
    figures["image_size"] = image_size
    # The loss of always predicting the training prior, on these images: a saved model that
    # does not beat it (a diverged one) is never exported (train.export.candidates).
    prior = np.asarray(context.init.prior, dtype=np.float64)
    figures["prior_loss"] = float(-np.log(prior[np.asarray(split.val_labels)]).mean())
    (folder / "validation.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures


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
    "saved_val_accuracy",
    "worst_class_recall",
    "final_loss",
    "final_accuracy",
    "final_val_loss",
    "final_val_accuracy",
    "epochs_run",
    "steps_run",
    "seconds",
    "verdict",
    "builds_on",
    "delta_best_val_loss",
    "architecture",
    "note",
)
# The run figures copied from metrics.json's summary (best_val_loss .. steps_run, but for the
# saved model's two, which come from validation.json).
_SAVED_MODEL = ("saved_val_accuracy", "worst_class_recall")
_FIGURES = tuple(
    column
    for column in REPORT_COLUMNS[
        REPORT_COLUMNS.index("best_val_loss") : REPORT_COLUMNS.index("steps_run") + 1
    ]
    if column not in _SAVED_MODEL
)
# Stages of the comparison that may be skipped and still get a row saying why.
_CHAIN_STAGES = frozenset(("baseline", *ABLATION, "tuning"))
# Which stage each ablation stage builds on (the chain's shape does not depend on the sizes).
ABLATION_BUILDS_ON = {
    name: step.builds_on for name, step in ablation_chain(TrainConfig()).items()
} | {"tuning": "xception"}


def architecture(summary: dict) -> str:
    """The run's model in words a table can tell apart: the builder and its sizes (the xception
    and bigger_model stages share a builder, small_xception, and differ in sizes)."""
    options = summary.get("options") or {}
    model = str(summary.get("model", ""))
    if model == "small_xception" and options.get("sizes"):
        sizes = "-".join(str(size) for size in options["sizes"])
        return f"xception {sizes}/{options.get('final', '')}"
    if model in ("simple_cnn", "wider_cnn") and options.get("width"):
        multiplier = options.get("multiplier")
        return f"{model} w{options['width']}" + (f" x{multiplier:g}" if multiplier else "")
    return model


def write_report(run_path: Path) -> dict[str, Path]:
    """ablation.csv, ablation.md and ablation.png from the stage folders of a run.

    The verdict column holds the stage's status (train.runs.STATUSES): a row whose verdict is
    not pass says so, and why, in its note; invalid_reference rows are not fair comparisons.
    Run folders written before statuses existed read as pass, fail or skipped."""
    rows, histories = [], {}
    for folder, metrics in finished_stages(run_path):
        summary = metrics.get("summary") or {}
        history = read_history(folder / "history.csv") if (folder / "history.csv").exists() else {}
        status = stage_status(metrics)
        note = metrics.get("note") or metrics.get("skipped") or ""
        if status == "skipped" and metrics.get("stage") in _CHAIN_STAGES:
            rows.append(
                {key: "" for key in REPORT_COLUMNS}
                | {
                    "stage": metrics["stage"],
                    "verdict": status,
                    "builds_on": ABLATION_BUILDS_ON.get(metrics["stage"], ""),
                    "note": note,
                }
            )
            continue
        if "val_loss" not in history or "model" not in summary:
            continue  # sanity checks and the ensemble are not training runs of the comparison
        histories[metrics["stage"]] = history
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
                **{key: summary.get(key, "") for key in _FIGURES},
                # The saved model's accuracy and worst class recall, both from validation.json
                # (one model, all validation images): the best evaluation may be another.
                **_saved_figures(folder),
                # The run's own training time (the stage's may be ~0 when an earlier stage
                # trained the run it reports, as shuffled_labels does for baseline).
                "seconds": summary.get("train_seconds") or metrics["seconds"],
                "verdict": status,
                "builds_on": summary.get("builds_on", ""),
                "delta_best_val_loss": summary.get("delta_best_val_loss", ""),
                "architecture": architecture(summary),
                "note": note,
            }
        )
    paths = {name: run_path / name for name in ("ablation.csv", "ablation.md", "ablation.png")}
    with open(paths["ablation.csv"], "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, REPORT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    paths["ablation.md"].write_text(
        ablation_markdown(rows, incomplete_stages(run_path), held_out_line(run_path))
        + human.report_section(run_path)
    )
    figures.four_panel(histories, paths["ablation.png"])
    return paths


def _saved_figures(folder: Path) -> dict[str, float | str]:
    """saved_val_accuracy and worst_class_recall of the stage's saved model on validation
    (validation.json); "" for a stage folder without one (written before the per-class view,
    or no model) and for a figure it lacks."""
    figures: dict[str, float | str] = {"saved_val_accuracy": "", "worst_class_recall": ""}
    try:
        value = json.loads((folder / "validation.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return figures
    if not isinstance(value, dict):
        return figures
    for column, key in (
        ("saved_val_accuracy", "accuracy"),
        ("worst_class_recall", "worst_class_recall"),
    ):
        try:
            figures[column] = float(value[key])
        except (KeyError, TypeError, ValueError):
            pass
    return figures


def held_out_line(run_path: Path) -> str | None:
    """The held-out test result in one line (RUN/test.json), or None without a test split. A
    test.json that is not the object this tool writes reads as a line saying so."""
    path = Path(run_path) / "test.json"
    try:
        test = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        return f"Held-out test: {path.name} is unreadable ({type(error).__name__})"
    try:
        return _held_out_text(test)
    except (AttributeError, KeyError, TypeError, ValueError):
        return f"Held-out test: {path.name} is malformed (not the object a run writes)"


def _held_out_text(test: dict) -> str:
    from audit.escaping import terminal  # class names on one line, control characters escaped

    thin = test.get("thin_test_classes") or {}
    caveat = (
        "; few test images (recall rests on a handful) in "
        + ", ".join(f"{terminal(str(name))} ({int(count)})" for name, count in thin.items())
        if thin
        else ""
    )
    if not test.get("evaluated"):
        return (
            f"Held-out test ({int(test.get('images', 0))} images): not evaluated: "
            f"{test.get('reason')}"
        )
    worst = test.get("worst_class_recall")
    loss = test.get("loss")
    nan_count = int(test.get("nan_predictions") or 0)
    return (
        f"Held-out test ({int(test['images'])} images, evaluated once, model of "
        f"{test['stage']}): loss {'undefined' if loss is None else format(loss, '.4f')}, "
        f"accuracy {test['accuracy']:.3f}, worst class recall "
        f"{'-' if worst is None else format(worst, '.3f')}"
        + (f", {nan_count} NaN output(s) counted wrong" if nan_count else "")
        + caveat
    )


def _number(value, form: str) -> str:
    return "" if value in ("", None) else format(value, form)


def _steps(row: dict) -> str:
    """The steps a run took; runs written before 0.2 know only their epochs ("3 ep")."""
    if row["steps_run"] not in ("", None):
        return str(row["steps_run"])
    return "" if row["epochs_run"] in ("", None) else f"{row['epochs_run']} ep"


def ablation_markdown(
    rows: list[dict], incomplete: list[str] | tuple[str, ...] = (), held_out: str | None = None
) -> str:
    """The ablation table in Markdown, then one line per row whose verdict is not pass, one
    per stage folder cut off before its metrics.json was written, and the held-out test line
    (held_out_line) apart from the table."""
    lines = [
        # "saved model": the weights in model.keras on every validation image (validation.json),
        # its accuracy beside its worst class recall; "best val": the run's best evaluation.
        "| stage | model | size | batch | lr | aug | drop | best val loss | best val acc "
        "| saved model val acc | saved model worst class recall | final loss | steps | s "
        "| verdict | vs | delta |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for row in rows:
        augment = "" if row["augment"] == "" else ("yes" if row["augment"] else "no")
        lines.append(
            f"| {row['stage']} | {row['architecture']} | {row['image_size']} "
            f"| {row['batch_size']} | {_number(row['learning_rate'], 'g')} | {augment} "
            f"| {_number(row['dropout'], 'g')} | {_number(row['best_val_loss'], '.4f')} "
            f"| {_number(row['best_val_accuracy'], '.3f')} "
            f"| {_number(row.get('saved_val_accuracy', ''), '.3f')} "
            f"| {_number(row.get('worst_class_recall', ''), '.3f')} "
            f"| {_number(row['final_loss'], '.4f')} "
            f"| {_steps(row)} "
            f"| {_number(row['seconds'], '.1f')} | {row['verdict']} | {row['builds_on']} "
            f"| {_number(row['delta_best_val_loss'], '+.4f')} |"
        )
    notes = [f"- {row['stage']} ({row['verdict']}): {row['note']}" for row in rows if row["note"]]
    notes += [
        f"- {name}: incomplete (no readable metrics.json: the run was cut off while writing it)"
        for name in incomplete
    ]
    if notes:
        lines += ["", *notes]
    if held_out:
        lines += ["", held_out]
    return "\n".join(lines) + "\n"
