"""The report contract on disk: the one module that writes and reads a report folder.

Writers and readers share the column lists below. Reading checks the contract: the
columns a table must have, complete rows (a row with too few or too many fields is a
truncated or foreign file), typed values, and as many images.csv rows as summary.json
counts files. Anything else is one `ReportError` (exit 2) that says to re-scan.

Reports written by 0.1.0 have exactly these files and columns, and read as they are.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from audit import hashing
from audit.codes import SEVERITIES
from audit.errors import UserError
from audit.escaping import for_report, from_report
from audit.records import FileRecord

SUMMARY_NAME = "summary.json"
# images.csv's quality columns: (column, index in audit.measures.FIELDS, digits)
_QUALITY = (
    ("dark_level", 0, 3),
    ("bright_level", 1, 3),
    ("contrast", 2, 1),
    ("focus", 3, 3),
    ("color_spread", 4, 1),
)
QUALITY_COLUMNS = tuple(column for column, _, _ in _QUALITY)
REQUIRED_SUMMARY_KEYS = ("tool", "root", "files", "usable", "severity_counts", "classes")
RESCAN = "re-scan the dataset (python -m audit scan ROOT --out REPORT_DIR)"


@dataclass(frozen=True)
class ReportTable:
    """A CSV table of a report: its name (the file is NAME.csv) and its columns."""

    name: str
    columns: tuple[str, ...]

    @property
    def file_name(self) -> str:
        return f"{self.name}.csv"


IMAGES = ReportTable(
    "images",
    (
        "path",
        "label",
        "split",
        "bytes",
        "format",
        "mode",
        "width",
        "height",
        "sha256",
        "phash",
        "severity",
        "issues",
        "reasons",
        "phash_zoom",
        "mtime_ns",
        # quality measures (audit.measures), empty when not measured
        *QUALITY_COLUMNS,
    ),
)
FINDINGS = ReportTable("findings", ("path", "label", "severity", "code", "reason"))
DUPLICATES = ReportTable(
    "duplicates", ("group", "kind", "path", "label", "split", "distance", "keeper")
)


class ReportError(UserError, ValueError):
    """The report folder is missing, truncated, foreign, or stale for the files on disk."""


# ---------------------------------------------------------------- typed rows


@dataclass(frozen=True)
class ImageRow:
    """One row of images.csv."""

    path: str  # POSIX, relative to ROOT: the file's real name (bytes that are not UTF-8 kept)
    report_path: str  # the path as images.csv writes it (the key into the other tables)
    label: str
    split: str
    bytes: int
    format: str
    mode: str
    width: int | None
    height: int | None
    sha256: str
    phash: str
    severity: str
    issues: str  # ';'-separated codes
    reasons: str
    phash_zoom: str
    mtime_ns: int | None  # None in a report that did not record it

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(code for code in self.issues.split(";") if code)


@dataclass(frozen=True)
class FindingRow:
    """One row of findings.csv."""

    path: str
    label: str
    severity: str
    code: str
    reason: str


@dataclass(frozen=True)
class DuplicateRow:
    """One row of duplicates.csv."""

    group: int
    kind: str
    path: str
    label: str
    split: str
    distance: int | None
    keeper: bool


def _optional_int(text: str) -> int | None:
    return _count(text) if text != "" else None


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"{value} is negative")
    return value


def _relative_path(text: str) -> str:
    """A row's path: POSIX, relative, without NUL (one that starts with '../' belongs to
    the --against dataset; callers check where it leads)."""
    if not text or "\0" in text or text.startswith("/"):
        raise ValueError(f"path {text!r} is not a relative path")
    return text


def _severity(text: str) -> str:
    if text not in SEVERITIES:
        raise ValueError(f"severity {text!r} is not one of {', '.join(SEVERITIES)}")
    return text


def _image_row(values: dict[str, str]) -> ImageRow:
    written = _relative_path(values["path"])
    undecodable = "undecodable_name" in values["issues"].split(";")
    return ImageRow(
        path=from_report(written) if undecodable else written,
        report_path=written,
        label=from_report(values["label"]) if undecodable else values["label"],
        split=from_report(values.get("split", "")) if undecodable else values.get("split", ""),
        bytes=_count(values["bytes"]),
        format=values["format"],
        mode=values.get("mode", ""),
        width=_optional_int(values["width"]),
        height=_optional_int(values["height"]),
        sha256=values["sha256"],
        phash=values["phash"],
        severity=_severity(values["severity"]),
        issues=values["issues"],
        reasons=values.get("reasons", ""),
        phash_zoom=values.get("phash_zoom", ""),
        mtime_ns=_mtime(values.get("mtime_ns", "")),
    )


def _mtime(text: str) -> int | None:
    return int(text) if text != "" else None  # before 1970 is negative, and allowed


def _finding_row(values: dict[str, str]) -> FindingRow:
    _relative_path(values["path"])
    _severity(values["severity"])
    return FindingRow(**{name: values[name] for name in FINDINGS.columns})


def _duplicate_row(values: dict[str, str]) -> DuplicateRow:
    if values["keeper"] not in ("True", "False"):
        raise ValueError(f"keeper must be True or False, got {values['keeper']!r}")
    return DuplicateRow(
        group=_count(values["group"]),
        kind=values["kind"],
        path=_relative_path(values["path"]),
        label=values["label"],
        split=values.get("split", ""),
        distance=_optional_int(values["distance"]),
        keeper=values["keeper"] == "True",
    )


# Columns a reader cannot do without (0.1.0 wrote all of IMAGES.columns).
_REQUIRED = {
    IMAGES.name: ("path", "label", "bytes", "format", "width", "height", "sha256", "phash")
    + ("severity", "issues"),
    FINDINGS.name: FINDINGS.columns,
    DUPLICATES.name: ("group", "kind", "path", "label", "distance", "keeper"),
}

Row = TypeVar("Row")


def read_table(path: Path, table: ReportTable, make: Callable[[dict[str, str]], Row]) -> list[Row]:
    """Every row of one report table, typed; ReportError naming the file and line at fault."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return list(_parse(handle, path, table, make))
    except FileNotFoundError:
        raise ReportError(f"no {table.file_name} in {path.parent}; {RESCAN}") from None
    except UnicodeDecodeError as error:
        raise ReportError(f"{path} is not UTF-8 text ({error.reason}); {RESCAN}") from None
    except (OSError, csv.Error) as error:
        raise ReportError(f"cannot read {path}: {error}; {RESCAN}") from None


