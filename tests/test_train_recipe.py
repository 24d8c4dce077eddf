"""The recipe after the sanity checks: every stage's artefacts and verdicts, the ablation report."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from audit.scan import scan
from tests.imagegen import colour_dataset
from train import cli
from train.ablation import Ablation, ablation_chain
from train.config import ABLATION, EXTRAS, PRESETS, TrainConfig
from train.data import load_examples, split_examples
from train.recipe import run_recipe
from train.runs import BROKEN, STATUSES
from train.stages import Context

pytestmark = pytest.mark.slow
TINY = TrainConfig(
    image_size=32,
    batch_size=8,
    steps=6,
    evaluations=2,
    learning_rate=3e-3,
    seed=7,
    xception_sizes=(8, 16),
    xception_final=16,
    bigger_sizes=(8, 16, 32),
    bigger_final=32,
    tuning_trials=2,
    tuning_steps=6,
    ensemble_size=2,
)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recipe")
    root = colour_dataset(folder / "data", {"blue": 40, "red": 20}, seed=5)
    scan(root, folder / "report", jobs=1)
    return root, folder / "report", split_examples(load_examples(folder / "report"), 0.25, 7)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A local MobileNetV2 no-top weights file (random: the point is the loading path, offline)."""
    import keras

    path = tmp_path_factory.mktemp("weights") / "mobilenet_v2_no_top.weights.h5"
    keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), include_top=False, weights=None
    ).save_weights(path)
    return path


@pytest.fixture(scope="module")
def full_run(split, weights, tmp_path_factory):
    _, _, examples = split
    stages = ["baseline", *ABLATION, *EXTRAS]
    return run_recipe(
        examples,
        replace(TINY, weights=str(weights)),
        stages,
        runs_dir=tmp_path_factory.mktemp("runs"),
        log=lambda line: None,
    )


def test_every_stage_writes_its_artefacts_and_verdicts(full_run):
    folders = {
        path.name.split("-", 1)[1]: path for path in full_run.run_path.glob("[0-9][0-9]-*")
    }  # beside them: tensorboard/ and export/
    assert set(folders) == {"baseline", *ABLATION, *EXTRAS}
    for name, folder in folders.items():
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["hypothesis"], name
        assert metrics["status"] in STATUSES, name
        if name == "early_stopping" and metrics["skipped"]:
            # Callbacks that cannot fire on smaller_batch's curve: no second identical run.
            assert "would not trigger" in metrics["skipped"]
            continue
        assert not metrics["skipped"], name
        for verdict in metrics["verdicts"]:
            assert {"name", "value", "threshold", "passed"} <= set(verdict)
        for artefact in ("config.json", "history.csv", "batch_preview.png"):
            assert (folder / artefact).is_file(), f"{name}/{artefact}"
    early = json.loads((folders["early_stopping"] / "metrics.json").read_text())
    trained = [*ABLATION, "tuning"]
    if early["skipped"]:
        trained.remove("early_stopping")
    else:
        assert {v["name"] for v in early["verdicts"]} >= {"final_weights_are_the_best_epoch"}
    for name in trained:
        folder = folders[name]
        for artefact in (
            "model.keras",
            "predictions.npz",
            "prediction_dynamics.png",
            "first_layer_filters.png",
        ):
            assert (folder / artefact).is_file(), f"{name}/{artefact}"
        predictions = np.load(folder / "predictions.npz")
        assert (
            predictions["probabilities"].shape[0]
            == json.loads((folder / "metrics.json").read_text())["summary"]["epochs_run"]
        )
        np.testing.assert_allclose(predictions["probabilities"].sum(axis=2), 1.0, rtol=1e-5)
        # The watched batch is stratified: both classes (the first validation files in folder
        # order are all "blue"), with the prior and the names the figure draws.
        assert set(predictions["labels"].tolist()) == {0, 1}
        assert predictions["class_names"].tolist() == ["blue", "red"]
        np.testing.assert_allclose(predictions["prior"].sum(), 1.0)
    tuning_rows = list(csv.DictReader(open(folders["tuning"] / "tuning.csv")))
    assert len(tuning_rows) == TINY.tuning_trials and tuning_rows[0]["trial"] == "default"
    ensemble = list(csv.DictReader(open(folders["ensemble"] / "ensemble.csv")))
    assert ensemble[-1]["run"] == "ensemble" and len(ensemble) == TINY.ensemble_size + 1


