"""Sanity stages: each states a hypothesis, runs, and returns verdicts with value and threshold.

* init_loss: the untrained model's loss is the entropy of the prior, and no worse than
  with a zero output bias.
* overfit_one_batch: one fixed batch, stratified by class (at least two classes: on a batch
  of one class, moving the output bias is enough), no dropout or augmentation, is learned
  perfectly (judged on training-mode loss: with BatchNorm the inference-mode loss lags).
* input_independence: the model trained on real images beats one trained on zeroed
  images (zeroed in the pipeline, for training and validation alike).
* baseline: the simple CNN learns: its validation loss beats predicting the prior by
  more than validation noise.
* capacity: a wider model ends with a lower training loss than the baseline.
* determinism: the same configuration twice gives identical weights.

With a random seed set, every training run reseeds (keras.utils.set_random_seed) and rebuilds
its pipeline, so runs that share an architecture start from the same weights and see the same
batches.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

from train import data, models
from train.bias import PriorInit, prior_init
from train.config import TrainConfig
from train.runs import RunSpec, StageResult, Verdict, run_summary

if TYPE_CHECKING:  # train.ablation imports this module
    from train.ablation import Ablation


class Context:
    """The data, the prior and the shared runs a sequence of stages works on."""

    def __init__(
        self,
        split: data.SplitExamples,
        config: TrainConfig,
        log: Callable[[str], None] | None = None,
        on_event: Callable[[dict], None] | None = None,
    ):
        self.split = split
        self.config = config
        self.init: PriorInit = prior_init(split.class_names, split.train_counts())
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        # Structured progress (one dict per epoch), e.g. for the app's live curves.
        self.on_event = on_event or (lambda event: None)
        self._baseline: tuple[Any, dict[str, list[float]]] | None = None
        self.baseline_seconds = 0.0  # how long the baseline run trained (once trained)
        # The ablation chain's runs, shared by its stages; train.ablation creates it when a
        # stage first needs it.
        self.ablation: Ablation | None = None
        if config.seed is not None:
            import tensorflow as tf

            tf.config.experimental.enable_op_determinism()

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.config.image_size, self.config.image_size, 3)

    @property
    def baseline_spec(self) -> RunSpec:
        """What the baseline run (Context.baseline) is: the simple CNN with the configuration's
        learning rate, image size and batch size."""
        return RunSpec(
            model="simple_cnn",
            options={"width": self.config.width},
            learning_rate=self.config.learning_rate,
            image_size=self.config.image_size,
            batch_size=self.config.batch_size,
        )

    def reseed(self) -> None:
        """Reset every random generator (Python, numpy, TensorFlow) to the configuration's
        random seed; does nothing when no random seed is set."""
        if self.config.seed is not None:
            import keras

            keras.utils.set_random_seed(self.config.seed)

    def dataset(
        self,
        part: str,
        zero_inputs: bool = False,
        shuffle: bool | None = None,
        image_size: int | None = None,
        batch_size: int | None = None,
        augment: bool = False,
        cache: bool = True,
    ):
        """A fresh pipeline (so the same random seed gives the same batches); augmentation on
        training only."""
        paths, labels = (
            (self.split.train_paths, self.split.train_labels)
            if part == "train"
            else (self.split.val_paths, self.split.val_labels)
        )
        shuffle = part == "train" if shuffle is None else shuffle
        size = image_size or self.config.image_size
        layers = None
        if augment and part == "train":
            config = self.config
            layers = models.augmentation(
                config.augment_rotation,
                config.augment_zoom,
                config.augment_translation,
                config.flip,
                config.seed,
            )
        return data.make_dataset(
            paths,
            labels,
            size,
            batch_size or self.config.batch_size,
            shuffle,
            self.config.seed,
            zero_inputs,
            layers,
            cache,
        )

    def build(
        self,
        name: str,
        learning_rate: float | None = None,
        image_size: int | None = None,
        **options,
    ):
        """A compiled model, built right after reseeding (same random seed, same initial
        weights)."""
        self.reseed()
        size = image_size or self.config.image_size
        model = models.MODELS[name](
            (size, size, 3), self.init, bias=self.config.bias, seed=self.config.seed, **options
        )
        return models.compile_model(model, self.init, learning_rate or self.config.learning_rate)

    def fit(
        self,
        model,
        label: str,
        zero_inputs: bool = False,
        epochs: int | None = None,
        image_size: int | None = None,
        batch_size: int | None = None,
        augment: bool = False,
        callbacks: tuple = (),
    ) -> dict[str, list[float]]:
        """Train with validation_data; one progress line per epoch; returns the history."""
        import keras

        epochs = epochs or self.config.epochs
        log, on_event = self.log, self.on_event

        class EpochLine(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.started = time.monotonic()

            def on_epoch_end(self, epoch, logs=None):
                metrics = {key: float(value) for key, value in (logs or {}).items()}
                shown = "  ".join(f"{key} {value:.4f}" for key, value in metrics.items())
                seconds = time.monotonic() - self.started
                log(f"[{label}] epoch {epoch + 1}/{epochs}  {shown}  ({seconds:.1f} s)")
                on_event(
                    {
                        "event": "epoch",
                        "run": label,
                        "epoch": epoch + 1,
                        "epochs": epochs,
                        "metrics": metrics,
                    }
                )

        train = self.dataset(
            "train", zero_inputs, image_size=image_size, batch_size=batch_size, augment=augment
        )
        validation = self.dataset("val", zero_inputs, image_size=image_size, batch_size=batch_size)
        self.reseed()
        # shuffle=False: the pipeline already shuffles, with the random seed.
        history = model.fit(
            train,
            validation_data=validation,
            epochs=epochs,
            shuffle=False,
            verbose=0,
            callbacks=[*callbacks, EpochLine()],
        )
        return {key: [float(value) for value in values] for key, values in history.history.items()}

    def baseline(self) -> tuple[Any, dict[str, list[float]]]:
        """The simple CNN (baseline_spec) trained on real inputs, as (model, history): shared by
        several stages, trained once."""
        if self._baseline is None:
            started = time.monotonic()
            model = self.build("simple_cnn", width=self.config.width)
            self._baseline = (model, self.fit(model, "baseline"))
            self.baseline_seconds = time.monotonic() - started
        return self._baseline

    def preview(
        self,
        image_size: int | None = None,
        batch_size: int | None = None,
        augment: bool = False,
        zero_inputs: bool = False,
    ) -> dict:
        """What a run sees, for batch_preview.png: the first batch of its real training pipeline
        (shuffled with the random seed, augmented when the run is, at its image and batch size)
        and a validation batch at the same size (seeded shuffle, so several classes show; never
        augmented). Zeroed for the input-independence run. Reseeds first, so a stage's
        preview is the same on every run with the same random seed."""
        size = image_size or self.config.image_size
        batch = batch_size or self.config.batch_size
        self.reseed()
        train = self.dataset(
            "train", zero_inputs, image_size=size, batch_size=batch, augment=augment, cache=False
        )
        images, labels = next(iter(train))
        validation = self.dataset(
            "val", zero_inputs, shuffle=True, image_size=size, batch_size=batch, cache=False
        )
        val_images, val_labels = next(iter(validation))
        return {
            "train": (images.numpy(), labels.numpy()),
            "validation": (val_images.numpy(), val_labels.numpy()),
            "class_names": self.split.class_names,
            "image_size": size,
            "batch_size": batch,
            "augment": augment,
            "zero_inputs": zero_inputs,
        }

    def preview_for(self, result: StageResult) -> dict:
        """The preview of a stage's run: its spec from metrics.json's summary when it trained
        one (image size, batch size, augmentation), the configuration's otherwise; zeroed for
        input_independence (its folder shows what the zeroed run saw)."""
        summary = result.summary or {}
        return self.preview(
            image_size=summary.get("image_size"),
            batch_size=summary.get("batch_size"),
            augment=bool(summary.get("augment", False)),
            zero_inputs=result.name == "input_independence",
        )


def stratified_indices(labels, count: int, seed: int | None) -> np.ndarray:
    """Indices of min(count, len(labels)) examples in which every class present is represented,
    as evenly as the data allows (a seeded draw).

    Classes take turns, each drawing its next example at random, until `count` are drawn; a
    class that runs out drops out of the turns. Which classes get one more example when
    `count` is not a multiple of the number of classes is drawn too. The result is sorted by
    class (then by draw), so a figure groups it. The fixed batches of overfit_one_batch and of
    prediction dynamics: the first files in folder order are often a single class.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes = rng.permutation(np.unique(labels))
    pools = [rng.permutation(np.flatnonzero(labels == label)) for label in classes]
    count = min(count, labels.size)
    chosen: list[int] = []
    depth = 0
    while len(chosen) < count:
        for pool in pools:
            if depth < len(pool) and len(chosen) < count:
                chosen.append(int(pool[depth]))
        depth += 1
    picked = np.asarray(chosen, dtype=np.int64)
    return picked[np.argsort(labels[picked], kind="stable")]


