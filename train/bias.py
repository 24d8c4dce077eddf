"""Output bias from the class prior, and the loss an untrained model should start at.

Pure numpy (no TensorFlow import): the audit's summary and the app use it too.

* Two classes, one sigmoid unit: bias = log(n_pos / n_neg), so sigmoid(bias) is the
  share of the positive class (the second folder, in Keras's folder order). Not the
  count ratio itself.
* k classes, softmax: biases = log(prior); softmax(biases) is the prior (any constant
  may be added; this is the one whose exponentials sum to 1).
* A model that outputs the prior for every input has a cross-entropy equal to the
  entropy of the prior: that is the expected initial loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PriorInit:
    """Output-layer bias and the loss an untrained model should show."""

    classes: tuple[str, ...]
    counts: tuple[int, ...]
    prior: tuple[float, ...]
    bias: tuple[float, ...]  # one value (sigmoid) for two classes, else one per class
    expected_loss: float  # entropy of the prior, in nats
    zero_bias_loss: float  # what the same model starts at with a zero bias

    @property
    def binary(self) -> bool:
        return len(self.classes) == 2


def _counts(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    values = np.asarray(counts, dtype=np.float64)
    if values.ndim != 1 or values.size < 2:
        raise ValueError(f"need counts for at least two classes, got {list(counts)}")
    if (values <= 0).any():
        raise ValueError(
            f"every class needs at least one example to set a prior; counts: {list(counts)}"
        )
    return values


def sigmoid_bias(negatives: int, positives: int) -> float:
    """log(n_pos / n_neg): sigmoid of it is the positive share."""
    values = _counts([negatives, positives])
    return float(np.log(values[1] / values[0]))


def softmax_biases(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """log(prior) per class: softmax of it is the prior."""
    values = _counts(counts)
    return np.log(values / values.sum())


def prior_entropy(counts: Sequence[int] | np.ndarray) -> float:
    """Entropy of the class prior in nats: the cross-entropy of predicting the prior."""
    prior = _counts(counts) / np.sum(counts)
    return float(-(prior * np.log(prior)).sum())


def prior_init(classes: Sequence[str], counts: Sequence[int] | np.ndarray) -> PriorInit:
    """Everything the output layer needs, for classes in folder order."""
    values = _counts(counts)
    if len(classes) != values.size:
        raise ValueError(f"{len(classes)} class names for {values.size} counts")
    prior = values / values.sum()
    bias: tuple[float, ...]
    if values.size == 2:
        bias = (sigmoid_bias(int(values[0]), int(values[1])),)
        zero_bias_loss = float(np.log(2.0))
    else:
        bias = tuple(float(b) for b in softmax_biases(values))
        # Uniform prediction: cross-entropy log(k) whatever the true prior.
        zero_bias_loss = float(np.log(values.size))
    return PriorInit(
        classes=tuple(classes),
        counts=tuple(int(c) for c in values),
        prior=tuple(float(p) for p in prior),
        bias=bias,
        expected_loss=prior_entropy(values),
        zero_bias_loss=zero_bias_loss,
    )


def log_probabilities(logits, binary: bool) -> np.ndarray:
    """Natural log of the class probabilities, computed from the logits without forming the
    probabilities first (log-sigmoid / log-softmax in float64): (n, 2) for a sigmoid head,
    (n, k) for softmax. Exact where the probabilities underflow: a logit 1e6 on the wrong
    class gives a log-probability of -1e6, where log(softmax) gives -inf and a clipped one
    -16.1. Its negative at the given label is the cross-entropy Keras reports. A non-finite
    logit gives a row of NaN."""
    logits = np.asarray(logits, dtype=np.float64)
    with np.errstate(invalid="ignore"):  # non-finite rows are set to NaN below
        if binary:
            # log sigmoid(z) = -log(1 + e^-z); log(1 - sigmoid(z)) = -log(1 + e^z)
            column = logits[:, 0]
            result = np.stack([-np.logaddexp(0.0, column), -np.logaddexp(0.0, -column)], axis=1)
        else:
            shifted = logits - logits.max(axis=1, keepdims=True)
            result = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    result[~np.isfinite(logits).all(axis=1)] = np.nan
    return result


def probabilities(logits, binary: bool) -> np.ndarray:
    """Class probabilities from logits: (n, 2) for a sigmoid head, (n, k) for softmax."""
    return np.exp(log_probabilities(logits, binary))