def test_ablation_report_from_the_run_folders(full_run):
    rows = list(csv.DictReader(open(full_run.run_path / "ablation.csv")))
    assert [row["stage"] for row in rows] == ["baseline", *ABLATION, "tuning"]
    by_stage = {row["stage"]: row for row in rows}
    assert (
        by_stage["augment"]["builds_on"] == "xception" and by_stage["augment"]["augment"] == "True"
    )
    assert (
        by_stage["smaller_input"]["image_size"] == "16"
        and by_stage["smaller_batch"]["batch_size"] == "2"
    )
    delta = float(by_stage["dropout"]["delta_best_val_loss"])
    assert delta == pytest.approx(
        float(by_stage["dropout"]["best_val_loss"]) - float(by_stage["augment"]["best_val_loss"])
    )
    markdown = (full_run.run_path / "ablation.md").read_text()
    table = markdown.split("\n\n")[0]
    assert table.count("\n") == len(rows) + 1 and "| pretrained |" in table
    figure = Image.open(full_run.run_path / "ablation.png")
    assert figure.size[0] > 800 and figure.size[1] > 500
    assert cli.main(["report", str(full_run.run_path)]) == 0


def test_shared_architectures_start_from_the_same_weights(split):
    _, _, examples = split
    context = Context(examples, TINY, log=lambda line: None)
    ablation = Ablation(context)
    built = {}
    for stage in ("xception", "augment", "dropout"):
        spec = ablation.spec(stage)
        model = context.build(
            spec.model, learning_rate=spec.learning_rate, image_size=spec.image_size, **spec.options
        )
        # Dropout owns a seed-generator state variable: not a weight of the network.
        built[stage] = [
            value
            for variable, value in zip(model.weights, model.get_weights(), strict=True)
            if "seed_generator" not in variable.path
        ]
    # Augmentation and dropout add no weights: identical starts.
    for other in ("augment", "dropout"):
        assert len(built[other]) == len(built["xception"])
        assert all(
            np.array_equal(a, b) for a, b in zip(built["xception"], built[other], strict=True)
        )


def test_the_chain_is_data_in_the_configured_order():
    chain = ablation_chain(TINY)
    assert tuple(chain) == ABLATION
    order = ["baseline", *ABLATION]
    for name, step in chain.items():
        assert step.name == name and order.index(step.builds_on) < order.index(name)


def test_pretrained_is_skipped_with_a_reason(split, tmp_path):
    _, _, examples = split
    outcome = run_recipe(
        examples, TINY, ["pretrained"], runs_dir=tmp_path / "a", log=lambda line: None
    )
    skipped = outcome.results[0].skipped
    assert skipped is not None and "no local MobileNetV2 weights" in skipped
    outcome = run_recipe(
        examples,
        replace(TINY, weights=str(tmp_path / "nope.h5")),
        ["pretrained"],
        runs_dir=tmp_path / "b",
        log=lambda line: None,
    )
    skipped = outcome.results[0].skipped
    assert skipped is not None and "does not exist" in skipped
    assert "SKIPPED" in outcome.table()


def test_presets_and_report_errors(split, tmp_path, capsys):
    root, report, _ = split
    assert set(PRESETS) == {"cpu-small", "full"}
    assert (
        cli.main(
            [
                "run",
                str(root),
                "--report",
                str(report),
                "--preset",
                "cpu-small",
                "--stages",
                "init_loss",
                "--runs-dir",
                str(tmp_path / "runs"),
                "--run-id",
                "preset",
            ]
        )
        == 0
    )
    config = json.loads((tmp_path / "runs" / "preset" / "01-init_loss" / "config.json").read_text())
    assert (config["steps"], config["evaluations"], config["tuning_trials"]) == (
        PRESETS["cpu-small"]["steps"],
        PRESETS["cpu-small"]["evaluations"],
        PRESETS["cpu-small"]["tuning_trials"],
    )
    assert cli.main(["report", str(tmp_path)]) == 2


def _markdown_rows(run_path):
    # The table, then (after a blank line) one note per row whose verdict is not pass.
    lines = (run_path / "ablation.md").read_text().split("\n\n")[0].splitlines()[2:]
    header = [
        cell.strip()
        for cell in (run_path / "ablation.md").read_text().splitlines()[0][1:-1].split("|")
    ]
    return {
        cells[0]: dict(zip(header, cells, strict=True))
        for cells in ([cell.strip() for cell in line[1:-1].split("|")] for line in lines)
    }


def test_ablation_md_names_each_runs_model_and_its_time(full_run):
    rows = _markdown_rows(full_run.run_path)
    # bigger_model shares the small_xception builder with xception: its row says which sizes.
    assert rows["xception"]["model"] == "xception 8-16/16"
    assert rows["bigger_model"]["model"] == "xception 8-16-32/32"
    assert rows["baseline"]["model"] == "simple_cnn w32"
    for stage, row in rows.items():
        assert float(row["s"]) > 0.0, stage
    csv_rows = {
        row["stage"]: row for row in csv.DictReader(open(full_run.run_path / "ablation.csv"))
    }
    assert csv_rows["bigger_model"]["architecture"] == "xception 8-16-32/32"