def prior_validation_losses(context: Context) -> np.ndarray:
    """Per-image cross-entropy, on validation, of always predicting the training prior."""
    prior = np.asarray(context.init.prior)
    return -np.log(prior[context.split.val_labels])


def chance_margin(context: Context, configured: float) -> float:
    """The configured margin, or twice the standard error of the prior's validation loss if larger:
    a gap smaller than that can come from which images happen to be in validation."""
    losses = prior_validation_losses(context)
    standard_error = float(losses.std(ddof=1) / np.sqrt(losses.size)) if losses.size > 1 else 0.0
    return max(configured, 2.0 * standard_error)


def _result(name: str, hypothesis: str, context: Context, **extra) -> StageResult:
    return StageResult(name=name, hypothesis=hypothesis, config={**asdict(context.config), **extra})


def init_loss(context: Context) -> StageResult:
    """Untrained loss vs the prior's entropy, and the prior bias vs a zero bias."""
    started = time.monotonic()
    result = _result(
        "init_loss",
        "An untrained model whose output bias encodes the class prior starts at the prior's "
        "entropy, and does no worse than the same model with a zero bias.",
        context,
        model="simple_cnn",
    )
    train = context.dataset("train", shuffle=False)
    model = context.build("simple_cnn", width=context.config.width)
    loss = float(model.evaluate(train, verbose=0)[0])
    zero = models.compile_model(
        models.simple_cnn(
            context.input_shape, context.init, width=context.config.width, bias="zero"
        ),
        context.init,
    )
    zero.set_weights(model.get_weights()[:-1] + [np.zeros_like(model.get_weights()[-1])])
    zero_loss = float(zero.evaluate(train, verbose=0)[0])
    entropy = context.init.expected_loss
    tolerance = context.config.init_tolerance
    result.verdicts = [
        Verdict(
            "initial_loss_is_prior_entropy",
            abs(loss - entropy),
            tolerance,
            abs(loss - entropy) <= tolerance,
            "value <= threshold",
            f"untrained loss {loss:.4f} vs prior entropy {entropy:.4f} (nats)",
        ),
        Verdict(
            "prior_bias_no_worse_than_zero_bias",
            loss - zero_loss,
            1e-3,
            loss - zero_loss <= 1e-3,
            "value <= threshold",
            f"loss {loss:.4f} with the model's bias vs {zero_loss:.4f} with a zero bias",
        ),
    ]
    result.history = {
        "initial_loss": [loss],
        "zero_bias_loss": [zero_loss],
        "prior_entropy": [entropy],
    }
    result.model, result.seconds = model, time.monotonic() - started
    return result