def _parse(handle: IO[str], path: Path, table: ReportTable, make) -> Iterator:
    reader = csv.reader(handle)
    header = next(reader, None)
    if header is None:
        raise ReportError(f"{path} is empty; {RESCAN}")
    missing = [name for name in _REQUIRED[table.name] if name not in header]
    if missing:
        raise ReportError(
            f"{path} lacks column(s) {', '.join(missing)}: not an image-audit {table.file_name}; "
            f"{RESCAN}"
        )
    for values in reader:
        if len(values) != len(header):
            raise ReportError(
                f"{path} line {reader.line_num} has {len(values)} field(s), expected "
                f"{len(header)}: the file is truncated or was edited; {RESCAN}"
            )
        try:
            yield make(dict(zip(header, values, strict=True)))
        except (ValueError, TypeError) as error:
            raise ReportError(f"{path} line {reader.line_num}: {error}; {RESCAN}") from None


def read_summary(folder: str | os.PathLike) -> dict:
    """summary.json of a report folder, checked for the keys every reader relies on."""
    path = Path(folder) / SUMMARY_NAME
    try:
        summary = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constants)
    except FileNotFoundError:
        raise ReportError(
            f"no audit report in {Path(folder)} ({SUMMARY_NAME} is missing); {RESCAN}"
        ) from None
    except (OSError, ValueError) as error:  # ValueError: not UTF-8, not JSON, NaN
        raise ReportError(f"cannot read {path}: {error}; {RESCAN}") from None
    if not isinstance(summary, dict):
        raise ReportError(f"{path} is not an image-audit summary (not a JSON object); {RESCAN}")
    missing = [key for key in REQUIRED_SUMMARY_KEYS if key not in summary]
    if missing or summary.get("tool") != "image-audit":
        lacks = f"lacks {', '.join(missing)}" if missing else "was written by another tool"
        raise ReportError(f"{path} {lacks}: not a complete image-audit summary; {RESCAN}")
    wrong = _summary_types(summary)
    if wrong:
        raise ReportError(f"{path}: {wrong}; {RESCAN}")
    return summary


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _summary_types(summary: dict) -> str | None:
    """What is wrong with the types of the fields every reader relies on, or None."""
    if not isinstance(summary["root"], str) or not summary["root"]:
        return "root is not a path"
    if summary.get("against") is not None and not isinstance(summary["against"], str):
        return "against is not a path"
    for key in ("files", "usable"):
        if not isinstance(summary[key], int) or isinstance(summary[key], bool) or summary[key] < 0:
            return f"{key} is not a count"
    if not isinstance(summary["severity_counts"], dict):
        return "severity_counts is not an object"
    classes = summary["classes"]
    if not isinstance(classes, list) or not all(
        isinstance(entry, dict)
        and isinstance(entry.get("name"), str)
        and isinstance(entry.get("files"), int)
        and isinstance(entry.get("usable"), int)
        for entry in classes
    ):
        return "classes is not a list of {name, files, usable}"
    return None


