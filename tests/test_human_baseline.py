"""Karpathy's human baseline (train.human) and its view on the training page (AppTest)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from audit.errors import UserError
from tests.imagegen import colour_dataset
from train import human
from train.runs import RunStore, StageResult

APP = str(Path(__file__).resolve().parents[1] / "app.py")
EVIL = "<img src=x onerror=alert(1)>*bold*"


def make_run(tmp_path: Path, classes=("blue", "red"), per_class: int = 5) -> Path:
    """A run folder whose validation list names real images, and one trained stage."""
    root = colour_dataset(tmp_path / "data", dict.fromkeys(classes, per_class), side=16)
    store = RunStore(tmp_path / "runs", "run1")
    paths, labels = [], []
    for index, name in enumerate(classes):
        for image in sorted((root / name).iterdir()):
            paths.append(str(image))
            labels.append(index)
    human.record_validation_set(store.path, classes, paths, labels)
    stage = StageResult(name="baseline", hypothesis="learns")
    stage.summary = {"model": "simple_cnn", "best_val_loss": 0.3, "best_val_accuracy": 0.9}
    store.write_stage(stage)
    (store.path / "ablation.md").write_text("| stage |\n|---|\n| baseline |\n")
    return store.path


def test_wilson_interval_matches_known_values():
    # Wilson's interval (z = 1.96): 0/10 -> 0 to 0.2775, 5/10 -> 0.2366 to 0.7634, 10/10 the mirror.
    assert human.wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-4)
    assert human.wilson_interval(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-4)
    assert human.wilson_interval(10, 10) == pytest.approx((0.72247, 1.0), abs=1e-4)
    low, high = human.wilson_interval(0, 0)
    assert low != low and high != high  # nan without trials
    with pytest.raises(ValueError):
        human.wilson_interval(11, 10)


def test_draw_is_seeded_keeps_its_sample_and_hides_nothing_it_should_not(tmp_path):
    run = make_run(tmp_path)
    first = human.draw(run, count=4, seed=3)
    assert len(first["items"]) == 4 and all(item["answer"] is None for item in first["items"])
    assert human.draw(run, count=9, seed=8) == first  # an existing sample is kept
    again = human.draw(run, count=4, seed=3, replace=True)
    assert [item["path"] for item in again["items"]] == [item["path"] for item in first["items"]]
    other = human.draw(run, count=4, seed=4, replace=True)
    assert [item["path"] for item in other["items"]] != [item["path"] for item in first["items"]]
    assert len(human.draw(run, count=50, seed=0, replace=True)["items"]) == 10  # all there is


def test_answers_score_and_report(tmp_path):
    run = make_run(tmp_path)
    document = human.draw(run, count=5, seed=1)
    names = document["class_names"]
    for position, item in enumerate(document["items"]):
        wrong = next(name for name in names if name != item["label"])
        given = item["label"] if position < 3 else (wrong if position == 3 else human.CANT_TELL)
        human.answer(run, position, given)
    result = human.score(human.load(run))
    assert (result.answered, result.correct, result.cant_tell, result.sample) == (5, 3, 1, 5)
    assert result.accuracy == pytest.approx(0.6)
    assert result.interval == pytest.approx(human.wilson_interval(3, 5))
    report = (run / "ablation.md").read_text()
    assert report.startswith("| stage |") and report.count("## Human baseline") == 1
    assert "3 right, accuracy 0.600" in report and "best validation accuracy 0.900" in report
    human.answer(run, 4, document["items"][4]["label"])  # changed its mind: section rewritten
    report = (run / "ablation.md").read_text()
    assert report.count("## Human baseline") == 1 and "4 right, accuracy 0.800" in report
    (run / human.VALIDATION_FILE).unlink()  # gone since the draw: the report still says it
    assert "accuracy 0.900 on all the validation images" in human.report_section(run)
    with pytest.raises(UserError):
        human.answer(run, 0, "green")  # not a class
    with pytest.raises(UserError):
        human.answer(run, 99, "red")


def test_concurrent_answers_all_land(tmp_path):
    run = make_run(tmp_path)
    document = human.draw(run, count=10, seed=0)
    failures: list[BaseException] = []

    def answer(position: int, label: str) -> None:
        try:
            human.answer(run, position, label)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            failures.append(error)

    threads = [
        threading.Thread(target=answer, args=(position, item["label"]))
        for position, item in enumerate(document["items"])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    assert human.score(human.load(run)).correct == 10
    assert "10 right" in (run / "ablation.md").read_text()


def test_missing_or_damaged_files_are_refused_clearly(tmp_path):
    store = RunStore(tmp_path / "runs", "old")
    with pytest.raises(UserError, match="no validation_images.json"):
        human.draw(store.path)
    (store.path / human.VALIDATION_FILE).write_text('{"format": "x"}')
    with pytest.raises(UserError, match="not a validation list"):
        human.draw(store.path)
    (store.path / human.BASELINE_FILE).write_text("{not json")
    with pytest.raises(UserError, match="cannot read"):
        human.load(store.path)
    assert human.report_section(store.path).startswith("\n## Human baseline\n\nNot read")


def test_the_view_records_labels_and_computes_accuracy(tmp_path, monkeypatch):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("IMAGE_AUDIT_ALLOWED_ROOTS", str(tmp_path))
    monkeypatch.delenv("IMAGE_AUDIT_WORKDIR", raising=False)
    run = make_run(tmp_path, classes=("blue", EVIL))
    test = AppTest.from_file(APP, default_timeout=60).run()
    test.sidebar.radio(key="page").set_value("Training").run()
    test.radio(key="training_view").set_value("Human baseline").run()
    test.number_input(key="human_count").set_value(4).run()
    test.button(key="human_draw").click().run()
    assert not test.exception, [e.value for e in test.exception]
    document = json.loads((run / human.BASELINE_FILE).read_text())
    names = document["class_names"]
    shown_text = " ".join(
        element.value for element in [*test.markdown, *test.caption] if element.value
    )
    for position, item in enumerate(document["items"]):
        assert f"Image {position + 1} of 4" in " ".join(m.value for m in test.markdown)
        images = test.get("image")
        assert len(images) == 1 and not images[0].proto.imgs[0].caption  # no label, no name
        assert Path(item["path"]).name not in shown_text
        right = names.index(item["label"])
        test.button(key=f"human_answer_{right if position != 0 else 1 - right}").click().run()
        assert not test.exception, [e.value for e in test.exception]
    stored = json.loads((run / human.BASELINE_FILE).read_text())
    assert [item["answer"] is not None for item in stored["items"]] == [True] * 4
    metrics = {metric.label: metric.value for metric in test.metric}
    assert metrics["Human accuracy"] == "75.0%"  # 3 of 4: the first answer was wrong
    assert metrics["Model accuracy (best validation)"] == "90.0%"
    low, high = human.wilson_interval(3, 4)
    captions = " ".join(caption.value for caption in test.caption)
    assert "3 of 4 answered right" in captions and f"{low:.1%} to {high:.1%}" in captions
    assert any("All 4 images" in message.value for message in test.success)
    assert "3 right, accuracy 0.750" in (run / "ablation.md").read_text()
    labels = [button.label for button in test.button]
    assert not any(label == EVIL for label in labels)  # the hostile class name escaped


def test_cant_tell_is_no_class_name_and_a_foreign_file_is_refused(tmp_path):
    """Attack on issue 18, finding 4: "can't tell" was the string "(can't tell)", so a
    class of that name got two identical buttons and its answers counted as can't tell.
    Now it is an answer of its own; a file of the previous format is read as it meant."""
    run = make_run(tmp_path, classes=("(can't tell)", "b"), per_class=2)
    document = human.draw(run, count=2, seed=0)
    labels = [item["label"] for item in document["items"]]
    human.answer(run, 0, "(can't tell)")  # the class
    human.answer(run, 1, human.CANT_TELL)
    result = human.score(human.load(run))
    assert result.cant_tell == 1 and result.correct == (labels[0] == "(can't tell)")
    stored = json.loads((run / human.BASELINE_FILE).read_text())
    assert [(item["answer"], item["cant_tell"]) for item in stored["items"]] == [
        ("(can't tell)", False),
        (None, True),
    ]
    (run / human.BASELINE_FILE).write_text(json.dumps([stored]))  # not the object written
    with pytest.raises(human.HumanBaselineError, match="not a human baseline"):
        human.load(run)


def test_an_image_not_shown_can_be_skipped(tmp_path, tmp_path_factory, monkeypatch):
    """Attack on issue 18, finding 4: an image of the sample outside the allowed roots (or
    gone) left no button at all: the baseline was stuck. It can be skipped (counted as
    can't tell); class names are escaped Markdown, "$" included."""
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("IMAGE_AUDIT_ALLOWED_ROOTS", str(tmp_path))
    monkeypatch.delenv("IMAGE_AUDIT_WORKDIR", raising=False)
    run = make_run(tmp_path, classes=("(can't tell)", "$x$"), per_class=2)
    document = human.draw(run, count=3, seed=0)
    secret = tmp_path_factory.mktemp("outside") / "secret.png"
    secret.write_bytes(Path(document["items"][0]["path"]).read_bytes())
    document["items"][0]["path"] = str(secret)
    Path(document["items"][1]["path"]).unlink()
    (run / human.BASELINE_FILE).write_text(json.dumps(document))
    test = AppTest.from_file(APP, default_timeout=60).run()
    test.sidebar.radio(key="page").set_value("Training").run()
    test.radio(key="training_view").set_value("Human baseline").run()
    for _ in range(2):  # outside the roots, then gone: no image, no class button
        assert not test.get("image") and (test.error or test.warning)
        keys = [button.key for button in test.button if str(button.key).startswith("human_")]
        assert keys == ["human_cant_tell"], keys
        test.button(key="human_cant_tell").click().run()
    assert len(test.get("image")) == 1
    labels = {button.key: button.label for button in test.button}
    assert labels["human_answer_0"] == "\\(can't tell\\)" and labels["human_answer_1"] == "\\$x\\$"
    assert labels["human_cant_tell"] == "can't tell"
    test.button(key="human_answer_0").click().run()
    result = human.score(human.load(run))
    assert (result.answered, result.cant_tell) == (3, 2)
    assert result.correct == (document["items"][2]["label"] == "(can't tell)")