def overfit_one_batch(context: Context) -> StageResult:
    """Train on one fixed batch, stratified by class, until it is learned."""
    started = time.monotonic()
    config = context.config
    split = context.split
    indices = stratified_indices(split.train_labels, config.overfit_examples, config.seed)
    batch_labels = split.train_labels[indices]
    counts = {
        split.class_names[label]: int(number)
        for label, number in enumerate(np.bincount(batch_labels, minlength=len(split.class_names)))
        if number
    }
    result = _result(
        "overfit_one_batch",
        f"The model can learn one fixed batch of {len(indices)} images of {len(counts)} classes "
        f"perfectly within {config.overfit_steps} steps (no dropout, no augmentation); judged in "
        "training mode. The batch is stratified by class: on one class, moving the output bias "
        "alone would learn it.",
        context,
        model="simple_cnn",
    )
    batch = data.make_dataset(
        [split.train_paths[index] for index in indices],
        batch_labels,
        config.image_size,
        len(indices),
        False,
        config.seed,
        cache=False,
    )
    images, labels = next(iter(batch))
    model = context.build(
        "simple_cnn", learning_rate=config.overfit_learning_rate, width=config.width, dropout=0.0
    )
    losses = []
    for _ in range(config.overfit_steps):
        losses.append(float(model.train_on_batch(images, labels)[0]))
    logits = model(images, training=True)
    loss = float(model.loss(labels, logits))
    if context.init.binary:
        predicted = (np.asarray(logits)[:, 0] > 0).astype(int)
    else:
        predicted = np.asarray(logits).argmax(axis=1)
    accuracy = float((predicted == labels.numpy()).mean())
    shown = ", ".join(f"{name} {number}" for name, number in counts.items())
    result.verdicts = [
        Verdict(
            "batch_holds_two_classes",
            float(len(counts)),
            2.0,
            len(counts) >= 2,
            "value >= threshold",
            f"classes in the batch: {shown}",
        ),
        Verdict(
            "training_mode_loss",
            loss,
            config.overfit_max_loss,
            loss <= config.overfit_max_loss,
            "value <= threshold",
            f"loss on the batch in training mode after {config.overfit_steps} steps",
        ),
        Verdict(
            "training_mode_accuracy",
            accuracy,
            1.0,
            accuracy >= 1.0,
            "value >= threshold",
            "accuracy on the batch must be 1.0",
        ),
    ]
    result.history = {"step_loss": losses}
    result.model, result.seconds = model, time.monotonic() - started
    return result


