"""Scheduled checks with Great Expectations: pass, each kind of degradation fails, history kept."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys

import pytest

from audit import cli
from tests.conftest import jpeg, write_dataset

pytest.importorskip("great_expectations")
pytestmark = pytest.mark.slow


@pytest.fixture
def checked(tmp_path):
    """A clean dataset with a suite made from it."""
    files = {
        f"{label}/{label}_{index}.jpg": jpeg(100 * number + index, 80, 60)
        for number, label in enumerate(("cat", "dog", "fox"))
        for index in range(8)
    }
    root = write_dataset(tmp_path / "data", files)
    suite = tmp_path / "data.suite.json"
    assert (
        cli.main(
            [
                "suite",
                "init",
                str(root),
                "--out",
                str(suite),
                "--report",
                str(tmp_path / "init-report"),
            ]
        )
        == 0
    )
    return root, suite, tmp_path


def check(root, suite, tmp_path, run: str) -> int:
    return cli.main(
        [
            "check",
            str(root),
            "--suite",
            str(suite),
            "--out",
            str(tmp_path / run),
            "--history",
            str(tmp_path / "history.sqlite"),
            "--jobs",
            "1",
            "--quiet",
        ]
    )


def failed_expectations(out) -> dict[str, dict]:
    results = json.loads((out / "validation_result.json").read_text())
    failed = {}
    for table, validation in results["validations"].items():
        for item in validation["results"]:
            if not item["success"]:
                failed[
                    f"{table}:{item['expectation_config']['type']}:{item['expectation_config']['kwargs'].get('column')}"
                ] = item["result"]
    return failed


def test_unchanged_dataset_passes_with_everything_on_disk(checked, capsys):
    root, suite, tmp_path = checked
    text = json.loads(suite.read_text())
    assert len(text["files"]["expectations"]) == 5 and len(text["classes"]["expectations"]) == 3
    assert check(root, suite, tmp_path, "run1") == 0
    out = tmp_path / "run1"
    for name in ("check.html", "check.md", "validation_result.json", "report.html", "images.csv"):
        assert (out / name).is_file(), name
    site = out / "gx-project" / "gx" / "uncommitted" / "data_docs" / "local_site"
    assert (site / "index.html").is_file() and list(site.glob("validations/**/*.html"))
    assert "PASS" in (out / "check.html").read_text()
    config = (out / "gx-project" / "gx" / "great_expectations.yml").read_text()
    assert "analytics_enabled: false" in config
    assert not [
        name for name in sys.modules if name.startswith("posthog")
    ]  # no telemetry client loaded
    assert "first check" in capsys.readouterr().out


def test_truncated_file_fails_and_is_named(checked, capsys):
    root, suite, tmp_path = checked
    assert check(root, suite, tmp_path, "before") == 0
    (root / "dog" / "cut.jpg").write_bytes(jpeg(7, 80, 60)[:500])
    assert check(root, suite, tmp_path, "after") == 1
    failed = failed_expectations(tmp_path / "after")
    assert "files:expect_column_values_to_not_be_in_set:severity" in failed
    assert any(
        entry["path"] == "dog/cut.jpg"
        for entry in failed["files:expect_column_values_to_not_be_in_set:severity"][
            "unexpected_index_list"
        ]
    )
    printed = capsys.readouterr().out
    assert "dog/cut.jpg" in printed and "new file(s) with errors" in printed
    page = next(
        (tmp_path / "after" / "gx-project").glob(
            "gx/uncommitted/data_docs/local_site/validations/image_audit_files/**/*.html"
        )
    )
    text = " ".join(
        re.sub(
            r"<[^>]+>", " ", re.sub(r"<(script|style).*?</\1>", "", page.read_text(), flags=re.S)
        ).split()
    )
    assert "Status: Failed" in text  # the static validation page (the index is drawn by JavaScript)
    assert "values must not belong to this set: error" in text and "dog/cut.jpg" in text
    check_page = (tmp_path / "after" / "check.html").read_text()
    assert "dog/cut.jpg" in check_page and "FAIL" in check_page
    assert "1 of 25 unexpected" in check_page  # the observed value of the failing expectation


def test_cross_class_duplicate_fails_label_conflict(checked):
    root, suite, tmp_path = checked
    shutil.copy(root / "cat" / "cat_0.jpg", root / "dog" / "copied.jpg")
    assert check(root, suite, tmp_path, "run") == 1
    failed = failed_expectations(tmp_path / "run")
    assert "files:expect_column_values_to_be_in_set:label_conflict" in failed


def test_removed_class_fails_the_class_set(checked):
    root, suite, tmp_path = checked
    shutil.rmtree(root / "fox")
    assert check(root, suite, tmp_path, "run") == 1
    failed = failed_expectations(tmp_path / "run")
    assert failed["classes:expect_column_distinct_values_to_equal_set:class"][
        "partial_missing_list"
    ] == ["fox"]


def test_history_holds_every_run(checked, capsys):
    root, suite, tmp_path = checked
    assert check(root, suite, tmp_path, "one") == 0
    (root / "cat" / "empty.jpg").write_bytes(b"")
    assert check(root, suite, tmp_path, "two") == 1
    capsys.readouterr()
    assert cli.main(["history", str(root), "--history", str(tmp_path / "history.sqlite")]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 3 and "PASS" in table[1] and "FAIL" in table[2]
    assert "severity" in table[2]


def test_suite_problems_exit_2(checked, capsys):
    root, suite, tmp_path = checked
    assert (
        cli.main(
            [
                "check",
                str(root),
                "--suite",
                str(tmp_path / "missing.json"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "suite init" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "something else"}')
    assert cli.main(["check", str(root), "--suite", str(broken), "--out", str(tmp_path / "o")]) == 2
    assert cli.main(["suite", "init", str(root), "--out", str(suite)]) == 2  # never overwritten


def test_two_checks_at_once_both_land_in_the_history(checked):
    root, suite, tmp_path = checked
    history = tmp_path / "history.sqlite"
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "audit",
                "check",
                str(root),
                "--suite",
                str(suite),
                "--out",
                str(tmp_path / out),
                "--history",
                str(history),
                "--jobs",
                "1",
                "--quiet",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Three folders: two checks on one folder are refused by its lock (tests/test_lock.py).
        for out in ("parallel-a", "parallel-b", "parallel-c")
    ]
    assert [process.wait() for process in processes] == [0, 0, 0]
    with sqlite3.connect(history) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert connection.execute("SELECT count(*) FROM runs").fetchone()[0] == 3


def test_the_app_shows_the_latest_check_and_its_data_docs(checked, monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    root, suite, tmp_path = checked
    reports = tmp_path / "reports"
    assert (
        cli.main(
            [
                "check",
                str(root),
                "--suite",
                str(suite),
                "--out",
                str(reports / "data-check"),
                "--history",
                str(reports / "check-history.sqlite"),
                "--jobs",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    monkeypatch.setenv("IMAGE_AUDIT_ALLOWED_ROOTS", str(tmp_path))
    test = AppTest.from_file(
        str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=60
    ).run()
    test.sidebar.radio(key="page").set_value("Checks").run()
    assert not test.exception
    assert list(test.dataframe[0].value["result"]) == ["PASS"]
    assert {expander.label for expander in test.expander} >= {
        "Data Docs: image_audit_files",
        "Data Docs: image_audit_classes",
    }


def _edited(suite, edit) -> dict:
    text = json.loads(suite.read_text())
    edit(text)
    return text


def _set(table: str, index: int, **kwargs):
    def edit(text):
        text[table]["expectations"][index]["kwargs"].update(kwargs)

    return edit


def _without_expectations(text):
    text["files"]["expectations"] = []
    text["classes"]["expectations"] = []


UNUSABLE_SUITES = {
    "mistyped column": (_set("files", 0, column="severty"), 'unknown column "severty"'),
    "class column": (_set("classes", 1, column="count"), '"classes"."expectations"[1]'),
    "unknown type": (
        lambda text: text["files"]["expectations"][1].update(
            type="expect_column_values_to_be_nice"
        ),
        'unknown expectation type "expect_column_values_to_be_nice"',
    ),
    "text for a number": (
        _set("files", 3, min_value="ten"),
        'min_value must be a number, not "ten"',
    ),
    "text for mostly": (_set("files", 3, mostly="most"), 'mostly must be a number, not "most"'),
    "GE's own argument check": (
        lambda text: text["files"]["expectations"][4]["kwargs"].pop("value_set"),
        '"files"."expectations"[4] (expect_column_values_to_be_in_set): value_set: field required',
    ),
    "no expectation": (_without_expectations, "holds no expectation"),
    "table not an object": (lambda text: text.update(files=[]), '"files" must be an object'),
}


def test_unusable_suites_exit_2_before_anything_runs(checked, capsys):
    """Before: a mistyped column was a failed check (exit 1, "observed None", recorded); an
    empty suite passed ("PASSED 0/0", exit 0) a dataset with errors; an unknown type, a
    word for a number or a suite that is not UTF-8 gave a traceback and exit 3."""
    root, suite, tmp_path = checked
    (root / "dog" / "cut.jpg").write_bytes(jpeg(7, 80, 60)[:500])  # an error to miss
    history = tmp_path / "history.sqlite"
    bad = tmp_path / "bad.json"
    cases = {
        name: (json.dumps(_edited(suite, edit)).encode(), expected)
        for name, (edit, expected) in UNUSABLE_SUITES.items()
    }
    cases["not UTF-8"] = (
        suite.read_bytes().replace(b'"why": "', b'"why": "\xe9', 1),
        "is not UTF-8 text (byte 0xe9",
    )
    cases["JSON array"] = (b"[1, 2]", "holds a JSON array; a suite is a JSON object")
    for name, (content, expected) in cases.items():
        bad.write_bytes(content)
        arguments = ["check", str(root), "--suite", str(bad), "--out", str(tmp_path / "o")]
        assert cli.main([*arguments, "--history", str(history), "--quiet"]) == 2, name
        captured = capsys.readouterr()
        assert expected in captured.err and str(bad) in captured.err, (name, captured.err)
        assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err
        assert not history.exists() and not (tmp_path / "o").exists(), name  # nothing ran


def test_a_suite_that_cannot_be_evaluated_is_not_a_failed_check(checked, capsys):
    root, suite, tmp_path = checked
    assert check(root, suite, tmp_path, "first") == 0
    text = json.loads(suite.read_text())
    text["files"]["expectations"].append(
        {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "label", "min_value": 0}}
    )
    suite.write_text(json.dumps(text))
    capsys.readouterr()
    assert check(root, suite, tmp_path, "second") == 2
    error = capsys.readouterr().err
    assert '"files"."expectations"[5] (expect_column_mean_to_be_between)' in error
    assert "cannot be evaluated" in error
    with sqlite3.connect(tmp_path / "history.sqlite") as connection:
        assert connection.execute("SELECT count(*) FROM runs").fetchone()[0] == 1


def test_a_new_class_prints_nothing_on_stderr_with_quiet(checked, capfd):
    """Before: Great Expectations' Data Docs renderer printed a KeyError traceback on
    stderr (its own logger, with no handler) when a class was added since the suite."""
    root, suite, tmp_path = checked
    for index in range(3):
        (root / "owl").mkdir(exist_ok=True)
        (root / "owl" / f"owl_{index}.jpg").write_bytes(jpeg(900 + index, 80, 60))
    assert check(root, suite, tmp_path, "run") == 1
    captured = capfd.readouterr()
    assert captured.err == ""
    assert "new: owl" in captured.out and "Traceback" not in captured.out


def test_great_expectations_logging_is_collected_not_printed(capfd):
    import logging

    from audit.expectations import _gx_messages

    with _gx_messages() as messages:
        logging.getLogger("great_expectations.render.renderer").error("drawing failed")
    assert messages == ["ERROR great_expectations.render.renderer: drawing failed"]
    assert capfd.readouterr().err == ""
    assert not logging.getLogger("great_expectations").handlers
