"""One short run with a held-out test split: the per-stage view, TensorBoard logs, the export,
`train predict` reading it back, and a deliberately collapsed model's confusion matrix.

One module-scoped run (16 px, three classes, the baseline stage) serves every test.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys

import numpy as np
import pytest

from audit.scan import scan
from tests.imagegen import colour_dataset
from train import cli, data, diagnostics
from train.config import TrainConfig
from train.data import load_examples, split_examples
from train.recipe import run_recipe
from train.stages import Context

pytestmark = pytest.mark.slow
# 16 px, 72 steps at batch 8: the baseline passes on the separable shapes in about 3 s.
SMALL = TrainConfig(
    image_size=16, batch_size=8, steps=72, evaluations=3, learning_rate=3e-3, seed=7
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    root = colour_dataset(folder / "data", {"blue": 30, "green": 14, "red": 20}, seed=5, side=16)
    scan(root, folder / "report", jobs=1)
    split = split_examples(load_examples(folder / "report"), 0.2, 7, test_fraction=0.2)
    # Every pipeline built during the run, and whether the held-out evaluation built it.
    seen: list[tuple[set[str], bool]] = []
    original = data.make_dataset

    def recording(paths, *args, **kwargs):
        frame, held_out = sys._getframe(1), False
        while frame is not None and not held_out:  # inspect.stack() reads source: slow
            held_out = frame.f_code.co_name == "evaluate_held_out"
            frame = frame.f_back
        seen.append(({str(path) for path in paths}, held_out))
        return original(paths, *args, **kwargs)

    patch = pytest.MonkeyPatch()
    patch.setattr(data, "make_dataset", recording)
    try:
        outcome = run_recipe(
            split, SMALL, ["baseline"], runs_dir=folder / "runs", log=lambda line: None
        )
    finally:
        patch.undo()
    return outcome, split, seen, folder


def test_no_stage_sees_a_test_image_and_the_test_is_evaluated_once(run):
    outcome, split, seen, _ = run
    test = set(split.test_paths)
    assert test and not test & (set(split.train_paths) | set(split.val_paths))
    touching = [held_out for paths, held_out in seen if paths & test]
    assert touching and all(touching), "a pipeline outside the held-out evaluation read test images"
    assert any(paths <= set(split.train_paths) for paths, held_out in seen if not held_out)
    figures = json.loads((outcome.run_path / "test.json").read_text())
    assert figures["evaluated"] and figures["stage"] == "baseline"
    assert figures["images"] == len(split.test_paths)
    assert sum(row["support"] for row in figures["per_class"]) == len(split.test_paths)
    for name in ("test_confusion.csv", "test_per_class.csv", "test_top_losses.csv"):
        assert (outcome.run_path / name).is_file(), name
    held_out = (outcome.run_path / "ablation.md").read_text().rstrip().splitlines()[-1]
    assert held_out.startswith(f"Held-out test ({len(split.test_paths)} images, evaluated once")


def test_each_training_stage_writes_its_per_class_view_and_top_losses(run):
    outcome, split, _, _ = run
    folder = outcome.run_path / "01-baseline"
    per_class = diagnostics.read_per_class(folder / "per_class.csv")
    assert [row["class"] for row in per_class] == ["blue", "green", "red"]
    assert sum(row["support"] for row in per_class) == len(split.val_paths)
    figures = json.loads((folder / "validation.json").read_text())
    assert figures["worst_class_recall"] == diagnostics.worst_class_recall(per_class)
    top = list(csv.DictReader(open(folder / "top_losses.csv", encoding="utf-8")))
    assert len(top) == len(split.val_paths)  # fewer images than the list's length
    losses = [float(row["loss"]) for row in top]
    assert losses == sorted(losses, reverse=True)
    assert {row["path"] for row in top} == set(split.val_paths)
    assert (folder / "top_losses.png").stat().st_size > 0
    assert (folder / "confusion.png").stat().st_size > 0
    row = next(csv.DictReader(open(outcome.run_path / "ablation.csv")))
    assert float(row["worst_class_recall"]) == pytest.approx(figures["worst_class_recall"])


def test_old_stage_folders_without_the_view_read_with_an_empty_cell(run, tmp_path):
    from train.ablation import write_report

    outcome, _, _, _ = run
    copy = tmp_path / "old"
    shutil.copytree(outcome.run_path / "01-baseline", copy / "01-baseline")
    (copy / "01-baseline" / "validation.json").unlink()
    write_report(copy)
    row = next(csv.DictReader(open(copy / "ablation.csv")))
    assert row["worst_class_recall"] == "" and row["best_val_loss"] != ""


def test_tensorboard_logs_hold_scalars_histograms_and_previews(run):
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    outcome, _, _, _ = run
    folder = outcome.run_path / "tensorboard" / "baseline"
    found: dict[str, tuple[str, set[int]]] = {}
    for path in folder.glob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name or found[value.tag][0]
                found.setdefault(value.tag, (plugin, set()))[1].add(event.step)
    steps = {24, 48, 72}  # after each of the 3 evaluations
    assert found["evaluation/val_loss"] == ("scalars", steps)
    assert found["evaluation/accuracy"] == ("scalars", steps)
    assert found["first_layer/kernel"] == ("histograms", {0, *steps})
    assert found["preview/train"][0] == "images" and found["preview/validation"][0] == "images"


def test_the_export_read_back_predicts_as_in_training(run, tmp_path, capsys):
    outcome, split, _, _ = run
    meta = json.loads((outcome.export / "model.json").read_text())
    assert meta["class_names"] == ["blue", "green", "red"] and meta["image_size"] == 16
    assert meta["source"]["stage"] == "baseline" and meta["normalization"]["statistics"]
    trained = outcome.results[0].model
    expected = diagnostics.predict_probabilities(trained, split.val_paths)
    out = tmp_path / "predictions.csv"
    assert cli.main(["predict", str(outcome.export), *split.val_paths, "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert [row["path"] for row in rows] == split.val_paths
    got = np.array([[float(row[f"p_{name}"]) for name in meta["class_names"]] for row in rows])
    assert np.abs(got - expected).max() <= 1e-6
    assert [row["predicted"] for row in rows] == [
        meta["class_names"][index] for index in expected.argmax(axis=1)
    ]
    # An unreadable image gets a line on stderr and exit 1; the others are still predicted.
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    capsys.readouterr()
    code = cli.main(["predict", str(outcome.export), str(broken), split.val_paths[0]])
    captured = capsys.readouterr()
    assert code == 1 and f"cannot read {broken}" in captured.err
    assert len(captured.out.strip().splitlines()) == 2  # the header and the readable image


def _damaged(outcome, tmp_path, change):
    copy = tmp_path / "export"
    shutil.copytree(outcome.export, copy)
    change(copy)
    return copy


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda folder: (folder / "model.json").unlink(), "model.json is missing"),
        (lambda folder: (folder / "model.json").write_text("{not json"), "not a readable"),
        (
            lambda folder: _edit(folder, class_names=["a", "b", "c", "d"], output={"units": 4}),
            "names 4 classes, which needs 4 output unit(s), and the model has 3",
        ),
        (lambda folder: _edit(folder, image_size=32), "says 32 x 32 input, the model takes 16"),
        (lambda folder: (folder / "model.keras").write_bytes(b"PK broken"), "cannot be loaded"),
        (lambda folder: _edit(folder, format="x"), "format must be a positive integer, got 'x'"),
        (lambda folder: _edit(folder, format=None), "format must be a positive integer, got None"),
        (lambda folder: _edit(folder, format=2), "export format 2 is newer"),
        (lambda folder: _edit(folder, class_names=["a", "a", "b"]), "must be distinct"),
        (lambda folder: _edit(folder, class_names=[{"x": 1}, None, "c"]), "non-empty strings"),
        (lambda folder: _edit(folder, class_names="abc"), "non-empty strings"),
        (lambda folder: _edit(folder, image_size=16.9), "image_size must be an integer"),
        (lambda folder: _edit(folder, image_size=True), "image_size must be an integer"),
        (lambda folder: _edit(folder, image_size="16"), "image_size must be an integer"),
        (lambda folder: _edit(folder, image_size=4), "from 8 to 4096, got 4"),
        (lambda folder: _edit(folder, image_size=10**400), "from 8 to 4096, got 1000"),
        (
            lambda folder: _edit(
                folder, normalization={"statistics": {"mean": [0.5] * 3, "std": [1e30, 0, -1]}}
            ),
            "std positive",
        ),
        (
            lambda folder: _edit(
                folder, normalization={"statistics": {"mean": [0.5], "std": [0.2]}}
            ),
            "statistics for 1 channel(s), the model takes 3",
        ),
        (lambda folder: _edit(folder, output={"units": 5}), "output units must be 3 for 3 classes"),
        (
            lambda folder: _edit(folder, normalization={"statistics": None}),
            "gives no normalisation statistics, the model standardises its input",
        ),
        (lambda folder: (folder / "model.json").write_text("[1, 2]"), "expected a JSON object"),
    ],
    ids=[
        "json-missing",
        "json-unreadable",
        "class-count",
        "input-size",
        "keras-damaged",
        "format-str",
        "format-null",
        "format-newer",
        "names-duplicate",
        "names-not-strings",
        "names-a-string",
        "size-float",
        "size-bool",
        "size-str",
        "size-small",
        "size-huge",
        "stats-not-positive",
        "stats-length",
        "units",
        "stats-missing",
        "not-an-object",
    ],
)
def test_predict_refuses_a_mismatched_or_damaged_export(run, tmp_path, capsys, damage, reason):
    outcome, split, _, _ = run
    folder = _damaged(outcome, tmp_path, damage)
    capsys.readouterr()
    assert cli.main(["predict", str(folder), split.val_paths[0]]) == 2
    assert reason in capsys.readouterr().err


def _edit(folder, **changes):
    meta = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps(meta | changes))


def test_a_collapsed_model_shows_the_collapse(run, tmp_path):
    """A model that outputs the training prior for every image (zero weights, the prior's
    output bias): every validation prediction in the majority class's column."""
    _, split, _, _ = run
    context = Context(split, SMALL, log=lambda line: None)
    model = context.build("simple_cnn", width=SMALL.width)
    weights = model.get_weights()
    model.set_weights([np.zeros_like(value) for value in weights[:-1]] + [weights[-1]])
    logs = diagnostics.predict_log_probabilities(model, split.val_paths)
    np.testing.assert_allclose(
        np.exp(logs), np.tile(context.init.prior, (len(split.val_paths), 1)), atol=1e-6
    )
    figures = diagnostics.write_view(
        tmp_path, logs, split.val_labels, split.val_paths, list(split.class_names)
    )
    table = list(csv.reader(open(tmp_path / "confusion.csv", encoding="utf-8")))
    majority = int(np.argmax(split.train_counts()))
    columns = np.array([[int(cell) for cell in row[1:]] for row in table[1:]])
    assert columns[:, majority].sum() == len(split.val_paths)
    assert np.delete(columns, majority, axis=1).sum() == 0
    assert figures["worst_class_recall"] == 0.0
    assert figures["accuracy"] == pytest.approx(np.mean(split.val_labels == majority))