class Report:
    """An audit report folder, read through the contract.

    `Report(folder)` reads and checks summary.json at once; the tables are read on
    demand, each time they are asked for.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.summary = read_summary(self.folder)

    @property
    def root(self) -> Path:
        """The dataset folder the report was made from."""
        return Path(self.summary["root"])

    @property
    def dataset_roots(self) -> tuple[Path, ...]:
        """ROOT, and the --against dataset when the scan had one."""
        against = self.summary.get("against")
        return (self.root,) if against is None else (self.root, Path(against))

    def locate(self, row: ImageRow) -> Path:
        """The file a row names, as an absolute path; ReportError when the row's path leads
        out of the scanned datasets (a report edited to reach another file)."""
        from audit.dataset import resolve, within

        located = Path(resolve(self.root, row.path))
        inside = any(
            within(located, root)
            for root in (Path(os.path.normpath(root)) for root in self.dataset_roots)
        )
        if not inside:
            raise ReportError(
                f"{self.path(IMAGES)}: the path {row.path!r} leads out of the scanned "
                f"dataset(s) {', '.join(map(str, self.dataset_roots))}; {RESCAN}"
            )
        return located

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(entry["name"] for entry in self.summary["classes"])

    def path(self, table: ReportTable) -> Path:
        return self.folder / table.file_name

    def images(self) -> list[ImageRow]:
        """Every images.csv row; refused when the count differs from summary.json's."""
        rows = read_table(self.path(IMAGES), IMAGES, _image_row)
        if len(rows) != self.summary["files"]:
            raise ReportError(
                f"{self.path(IMAGES)} has {len(rows)} row(s) but {SUMMARY_NAME} counts "
                f"{self.summary['files']} file(s): the report is incomplete; {RESCAN}"
            )
        return rows

    def findings(self) -> list[FindingRow]:
        return read_table(self.path(FINDINGS), FINDINGS, _finding_row)

    def duplicates(self) -> list[DuplicateRow]:
        return read_table(self.path(DUPLICATES), DUPLICATES, _duplicate_row)


# ---------------------------------------------------------------- staleness