def test_baseline_time_when_shuffled_labels_trained_it(split, tmp_path):
    """shuffled_labels trains the shared baseline run; the baseline row still shows its time."""
    _, _, examples = split
    outcome = run_recipe(
        examples,
        TINY,
        ["shuffled_labels", "baseline"],
        runs_dir=tmp_path / "runs",
        log=lambda line: None,
    )
    row = _markdown_rows(outcome.run_path)["baseline"]
    assert float(row["s"]) > 0.0


def test_ablation_rows_hold_each_stages_status(full_run):
    rows = {row["stage"]: row for row in csv.DictReader(open(full_run.run_path / "ablation.csv"))}
    for stage, row in rows.items():
        metrics = json.loads(
            next(full_run.run_path.glob(f"[0-9][0-9]-{stage}/metrics.json")).read_text()
        )
        assert row["verdict"] == metrics["status"], stage
        if row["verdict"] not in ("pass", "fail"):
            assert row["note"], stage  # a status beyond the verdicts says why
    markdown = (full_run.run_path / "ablation.md").read_text()
    for stage, row in rows.items():
        if row["note"]:
            assert f"- {stage} ({row['verdict']}): " in markdown
    # No row built on a broken run reads as a fair comparison. At this budget (6 steps) the
    # baseline has not converged, so the whole chain after it is invalid_reference.
    assert rows["baseline"]["verdict"] == "not_converged"
    for stage, row in rows.items():
        reference = rows.get(row["builds_on"])
        if reference and reference["verdict"] in BROKEN:
            assert row["verdict"] in ("collapsed", "invalid_reference"), stage
    assert rows["xception"]["verdict"] == "invalid_reference"
    # Deeper down, the note names the root of the trouble, not only the stage above.
    assert "at the root: baseline did not converge" in rows["augment"]["note"]
    # A skipped early_stopping is the run it would repeat: bigger_model changes one thing
    # against that run, so it trains without the callbacks.
    if rows["early_stopping"]["verdict"] == "skipped":
        assert rows["bigger_model"]["early_stopping"] == "False"


def test_a_stage_folder_cut_off_while_written_is_noted_not_fatal(full_run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(full_run.run_path, copy)
    (copy / "99-augment").mkdir()
    (copy / "99-augment" / "config.json").write_text("{}")
    (copy / "98-dropout").mkdir()
    (copy / "98-dropout" / "metrics.json").write_text('{"stage": "drop')  # cut off
    assert cli.main(["report", str(copy)]) == 0
    markdown = (copy / "ablation.md").read_text()
    assert "- 98-dropout: incomplete" in markdown and "- 99-augment: incomplete" in markdown


def test_runs_written_before_statuses_read_as_pass_fail_or_skipped(tmp_path):
    # A 0.1.0 stage folder: no status, no steps, epochs only.
    folder = tmp_path / "run" / "01-baseline"
    folder.mkdir(parents=True)
    summary = {
        "model": "simple_cnn",
        "options": {"width": 32},
        "learning_rate": 0.001,
        "image_size": 32,
        "batch_size": 32,
        "augment": False,
        "early_stopping": False,
        "epochs_run": 3,
        "best_epoch": 3,
        "best_val_loss": 0.5,
        "best_val_accuracy": 0.8,
        "final_loss": 0.4,
        "final_accuracy": 0.85,
        "final_val_loss": 0.5,
        "final_val_accuracy": 0.8,
        "train_seconds": 1.0,
    }
    metrics = {"stage": "baseline", "hypothesis": "h", "passed": False, "skipped": None}
    (folder / "metrics.json").write_text(
        json.dumps({**metrics, "verdicts": [], "summary": summary})
    )
    (folder / "history.csv").write_text("epoch,loss,val_loss\n1,0.6,0.6\n2,0.5,0.55\n3,0.4,0.5\n")
    assert cli.main(["report", str(tmp_path / "run")]) == 0
    row = _markdown_rows(tmp_path / "run")["baseline"]
    assert row["verdict"] == "fail" and row["steps"] == "3 ep"


def test_early_stopping_patience_fits_the_budget(split):
    _, _, examples = split
    ablation = Ablation(Context(examples, replace(TINY, evaluations=6, steps=12), log=print))
    spec = ablation.spec("early_stopping")
    # Patience 3 of 6 evaluations never fired at the cpu-small preset: a third of the budget.
    assert ablation.patience(spec) == (2, 2)
    assert ablation.patience(replace(spec, evaluations=25)) == (3, 2)


@pytest.mark.parametrize(
    "losses, patience, stalls_expected",
    [
        ([0.9, 0.8, 0.7, 0.6], 1, False),  # always improving
        ([0.9, 0.8, 0.85, 0.7], 1, True),  # one evaluation without improvement
        ([0.9, 0.8, 0.85, 0.7], 2, False),
        ([0.9, 0.8, 0.85, 0.81, 0.7], 2, True),
    ],
)
def test_stalls_is_what_keras_callbacks_wait_for(losses, patience, stalls_expected):
    from train.ablation import stalls

    assert stalls(losses, patience) is stalls_expected