def test_validation_loss_is_keras_cross_entropy_even_for_a_diverged_model(run):
    """validation.json's loss is the cross-entropy Keras's evaluate reports (within 1e-4
    relative), also for a diverged model, whose probabilities underflow: a 1e-7 clip read
    0.848 where Keras said 1.7e6."""
    import keras

    outcome, split, _, _ = run
    folder = outcome.run_path / "01-baseline"
    model = keras.models.load_model(folder / "model.keras", compile=False)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pipeline = data.make_dataset(
        split.val_paths, split.val_labels, 16, 64, False, None, cache=False
    )
    saved = json.loads((folder / "validation.json").read_text())
    assert saved["loss"] == pytest.approx(model.evaluate(pipeline, verbose=0), rel=1e-4)
    assert saved["loss"] < saved["prior_loss"] and saved["nan_predictions"] == 0
    weights = model.get_weights()
    # Reversed and scaled: confidently wrong, logits about 1e4 apart.
    model.set_weights([*weights[:-2], weights[-2] * -3e4, weights[-1]])
    keras_loss = model.evaluate(pipeline, verbose=0)
    figures = diagnostics.summarise(
        diagnostics.predict_log_probabilities(model, split.val_paths),
        split.val_labels,
        list(split.class_names),
    )
    assert keras_loss > 100 * saved["prior_loss"]  # the weights did diverge
    assert figures["loss"] == pytest.approx(keras_loss, rel=1e-4)


