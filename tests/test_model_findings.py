"""Model-derived findings (label_issues.csv) entering the audit: keyed by path and sha256, in
images.csv, findings.csv and report.html; dropped when the file changes; quarantine --top."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from audit import cli, model_findings
from audit.escaping import for_report
from audit.model_findings import (
    CODE,
    COLUMNS,
    LABEL_ISSUES_NAME,
    MODEL_SUMMARY_NAME,
    SHA256_KEY,
    LabelIssue,
    ModelFindingsError,
    load,
    read_label_issues,
    write_label_issues_csv,
)
from audit.quarantine import select
from audit.reportio import Report
from audit.scan import scan
from tests.conftest import jpeg, write_dataset

HOSTILE = "cat/<b>x</b>\nname.jpg"  # HTML and a newline in a file name


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _issue(root: Path, relpath: str, suggested: str, score: float) -> LabelIssue:
    label = relpath.split("/")[0]
    return LabelIssue(for_report(relpath), _sha(root / relpath), label, suggested, score, 2)


MODEL = {
    "out_of_fold_accuracy": 0.9,
    "majority_rate": 0.5,
    "weak_model": False,
    "folds": 3,
    "images": 9,
    "model": "small_xception",
    "created_utc": "2026-11-27T23:00:00+00:00",
}


def _publish(out: Path, issues: list[LabelIssue], **model) -> Path:
    """label_issues.csv and the label_issues.json that belongs to it, as label-issues writes
    them (model: values of label_issues.json to change)."""
    path = write_label_issues_csv(out, issues)
    document = {**MODEL, SHA256_KEY: _sha(path), **model}
    (out / MODEL_SUMMARY_NAME).write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.fixture
def scanned(tmp_path):
    files = {f"{label}/{label}_{i}.jpg": jpeg(10 * n + i) for n, label in enumerate(("cat", "dog"))
             for i in range(4)}  # fmt: skip
    files[HOSTILE] = jpeg(99)
    root = write_dataset(tmp_path / "data", files)
    out = tmp_path / "report"
    scan(root, out, jobs=1)
    return root, out


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "images.csv", encoding="utf-8", newline="") as handle:
        return {row["path"]: row for row in csv.DictReader(handle)}


def _findings(out: Path) -> list[dict]:
    with open(out / "findings.csv", encoding="utf-8", newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["code"] == CODE]


def test_round_trip_with_hostile_and_undecodable_names(tmp_path):
    undecodable = os.fsdecode(b"cat/caf\xe9.jpg")
    issues = [
        LabelIssue(for_report(undecodable), "a" * 64, "cat", "dog", 0.01, 1),
        LabelIssue(HOSTILE, "b" * 64, "cat", "dog", 0.2, 3),
    ]
    path = _publish(tmp_path, issues)
    assert path.read_text(encoding="utf-8").splitlines()[0] == ",".join(COLUMNS)
    assert read_label_issues(path) == issues
    assert load(tmp_path).issue_for(for_report(undecodable), "a" * 64) == issues[0]
    assert load(tmp_path / "nowhere").issues == []  # no file: nothing to import


@pytest.mark.parametrize(
    "text, fault",
    [
        ("path,label\ncat/a.jpg,cat\n", "does not have the columns"),
        (",".join(COLUMNS) + "\ncat/a.jpg," + "a" * 64 + ",cat,dog,1.5,1\n", "between 0 and 1"),
        (",".join(COLUMNS) + "\ncat/a.jpg,xyz,cat,dog,0.5,1\n", "64 lowercase hex"),
        (",".join(COLUMNS) + "\n/etc/passwd," + "a" * 64 + ",cat,dog,0.5,1\n", "relative"),
        (",".join(COLUMNS) + "\ncat/a.jpg," + "a" * 64 + ",cat,dog,0.5\n", "truncated"),
        (",".join(COLUMNS) + "\ncat/a.jpg," + "a" * 64 + ",cat,dog,nan,1\n", "between 0 and 1"),
        (",".join(COLUMNS) + "\ncat/a.jpg," + "a" * 64 + ",cat,dog,0.5,\u0663\n", "fold '"),
    ],
)
def test_a_damaged_table_is_refused_with_its_line(tmp_path, text, fault):
    (tmp_path / LABEL_ISSUES_NAME).write_text(text, encoding="utf-8")
    with pytest.raises(ModelFindingsError, match=fault):
        load(tmp_path)


def test_two_rows_for_one_path_are_refused_naming_it(tmp_path):
    row = ",".join(["cat/a.jpg", "a" * 64, "cat", "dog", "0.5", "1"])
    other = ",".join(["cat/b.jpg", "b" * 64, "cat", "dog", "0.5", "1"])
    text = ",".join(COLUMNS) + f"\n{row}\n{other}\n" + row.replace("0.5", "0.1") + "\n"
    (tmp_path / LABEL_ISSUES_NAME).write_text(text, encoding="utf-8")
    with pytest.raises(ModelFindingsError, match="line 4: a second row for 'cat/a.jpg'.*line 2"):
        read_label_issues(tmp_path / LABEL_ISSUES_NAME)
    (tmp_path / LABEL_ISSUES_NAME).write_text(text.rsplit("cat/a.jpg", 1)[0], encoding="utf-8")
    assert len(read_label_issues(tmp_path / LABEL_ISSUES_NAME)) == 2  # one row each: read


def _within(call, seconds: float = 5.0):
    """call()'s result (its exception raised), failing when it has not returned in time
    (reading a pipe waits for a writer that never comes)."""
    import threading

    outcome: list = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as error:  # noqa: BLE001 - re-raised below
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still running after {seconds} s"
    if isinstance(outcome[0], Exception):
        raise outcome[0]
    return outcome[0]


@pytest.mark.parametrize("name", [LABEL_ISSUES_NAME, MODEL_SUMMARY_NAME])
@pytest.mark.parametrize(
    "plant, fault",
    [
        (lambda path, good: os.mkfifo(path), "is a named pipe, not a regular file"),
        (lambda path, good: os.symlink(good, path), "is a symbolic link to .*: only a regular"),
        (lambda path, good: os.symlink("/nonexistent/x", path), "symbolic link to '/nonexist"),
        (lambda path, good: os.mkdir(path), "is a folder, not a regular file"),
    ],
    ids=["fifo", "link-to-a-good-file", "dangling-link", "folder"],
)
def test_only_regular_files_are_read(tmp_path, name, plant, fault):
    # A pipe used to hang the scan (holding the report folder's lock), a link to /dev/zero
    # grew it to 6 GB in 20 s, a dangling link was silently ignored.
    good = tmp_path / "elsewhere"
    good.mkdir()
    _publish(good, [LabelIssue("cat/a.jpg", "a" * 64, "cat", "dog", 0.5, 1)])
    out = tmp_path / "report"
    shutil.copytree(good, out)
    assert _within(lambda: load(out)).model  # the regular files: read
    (out / name).unlink()
    plant(out / name, good / name)
    with pytest.raises(ModelFindingsError, match=fault):
        _within(lambda: load(out))


def test_a_file_over_the_size_cap_is_refused_unread(tmp_path, monkeypatch):
    _publish(tmp_path, [LabelIssue("cat/a.jpg", "a" * 64, "cat", "dog", 0.5, 1)])
    load(tmp_path)
    size = (tmp_path / LABEL_ISSUES_NAME).stat().st_size
    monkeypatch.setattr(model_findings, "MAX_INPUT_BYTES", size - 1)
    with pytest.raises(ModelFindingsError, match="larger than"):
        load(tmp_path)


@pytest.mark.parametrize(
    "key, value, fault",
    [
        ("out_of_fold_accuracy", "NaN", "NaN is not a JSON number"),
        ("out_of_fold_accuracy", "1e999", "out_of_fold_accuracy inf is not between 0 and 1"),
        ("out_of_fold_accuracy", "-7.5", "out_of_fold_accuracy -7.5 is not between 0 and 1"),
        ("majority_rate", "42", "majority_rate 42 is not between 0 and 1"),
        ("folds", "1", "folds 1 is not between 2"),
        ("folds", "2.5", "folds is not a whole number"),
        ("folds", "9" * 5000, "cannot read .*digits"),
        ("images", "true", "images is not a whole number"),
        ("weak_model", '"yes"', "weak_model is not true or false"),
        ("model", '"\\u001b[31mred"', "model is longer .* or holds a control character"),
        ("created_utc", "null", "created_utc is not a string"),
        (SHA256_KEY, '"abc"', "label_issues_sha256 is not a sha256"),
    ],
)
def test_every_value_of_the_model_summary_is_checked(tmp_path, key, value, fault):
    # NaN and 1e999 used to pass and then fail summary.json's writer (exit 3, a report folder
    # half old, half new); -7.5 was shown as -750%.
    path = _publish(tmp_path, [LabelIssue("cat/a.jpg", "a" * 64, "cat", "dog", 0.5, 1)])
    text = json.dumps({**MODEL, SHA256_KEY: _sha(path), key: "@@"}).replace('"@@"', value)
    (tmp_path / MODEL_SUMMARY_NAME).write_text(text, encoding="utf-8")
    with pytest.raises(ModelFindingsError, match=fault):
        load(tmp_path)


@pytest.mark.parametrize(
    "text, fault",
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("[1, 2]", "not a JSON object"),
        ("{}", "lacks label_issues_sha256"),
        ("not json", "cannot read"),
    ],
)
def test_a_model_summary_that_is_no_object_is_refused(tmp_path, text, fault):
    _publish(tmp_path, [LabelIssue("cat/a.jpg", "a" * 64, "cat", "dog", 0.5, 1)])
    (tmp_path / MODEL_SUMMARY_NAME).write_text(text, encoding="utf-8")
    with pytest.raises(ModelFindingsError, match=fault):
        load(tmp_path)


def test_rows_and_summary_of_different_runs_are_refused(tmp_path):
    first = [LabelIssue("cat/a.jpg", "a" * 64, "cat", "dog", 0.5, 1)]
    _publish(tmp_path, first)
    assert load(tmp_path).model["out_of_fold_accuracy"] == 0.9  # a matching pair: read
    # A run stopped between its two writes: new rows beside the old summary.
    write_label_issues_csv(
        tmp_path, [*first, LabelIssue("dog/b.jpg", "b" * 64, "dog", "cat", 0.1, 2)]
    )
    with pytest.raises(ModelFindingsError, match="does not belong to the label_issues.csv"):
        load(tmp_path)
    # A row of a fold the summary does not count.
    _publish(tmp_path, [replace(first[0], fold=4)])
    with pytest.raises(ModelFindingsError, match="names fold 4, but label_issues.json counts 3"):
        load(tmp_path)
    _publish(tmp_path, [replace(first[0], fold=3)])
    assert load(tmp_path).issues[0].fold == 3
    # A first run stopped there: rows and no summary at all.
    (tmp_path / MODEL_SUMMARY_NAME).unlink()
    with pytest.raises(ModelFindingsError, match="has no label_issues.json beside it"):
        load(tmp_path)


def test_the_table_is_written_through_a_fresh_temporary_file(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me", encoding="utf-8")
    out = tmp_path / "report"
    out.mkdir()
    (out / f".{LABEL_ISSUES_NAME}.tmp").symlink_to(victim)  # the fixed name it used to use
    (out / LABEL_ISSUES_NAME).symlink_to(victim)
    write_label_issues_csv(out, [LabelIssue("cat/a.jpg", "a" * 64, "cat", "dog", 0.5, 1)])
    assert victim.read_text(encoding="utf-8") == "keep me"
    assert not (out / LABEL_ISSUES_NAME).is_symlink()
    assert read_label_issues(out / LABEL_ISSUES_NAME)[0].path == "cat/a.jpg"
    # The planted link at the temporary name was removed, not written through.
    assert sorted(path.name for path in out.iterdir()) == [LABEL_ISSUES_NAME]


def test_scan_imports_keeps_while_unchanged_and_drops_a_changed_file(scanned, capsys):
    root, out = scanned
    before_html = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="label-issues"' not in before_html  # no table: no section
    assert "label_issues" not in json.loads((out / "summary.json").read_text())
    issues = [
        _issue(root, "cat/cat_1.jpg", "dog", 0.02),
        _issue(root, HOSTILE, "dog", 0.10),
        _issue(root, "dog/dog_2.jpg", "cat", 0.30),
    ]
    _publish(out, issues)
    # Warm re-scan (cache on): a new label_issues.csv must not be hidden by report reuse.
    assert cli.main(["scan", str(root), "--out", str(out), "--quiet"]) == 0
    assert "weak held-out model" not in capsys.readouterr().out
    rows = _rows(out)
    for path in ("cat/cat_1.jpg", HOSTILE, "dog/dog_2.jpg"):
        assert CODE in rows[path]["issues"].split(";")
        assert rows[path]["severity"] == "info"
    assert CODE not in rows["cat/cat_0.jpg"]["issues"]
    reason = {row["path"]: row["reason"] for row in _findings(out)}["cat/cat_1.jpg"]
    assert "given label cat" in reason and "suggests dog" in reason and "0.020" in reason
    summary = json.loads((out / "summary.json").read_text())
    assert summary["issue_counts"][CODE] == 3
    assert summary["label_issues"]["applied"] == 3
    assert summary["label_issues"]["not_applied_reasons"] == {}
    html = (out / "report.html").read_text(encoding="utf-8")
    section = html[html.index('id="label-issues"') : html.index('id="flagged"')]
    # Worst first, each with its thumbnail; the hostile name escaped, never markup.
    assert section.index("cat_1.jpg") < section.index("x&lt;/b&gt;") < section.index("dog_2.jpg")
    assert section.count("<img ") == 3 and "<b>x</b>" not in section
    assert "score 0.020" in section and "right on <b>90.0%</b>" in section
    assert "A weak model" not in section
    assert "weak held-out model" not in (out / "report.md").read_text(encoding="utf-8")

    # label_issues.json (how good the model was) alone changes: no reuse, shown with them,
    # and a weak model said in report.html, report.md and the scan's lines.
    _publish(out, issues, out_of_fold_accuracy=0.5, weak_model=True, model="<i>m</i>")
    assert cli.main(["scan", str(root), "--out", str(out), "--quiet"]) == 0
    assert "warning: the suspected label issues come from a weak held-out model (out-of-fold " \
        "accuracy 0.500" in capsys.readouterr().out  # fmt: skip
    html = (out / "report.html").read_text(encoding="utf-8")
    section = html[html.index('id="label-issues"') : html.index('id="flagged"')]
    assert "right on <b>50.0%</b>" in section and "A weak model" in section
    assert "&lt;i&gt;m&lt;/i&gt;, 3 folds" in section
    assert "**Warning:** the suspected label issues come from a weak held-out model" in (
        out / "report.md"
    ).read_text(encoding="utf-8")
    _publish(out, issues, weak_model="yes")
    assert cli.main(["scan", str(root), "--out", str(out), "--quiet"]) == 2  # not as written
    _publish(out, issues)

    # The file changes (new bytes under the same name): its finding goes, the others stay.
    (root / "cat/cat_1.jpg").write_bytes(jpeg(1234))
    assert cli.main(["scan", str(root), "--out", str(out), "--quiet"]) == 0
    rows = _rows(out)
    assert CODE not in rows["cat/cat_1.jpg"]["issues"]
    assert CODE in rows["dog/dog_2.jpg"]["issues"].split(";")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["label_issues"] == {**summary["label_issues"], "applied": 2, "not_applied": 1}

    # A third, unchanged scan reuses the reports, still with the two findings.
    assert cli.main(["scan", str(root), "--out", str(out), "--quiet"]) == 0
    assert sum(CODE in row["issues"] for row in _rows(out).values()) == 2


def test_a_row_applies_only_with_the_files_class_and_a_class_to_suggest(scanned):
    root, out = scanned
    wrong_sha = replace(_issue(root, "dog/dog_1.jpg", "cat", 0.4), sha256="c" * 64)
    _publish(
        out,
        [
            _issue(root, "dog/dog_0.jpg", "cat", 0.05),  # as label-issues writes it: applied
            replace(_issue(root, "cat/cat_0.jpg", "cat", 0.1), label="dog"),  # not its class
            _issue(root, "cat/cat_1.jpg", "bird", 0.2),  # no class bird
            replace(_issue(root, "cat/cat_2.jpg", "dog", 0.3), label="cat\x1b[31m"),
            replace(_issue(root, "cat/cat_3.jpg", "dog\nx", 0.3)),
            wrong_sha,  # the file changed since
        ],
    )
    summary = scan(root, out, jobs=1).summary["label_issues"]
    assert {row["path"] for row in _findings(out)} == {"dog/dog_0.jpg"}
    assert summary["applied"] == 1 and summary["not_applied"] == 5
    assert summary["not_applied_reasons"] == {
        model_findings.CONTROL_CHARACTER: 2,
        model_findings.NOT_THE_CLASS: 1,
        model_findings.NOT_A_CLASS: 1,
        model_findings.NOT_IN_TABLE: 1,
    }


def test_an_unreadable_or_unmatched_pair_stops_the_scan_with_exit_2(scanned, capsys):
    root, out = scanned
    before = (out / "summary.json").read_bytes()
    (out / LABEL_ISSUES_NAME).write_text("not,a,table\n", encoding="utf-8")
    assert cli.main(["scan", str(root), "--out", str(out), "--quiet"]) == 2
    assert "label_issues.csv" in capsys.readouterr().err
    _publish(out, [_issue(root, "cat/cat_1.jpg", "dog", 0.02)])
    text = (out / MODEL_SUMMARY_NAME).read_text(encoding="utf-8")
    (out / MODEL_SUMMARY_NAME).write_text(text.replace("0.9", "NaN"), encoding="utf-8")
    assert cli.main(["scan", str(root), "--out", str(out), "--quiet"]) == 2
    assert "NaN is not a JSON number" in capsys.readouterr().err
    _publish(out, [_issue(root, "cat/cat_1.jpg", "dog", 0.02)])  # a pair that matches...
    # ...then a run stopped between its writes: its rows beside the old label_issues.json.
    write_label_issues_csv(out, [_issue(root, "cat/cat_2.jpg", "dog", 0.02)])
    assert cli.main(["scan", str(root), "--out", str(out), "--quiet"]) == 2
    assert "does not belong" in capsys.readouterr().err
    assert (out / "summary.json").read_bytes() == before  # nothing of the report rewritten
    assert not list(out.glob(".*.tmp"))


def test_quarantine_top_takes_the_lowest_scores(scanned, capsys):
    root, out = scanned
    scores = {"cat/cat_1.jpg": 0.3, "cat/cat_2.jpg": 0.05, "dog/dog_0.jpg": 0.2, HOSTILE: 0.01}
    issues = [_issue(root, path, "dog", score) for path, score in scores.items()]
    _publish(out, sorted(issues, key=lambda issue: -issue.score), weak_model=True)  # any order
    scan(root, out, jobs=1)
    top = select(out, codes=[CODE], top=2)
    assert [row.path for row in top] == [HOSTILE, "cat/cat_2.jpg"]
    assert len(select(out, codes=[CODE], top=10)) == 4
    assert len(select(out, codes=[CODE])) == 4  # without --top: every flagged file

    code = cli.main(["quarantine", str(out), "--codes", CODE, "--top", "1", "--dry-run"])
    assert code == 0
    printed = capsys.readouterr()
    lines = [line for line in printed.out.splitlines() if line.startswith("would move:")]
    assert len(lines) == 1 and "x</b>\\nname.jpg" in lines[0]  # the newline shown escaped
    assert (root / HOSTILE).exists()
    assert "weak" not in printed.err  # --top: the most doubtful first, no warning
    # Without --top, every suggestion of a weak model is taken: a warning says so.
    assert cli.main(["quarantine", str(out), "--codes", CODE, "--dry-run"]) == 0
    assert "warning: 4 file(s) selected by suspected_label_issue, and the suspected label " \
        "issues come from a weak held-out model" in capsys.readouterr().err  # fmt: skip

    # --top with other codes, or alone, cannot rank: exit 2.
    assert cli.main(["quarantine", str(out), "--codes", "truncated", "--top", "1"]) == 2
    assert cli.main(["quarantine", str(out), "--top", "1"]) == 2
    assert cli.main(["quarantine", str(out), "--codes", CODE, "--top", "0"]) == 2
    # label_issues.csv replaced after the scan: the ranking would be of other rows, refused.
    _publish(out, issues[:1])
    assert cli.main(["quarantine", str(out), "--codes", CODE, "--top", "1", "--dry-run"]) == 2
    assert "re-scan" in capsys.readouterr().err
    # ...and replaced by a pipe: refused at once, not waited on.
    (out / LABEL_ISSUES_NAME).unlink()
    os.mkfifo(out / LABEL_ISSUES_NAME)
    with pytest.raises(ModelFindingsError, match="named pipe"):
        _within(lambda: select(out, codes=[CODE], top=1))
    assert Report(out).images()  # the report itself untouched
