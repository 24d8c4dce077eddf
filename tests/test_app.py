"""The Streamlit app with streamlit.testing.v1.AppTest: each page, empty states, safety."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audit.outputs import dataset_key, default_report_dir
from tests.imagegen import colour_dataset
from ui import runs_live

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

APP = str(Path(__file__).resolve().parents[1] / "app.py")
EVIL = "<img src=x onerror=alert(1)>.png"


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """An allowed root holding a small dataset with a cross-class copy and a hostile name.

    The page's scans inspect files in the test's process (one job): a worker pool costs
    1-2 s to start per scan, and tests/test_lock.py covers the pool's workers."""
    monkeypatch.setattr("audit.scan.default_jobs", lambda: 1)
    monkeypatch.setenv("IMAGE_AUDIT_ALLOWED_ROOTS", str(tmp_path))
    monkeypatch.delenv("IMAGE_AUDIT_WORKDIR", raising=False)
    root = colour_dataset(tmp_path / "data", {"blue": 12, "red": 8})
    (root / "red" / "copy.png").write_bytes((root / "blue" / "000.png").read_bytes())
    (root / "red" / EVIL).write_bytes(b"\x89PNG\r\n\x1a\n")  # truncated, so it is listed
    return tmp_path, root


def app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=120).run()


def scanned(root, test: AppTest | None = None) -> AppTest:
    """Scan root from the page and wait for the background scan to finish."""
    test = test or app()
    test.text_input(key="dataset_path").input(str(root)).run()
    test.button(key="scan").click().run()
    assert not test.exception, [e.value for e in test.exception]
    assert test.session_state["scan_job"].wait(timeout=120)
    test.run()
    assert not test.exception, [e.value for e in test.exception]
    return test


def test_audit_page_empty_state(workspace):
    test = app()
    assert not test.exception
    assert any("No report yet" in info.value for info in test.info)


def test_path_outside_the_allowed_roots_is_refused(workspace, tmp_path_factory):
    outside = colour_dataset(tmp_path_factory.mktemp("elsewhere") / "data", {"a": 2, "b": 2})
    test = app()
    test.text_input(key="dataset_path").input(str(outside)).run()
    test.button(key="scan").click().run()
    assert test.error and test.error[0].value.startswith("Refused:")
    assert not (outside.parent / "reports").exists() and "report_dir" not in test.session_state


def test_scan_shows_numbers_gallery_and_escapes_names(workspace):
    tmp_path, root = workspace
    test = scanned(root)
    metrics = {metric.label: metric.value for metric in test.metric}
    assert (
        metrics["Files"] == "22" and metrics["Errors"] == "3"
    )  # the truncated file and the two conflicting copies
    assert int(metrics["Duplicate groups"]) >= 1
    assert [s.value for s in test.subheader][:1] == [f"Report: {dataset_key(root)}"]
    markdown = " ".join(element.value for element in test.markdown)
    assert "label conflict" in markdown
    assert "<img src=x" not in markdown  # every file name shown through markdown is escaped
    assert any("Suggested output bias" in text.value for text in test.text)
    problems = next(table.value for table in test.dataframe if "preview" in table.value.columns)
    assert f"red/{EVIL}" in set(problems["path"])
    assert (default_report_dir(root, base=tmp_path / "reports") / "summary.json").is_file()


def test_open_a_recent_report(workspace):
    _, root = workspace
    scanned(root)
    test = app()
    test.radio(key="audit_source").set_value("Open a recent report").run()
    assert not test.exception
    assert any(metric.label == "Files" for metric in test.metric)


def test_quarantine_needs_explicit_confirmation(workspace):
    tmp_path, root = workspace
    test = scanned(root)
    assert test.button(key="quarantine_go").disabled  # no move without the confirmation
    assert (root / "red" / "copy.png").exists()
    test.checkbox(key="quarantine_confirm_0").check().run()
    test.button(key="quarantine_go").click().run()
    assert any("moved" in message.value for message in test.success)
    report_dir = default_report_dir(root, base=tmp_path / "reports")
    (manifest,) = report_dir.glob("quarantine-*/manifest.jsonl")
    lines = [json.loads(line) for line in manifest.read_text().splitlines()][1:]  # a header first
    assert {"original", "quarantined", "sha256", "bytes", "reason"} <= set(lines[0])
    assert not (root / "red" / "copy.png").exists()


def test_checks_page_empty_state_and_history(workspace):
    tmp_path, root = workspace
    test = app()
    test.sidebar.radio(key="page").set_value("Checks").run()
    assert any("No check recorded yet" in info.value for info in test.info)
    from audit import history

    history.append(
        tmp_path / "reports" / "check-history.sqlite",
        history.Run(
            0,
            "2026-11-27T02:15:00+00:00",
            str(root),
            "suite.json",
            False,
            21,
            19,
            2,
            {"files:expect_column_values_to_not_be_in_set:severity": False},
            {"classes": {"blue": 12}, "error_files": ["red/x.png"]},
        ),
    )
    test.run()
    table = test.dataframe[0].value
    assert list(table["result"]) == ["FAIL"] and "severity" in table["failed expectations"][0]


def test_training_page_empty_states(workspace, tmp_path_factory, monkeypatch):
    empty = tmp_path_factory.mktemp("empty")
    monkeypatch.setenv("IMAGE_AUDIT_ALLOWED_ROOTS", str(empty))
    test = app()
    test.sidebar.radio(key="page").set_value("Training").run()
    infos = " ".join(info.value for info in test.info)
    assert "No audit report yet" in infos and "No runs yet" in infos


@pytest.mark.slow
def test_training_runs_in_the_background_and_its_verdicts_show(workspace):
    tmp_path, root = workspace
    test = scanned(root)
    test.sidebar.radio(key="page").set_value("Training").run()
    form_stages = test.multiselect[0]
    form_stages.set_value(["init_loss"])
    test.button[0].click().run()  # the form's submit button
    assert any("Started run" in message.value for message in test.success)
    (run_path,) = runs_live.active_runs(tmp_path / "runs")
    assert runs_live.wait(run_path, timeout=180) == 0, (run_path / "train.log").read_text()[-800:]
    test.run()
    assert test.selectbox(key="run_choice").value.startswith("app-")
    verdicts = test.dataframe[-1].value
    assert set(verdicts["verdict"]) >= {"initial_loss_is_prior_entropy"}