def matches_row(info: os.stat_result, row: ImageRow) -> bool:
    """Whether a file's size and modification time are still those its row recorded."""
    return info.st_size == row.bytes and (row.mtime_ns is None or info.st_mtime_ns == row.mtime_ns)


@dataclass(frozen=True)
class Staleness:
    """Files changed, removed and added since a report was made."""

    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.changed or self.removed or self.added)

    def describe(self) -> str:
        examples = (self.changed + self.removed + self.added)[:5]
        return (
            f"{len(self.changed)} file(s) changed, {len(self.added)} new, {len(self.removed)} "
            f"removed since the scan (e.g. {', '.join(examples)})"
        )


def report_is_stale(report: Report, rows: Iterable[ImageRow] | None = None) -> Staleness:
    """Which files changed, vanished or appeared under ROOT since the report: empty
    (false) when the report still describes the files on disk."""
    from audit.dataset import discover, resolve

    rows = list(report.images() if rows is None else rows)
    root = report.root
    changed, removed = [], []
    for row in rows:
        try:
            info = os.stat(resolve(root, row.path))
        except OSError:
            removed.append(row.path)
            continue
        if not matches_row(info, row):
            changed.append(row.path)
    known = {row.path for row in rows}
    # New files are looked for under ROOT only (a report with --against spans another root).
    spans_another_root = any(row.path.startswith("../") for row in rows)
    added = []
    if root.is_dir() and not spans_another_root:
        added = [
            entry.relpath for entry in discover(root).iter_files() if entry.relpath not in known
        ]
    return Staleness(tuple(changed), tuple(removed), tuple(added))


# ---------------------------------------------------------------- writing


@contextmanager
def atomic_text(path: Path) -> Iterator[IO[str]]:
    """Write to a temporary sibling, then rename over path: never a half-written file (see
    atomic_file)."""
    with atomic_file(path) as handle:
        yield handle


# O_NOFOLLOW where the platform has it; O_EXCL alone already refuses to create through a link.
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