def test_the_export_ranks_by_the_real_loss_and_never_takes_a_diverged_or_failed_stage(
    run, tmp_path
):
    from train.export import candidates

    outcome, _, _, _ = run
    copy = tmp_path / "ranked"
    source = outcome.run_path / "01-baseline"
    base = json.loads((source / "validation.json").read_text())
    stages = {  # folder: (status, validation loss)
        "01-baseline": ("pass", base["loss"]),
        "02-xception": ("pass", base["loss"] / 2),
        "03-augment": ("pass", 1.7e6),  # diverged: worse than the prior
        "04-dropout": ("fail", base["loss"] / 4),
        "05-weight_decay": ("pass", None),  # NaN outputs
    }
    for name, (status, loss) in stages.items():
        shutil.copytree(source, copy / name)
        metrics = json.loads((copy / name / "metrics.json").read_text())
        metrics |= {"stage": name[3:], "status": status}
        (copy / name / "metrics.json").write_text(json.dumps(metrics))
        (copy / name / "validation.json").write_text(json.dumps(base | {"loss": loss}))
    assert [stage for _, stage, _, _ in candidates(copy)] == ["xception", "baseline"]


def test_predict_does_not_open_a_fifo_and_says_it_cannot_read_it(run, tmp_path, capsys):
    import os
    import threading

    outcome, split, _, _ = run
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    codes: list[int] = []
    worker = threading.Thread(
        target=lambda: codes.append(
            cli.main(["predict", str(outcome.export), str(fifo), str(tmp_path), split.val_paths[0]])
        ),
        daemon=True,
    )
    worker.start()
    worker.join(60)
    if worker.is_alive():  # open() blocked on the FIFO: release it so the thread ends
        with open(fifo, "wb"):
            pass
        pytest.fail("predict blocked on a FIFO")
    err = capsys.readouterr().err
    assert codes == [1]
    assert f"cannot read {fifo}: not a regular file" in err
    assert f"cannot read {tmp_path}: a folder" in err


