"""Findings a trained model made about files (label issues), and the one way they enter a scan.

`python -m train label-issues` writes label_issues.csv into the audit report folder: one row
per image whose given label the model's out-of-fold predictions doubt, worst first:

    path, sha256, label, suggested_label, score, fold

(path and label as images.csv writes them; score: cleanlab's label-quality score, the
probability the held-out model gave the given label, lower = more doubtful; fold: which of the
K folds held the image out, from 1), and label_issues.json beside it: how good the held-out
model was, and the sha256 of the label_issues.csv it describes (written last, so a run
stopped between the two writes leaves a pair that does not match, and is refused).

A scan of that folder imports the file through `load()`: a row becomes a
`suspected_label_issue` finding (info) on the file at its path only while that file's sha256
is still the row's, its label is the file's class and its suggested label is a class. A file
that changed, moved or went since the model judged it loses the finding on the next scan.

Both files are inputs a person (or another program) can replace: only regular files of at
most MAX_INPUT_BYTES are read, never a link, a pipe or a device, and every value is checked.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import stat
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from audit import reportio
from audit.errors import UserError
from audit.escaping import for_report
from audit.records import FileRecord, Finding, merge_findings

CODE = "suspected_label_issue"
LABEL_ISSUES_NAME = "label_issues.csv"
# Written beside it by the same command, after it: how good the held-out model was (shown
# with the findings, since it says how far they can be trusted) and SHA256_KEY, the sha256 of
# the label_issues.csv it belongs to.
MODEL_SUMMARY_NAME = "label_issues.json"
SHA256_KEY = "label_issues_sha256"
# Either file larger than this is refused rather than read: label_issues.csv takes about 160
# bytes a row, so 64 MiB holds some 400,000 suspected labels (label-issues flags a few
# percent of a dataset); label_issues.json is a few kB per hundred classes.
MAX_INPUT_BYTES = 64 * 1024 * 1024
COLUMNS = ("path", "sha256", "label", "suggested_label", "score", "fold")
RERUN = (
    "re-run `python -m train label-issues`, or remove label_issues.csv (the scan then "
    "imports nothing)"
)
_SHA256 = re.compile(r"[0-9a-f]{64}")
# C0 and C1 control characters (NUL, ESC, newlines...): never in a label this tool writes.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_TEXT = 200  # characters of a free-text value of label_issues.json (model, created_utc)
NOT_IN_TABLE = "no file at its path with its sha256 (changed, moved or removed since)"
NOT_THE_CLASS = "its label is not the file's class"
NOT_A_CLASS = "its suggested label is not a class of the dataset"
CONTROL_CHARACTER = "a control character in its label or suggested label"


class ModelFindingsError(UserError, ValueError):
    """label_issues.csv or label_issues.json cannot be read as this tool writes them (exit 2)."""


@dataclass(frozen=True)
class LabelIssue:
    """One row of label_issues.csv."""

    path: str  # as images.csv writes it (names that are not UTF-8 escaped)
    sha256: str  # of the file the model judged
    label: str  # the given label (its class folder)
    suggested_label: str  # the class the held-out model predicts
    score: float  # label-quality score in [0, 1]: lower = more doubtful
    fold: int  # the fold that held the image out, from 1

    def reason(self) -> str:
        """The finding's reason: given and suggested label, and the score."""
        return (
            f"given label {self.label}, the model suggests {self.suggested_label} "
            f"(label-quality score {self.score:.3f}: the out-of-fold probability of the given "
            f"label; fold {self.fold})"
        )

    def row(self) -> dict:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "label": self.label,
            "suggested_label": self.suggested_label,
            "score": f"{self.score:.6f}",
            "fold": self.fold,
        }


# ---------------------------------------------------------------- writing


