"""Batch previews show what each stage's run sees: its shuffled, augmented pipeline at its size,
next to a validation batch (issue 14, defect 3). No training: the previews of the ablation
chain's specs are drawn straight from the pipelines."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from audit.scan import scan
from tests.imagegen import colour_dataset
from train.ablation import Ablation
from train.config import TrainConfig
from train.data import load_examples, split_examples
from train.runs import StageResult, save_batch_preview
from train.stages import Context

pytestmark = pytest.mark.slow
CONFIG = TrainConfig(image_size=32, batch_size=8, steps=4, evaluations=1, seed=7, flip=False)


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    folder = tmp_path_factory.mktemp("previews")
    root = colour_dataset(folder / "data", {"blue": 30, "red": 15}, seed=2)
    scan(root, folder / "report", jobs=1)
    split = split_examples(load_examples(folder / "report"), 0.25, 7)
    return Context(split, CONFIG, log=lambda line: None)


@pytest.fixture(scope="module")
def previews(context):
    ablation = Ablation(context)
    return {
        name: context.preview_for(StageResult(name, "", summary=ablation.spec(name).describe()))
        for name in ("baseline", "xception", "augment", "smaller_input", "smaller_batch")
    } | {"shuffled_labels": context.preview_for(StageResult("shuffled_labels", ""))}


def test_the_preview_is_the_shuffled_training_pipeline(context, previews):
    images, labels = previews["baseline"]["train"]
    assert images.shape == (8, 32, 32, 3)
    # Shuffled: not the first files in folder order (all "blue").
    assert labels.tolist() != context.split.train_labels[:8].tolist()
    assert len(set(labels.tolist())) == 2
    # The same seed draws the same preview again.
    again = context.preview()["train"]
    np.testing.assert_array_equal(again[0], images)


def test_the_augment_stage_shows_its_augmentation(previews):
    plain, augmented = previews["xception"], previews["augment"]
    assert augmented["augment"] and not plain["augment"]
    # Same shuffled order (same random seed), different pixels: the augmentation is visible.
    np.testing.assert_array_equal(plain["train"][1], augmented["train"][1])
    assert plain["train"][0].shape == augmented["train"][0].shape
    changed = np.abs(plain["train"][0] - augmented["train"][0]).mean()
    assert changed > 1.0, changed
    # Validation is never augmented.
    np.testing.assert_array_equal(plain["validation"][0], augmented["validation"][0])


def test_the_smaller_stages_show_their_size_and_batch(previews):
    assert previews["smaller_input"]["train"][0].shape == (8, 16, 16, 3)
    assert previews["smaller_input"]["validation"][0].shape[1:] == (16, 16, 3)
    assert previews["smaller_batch"]["train"][0].shape == (2, 16, 16, 3)


def test_the_shuffled_labels_stage_shows_its_labels(context, previews):
    # The same images in the same order as the baseline's, under the labels that run learns.
    shuffled, plain = previews["shuffled_labels"], previews["baseline"]
    assert shuffled["shuffled_labels"] and not plain["shuffled_labels"]
    np.testing.assert_array_equal(shuffled["train"][0], plain["train"][0])
    assert shuffled["train"][1].tolist() != plain["train"][1].tolist()
    # Shuffling keeps the class counts: only the pairing of image and label changes.
    np.testing.assert_array_equal(
        np.sort(context.shuffled_train_labels()), np.sort(context.split.train_labels)
    )


def test_preview_files_differ_between_stages(previews, tmp_path):
    written = {}
    for name, preview in previews.items():
        path = save_batch_preview(tmp_path / f"{name}.png", preview)
        written[name] = path.read_bytes()
        described = json.loads(path.with_suffix(".json").read_text())
        assert described["image_size"] == preview["image_size"]
        assert described["augment"] == preview["augment"]
        assert len(described["train"]["labels"]) == len(preview["train"][1][:16])
        assert set(described["validation"]["labels"]) <= {"blue", "red"}
    assert written["augment"] != written["xception"]
    assert written["smaller_input"] != written["augment"]
    # Two sections (training above validation), 64 px tiles: a 16 px input shows as 4x4 blocks.
    sheet = np.asarray(Image.open(tmp_path / "smaller_input.png").convert("L"))
    tile = sheet[14:78, 0:64]
    np.testing.assert_array_equal(tile[::4, ::4].repeat(4, 0).repeat(4, 1), tile)


def test_first_layer_filters_share_one_scale_and_go_grey(tmp_path):
    from train.figures import first_layer_filters
    from train.recipe import is_grayscale

    rng = np.random.default_rng(0)
    initial = rng.normal(0, 0.1, (3, 3, 3, 8)).astype(np.float32)
    trained = initial * np.arange(1, 9)  # filter 8 is 8x stronger than filter 1
    first_layer_filters(trained, tmp_path / "rgb.png", initial=initial)
    first_layer_filters(trained, tmp_path / "grey.png", initial=initial, grayscale=True)
    rgb = np.asarray(Image.open(tmp_path / "rgb.png").convert("RGB")).astype(int)
    grey = np.asarray(Image.open(tmp_path / "grey.png").convert("RGB")).astype(int)
    assert np.abs(rgb[..., 0] - rgb[..., 1]).max() > 20  # colour tiles
    assert np.abs(grey[..., 0] - grey[..., 1]).max() <= 3  # grey tiles only
    grey_batch = {"validation": (np.repeat(rng.uniform(0, 255, (2, 4, 4, 1)), 3, axis=3), None)}
    assert is_grayscale(grey_batch)
    assert not is_grayscale({"validation": (rng.uniform(0, 255, (2, 4, 4, 3)), None)})
