"""Run configuration and stage names: importable without TensorFlow (for --help and the app).

"The source article" below is Karpathy's "A Recipe for Training Neural Networks" as a Spanish
article applied it to cats vs dogs; "random seed" is the number that makes runs repeatable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from audit.errors import InvalidArgument

# The sanity stages, in the order they run (train.stages implements them); a failed
# sanity verdict makes `python -m train run` exit 1.
SANITY = (
    "init_loss",
    "overfit_one_batch",
    "shuffled_labels",
    "baseline",
    "capacity",
    "determinism",
)
# The recipe after the sanity checks (train.ablation): each builds on an earlier stage.
ABLATION = (
    "xception",
    "augment",
    "dropout",
    "pretrained",
    "weight_decay",
    "smaller_input",
    "smaller_batch",
    "early_stopping",
    "bigger_model",
)
EXTRAS = ("tuning", "ensemble")
# Diagnostics beside the chain (neither builds on a chain stage nor is built on): lr_range
# runs first, so its proposed rate can become the run's (--learning-rate auto);
# learning_curve ("get more data", the article's first regularisation step) after the sanity
# stages, whose baseline run is its 100% point.
LR_RANGE = "lr_range"
LEARNING_CURVE = "learning_curve"
DIAGNOSTICS = (LR_RANGE, LEARNING_CURVE)
STAGE_NAMES = (LR_RANGE, *SANITY, LEARNING_CURVE, *ABLATION, *EXTRAS)
NORMALIZATIONS = ("rescale", "channel")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on; written to each stage's config.json."""

    image_size: int = 32
    batch_size: int = 32
    # A training run's budget in optimisation steps (batches), at batch_size: a budget in
    # epochs gave a 257-image set 45 steps, not enough to leave the majority rate. A run
    # with another batch size sees the same number of images (steps scaled).
    steps: int = 200
    # How often a run is measured on validation (evenly over its steps): the rows of
    # history.csv, the points of the curves, the unit of early stopping's patience.
    evaluations: int = 5
    # The random seed of the weights, batches, augmentation and tuning draws; None: unseeded.
    seed: int | None = 1337
    learning_rate: float = 1e-3
    width: int = 32
    capacity_multiplier: float = 4.0
    bias: str = "prior"  # "prior", or "zero" for the ablation without the prior bias
    overfit_examples: int = 16
    overfit_steps: int = 150
    overfit_learning_rate: float = 1e-2
    overfit_max_loss: float = 0.05
    # Most nats allowed between the untrained loss and the prior entropy (the output bias alone
    # is held to half the zero-bias gap: see stages.init_loss).
    init_tolerance: float = 0.05
    # Nats of loss to win by; raised to 2 standard errors of the per-image difference when
    # the data is small (see stages.chance_margin and stages.paired_margin).
    label_margin: float = 0.02
    baseline_margin: float = 0.02
    capacity_margin: float = 0.02
    # The model's input scaling: "channel" (per-channel mean and standard deviation of the
    # training images) or "rescale" (x / 255, 0.1.0's). bench/normalization.py: at 240 steps on
    # the demo digits, the baseline's best validation loss 1.67 / 1.45 with channel against
    # 1.99 / 1.90 with rescale (two seeds).
    normalization: str = "channel"
    # The ablation (train.ablation)
    xception_learning_rate: float = 3e-4  # constant, as in the source article
    xception_sizes: tuple[int, ...] = (32, 64, 128)
    xception_final: int = 256
    bigger_sizes: tuple[int, ...] = (64, 128, 256, 512)
    bigger_final: int = 728
    batchnorm_momentum: float = 0.9  # see train.models.small_xception
    dropout: float = 0.5
    # AdamW's decoupled weight decay in the weight_decay stage, normalised as in Loshchilov &
    # Hutter (ICLR 2019, appendix B.1): each step decays lambda_norm / sqrt(total steps) of
    # every weight. 0.05 is in the range their CIFAR runs found best (about 0.025 to 0.05).
    # A fixed Keras weight_decay of 0.01 (PyTorch's default) times Keras's multiplication by
    # the learning rate (3e-4) decayed 3e-6 a step: the best validation loss differed from
    # dropout's by 3e-6 on the demo digits, a verdict of noise. Biases, BatchNorm's gamma and
    # beta are not decayed (the output bias holds the class prior).
    weight_decay_normalized: float = 0.05
    # The learning-rate range test (train.lr_range): the rate grows exponentially from start
    # to end over this many steps, on each model named (the chain's root and the Xception).
    lr_range_steps: int = 100
    lr_range_start: float = 1e-6
    lr_range_end: float = 1.0
    lr_range_models: tuple[str, ...] = ("simple_cnn", "small_xception")
    # --learning-rate auto: lr_range runs first and its proposed rates replace learning_rate
    # (simple CNN) and xception_learning_rate (the chain's Xceptions).
    auto_learning_rate: bool = False
    # The learning curve (train.learning_curve): shares of the training split, nested and
    # stratified, each trained for `steps`; the last must be 1.0 (the baseline run).
    learning_curve_fractions: tuple[float, ...] = (0.25, 0.5, 1.0)
    # Augmentation (train.models.augmentation): every transform centred on the identity, so
    # training sees the distribution validation measures.
    augment_rotation: float = 0.03  # up to this fraction of a full turn (11 degrees), either way
    augment_zoom: float = 0.05  # zoom in or out by up to this share
    augment_translation: float = 0.05  # shift by up to this share of the side (1.6 px at 32)
    flip: bool = True  # horizontal flips; False (--no-flip) where a mirror changes the label
    # Fixed validation images watched after every evaluation (prediction dynamics), stratified by
    # class; raised to the number of classes.
    dynamics_examples: int = 32
    smaller_input_factor: float = 0.5
    smaller_batch_factor: float = 0.25
    early_stopping_patience: int = 3
    reduce_lr_patience: int = 2
    weights: str | None = None  # local MobileNetV2 no-top weights for the pretrained stage
    tuning_trials: int = 4
    tuning_steps: int = 100  # each tuning trial's budget
    ensemble_size: int = 3

    def __post_init__(self) -> None:
        if self.image_size < 8 or self.batch_size < 1:
            raise InvalidArgument("image_size must be >= 8, batch_size >= 1")
        if self.steps < 1 or self.evaluations < 1 or self.tuning_steps < 1:
            raise InvalidArgument("steps, evaluations and tuning_steps must be >= 1")
        if self.evaluations > self.steps:
            raise InvalidArgument(
                f"evaluations ({self.evaluations}) cannot exceed steps ({self.steps}): "
                "each evaluation follows at least one step"
            )
        if self.bias not in ("prior", "zero"):
            raise InvalidArgument(f"bias must be 'prior' or 'zero', got {self.bias!r}")
        if self.normalization not in NORMALIZATIONS:
            raise InvalidArgument(
                f"normalization must be one of {', '.join(NORMALIZATIONS)}, "
                f"got {self.normalization!r}"
            )
        if self.learning_rate <= 0 or self.capacity_multiplier <= 0:
            raise InvalidArgument("learning_rate and capacity_multiplier must be positive")
        augment = {
            "augment_rotation": self.augment_rotation,
            "augment_zoom": self.augment_zoom,
            "augment_translation": self.augment_translation,
        }
        for name, value in augment.items():
            if not 0.0 <= value < 1.0:
                raise InvalidArgument(f"{name} must be in [0, 1), got {value}")
        if self.weight_decay_normalized < 0:
            raise InvalidArgument(
                f"weight_decay_normalized must be >= 0, got {self.weight_decay_normalized}"
            )
        if not 0 < self.lr_range_start < self.lr_range_end or self.lr_range_steps < 10:
            raise InvalidArgument(
                "the learning-rate range test needs 0 < lr_range_start < lr_range_end and "
                "lr_range_steps >= 10"
            )
        unknown = set(self.lr_range_models) - {"simple_cnn", "small_xception"}
        if unknown or not self.lr_range_models:
            raise InvalidArgument(
                "lr_range_models: simple_cnn and/or small_xception, got "
                f"{', '.join(map(str, self.lr_range_models)) or '(none)'}"
            )
        fractions = tuple(self.learning_curve_fractions)
        if (
            len(fractions) < 2
            or fractions[-1] != 1.0
            or any(not 0 < a < b for a, b in zip(fractions, fractions[1:], strict=False))
        ):
            raise InvalidArgument(
                f"learning_curve_fractions must rise within (0, 1] and end at 1.0, got {fractions}"
            )
        if self.overfit_examples < 2 or self.dynamics_examples < 1:
            raise InvalidArgument(
                "overfit_examples must be >= 2 (a batch of two classes) and dynamics_examples >= 1"
            )


# `--preset`: whole-recipe settings. cpu-small runs everything on the demo dataset on two
# CPU cores (bench/train_cpu_small.py measures it); full uses the source article's sizes, for a
# GPU.
PRESETS: dict[str, dict[str, Any]] = {
    # 240 steps: about 6 epochs of the demo's 1,300 training images at batch 32.
    "cpu-small": dict(
        image_size=32,
        batch_size=32,
        steps=240,
        evaluations=6,
        tuning_trials=4,
        tuning_steps=120,
        ensemble_size=3,
    ),
    # 3,600 steps: about 25 epochs of cats vs dogs' 18,700 training images at batch 128.
    "full": dict(
        image_size=180,
        batch_size=128,
        steps=3600,
        evaluations=25,
        xception_sizes=(128, 256, 512),
        xception_final=1024,
        bigger_sizes=(128, 256, 512, 728),
        bigger_final=1024,
        batchnorm_momentum=0.99,
        early_stopping_patience=5,
        tuning_trials=20,
        tuning_steps=1500,
        ensemble_size=5,
    ),
}
