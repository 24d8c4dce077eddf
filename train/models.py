"""Model builders: functional Keras 3 models with logits out and the prior in the bias.

Every builder (MODELS) takes (input_shape, init, bias=..., seed=..., **options) and returns
an uncompiled keras.Model whose last Dense layer ("logits") has:

* one sigmoid unit for two classes, one softmax unit per class otherwise, with the output
  bias from the class prior (train.bias), or zero with bias="zero";
* a small kernel (std 0.01), so an untrained model outputs about the prior for any input
  and starts near the prior's entropy, which is what the init_loss stage checks.

Pixels come in as float32 0..255; each model scales its own input, so the pipeline and the
preview show the raw image: x / 255 by default, or, given `normalization` (per-channel mean
and standard deviation at 0..1, from the training images), (x / 255 - mean) / std. The
pretrained backbone keeps the -1..1 scaling it was trained with.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

from train.bias import PriorInit  # noqa: E402


def _head(
    features, init: PriorInit, bias: str = "prior", dropout: float = 0.0, seed: int | None = None
):
    if dropout:
        # An explicit random seed: otherwise creating the layer draws from Keras's global RNG,
        # and the head after it would start from other weights than in the same model without
        # dropout.
        features = layers.Dropout(dropout, seed=seed, name="head_dropout")(features)
    values = init.bias if bias == "prior" else (0.0,) * len(init.bias)
    return layers.Dense(
        len(values),
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
        bias_initializer=keras.initializers.Constant(list(values)),
        name="logits",
    )(features)


Normalization = tuple[tuple[float, ...], tuple[float, ...]]  # (mean, std) per channel, 0..1


def input_scaling(inputs, normalization: Normalization | None = None):
    """x / 255, then standardised per channel when normalization (mean, std) is given."""
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    if normalization is None:
        return x
    mean, std = normalization
    return layers.Normalization(
        mean=list(mean), variance=[value**2 for value in std], name="normalize"
    )(x)


def simple_cnn(
    input_shape,
    init: PriorInit,
    width: int = 32,
    dropout: float = 0.0,
    bias: str = "prior",
    seed: int | None = None,
    normalization: Normalization | None = None,
) -> keras.Model:
    """The source article's baseline (see train.config): two strided convolutions, global
    pooling, a dense head."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = input_scaling(inputs, normalization)
    x = layers.Conv2D(width, 3, strides=2, padding="same", activation="relu", name="conv1")(x)
    x = layers.Conv2D(2 * width, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, _head(x, init, bias, dropout, seed), name="simple_cnn")