def label_issues_csv(issues: Iterable[LabelIssue]) -> bytes:
    """The bytes of a label_issues.csv with these rows, in the order given (worst first)."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, COLUMNS)
    writer.writeheader()
    for issue in issues:
        writer.writerow(
            {
                key: for_report(value) if isinstance(value, str) else value
                for key, value in issue.row().items()
            }
        )
    return text.getvalue().encode("utf-8")


def write_atomic(path: Path, content: bytes) -> Path:
    """path replaced by content at once (audit.reportio.atomic_file: a link planted at the
    temporary name or at path is replaced, never written through)."""
    with reportio.atomic_file(path, binary=True) as handle:
        handle.write(content)
    return path


def write_label_issues_csv(folder: str | os.PathLike, issues: Iterable[LabelIssue]) -> Path:
    """label_issues.csv in folder, rows in the order given (worst first), written atomically.
    A scan imports it only with the label_issues.json that names its sha256."""
    return write_atomic(Path(folder) / LABEL_ISSUES_NAME, label_issues_csv(issues))


# ---------------------------------------------------------------- reading


def read_input(path: Path) -> bytes | None:
    """The bytes of label_issues.csv or label_issues.json; None when there is no such name.
    ModelFindingsError (exit 2) for anything but a regular file of at most MAX_INPUT_BYTES:
    a link (even to a file: it could lead to a device or out of the report folder; a
    dangling one is named too), a pipe (a scan would wait on it forever, holding the report
    folder's lock), a device (/dev/zero grew a scan to 6 GB in 20 s), a folder."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ModelFindingsError(f"cannot read {path}: {error}; {RERUN}") from None
    if stat.S_ISLNK(info.st_mode):
        try:
            target = f" to {os.readlink(path)!r}"
        except OSError:
            target = ""
        raise ModelFindingsError(
            f"{path} is a symbolic link{target}: only a regular file in the report folder "
            f"is read, never a link; {RERUN}"
        )
    if not stat.S_ISREG(info.st_mode):
        raise ModelFindingsError(
            f"{path} is {file_kind(info.st_mode)}, not a regular file: it is not read; {RERUN}"
        )
    if info.st_size > MAX_INPUT_BYTES:
        raise _too_large(path)
    try:
        # O_NOFOLLOW and O_NONBLOCK: swapped for a link or a pipe after the check above, the
        # open fails or returns at once instead of following it or waiting.
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        raise ModelFindingsError(f"cannot read {path}: {error}; {RERUN}") from None
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise ModelFindingsError(f"{path} was replaced while being read; {RERUN}")
        content = handle.read(MAX_INPUT_BYTES + 1)
    if len(content) > MAX_INPUT_BYTES:
        raise _too_large(path)
    return content


def _too_large(path: Path) -> ModelFindingsError:
    return ModelFindingsError(
        f"{path} is larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB: not a file "
        f"label-issues wrote; {RERUN}"
    )


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, in words (for a refusal)."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_label_issues(path: Path) -> list[LabelIssue]:
    """The rows of a label_issues.csv; ModelFindingsError naming the line at fault."""
    content = read_input(Path(path))
    if content is None:
        raise ModelFindingsError(f"no {path}; {RERUN}")
    return parse_label_issues(content, Path(path))


def parse_label_issues(content: bytes, path: Path) -> list[LabelIssue]:
    """The rows of label_issues.csv's bytes (path names it in errors); one row per path."""
    try:
        reader = csv.reader(io.StringIO(content.decode("utf-8"), newline=""))
        header = next(reader, None)
        if header is None or tuple(header) != COLUMNS:
            raise ModelFindingsError(
                f"{path} does not have the columns {', '.join(COLUMNS)}: not a label "
                f"issues table of this tool; {RERUN}"
            )
        issues = []
        lines: dict[str, int] = {}
        for values in reader:
            try:
                issue = _issue(values)
            except (ValueError, TypeError) as error:
                raise ModelFindingsError(
                    f"{path} line {reader.line_num}: {error}; {RERUN}"
                ) from None
            if issue.path in lines:
                raise ModelFindingsError(
                    f"{path} line {reader.line_num}: a second row for {issue.path!r} (the "
                    f"first is on line {lines[issue.path]}): label-issues writes one row per "
                    f"file; {RERUN}"
                )
            lines[issue.path] = reader.line_num
            issues.append(issue)
        return issues
    except UnicodeDecodeError as error:
        raise ModelFindingsError(f"{path} is not UTF-8 text ({error.reason}); {RERUN}") from None
    except csv.Error as error:
        raise ModelFindingsError(f"cannot read {path}: {error}; {RERUN}") from None


def _issue(values: list[str]) -> LabelIssue:
    if len(values) != len(COLUMNS):
        raise ValueError(f"{len(values)} field(s), expected {len(COLUMNS)} (truncated or edited)")
    path, sha256, label, suggested, score_text, fold_text = values
    if not path or path.startswith("/") or "\0" in path:
        raise ValueError(f"path {path!r} is not a relative path")
    if not _SHA256.fullmatch(sha256):
        raise ValueError(f"sha256 {sha256!r} is not 64 lowercase hex digits")
    score = float(score_text)
    if not (math.isfinite(score) and 0.0 <= score <= 1.0):
        raise ValueError(f"score {score_text!r} is not between 0 and 1")
    if not (fold_text.isascii() and fold_text.isdigit()):
        raise ValueError(f"fold {fold_text!r} is not a fold number (from 1)")
    fold = int(fold_text)
    if fold < 1:
        raise ValueError(f"fold {fold_text!r} is not a fold number (from 1)")
    return LabelIssue(path, sha256, label, suggested, score, fold)


def _rate(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "is not a number"
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        return f"{value!r} is not between 0 and 1"
    return None


def _count_from(minimum: int) -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return "is not a whole number"
        if not minimum <= value <= 2**53:
            return f"{value!r} is not between {minimum} and 2^53"
        return None

    return check


def _flag(value: object) -> str | None:
    return None if isinstance(value, bool) else "is not true or false"


def _text(value: object) -> str | None:
    if not isinstance(value, str):
        return "is not a string"
    if len(value) > MAX_TEXT or _CONTROL.search(value):
        return f"is longer than {MAX_TEXT} characters or holds a control character"
    return None


def _checksum(value: object) -> str | None:
    return None if isinstance(value, str) and _SHA256.fullmatch(value) else "is not a sha256"


# label_issues.json's values a scan takes (all required, as label-issues writes them all),
# each with its check: what is wrong with a value, or None.
_MODEL_KEYS: dict[str, Callable[[object], str | None]] = {
    SHA256_KEY: _checksum,
    "out_of_fold_accuracy": _rate,
    "majority_rate": _rate,
    "weak_model": _flag,
    "folds": _count_from(2),
    "images": _count_from(1),
    "model": _text,
    "created_utc": _text,
}


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def read_model(folder: str | os.PathLike, csv_sha256: str) -> dict:
    """The _MODEL_KEYS of folder's label_issues.json, checked, and checked to belong to the
    label_issues.csv with sha256 csv_sha256; ModelFindingsError (exit 2) otherwise."""
    path = Path(folder) / MODEL_SUMMARY_NAME
    content = read_input(path)
    if content is None:
        raise ModelFindingsError(
            f"{Path(folder) / LABEL_ISSUES_NAME} has no {MODEL_SUMMARY_NAME} beside it (a "
            "label-issues run stopped while writing, or a table from elsewhere): nothing says "
            f"how good the model that judged its rows was; {RERUN}"
        )
    try:
        document = json.loads(content.decode("utf-8"), parse_constant=_no_constant)
    except RecursionError:
        raise ModelFindingsError(f"{path} is nested too deeply to be read; {RERUN}") from None
    except ValueError as error:  # not UTF-8, not JSON, NaN, an integer of 4,300+ digits
        raise ModelFindingsError(f"cannot read {path}: {error}; {RERUN}") from None
    if not isinstance(document, dict):
        raise ModelFindingsError(f"{path} is not a JSON object; {RERUN}")
    model = {}
    for key, check in _MODEL_KEYS.items():
        if key not in document:
            raise ModelFindingsError(f"{path} lacks {key}: not as label-issues writes it; {RERUN}")
        fault = check(document[key])
        if fault:
            raise ModelFindingsError(f"{path}: {key} {fault}; {RERUN}")
        model[key] = document[key]
    if model[SHA256_KEY] != csv_sha256:
        raise ModelFindingsError(
            f"{path} does not belong to the {LABEL_ISSUES_NAME} beside it (it describes one "
            f"with sha256 {model[SHA256_KEY][:12]}..., this one has {csv_sha256[:12]}...: a "
            "label-issues run stopped between its writes, or one file was replaced); its "
            f"accuracy would be shown over rows its model did not judge; {RERUN}"
        )
    for key in ("out_of_fold_accuracy", "majority_rate"):
        model[key] = float(model[key])
    return model


@dataclass
class ModelFindings:
    """The imported rows, keyed by (path as images.csv writes it, sha256); `apply` adds the
    finding to a record that matches and remembers it for the report page."""

    issues: list[LabelIssue] = field(default_factory=list)
    source: Path | None = None
    # From label_issues.json (_MODEL_KEYS): the held-out model's accuracy, its settings.
    model: dict = field(default_factory=dict)
    applied: list[tuple[FileRecord, LabelIssue]] = field(default_factory=list)
    # The dataset's class names as images.csv writes them (restrict_to): a row applies only
    # when its suggested label is one of them.
    classes: frozenset[str] | None = None
    # Rows that matched a file but were not applied, by reason.
    refused: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._by_key = {}
        for issue in self.issues:
            if _CONTROL.search(issue.label) or _CONTROL.search(issue.suggested_label):
                self.refused[CONTROL_CHARACTER] += 1
            else:
                self._by_key[(issue.path, issue.sha256)] = issue

    def restrict_to(self, classes: Iterable[str]) -> None:
        """The scanned dataset's class names: a row applies only when its suggested label is
        one of them (and its label the file's own class)."""
        self.classes = frozenset(for_report(name) for name in classes)

    def issue_for(self, report_path: str, sha256: str) -> LabelIssue | None:
        """The row for the file at report_path (as images.csv writes it) with this sha256."""
        return self._by_key.get((report_path, sha256))

    def apply(self, record: FileRecord) -> FileRecord:
        """record with its suspected_label_issue finding when a row matches its path and its
        current sha256, the row's label is the record's class and its suggested label is a
        class (restrict_to first); record unchanged otherwise."""
        if not self._by_key:
            return record
        issue = self._by_key.get((for_report(record.path), record.sha256))
        if issue is None:
            return record
        if self.classes is None:
            raise RuntimeError("ModelFindings.restrict_to(classes) must come before apply")
        if issue.label != for_report(record.label):
            self.refused[NOT_THE_CLASS] += 1
            return record
        if issue.suggested_label not in self.classes:
            self.refused[NOT_A_CLASS] += 1
            return record
        record = replace(
            record, findings=merge_findings(record.findings, [Finding(CODE, issue.reason())])
        )
        self.applied.append((record, issue))
        return record

    def worst_first(self) -> list[tuple[FileRecord, LabelIssue]]:
        """The records that got a finding, lowest score first."""
        return sorted(self.applied, key=lambda item: (item[1].score, item[1].path))

    def summary(self) -> dict | None:
        """summary.json's "label_issues" section; None when there was no file to import."""
        if self.source is None:
            return None
        not_applied = len(self.issues) - len(self.applied)
        reasons = Counter(self.refused)
        reasons[NOT_IN_TABLE] = not_applied - sum(self.refused.values())
        return {
            "file": LABEL_ISSUES_NAME,
            "model": self.model,
            "rows": len(self.issues),
            "applied": len(self.applied),
            "not_applied": not_applied,
            "not_applied_reasons": {reason: n for reason, n in reasons.items() if n > 0},
            "rule": "a row applies while the file at its path has the row's sha256, its label "
            "is the file's class and its suggested label a class; a file changed, moved or "
            "removed since `python -m train label-issues` loses it",
        }


def load(folder: str | os.PathLike) -> ModelFindings:
    """The model-derived findings of a report folder (its label_issues.csv, with the
    label_issues.json that belongs to it), for a scan into that folder: empty when there is
    no label_issues.csv; ModelFindingsError (exit 2) when either is unreadable or they do
    not belong together."""
    path = Path(folder) / LABEL_ISSUES_NAME
    content = read_input(path)
    if content is None:
        return ModelFindings()
    issues = parse_label_issues(content, path)
    model = read_model(folder, hashlib.sha256(content).hexdigest())
    beyond = next((issue for issue in issues if issue.fold > model["folds"]), None)
    if beyond is not None:
        raise ModelFindingsError(
            f"{path}: the row for {beyond.path!r} names fold {beyond.fold}, but "
            f"{MODEL_SUMMARY_NAME} counts {model['folds']} folds; {RERUN}"
        )
    return ModelFindings(issues, source=path, model=model)


def weak_model_note(summary: dict) -> str | None:
    """One line for a report whose suspected label issues come from a weak held-out model
    (summary.json's label_issues.model.weak_model), or None."""
    section = summary.get("label_issues")
    model = section.get("model") if isinstance(section, dict) else None
    if not isinstance(model, dict) or model.get("weak_model") is not True:
        return None
    accuracy, majority = model.get("out_of_fold_accuracy"), model.get("majority_rate")
    figures = ""
    if isinstance(accuracy, float) and isinstance(majority, float):
        figures = (
            f" (out-of-fold accuracy {accuracy:.3f}, always predicting the largest class: "
            f"{majority:.3f})"
        )
    return (
        f"the suspected label issues come from a weak held-out model{figures}: they say more "
        "about the model than about the labels; re-run label-issues with more --steps or "
        "another --model before trusting them"
    )


def digest(folder: str | os.PathLike) -> str:
    """sha256 of the folder's label_issues.csv and label_issues.json ('' when neither is
    there): part of any key that decides whether an earlier report can be reused, so a new
    file is never ignored."""
    digest = hashlib.sha256()
    found = False
    for name in (LABEL_ISSUES_NAME, MODEL_SUMMARY_NAME):
        content = read_input(Path(folder) / name)
        found = found or content is not None
        digest.update(hashlib.sha256(content or b"").digest())
    return digest.hexdigest() if found else ""


def worst(folder: str | os.PathLike, rows: list, count: int) -> list:
    """The count images.csv rows (audit.reportio.ImageRow) of folder's report with the lowest
    label-quality score in its label_issues.csv; ModelFindingsError (exit 2) when a row has
    no score there (the file was replaced since the scan)."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    found = load(folder)
    scored, unscored = [], []
    for row in rows:
        issue = found.issue_for(row.report_path, row.sha256)
        if issue is None:
            unscored.append(row.report_path)
        else:
            scored.append((issue.score, row.report_path, row))
    if unscored:
        raise ModelFindingsError(
            f"{len(unscored)} file(s) marked {CODE} in images.csv have no row in "
            f"{Path(folder) / LABEL_ISSUES_NAME} (e.g. {', '.join(unscored[:3])}): it changed "
            "since the scan; re-scan, then select again"
        )
    scored.sort(key=lambda item: (item[0], item[1]))
    return [row for _, _, row in scored[:count]]
