"""Issue 15: the weight_decay chain stage, the learning curve, the learning-rate range test.

Small generated sets: three classes told apart by shape only (disc, square, diagonal line),
in a random colour at a random place on noise, at 16 px, so that how many images a model saw
matters; and the same images with labels drawn at random (nothing to learn).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from audit.scan import scan
from train import learning_curve, lr_range, models
from train.ablation import Ablation, Trained
from train.config import TrainConfig
from train.data import load_examples, split_examples
from train.runs import StageResult, Verdict
from train.stages import Context, baseline_verdicts

keras = models.keras  # through train: it sets TensorFlow's environment before the import

pytestmark = pytest.mark.slow
CONFIG = TrainConfig(
    image_size=16,
    batch_size=16,
    steps=100,
    evaluations=2,
    learning_rate=3e-3,
    seed=7,
    flip=False,
    lr_range_models=("simple_cnn",),
    learning_curve_fractions=(0.25, 1.0),
    xception_sizes=(8,),
    xception_final=8,
)


def shapes(root: Path, per_class: int, seed: int, shuffled: bool = False) -> Path:
    """Three classes by shape only; shuffled: each image's shape drawn at random."""
    rng = np.random.default_rng(seed)
    side = 16
    for label in range(3):
        (root / f"c{label}").mkdir(parents=True, exist_ok=True)
        for number in range(per_class):
            kind = int(rng.integers(3)) if shuffled else label
            image = Image.fromarray(rng.integers(0, 60, (side, side, 3), dtype=np.uint8), "RGB")
            fill = tuple(int(value) for value in rng.integers(90, 256, 3))
            x, y = (int(value) for value in rng.integers(0, side // 2, 2))
            box = (x, y, x + side // 2, y + side // 2)
            draw = ImageDraw.Draw(image)
            if kind == 0:
                draw.ellipse(box, fill=fill)
            elif kind == 1:
                draw.rectangle(box, fill=fill)
            else:
                draw.line(box, fill=fill, width=2)
            image.save(root / f"c{label}" / f"{number:03d}.png")
    return root


def make_split(folder: Path, shuffled: bool):
    shapes(folder / "data", 40, seed=5, shuffled=shuffled)
    scan(folder / "data", folder / "report", jobs=1)
    return split_examples(load_examples(folder / "report"), 0.4, 7)


@pytest.fixture(scope="module")
def learnable(tmp_path_factory):
    return make_split(tmp_path_factory.mktemp("shapes"), shuffled=False)


@pytest.fixture(scope="module")
def shuffled(tmp_path_factory):
    return make_split(tmp_path_factory.mktemp("shuffled"), shuffled=True)


def quiet(split, config=CONFIG) -> Context:
    return Context(split, config, log=lambda line: None)


# ---------------------------------------------------------------- weight decay


def kernels(model) -> list[np.ndarray]:
    return [variable.numpy() for variable in model.trainable_variables if "kernel" in variable.name]


def test_weight_decay_zero_is_adam_and_decay_shrinks_the_weights(learnable):
    context = quiet(learnable)
    runs = {}
    for name, optimizer in (
        ("adam", keras.optimizers.Adam(CONFIG.learning_rate)),
        ("adamw 0", keras.optimizers.AdamW(CONFIG.learning_rate, weight_decay=0.0)),
        # 4.0 x 3e-3 per step: about 0.988^15 on each kernel (0.70 on its squared norm).
        ("decay", models.optimizer(CONFIG.learning_rate, 4.0)),
    ):
        model = context.build("simple_cnn", width=CONFIG.width)
        model.compile(optimizer=optimizer, loss=model.loss, metrics=["accuracy"])
        context.fit(model, name, steps=15, evaluations=1)
        runs[name] = model
    # Wiring: AdamW with zero decay is Adam, to the bit.
    pairs = zip(runs["adam"].get_weights(), runs["adamw 0"].get_weights(), strict=True)
    same = [a - b for a, b in pairs]
    assert max(float(np.abs(difference).max()) for difference in same) == 0.0
    # Decay shrinks the kernels, and leaves the output bias (the prior) out of it.
    norm = {name: sum(float((k**2).sum()) for k in kernels(run)) for name, run in runs.items()}
    assert norm["decay"] < 0.9 * norm["adam"]
    assert isinstance(runs["decay"].optimizer, keras.optimizers.AdamW)
    assert models.optimizer(1e-3, 0.0).__class__ is keras.optimizers.Adam


def test_the_weight_decay_stage_builds_on_dropout_and_emits_a_verdict(learnable):
    context = quiet(learnable, replace(CONFIG, steps=20, weight_decay_normalized=0.05))
    ablation = Ablation(context)
    context.ablation = ablation
    spec = ablation.spec("weight_decay")
    # Loshchilov & Hutter's normalised decay: 0.05 / sqrt(steps) a step, Keras's weight_decay
    # that over the learning rate (Keras multiplies the two).
    per_step = 0.05 / np.sqrt(spec.steps)
    assert spec.weight_decay == pytest.approx(per_step / spec.learning_rate)
    assert spec == replace(ablation.spec("dropout"), weight_decay=spec.weight_decay)
    # The run it builds on, given (a healthy one, so the comparison is judged).
    reference = {"loss": [0.5, 0.2], "val_loss": [0.9, 0.8], "val_accuracy": [0.5, 0.6]}
    ablation.trained["dropout"] = Trained(spec, reference, None, None, 0.0)
    judged = StageResult(name="dropout", hypothesis="", judged="pass")
    judged.verdicts = [Verdict("given", 0.0, 0.0, True, "value <= threshold")]
    ablation.results["dropout"] = judged
    result = ablation.stage_result("weight_decay")
    assert [verdict.name for verdict in result.verdicts] == ["best_val_loss_below_dropout"]
    assert result.status in ("pass", "fail", "collapsed", "not_converged")
    assert result.summary["builds_on"] == "dropout"
    assert result.summary["weight_decay"] == spec.weight_decay
    assert result.summary["weight_decay_normalized"] == 0.05
    assert result.summary["weight_decay_per_step"] == pytest.approx(per_step)
    # The decayed run's weights are smaller than the run it builds on (here none: nan).
    assert result.summary["weight_norm"] > 0 and np.isnan(result.summary["dropout_weight_norm"])


# ---------------------------------------------------------------- learning curve


def test_the_learning_curve_gains_on_a_learnable_set_and_not_on_shuffled_labels(
    learnable, shuffled
):
    found = learning_curve.learning_curve(quiet(learnable))
    summary = found.summary
    assert summary["train_images"][0] < summary["train_images"][-1]
    # 100% below 25% by at least two standard errors of the per-image difference.
    assert summary["first_to_last_gain"] >= 2 * summary["first_to_last_standard_error"]
    assert summary["verdict"] == "gain" and found.status == "pass"
    assert found.extras["tables"]["learning_curve.csv"][0]["fraction"] == 0.25
    none = learning_curve.learning_curve(quiet(shuffled))
    assert none.summary["verdict"] == "no_gain" and none.status != "pass"
    assert "no_gain" in none.verdicts[0].meaning


def test_nested_stratified_subsets():
    labels = np.repeat([0, 1, 2], [40, 20, 4])
    small, half, whole = learning_curve.nested_subsets(labels, (0.25, 0.5, 1.0), seed=3)
    assert set(small) <= set(half) <= set(whole) and whole.size == labels.size
    assert np.bincount(labels[small]).tolist() == [10, 5, 1]
    again = learning_curve.nested_subsets(labels, (0.25, 0.5, 1.0), seed=3)[0]
    assert np.array_equal(small, again)


# ---------------------------------------------------------------- learning-rate range test


def first_round_loss(split, rate: float) -> tuple[float, Context, object, dict]:
    context = quiet(split, replace(CONFIG, learning_rate=rate))
    model = context.build("simple_cnn", width=CONFIG.width)
    history = context.fit(model, f"rate {rate:g}")
    return history["loss"][0], context, model, history


def test_the_proposed_rate_trains_and_ten_times_it_diverges(learnable):
    context = quiet(learnable)
    result = lr_range.lr_range(context)
    assert result.status == "pass"
    proposed = result.summary["proposed_learning_rate"]
    assert result.summary["simple_cnn_divergence_rate"] == pytest.approx(10 * proposed)
    table = result.extras["tables"]["lr_range.csv"]
    assert table[0]["learning_rate"] == pytest.approx(CONFIG.lr_range_start)
    assert len(table) == result.summary["simple_cnn_steps_run"] <= CONFIG.lr_range_steps
    entropy = context.init.expected_loss
    # At the proposal, the baseline's validation loss beats the prior within the budget.
    _, trained, model, history = first_round_loss(learnable, proposed)
    assert baseline_verdicts(trained, model, history)[0].passed
    # Ten times the proposal diverges: the training loss over the first evaluation is above
    # the untrained model's (the prior's entropy), and the run never beats the prior (measured:
    # 4.40 against 1.10, validation 1.10 at the end; 0.66 and 0.40 at the proposal).
    loss, diverged, model, history = first_round_loss(learnable, 10 * proposed)
    assert not np.isfinite(loss) or loss > entropy
    assert not baseline_verdicts(diverged, model, history)[0].passed
    # --learning-rate auto takes the proposal; a failed range test keeps the configured rate.
    taken, line = lr_range.apply(replace(CONFIG, auto_learning_rate=True), result)
    assert taken.learning_rate == proposed and "proposal" in line
    result.verdicts[0].passed = False
    kept, line = lr_range.apply(CONFIG, result)
    assert kept.learning_rate == CONFIG.learning_rate and "kept" in line


def test_divergence_needs_the_loss_to_have_fallen_first():
    entropy, margin = 1.1, 0.05
    # Batches of another class mix move the loss around the entropy before it falls.
    assert not lr_range.diverged(np.array([1.1, 1.12, 1.09, 1.13]), entropy, margin)
    assert lr_range.diverged(np.array([1.1, 0.6, 0.3, 1.2]), entropy, margin)
    assert lr_range.diverged(np.array([1.1, 0.9, np.nan]), entropy, margin)
    assert lr_range.diverged(np.array([1.1, 1.0, 4.5]), entropy, margin)


def test_applied_names_exactly_the_rates_taken(learnable, monkeypatch):
    """summary["applied"]: the rates --learning-rate auto took, per config field; false when
    none was (before: true whenever auto was on, even when both range tests failed)."""
    falls = {"simple_cnn": True, "small_xception": False}

    def fake_range_test(context, name):
        entropy = context.init.expected_loss
        return {
            "minimum_loss": 0.1 if falls[name] else entropy,
            "minimum_loss_rate": 0.1,
            "divergence_rate": 0.2,
            "proposed": 0.02 if name == "simple_cnn" else 0.003,
            "steepest_rate": 0.05,
            "learning_rate": [0.1],
            "loss": [0.1],
            "smoothed": [0.1],
        }

    monkeypatch.setattr(lr_range, "range_test", fake_range_test)
    both = ("simple_cnn", "small_xception")
    auto = replace(CONFIG, auto_learning_rate=True, lr_range_models=both)
    result = lr_range.lr_range(quiet(learnable, auto))
    assert result.summary["applied"] == {"learning_rate": 0.02}
    assert lr_range.apply(auto, result)[0].learning_rate == 0.02
    falls["simple_cnn"] = False
    assert lr_range.lr_range(quiet(learnable, auto)).summary["applied"] is False
    falls["simple_cnn"] = True
    manual = replace(auto, auto_learning_rate=False)
    assert lr_range.lr_range(quiet(learnable, manual)).summary["applied"] is False