def wider_cnn(
    input_shape,
    init: PriorInit,
    width: int = 32,
    multiplier: float = 4.0,
    dropout: float = 0.0,
    bias: str = "prior",
    seed: int | None = None,
    normalization: Normalization | None = None,
) -> keras.Model:
    """More capacity: the baseline's layout, `multiplier` times the filters, one more conv."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = input_scaling(inputs, normalization)
    wide = max(1, round(width * multiplier))
    x = layers.Conv2D(wide, 3, strides=2, padding="same", activation="relu", name="conv1")(x)
    x = layers.Conv2D(2 * wide, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = layers.Conv2D(2 * wide, 3, padding="same", activation="relu", name="conv3")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(
        inputs, _head(x, init, bias, dropout, seed), name=f"wider_cnn_x{multiplier:g}"
    )


def small_xception(
    input_shape,
    init: PriorInit,
    sizes: tuple[int, ...] = (32, 64, 128),
    final: int = 256,
    dropout: float = 0.0,
    bias: str = "prior",
    seed: int | None = None,
    batchnorm_momentum: float = 0.9,
    normalization: Normalization | None = None,
) -> keras.Model:
    """Residual separable-convolution blocks (the Keras "image classification from scratch" model).

    batchnorm_momentum: Keras's default 0.99 needs thousands of steps before the inference-mode
    statistics catch up; over a few hundred steps the validation output stayed at the prior
    (measured on the demo). 0.9 catches up within short runs; the full preset uses 0.99.
    """
    inputs = keras.Input(shape=input_shape, name="image")
    x = input_scaling(inputs, normalization)
    x = layers.Conv2D(sizes[0], 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=batchnorm_momentum)(x)
    x = layers.Activation("relu")(x)
    previous = x
    for size in sizes[1:]:
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=batchnorm_momentum)(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=batchnorm_momentum)(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        residual = layers.Conv2D(size, 1, strides=2, padding="same")(previous)
        x = layers.add([x, residual])
        previous = x
    x = layers.SeparableConv2D(final, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=batchnorm_momentum)(x)
    x = layers.Activation("relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, _head(x, init, bias, dropout, seed), name="small_xception")


class WeightsFileMissing(FileNotFoundError):
    """The pretrained backbone needs a local weights file; nothing is ever downloaded."""


def pretrained(
    input_shape,
    init: PriorInit,
    weights_path: str | os.PathLike | None = None,
    dropout: float = 0.2,
    bias: str = "prior",
    seed: int | None = None,
) -> keras.Model:
    """A frozen MobileNetV2 backbone from a local weights file, with a new head.

    The file is the Keras no-top MobileNetV2 weights (e.g.
    mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5, or any
    `.weights.h5` saved from keras.applications.MobileNetV2(include_top=False)).
    """
    if weights_path is None or not Path(weights_path).is_file():
        raise WeightsFileMissing(
            "the pretrained backbone needs a local MobileNetV2 no-top weights file "
            "(--weights PATH); "
            f"{'none was given' if weights_path is None else f'{weights_path} does not exist'}. "
            "Nothing is downloaded: weights='imagenet' would fetch from the network."
        )
    inputs = keras.Input(shape=input_shape, name="image")
    # MobileNetV2 expects -1..1
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    backbone = keras.applications.MobileNetV2(
        input_shape=input_shape, include_top=False, weights=None
    )
    backbone.load_weights(str(weights_path))
    backbone.trainable = False
    x = backbone(x, training=False)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, _head(x, init, bias, dropout, seed), name="pretrained_mobilenet_v2")


def augmentation(
    rotation: float,
    zoom: float,
    translation: float,
    flip: bool,
    seed: int | None,
) -> keras.Sequential:
    """Random shifts, small rotations and zooms, and (when allowed) horizontal flips, as Keras 3
    preprocessing layers; every layer keeps the image's size.

    Each transform is centred on the identity: shifts of up to `translation` of the side either
    way, rotations of up to `rotation` of a full turn either way, zooms of up to `zoom` in or out.
    Validation images are never transformed, so an augmentation that is not centred on the
    identity (a crop always smaller than the frame, resized back, is a constant zoom) trains on
    another distribution than the one validation measures. Uncovered pixels are filled with a
    constant (zero, the padding of pad-and-crop), not `reflect`, which mirrors content (a second
    stroke or a second object) into the frame. Resampling is nearest-neighbour (torchvision's
    default for rotations and affine transforms): bilinear resampling blurs every training image
    (the per-pixel standard deviation fell 3.5% on the demo digits) and validation images are
    never resampled; a translation then moves whole pixels, like pad-and-crop.

    flip: off for data whose meaning a mirror changes (digits, text): `--no-flip`.
    """
    for name, value in (("rotation", rotation), ("zoom", zoom), ("translation", translation)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"augmentation {name} must be in [0, 1), got {value}")

    def layer_seed(offset: int) -> int | None:
        # One seed per layer: layers given the same seed draw the same numbers, which would tie
        # (say) the flip to the sign of the rotation.
        return None if seed is None else seed + offset

    steps: list[layers.Layer] = []
    if flip:
        steps.append(layers.RandomFlip("horizontal", seed=layer_seed(0), name="flip"))
    if translation:
        steps.append(
            layers.RandomTranslation(
                translation,
                translation,
                fill_mode="constant",
                interpolation="nearest",
                seed=layer_seed(1),
                name="translation",
            )
        )
    if rotation:
        steps.append(
            layers.RandomRotation(
                rotation,
                fill_mode="constant",
                interpolation="nearest",
                seed=layer_seed(2),
                name="rotation",
            )
        )
    if zoom:
        steps.append(
            # width_factor None: the width follows the height, so the aspect ratio is kept.
            layers.RandomZoom(
                (-zoom, zoom),
                fill_mode="constant",
                interpolation="nearest",
                seed=layer_seed(3),
                name="zoom",
            )
        )
    if not steps:
        steps.append(layers.Identity(name="identity"))
    return keras.Sequential(steps, name="augmentation")


def first_conv_kernel(model: keras.Model):
    """The kernel of the first 2-D convolution (searched inside nested models), or None."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found = first_conv_kernel(layer)
            if found is not None:
                return found
        elif isinstance(layer, layers.Conv2D) and not isinstance(
            layer, (layers.SeparableConv2D, layers.DepthwiseConv2D)
        ):
            return layer.get_weights()[0]
    return None


