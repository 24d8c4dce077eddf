"""Run configuration and stage names: importable without TensorFlow (for --help and the app)."""

from __future__ import annotations

from dataclasses import dataclass

# The sanity stages, in the order they run (train.stages implements them).
SANITY = ("init_loss", "overfit_one_batch", "input_independence", "baseline", "capacity", "determinism")
STAGE_NAMES = SANITY


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on; written to each stage's config.json."""

    image_size: int = 32
    batch_size: int = 32
    epochs: int = 5
    seed: int | None = 1337
    learning_rate: float = 1e-3
    width: int = 32
    capacity_multiplier: float = 4.0
    bias: str = "prior"  # "prior", or "zero" for the ablation without the prior bias
    overfit_examples: int = 16
    overfit_steps: int = 150
    overfit_learning_rate: float = 1e-2
    overfit_max_loss: float = 0.05
    init_tolerance: float = 0.05  # nats between the untrained loss and the prior entropy
    # Nats of validation loss to win by; raised to 2 standard errors of the prior's
    # validation loss when the validation set is small (see chance_margin).
    independence_margin: float = 0.02
    baseline_margin: float = 0.02

    def __post_init__(self) -> None:
        if self.image_size < 8 or self.batch_size < 1 or self.epochs < 1:
            raise ValueError("image_size must be >= 8, batch_size and epochs >= 1")
        if self.bias not in ("prior", "zero"):
            raise ValueError(f"bias must be 'prior' or 'zero', got {self.bias!r}")
        if self.learning_rate <= 0 or self.capacity_multiplier <= 0:
            raise ValueError("learning_rate and capacity_multiplier must be positive")