def test_the_ablation_table_pairs_the_saved_models_accuracy_with_its_worst_recall(run):
    outcome, _, _, _ = run
    saved = json.loads((outcome.run_path / "01-baseline" / "validation.json").read_text())
    row = next(csv.DictReader(open(outcome.run_path / "ablation.csv")))
    assert float(row["saved_val_accuracy"]) == pytest.approx(saved["accuracy"])
    lines = (outcome.run_path / "ablation.md").read_text().splitlines()
    header = [cell.strip() for cell in lines[0].split("|")]
    cells = [cell.strip() for cell in lines[2].split("|")]
    at = header.index("saved model val acc")
    assert header[at + 1] == "saved model worst class recall"
    assert cells[at] == format(saved["accuracy"], ".3f")
    assert cells[at + 1] == format(saved["worst_class_recall"], ".3f")


def test_report_reads_a_malformed_test_json_as_unreadable(run, tmp_path, capsys):
    from train.ablation import held_out_line

    outcome, _, _, _ = run
    for text, said in [
        ("[]", "malformed"),
        ('"x"', "malformed"),
        ('{"evaluated": true}', "malformed"),
        ("{bad", "unreadable"),
    ]:
        (tmp_path / "test.json").write_text(text)
        assert held_out_line(tmp_path) == f"Held-out test: test.json is {said}" + (
            " (JSONDecodeError)" if said == "unreadable" else " (not the object a run writes)"
        )
    copy = tmp_path / "run"
    shutil.copytree(outcome.run_path / "01-baseline", copy / "01-baseline")
    (copy / "test.json").write_text("null")
    assert cli.main(["report", str(copy)]) == 0
    assert "Held-out test: test.json is malformed" in capsys.readouterr().out


def test_thin_test_classes_are_written_and_shown(run, tmp_path):
    from train.ablation import held_out_line

    outcome, split, _, _ = run
    test = json.loads((outcome.run_path / "test.json").read_text())
    assert test["thin_test_classes"] == split.details["thin_test_classes"]
    (tmp_path / "test.json").write_text(json.dumps(test | {"thin_test_classes": {"red": 1}}))
    line = held_out_line(tmp_path)
    assert (
        line is not None
        and line.startswith("Held-out test (")
        and line.endswith("a handful) in red (1)")
    )
    assert "handful" not in (held_out_line(outcome.run_path) or "")


@pytest.mark.parametrize(
    "command",
    [
        ["run", "data", "--stages", "init_loss"],
        ["report", "runs/x"],
        ["predict", "export", "a.png"],
        ["label-issues", "data"],
    ],
)
def test_a_missing_training_package_is_exit_2_with_the_install_hint(command, monkeypatch, capsys):
    import sys

    from train.cli import main

    monkeypatch.setitem(sys.modules, "keras", None)  # as if the train extra were not installed
    assert main(command) == 2
    error = capsys.readouterr().err
    assert "needs keras" in error and "pip install 'image-audit[train]'" in error