MODELS: dict[str, Callable[..., keras.Model]] = {
    "simple_cnn": simple_cnn,
    "wider_cnn": wider_cnn,
    "small_xception": small_xception,
    "pretrained": pretrained,
}


# Variables AdamW leaves alone: biases (the output bias holds the class prior, and decaying it
# would pull the start away from the prior's entropy) and BatchNorm's scale and shift (the
# usual exclusions, as in the BERT and fastai recipes).
NO_DECAY = ("bias", "gamma", "beta")


def decay_per_step(normalized: float, steps: int) -> float:
    """Loshchilov & Hutter's normalised weight decay ("Decoupled Weight Decay Regularization",
    ICLR 2019, appendix B.1): lambda = lambda_norm * sqrt(b / (B * T)), with b / (B * T) one
    over the run's total steps, so the fraction of each weight decayed per step."""
    return normalized / math.sqrt(max(1, steps))


def keras_weight_decay(normalized: float, steps: int, learning_rate: float) -> float:
    """Keras AdamW's weight_decay for a per-step decay of decay_per_step(normalized, steps):
    Keras multiplies its weight_decay by the learning rate (variable -= lr * wd * variable)."""
    return decay_per_step(normalized, steps) / learning_rate


def kernel_norm(model: keras.Model | None) -> float:
    """L2 norm of the weights AdamW decays (every trainable variable but NO_DECAY's); nan
    without a model."""
    if model is None:
        return float("nan")
    squares = [
        float(np.sum(np.square(variable.numpy().astype(np.float64))))
        for variable in model.trainable_variables
        if not any(part in variable.name for part in NO_DECAY)
    ]
    return math.sqrt(sum(squares))


def optimizer(learning_rate: float, weight_decay: float = 0.0) -> keras.optimizers.Optimizer:
    """Adam, or AdamW (decoupled weight decay, Loshchilov and Hutter) when weight_decay > 0,
    with biases and BatchNorm's gamma and beta excluded from the decay (NO_DECAY)."""
    if not weight_decay:
        return keras.optimizers.Adam(learning_rate)
    adamw = keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
    adamw.exclude_from_weight_decay(var_names=list(NO_DECAY))
    return adamw


def compile_model(
    model: keras.Model, init: PriorInit, learning_rate: float = 1e-3, weight_decay: float = 0.0
) -> keras.Model:
    """Adam (AdamW with weight_decay > 0), cross-entropy on logits, accuracy; binary when the
    head has one unit."""
    if init.binary:
        loss = keras.losses.BinaryCrossentropy(from_logits=True)
        metrics = [keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)]
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    model.compile(optimizer=optimizer(learning_rate, weight_decay), loss=loss, metrics=metrics)
    return model