@contextmanager
def atomic_file(path: Path, binary: bool = False, sync: bool = False) -> Iterator[IO[Any]]:
    """A handle on the temporary sibling `.NAME.tmp`, renamed over path when the block ends
    without an error (removed when it raises): readers see the old file or the whole new one.

    The temporary file is created exclusively after removing whatever had its name (the
    leftover of a killed writer, or a link planted there): a link is never written through,
    and the rename replaces a link at path itself instead of the file it points to. sync:
    the data reaches the disk before the rename (a power cut leaves the old file or the new
    one)."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.unlink()
    except FileNotFoundError:
        pass
    descriptor = os.open(temporary, _NEW_FILE, 0o666)
    try:
        handle = (
            os.fdopen(descriptor, "wb")
            if binary
            else os.fdopen(descriptor, "w", encoding="utf-8", newline="")
        )
        with handle:
            yield handle
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_table(folder: Path, table: ReportTable, rows: Iterable[dict[str, Any]]) -> Path:
    """One report table from dict rows (keys: the table's columns)."""
    path = folder / table.file_name
    with atomic_text(path) as handle:
        writer = csv.DictWriter(handle, table.columns)
        writer.writeheader()
        writer.writerows(
            {
                key: for_report(value) if isinstance(value, str) else value
                for key, value in row.items()
            }
            for row in rows
        )
    return path


def _for_report(value: Any) -> Any:
    """Every string of a JSON document as a report stores it (names that are not UTF-8)."""
    if isinstance(value, str):
        return for_report(value)
    if isinstance(value, dict):
        return {for_report(key): _for_report(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_for_report(item) for item in value]
    return value


def write_summary(folder: Path, summary: dict) -> Path:
    """summary.json; refuses values that are not JSON (NaN, infinity)."""
    path = folder / SUMMARY_NAME
    with atomic_text(path) as handle:
        json.dump(_for_report(summary), handle, indent=2, ensure_ascii=False, allow_nan=False)
        handle.write("\n")
    return path


class RecordWriter:
    """Streams records into images.csv and findings.csv (one row per file, one per finding).

    This runs once per file, in the scan's own process, cold or warm: every Python call
    per row counts (see audit.report.write_reports). A row's names are escaped once for
    both tables, and a file without findings joins no reasons."""

    def __init__(self, images: IO[str], findings: IO[str]):
        self._images = CsvRows(images, IMAGES.columns)
        self._findings = CsvRows(findings, FINDINGS.columns)

    def write(self, record: FileRecord, severity: str, codes: tuple[str, ...]) -> None:
        path, label = for_report(record.path), for_report(record.label)
        self._images.writerow(_images_csv_row(record, path, label, severity, codes))
        for finding in record.findings:
            self._findings.writerow(
                (path, label, finding.severity, finding.code, for_report(finding.reason))
            )


class CsvRows:
    """csv.writer's rows (excel dialect: ',' between fields, CRLF after each row, a field
    quoted only when it must be), joined here when no field needs quoting.

    csv.writer costs 6.8 us for an images.csv row; a join of the fields' str() and one
    check of the line, 3.3 us (100,000 files: 0.35 s of the report's CPU). The bytes are
    the same: str() of an int or a float is what csv writes, and a row with a field that
    csv would quote (a comma, a double quote, CR or LF in it) or write empty (None) is
    left to csv.writer. tests/test_report_speed.py compares the two on hostile values."""

    def __init__(self, handle: IO[str], columns: tuple[str, ...]):
        self._csv = csv.writer(handle)
        self._write = handle.write
        self._commas = len(columns) - 1
        self.writerow(columns)

    def writerow(self, values: tuple | list) -> None:
        """One row of len(columns) values: str, int, float or None."""
        line = ",".join(map(str, values))
        if (
            line.count(",") != self._commas  # a field holds a comma (or the count is off)
            or '"' in line
            or "\n" in line
            or "\r" in line
            or None in values
        ):
            self._csv.writerow(values)
        else:
            self._write(line + "\r\n")


@contextmanager
def record_writer(folder: Path) -> Iterator[RecordWriter]:
    """images.csv and findings.csv of folder, written atomically together."""
    with atomic_text(folder / IMAGES.file_name) as images:
        with atomic_text(folder / FINDINGS.file_name) as findings:
            yield RecordWriter(images, findings)


def image_values(record: FileRecord, severity: str, codes: tuple[str, ...]) -> tuple:
    """One images.csv row, in IMAGES.columns order (names that are not UTF-8 escaped, see
    audit.escaping.for_report)."""
    return _images_csv_row(
        record, for_report(record.path), for_report(record.label), severity, codes
    )


def _images_csv_row(
    record: FileRecord, path: str, label: str, severity: str, codes: tuple[str, ...]
) -> tuple:
    """image_values with the path and label already escaped."""
    findings = record.findings
    measures = record.measures
    return (
        path,
        label,
        for_report(record.split) if record.split else "",
        record.bytes,
        record.format,
        record.mode,
        "" if record.width is None else record.width,
        "" if record.height is None else record.height,
        record.sha256,
        hashing.to_hex(record.phash),
        severity,
        ";".join(codes),
        for_report(" | ".join([finding.reason for finding in findings])) if findings else "",
        hashing.zoom_to_hex(record.phash_zoom),
        record.mtime_ns,
        *(_quality_values(measures) if measures else _NO_QUALITY),
    )


_QUALITY_PLACES = tuple((index, digits) for _, index, digits in _QUALITY)
_NO_QUALITY = ("",) * len(_QUALITY)


def _quality_values(measures: tuple) -> list:
    # A list comprehension, not a generator into tuple(): one frame per row, not six.
    return [
        "" if measures[index] is None else round(measures[index], digits)
        for index, digits in _QUALITY_PLACES
    ]