def input_independence(context: Context) -> StageResult:
    """The baseline on real images vs the same model trained on zeroed images."""
    started = time.monotonic()
    margin = chance_margin(context, context.config.independence_margin)
    result = _result(
        "input_independence",
        "A model trained on the real images reaches a lower validation loss than the same model "
        "trained on zeroed images (zeroed in the pipeline for training and validation alike).",
        context,
        model="simple_cnn",
    )
    _, real = context.baseline()
    zero_model = context.build("simple_cnn", width=context.config.width)
    zeroed = context.fit(zero_model, "zeroed inputs", zero_inputs=True)
    best_real, best_zero = min(real["val_loss"]), min(zeroed["val_loss"])
    gap = best_zero - best_real
    result.verdicts = [
        Verdict(
            "real_inputs_beat_zeroed_inputs",
            gap,
            margin,
            gap >= margin,
            "value >= threshold",
            f"best validation loss {best_real:.4f} on real images "
            f"vs {best_zero:.4f} on zeroed images",
        ),
    ]
    result.history = {f"real_{key}": values for key, values in real.items()} | {
        f"zeroed_{key}": values for key, values in zeroed.items()
    }
    result.model, result.seconds = zero_model, time.monotonic() - started
    return result


def baseline(context: Context) -> StageResult:
    """The simple CNN's best validation loss vs predicting the training prior."""
    started = time.monotonic()
    result = _result(
        "baseline",
        "The simple CNN learns: its best validation loss beats predicting the training prior.",
        context,
        model="simple_cnn",
    )
    model, history = context.baseline()
    prior_loss = float(prior_validation_losses(context).mean())
    best = min(history["val_loss"])
    threshold = prior_loss - chance_margin(context, context.config.baseline_margin)
    result.verdicts = [
        Verdict(
            "validation_loss_beats_prior",
            best,
            threshold,
            best <= threshold,
            "value <= threshold",
            f"best validation loss {best:.4f} "
            f"vs {prior_loss:.4f} for predicting the training prior",
        ),
    ]
    result.history = history
    # The baseline run's own training time: input_independence may have trained it already.
    result.summary = run_summary(
        context.baseline_spec.describe(), history, context.baseline_seconds
    )
    result.model, result.seconds = model, time.monotonic() - started
    return result


def capacity(context: Context) -> StageResult:
    """A wider CNN's final training loss vs the baseline's."""
    started = time.monotonic()
    multiplier = context.config.capacity_multiplier
    result = _result(
        "capacity",
        f"A CNN with {multiplier:g}x the filters and one more layer ends with a lower training "
        "loss than the baseline.",
        context,
        model="wider_cnn",
    )
    _, base = context.baseline()
    model = context.build("wider_cnn", width=context.config.width, multiplier=multiplier)
    history = context.fit(model, "capacity")
    value, threshold = history["loss"][-1], base["loss"][-1]
    result.verdicts = [
        Verdict(
            "wider_model_lower_training_loss",
            value,
            threshold,
            value < threshold,
            "value < threshold",
            f"final training loss {value:.4f} (wider) vs {threshold:.4f} (baseline)",
        ),
    ]
    result.history = history | {f"baseline_{key}": values for key, values in base.items()}
    result.model, result.seconds = model, time.monotonic() - started
    return result


def determinism(context: Context) -> StageResult:
    """The baseline's configuration trained twice for one epoch: identical weights?"""
    started = time.monotonic()
    result = _result(
        "determinism",
        "Training the same configuration twice gives identical weights "
        "(keras.utils.set_random_seed and op determinism).",
        context,
        model="simple_cnn",
    )
    weights = []
    for attempt in (1, 2):
        model = context.build("simple_cnn", width=context.config.width)
        context.fit(model, f"determinism run {attempt}", epochs=1)
        weights.append(model.get_weights())
    difference = max(float(np.max(np.abs(a - b))) for a, b in zip(*weights, strict=True))
    result.verdicts = [
        Verdict(
            "same_seed_same_weights",
            difference,
            0.0,
            difference <= 0.0,
            "value <= threshold",
            "largest absolute difference between the two runs' weights",
        ),
    ]
    result.model, result.seconds = model, time.monotonic() - started
    return result


STAGES: dict[str, Callable[[Context], StageResult]] = {
    "init_loss": init_loss,
    "overfit_one_batch": overfit_one_batch,
    "input_independence": input_independence,
    "baseline": baseline,
    "capacity": capacity,
    "determinism": determinism,
}
