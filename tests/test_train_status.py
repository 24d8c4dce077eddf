"""Stage statuses beyond pass and fail: collapsed, invalid_reference, not_converged.

A run that ends below the majority rate on validation is collapsed, whatever its loss says;
every ablation stage built on a broken run is invalid_reference, so no row downstream of a
broken one reads as a fair comparison (issue 14: an augmentation that zoomed every training
image, never validation, left validation accuracy at 0.35 against a majority rate of 0.714,
and five later stages were compared with it).
"""

from __future__ import annotations

import csv

import keras
import pytest

from audit.scan import scan
from tests.imagegen import colour_dataset
from train import models
from train.config import TrainConfig
from train.data import load_examples, split_examples
from train.recipe import run_recipe
from train.runs import StageResult, Verdict
from train.stages import Context, Reference, judge, majority_rate

pytestmark = pytest.mark.slow
CONFIG = TrainConfig(
    image_size=16,
    batch_size=8,
    steps=60,
    evaluations=3,
    learning_rate=3e-3,
    xception_learning_rate=3e-3,
    xception_sizes=(8, 16),
    xception_final=16,
    seed=7,
    flip=False,
)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    folder = tmp_path_factory.mktemp("status")
    # 2:1, so the majority rate (0.67) is well above what a model predicting the wrong
    # class reaches.
    root = colour_dataset(folder / "data", {"blue": 72, "red": 36}, seed=4, side=16)
    scan(root, folder / "report", jobs=1)
    return split_examples(load_examples(folder / "report"), 0.25, 7)


def stage(verdict_holds: bool) -> StageResult:
    result = StageResult(name="example", hypothesis="")
    result.verdicts = [Verdict("claim", 0.0, 0.0, verdict_holds, "value <= threshold")]
    return result


def history(final_accuracy: float, losses=(0.6, 0.3)) -> dict[str, list[float]]:
    return {
        "loss": list(losses),
        "val_loss": [0.6, 0.5],
        "val_accuracy": [0.7, final_accuracy],
    }


def test_collapse_is_judged_against_the_majority_rate_and_its_noise(split):
    context = Context(split, CONFIG, log=lambda line: None)
    rate, name = majority_rate(context)
    assert name == "blue" and rate == pytest.approx(2 / 3, abs=0.02)
    # Far below the majority rate: collapsed, even with a verdict that holds.
    collapsed = judge(stage(True), context, history(0.2))
    assert collapsed.status == "collapsed" and "majority rate" in collapsed.note
    # Within validation noise of it (27 images: 2 standard errors = 0.18): not collapsed.
    assert judge(stage(True), context, history(rate - 0.05)).status == "pass"
    # A broken reference outranks the stage's own verdicts; collapse outranks both.
    assert judge(stage(True), context, history(0.9), Reference("xception", "fail")).status == (
        "invalid_reference"
    )
    assert (
        judge(stage(True), context, history(0.2), Reference("xception", "fail")).status
        == "collapsed"
    )
    assert judge(stage(True), context, history(0.9), Reference("xception", "pass")).status == "pass"
    # A failed verdict before the loss moved is a budget question; after, a failure.
    assert judge(stage(False), context, history(0.7, losses=(0.64, 0.63))).status == (
        "not_converged"
    )
    assert judge(stage(False), context, history(0.7)).status == "fail"


class Inverted(keras.layers.Layer):
    """A broken augmentation: every training image in negative (255 - x); validation never."""

    def call(self, images, training=None):
        return 255.0 - images


def test_a_broken_augmentation_collapses_and_what_builds_on_it_is_invalid(
    split, tmp_path, monkeypatch
):
    monkeypatch.setattr(models, "augmentation", lambda *args, **kwargs: Inverted())
    outcome = run_recipe(
        split,
        CONFIG,
        ["xception", "augment"],
        runs_dir=tmp_path / "runs",
        log=lambda line: None,
    )
    statuses = {result.name: result.status for result in outcome.results}
    notes = {result.name: result.note for result in outcome.results}
    # The same network without the broken augmentation learns and does not collapse (whether
    # it beats the baseline's loss is not the point here).
    assert statuses["xception"] in ("pass", "fail"), notes["xception"]
    rate, _ = majority_rate(Context(split, CONFIG, log=lambda line: None))
    assert outcome.results[0].history["val_accuracy"][-1] > rate
    assert statuses["augment"] == "collapsed", notes["augment"]
    rows = {row["stage"]: row for row in csv.DictReader(open(outcome.run_path / "ablation.csv"))}
    assert rows["augment"]["verdict"] == "collapsed"
    markdown = (outcome.run_path / "ablation.md").read_text()
    assert "| collapsed |" in markdown and "- augment (collapsed): final validation" in markdown
