"""Augmentation keeps training on the distribution validation measures; fixed batches hold every
class.

On the demo digits (scikit-learn's real 8x8 scans as 32 px JPEGs, built by audit.demo; up to
150 per class, a seeded class-stratified quarter for validation), flips off since a mirrored
digit is another symbol. About 25 s on two CPU cores, most of it the two equal-step runs.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from audit.demo import CLASS_NAMES, build_demo
from train import cli, figures, models
from train.ablation import FixedBatch
from train.config import TrainConfig
from train.data import SplitExamples, make_dataset
from train.stages import Context, stratified_indices

pytestmark = pytest.mark.slow
# 280 steps: 8 epochs of the 1,130 training digits at batch 32, evaluated once per epoch.
DIGITS = TrainConfig(
    image_size=32,
    batch_size=32,
    steps=280,
    evaluations=8,
    learning_rate=3e-3,
    seed=7,
    flip=False,
)
PER_CLASS = 150


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> SplitExamples:
    root = build_demo(tmp_path_factory.mktemp("demo") / "digits")
    rng = np.random.default_rng(7)
    train_paths, train_labels, val_paths, val_labels = [], [], [], []
    for label, name in enumerate(CLASS_NAMES):
        # digit_*.jpg: the scans themselves, not the files the demo injects to be caught.
        files = sorted(str(path) for path in (root / name).glob("digit_*.jpg"))
        files = [files[index] for index in rng.permutation(len(files))[:PER_CLASS]]
        cut = len(files) // 4
        val_paths += files[:cut]
        val_labels += [label] * cut
        train_paths += files[cut:]
        train_labels += [label] * (len(files) - cut)
    return SplitExamples(
        CLASS_NAMES,
        train_paths,
        np.asarray(train_labels, dtype=np.int32),
        val_paths,
        np.asarray(val_labels, dtype=np.int32),
        "test: seeded, stratified quarter",
    )


def channel_statistics(dataset) -> tuple[np.ndarray, np.ndarray]:
    images = np.concatenate([batch[0].numpy() for batch in dataset])
    return images.mean(axis=(0, 1, 2)), images.std(axis=(0, 1, 2))


def test_augmented_batches_keep_the_validation_channel_statistics(digits):
    context = Context(digits, DIGITS, log=lambda line: None)
    val_mean, val_std = channel_statistics(context.dataset("val"))
    mean, std = channel_statistics(context.dataset("train", augment=True))
    print(f"augmented/validation mean {mean / val_mean}, std {std / val_std}")
    np.testing.assert_array_less(np.abs(mean / val_mean - 1), 0.05)
    np.testing.assert_array_less(np.abs(std / val_std - 1), 0.05)
    # The measure tells: the former crop to 0.875 of the side, resized back (a constant 1.14x
    # zoom), moves the mean by about 20% on these digits.
    import keras  # after train: it sets TensorFlow's options before TensorFlow loads

    side = round(0.875 * DIGITS.image_size)
    fixed_zoom = keras.Sequential(
        [
            keras.layers.RandomCrop(side, side, seed=7),
            keras.layers.Resizing(DIGITS.image_size, DIGITS.image_size),
        ]
    )
    zoomed_mean, _ = channel_statistics(
        make_dataset(digits.train_paths, digits.train_labels, 32, 32, False, 7, augment=fixed_zoom)
    )
    assert np.all(np.abs(zoomed_mean / val_mean - 1) > 0.1)


def test_augmentation_costs_no_validation_accuracy_at_equal_steps(digits):
    context = Context(digits, DIGITS, log=lambda line: None)
    best = {}
    for augment in (False, True):
        # The model the ablation's augment stage trains (smaller): with BatchNorm it converges
        # within the budget, where the plain CNNs sat at chance for several epochs on some
        # seeds, which made any comparison of the two runs noise.
        model = context.build(
            "small_xception", sizes=(16, 32, 64), final=64, batchnorm_momentum=0.9
        )
        history = context.fit(model, f"augment={augment}", augment=augment)
        # The best epoch, as the ablation compares best validation losses: with BatchNorm the
        # last epoch's figure swings by a few points from one epoch to the next.
        best[augment] = max(history["val_accuracy"])
    print(f"best validation accuracy: {best[False]:.4f} plain, {best[True]:.4f} augmented")
    assert best[False] > 0.9  # the run learned: the comparison means something
    assert best[True] >= best[False] - 0.02


def test_augmentation_layers_are_centred_and_flip_only_when_allowed():
    import keras

    with_flip = models.augmentation(0.03, 0.05, 0.05, True, 7)
    without = models.augmentation(0.03, 0.05, 0.05, False, 7)
    assert [layer.name for layer in with_flip.layers] == ["flip", "translation", "rotation", "zoom"]
    assert [layer.name for layer in without.layers] == ["translation", "rotation", "zoom"]
    for layer in without.layers:
        assert layer.fill_mode == "constant"
    zoom = without.get_layer("zoom")
    assert zoom.height_factor == (-0.05, 0.05) and zoom.width_factor is None
    images = np.random.default_rng(0).uniform(0, 255, (4, 20, 20, 3)).astype("float32")
    assert tuple(without(images, training=True).shape) == images.shape
    identity = models.augmentation(0.0, 0.0, 0.0, False, 7)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(identity(images)), images)
    with pytest.raises(ValueError, match="translation"):
        models.augmentation(0.03, 0.05, 1.5, False, 7)
    assert TrainConfig().flip is True
    parser = cli.build_parser()
    assert parser.parse_args(["run", "ROOT", "--no-flip"]).flip is False
    assert parser.parse_args(["run", "ROOT"]).flip is True


def test_stratified_indices_hold_every_class_as_evenly_as_the_data_allows():
    labels = np.array([0] * 40 + [1] * 3 + [2] * 10)
    picked = stratified_indices(labels, 16, seed=1)
    assert len(set(picked.tolist())) == 16
    # The scarce class gives all it has; the others share the rest evenly.
    assert sorted(np.bincount(labels[picked]).tolist()) == [3, 6, 7]
    assert np.array_equal(picked, stratified_indices(labels, 16, seed=1))
    counts = np.bincount(labels[stratified_indices(labels, 8, seed=2)], minlength=3)
    assert counts.min() >= 2 and counts.max() - counts.min() <= 1
    assert len(stratified_indices(labels, 500, seed=3)) == labels.size
    with pytest.raises(ValueError):
        stratified_indices(labels, 0, seed=1)


def test_prediction_dynamics_batch_holds_every_class(digits, tmp_path):
    config = replace(DIGITS, batch_size=4)  # the smaller_batch stage's batch: no matter
    context = Context(digits, config, log=lambda line: None)
    watch = FixedBatch(context, 32)
    counts = np.bincount(watch.labels, minlength=len(CLASS_NAMES))
    assert counts.min() >= 3 and counts.max() - counts.min() <= 1  # 32 images, 10 classes
    assert watch.images is not None and tuple(watch.images.shape) == (32, 32, 32, 3)
    assert watch.prior.sum() == pytest.approx(1.0)
    probabilities = np.tile(watch.prior, (3, len(watch.labels), 1))
    path = figures.prediction_dynamics(
        probabilities,
        watch.labels,
        tmp_path / "dynamics.png",
        class_names=watch.class_names,
        prior=watch.prior,
    )
    assert path.stat().st_size > 10_000
