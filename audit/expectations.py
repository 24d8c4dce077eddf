"""Scheduled dataset checks with Great Expectations 1.x.

`python -m audit check ROOT --suite FILE` scans ROOT (incrementally), turns the report
into two tables and validates both through one Checkpoint:

* the per-image table (one row per file: severity, label conflict, duplicate, smallest
  side, format...) against the "files" suite;
* the per-class table (one row per class folder holding files: usable count, count
  relative to the smallest class) against the "classes" suite.

`suite init` writes the suite file from the current dataset: the class set, a minimum
count per class and a maximum imbalance ratio with some tolerance, no error-severity
file, no label conflict, a maximum duplicate fraction, a minimum resolution and the
allowed formats. It is plain JSON (the two suites in Great Expectations' own
expectation format, each with a note saying why): edit it and commit it.

A suite is validated before anything runs (`load_suite`): columns the tables have,
expectation types Great Expectations knows, numbers where numbers go, at least one
expectation. A suite that cannot be evaluated is a SuiteError (exit 2), never a failed
check.

File and class names come from whoever made the dataset, and Great Expectations writes
them into its Data Docs pages unescaped. So the tables it sees carry them in a
reversible, HTML-inert form (`encode_name`: percent-encoding of everything but letters,
digits, space and `_ - . ~ /`), and so do the suite's string values for those columns;
what it reports back is decoded before check.html, check.md, validation_result.json, the
history and the terminal see it (each escapes for its own medium). Its pages are then
rewritten by audit.datadocs: no script, no third-party host.

Great Expectations analytics are off in every path (environment and project config);
its log records go to OUT/great_expectations.log, never to the terminal.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote, unquote

from audit.errors import UserError
from audit.reportio import Report

# Before Great Expectations is imported anywhere in this process.
os.environ["GX_ANALYTICS_ENABLED"] = "False"

SUITE_FORMAT = "image-audit-suite/1"
DUPLICATE_CODES = ("exact_duplicate", "near_duplicate")
MAX_LISTED = 20  # offending files named per expectation
GX_LOG = "great_expectations.log"

# The tables' columns, in order: `tables` builds exactly these, and a suite may name no other.
FILE_COLUMNS = (
    "path",
    "label",
    "split",
    "bytes",
    "format",
    "width",
    "height",
    "severity",
    "issues",
    "label_conflict",
    "duplicate",
    "min_side",
)
# `path` of a class is its folder relative to ROOT (its name): the key GE lists offenders by.
CLASS_COLUMNS = ("class", "path", "files", "usable", "usable_over_smallest")
TABLE_COLUMNS = {"files": FILE_COLUMNS, "classes": CLASS_COLUMNS}
NAME_COLUMNS = ("path", "label", "class")  # names from the dataset: encoded for GE
KEY_COLUMN = "path"  # how GE names each unexpected row, in both tables
COLUMN_ARGUMENTS = ("column", "column_A", "column_B")
NUMBER_ARGUMENTS = ("min_value", "max_value", "mostly")


class SuiteError(UserError, ValueError):
    """The suite file is missing, unreadable, not an image-audit suite, or cannot be
    evaluated on the tables (a column they lack, an unknown expectation type...)."""


@dataclass
class ExpectationOutcome:
    """One expectation's result, as check.html and the history show it (names decoded)."""

    table: str  # "files" or "classes"
    type: str
    why: str
    kwargs: dict
    passed: bool
    observed: object = None
    unexpected_count: int | None = None
    offending: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        column = self.kwargs.get("column", "")
        return f"{self.table}:{self.type}:{column}"


@dataclass
class CheckOutcome:
    success: bool
    expectations: list[ExpectationOutcome]
    validation_result: Path
    data_docs: Path
    validation_pages: list[Path]
    gx_messages: list[str] = field(default_factory=list)  # what GE logged (OUT/GX_LOG)


# ---------------------------------------------------------------- names, encoded for GE

_NOT_KEPT = re.compile(r"[^\w/.\-~ ]")


def encode_name(name: str) -> str:
    """name with every character but letters, digits, space and `_ - . ~ /` percent-encoded
    (as UTF-8; a byte that was not UTF-8, kept as a surrogate escape, as that byte).

    Reversible (`decode_name`), and inert wherever Great Expectations writes it: no `<`,
    `&`, quote, `$` or control character is left."""
    return _NOT_KEPT.sub(
        lambda match: quote(match.group(), safe="", errors="surrogateescape"), name
    )


def decode_name(text: str) -> str:
    """The name `encode_name` was given."""
    return unquote(text, errors="surrogateescape")


def _decoded(value):
    if isinstance(value, str):
        return decode_name(value)
    if isinstance(value, list):
        return [_decoded(item) for item in value]
    return value


# ---------------------------------------------------------------- tables


def tables(report_dir: str | os.PathLike):
    """(per-image DataFrame, per-class DataFrame) from an audit report, with the columns
    FILE_COLUMNS and CLASS_COLUMNS (names as they are: see `_for_gx`)."""
    import pandas as pd

    report = Report(report_dir)
    rows = [asdict(row) for row in report.images()]
    images = pd.DataFrame(rows, columns=list(FILE_COLUMNS[:9]))  # as images.csv has them
    for column in ("bytes", "width", "height"):
        images[column] = pd.to_numeric(images[column], errors="coerce")
    images["format"] = images["format"].replace("", None)
    codes = images["issues"].fillna("").str.split(";")
    images["label_conflict"] = codes.apply(lambda found: "label_conflict" in found)
    images["duplicate"] = codes.apply(
        lambda found: int(any(code in found for code in DUPLICATE_CODES))
    )
    images["min_side"] = images[["width", "height"]].min(axis=1, skipna=False)

    summary = report.summary
    present = [entry for entry in summary["classes"] if entry["files"] > 0]
    smallest = min((entry["usable"] for entry in present if entry["usable"] > 0), default=0)
    classes = pd.DataFrame(
        {
            "class": [entry["name"] for entry in present],
            "path": [entry["name"] for entry in present],
            "files": [entry["files"] for entry in present],
            "usable": [entry["usable"] for entry in present],
            "usable_over_smallest": [
                entry["usable"] / smallest if smallest else math.inf for entry in present
            ],
        }
    )
    return images[list(FILE_COLUMNS)], classes[list(CLASS_COLUMNS)]


def _for_gx(table):
    """The table as Great Expectations sees it: names encoded (`encode_name`)."""
    table = table.copy()
    for column in NAME_COLUMNS:
        if column in table:
            table[column] = table[column].map(encode_name)
    return table


# ---------------------------------------------------------------- the suite file


def _expectation(kind: str, why: str, **kwargs) -> dict:
    return {"type": kind, "kwargs": kwargs, "meta": {"why": why}}


def suite_from_report(report_dir: str | os.PathLike) -> dict:
    """The suite a dataset passes today, with tolerances (not an exact snapshot)."""
    images, classes = tables(report_dir)
    summary = Report(report_dir).summary
    usable = images[images["severity"] != "error"]
    sides = usable["min_side"].dropna()
    min_side = int(max(1, math.floor(0.5 * sides.quantile(0.05)))) if len(sides) else 1
    duplicate_share = float(images["duplicate"].mean()) if len(images) else 0.0
    usable_counts = [count for count in classes["usable"] if count > 0]
    ratio = (
        float(classes["usable_over_smallest"].replace(math.inf, float("nan")).max())
        if usable_counts
        else 1.0
    )
    files = [
        _expectation(
            "expect_column_values_to_not_be_in_set",
            "no file may break training (any error-severity finding)",
            column="severity",
            value_set=["error"],
        ),
        _expectation(
            "expect_column_values_to_be_in_set",
            "no picture may be filed under two labels",
            column="label_conflict",
            value_set=[False],
        ),
        _expectation(
            "expect_column_mean_to_be_between",
            f"duplicates stay near today's share ({duplicate_share:.1%}): "
            "at most 1.5x or +2 points",
            column="duplicate",
            min_value=0,
            max_value=round(min(1.0, max(duplicate_share * 1.5, duplicate_share + 0.02)), 4),
        ),
        _expectation(
            "expect_column_values_to_be_between",
            "images keep a usable resolution: half today's 5th percentile of the shorter side, "
            "1% of files may fall below",
            column="min_side",
            min_value=min_side,
            mostly=0.99,
        ),
        _expectation(
            "expect_column_values_to_be_in_set",
            "only the formats the dataset uses today",
            column="format",
            value_set=sorted(usable["format"].dropna().unique().tolist()),
        ),
    ]
    class_expectations = [
        _expectation(
            "expect_column_distinct_values_to_equal_set",
            "the same classes as today: none lost, none added",
            column="class",
            value_set=sorted(classes["class"].tolist()),
        ),
        _expectation(
            "expect_column_values_to_be_between",
            "every class keeps at least 80% of today's smallest class",
            column="usable",
            min_value=int(math.floor(0.8 * min(usable_counts))) if usable_counts else 1,
        ),
        _expectation(
            "expect_column_values_to_be_between",
            f"imbalance (largest/smallest usable class) stays within 1.25x of today's {ratio:.2f}",
            column="usable_over_smallest",
            max_value=round(ratio * 1.25, 3),
        ),
    ]
    return {
        "format": SUITE_FORMAT,
        "dataset": summary["root"],
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": {"name": "files", "expectations": files},
        "classes": {"name": "classes", "expectations": class_expectations},
    }


def load_suite(path: str | os.PathLike) -> dict:
    """Read and validate a suite file; SuiteError (exit 2) says what is wrong and where.

    Checked before anything runs: UTF-8 JSON, an image-audit suite object, and each
    expectation (`suite_problems`)."""
    suite_path = Path(path)
    try:
        data = suite_path.read_bytes()
    except FileNotFoundError:
        raise SuiteError(
            f"no suite file at {suite_path}; "
            f"create one with `python -m audit suite init ROOT --out {suite_path}`"
        ) from None
    except OSError as error:
        raise SuiteError(f"cannot read the suite {suite_path}: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise SuiteError(
            f"the suite {suite_path} is not UTF-8 text (byte 0x{data[error.start]:02x} at "
            f"offset {error.start}); save it as UTF-8"
        ) from None
    try:
        suite = json.loads(text)
    except json.JSONDecodeError as error:
        raise SuiteError(f"the suite {suite_path} is not JSON: {error}") from None
    if not isinstance(suite, dict):
        raise SuiteError(
            f"the suite {suite_path} holds a JSON {_kind(suite)}; a suite is a JSON object "
            f'with "format": "{SUITE_FORMAT}", "files" and "classes"'
        )
    if suite.get("format") != SUITE_FORMAT:
        raise SuiteError(
            f'{suite_path} is not an image-audit suite (expected "format": "{SUITE_FORMAT}")'
        )
    problems = suite_problems(suite)
    if problems:
        shown = problems[:5] + ([f"and {len(problems) - 5} more"] if len(problems) > 5 else [])
        raise SuiteError(f"the suite {suite_path} cannot be used: {'; '.join(shown)}")
    return suite


def suite_problems(suite: dict) -> list[str]:
    """What makes a suite impossible to evaluate, one sentence each naming the table and
    the expectation's index; empty when it can run."""
    problems: list[str] = []
    count = 0
    for table in ("files", "classes"):
        part = suite.get(table)
        if not isinstance(part, dict) or not isinstance(part.get("expectations"), list):
            problems.append(
                f'"{table}" must be an object with a list "expectations" of {{type, kwargs, meta}}'
            )
            continue
        for index, item in enumerate(part["expectations"]):
            count += 1
            kind = item.get("type") if isinstance(item, dict) else None
            where = f'"{table}"."expectations"[{index}]' + (
                f" ({kind})" if isinstance(kind, str) else ""
            )
            problems += [f"{where}: {problem}" for problem in _expectation_problems(table, item)]
    if count == 0 and not problems:
        problems.append(
            'it holds no expectation ("files" and "classes" are both empty), so it would pass '
            "whatever the data; add expectations, or write a suite with "
            "`python -m audit suite init ROOT`"
        )
    return problems


def _kind(value) -> str:
    """The JSON name of a value's type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {dict: "object", list: "array", str: "string", int: "number", float: "number"}.get(
        type(value), type(value).__name__
    )


def _shown(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _expectation_problems(table: str, item) -> list[str]:
    if not isinstance(item, dict):
        return [f"must be an object {{type, kwargs, meta}}, not a JSON {_kind(item)}"]
    kind, kwargs, meta = item.get("type"), item.get("kwargs"), item.get("meta") or {}
    problems = []
    known = _expectation_types()
    if not isinstance(kind, str) or not kind:
        problems.append('"type" must name an expectation, e.g. "expect_column_values_to_be_in_set"')
    elif kind not in known:
        import difflib

        close = difflib.get_close_matches(kind, known, n=1)
        problems.append(
            f"unknown expectation type {_shown(kind)}"
            + (f' (did you mean "{close[0]}"?)' if close else "")
            + " (Great Expectations' Expectation Gallery lists the types)"
        )
    if not isinstance(kwargs, dict):
        return [*problems, f'"kwargs" must be an object, not a JSON {_kind(kwargs)}']
    if not isinstance(meta, dict):
        problems.append(f'"meta" must be an object, not a JSON {_kind(meta)}')
    columns = TABLE_COLUMNS[table]
    named = [kwargs[key] for key in COLUMN_ARGUMENTS if key in kwargs]
    if "column_list" in kwargs:
        named += kwargs["column_list"] if isinstance(kwargs["column_list"], list) else [None]
    for column in named:
        if not isinstance(column, str) or column not in columns:
            problems.append(
                f"unknown column {_shown(column)}: the {table} table has {', '.join(columns)}"
            )
    for key in NUMBER_ARGUMENTS:
        value = kwargs.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{key} must be a number, not {_shown(value)}")
        elif key == "mostly" and not 0 <= value <= 1:
            problems.append(f"mostly must be between 0 and 1, not {_shown(value)}")
    if not problems and isinstance(kind, str):
        problems += _gx_argument_problems(kind, kwargs)
    return problems


def _expectation_types() -> list[str]:
    """The expectation types Great Expectations registers (importing it registers them)."""
    import great_expectations  # noqa: F401
    from great_expectations.expectations.registry import (
        list_registered_expectation_implementations,
    )

    return list_registered_expectation_implementations()


def _gx_argument_problems(kind: str, kwargs: dict) -> list[str]:
    """Great Expectations' own check of an expectation's arguments (required ones, types,
    ranges, unknown names), as short sentences."""
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    try:
        ExpectationConfiguration(type=kind, kwargs=kwargs).to_domain_obj()
    except Exception as error:  # pydantic's ValidationError, GE's configuration errors
        details = getattr(error, "errors", None)
        if callable(details):
            found: dict[str, str] = {}
            for detail in details():
                where = ".".join(str(part) for part in detail.get("loc", ()))
                found.setdefault(where, str(detail.get("msg", "")))
            return [
                f"{where}: {message}" if where and where != "__root__" else message
                for where, message in found.items()
            ]
        return [str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__]
    return []


# ---------------------------------------------------------------- running the checkpoint


class _Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")
        except Exception:  # a record that cannot be formatted is not worth a crash
            self.handleError(record)


@contextmanager
def _gx_messages() -> Iterator[list[str]]:
    """Great Expectations' log records and warnings, collected instead of printed.

    GE logs through `logging.getLogger(__name__)` and installs no handler, so a record
    at WARNING or above fell through to Python's last-resort handler, on stderr: the
    Data Docs renderer logs a whole traceback when it cannot draw a result, whatever
    --quiet says. What it logs goes to OUT/great_expectations.log; what it means for
    the check (an expectation that could not be evaluated) is an exit code."""
    logger = logging.getLogger("great_expectations")
    handler = _Collected()
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            yield handler.lines
        handler.lines.extend(
            f"WARNING {warning.category.__name__}: {warning.message}" for warning in caught
        )
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def run_checkpoint(
    report_dir: str | os.PathLike,
    suite: dict,
    project_dir: str | os.PathLike,
    suite_name: str = "the suite",
) -> CheckOutcome:
    """Validate the report's two tables against the suite through one Checkpoint.

    SuiteError when an expectation could not be evaluated (nothing is recorded then);
    suite_name says which suite in that message (its path)."""
    from audit.datadocs import make_site_safe

    report = Path(report_dir)
    with _gx_messages() as messages:
        result, results = _run(report, suite, Path(project_dir))
    log = report / GX_LOG
    if messages:
        log.write_text("\n".join(messages) + "\n", encoding="utf-8")
    elif log.exists():
        log.unlink()
    outcomes: list[ExpectationOutcome] = []
    for table, validation in results.items():
        outcomes.extend(_outcome(table, item) for item in validation["results"])
    validation_path = report / "validation_result.json"
    validation_path.write_text(
        json.dumps({"success": result.success, "validations": results}, indent=2, default=str)
        + "\n"
    )
    site = Path(project_dir) / "gx" / "uncommitted" / "data_docs" / "local_site"
    make_site_safe(site)  # after UpdateDataDocsAction wrote them, whatever the outcome
    unevaluated = [
        f'"{table}"."expectations"[{item["expectation_config"]["meta"].get(_INDEX, "?")}] '
        f"({item['expectation_config']['type']}): {problem}"
        for table, validation in results.items()
        for item in validation["results"]
        if (problem := _raised(item))
    ]
    if unevaluated:
        raise SuiteError(
            f"{suite_name} cannot be evaluated on this dataset: {'; '.join(unevaluated[:5])}"
            + (f"; and {len(unevaluated) - 5} more" if len(unevaluated) > 5 else "")
            + f" (details in {validation_path})"
        )
    pages = sorted(site.glob("validations/**/*.html"))
    return CheckOutcome(
        bool(result.success), outcomes, validation_path, site / "index.html", pages, messages
    )


_INDEX = "image_audit_suite_index"  # each expectation's place in the suite file, in its meta
# Our own CSV: an empty field is its only missing value; a name ("NA", "null") never is one.
_NA_VALUES = ""


def _run(report: Path, suite: dict, project: Path):
    """The checkpoint's result and, per table, its validation as JSON (names decoded)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    images, classes = tables(report)
    # The tables are written beside the report and read back through a filesystem data
    # source: then one Checkpoint validates both, with no runtime dataframe to pass.
    table_files = {"files": "check_files.csv", "classes": "check_classes.csv"}
    _for_gx(images).to_csv(report / table_files["files"], index=False)
    _for_gx(classes).to_csv(report / table_files["classes"], index=False)

    context = gx.get_context(mode="file", project_root_dir=str(project))
    context.enable_analytics(False)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    sites = context.variables.data_docs_sites or {}
    for site in sites.values():  # no tutorial buttons (links to greatexpectations.io)
        site["show_how_to_buttons"] = False
    context.variables.data_docs_sites = sites
    context.variables.save()
    source = context.data_sources.add_or_update_pandas_filesystem(
        name="image_audit", base_directory=report.absolute()
    )
    definitions = []
    for table in ("files", "classes"):
        if not suite[table]["expectations"]:
            continue
        asset = source.add_csv_asset(name=table, keep_default_na=False, na_values=_NA_VALUES)
        batch = asset.add_batch_definition_path(name="whole", path=table_files[table])
        expectation_suite = gx.ExpectationSuite(name=f"image_audit_{table}")
        for index, item in enumerate(suite[table]["expectations"]):
            expectation_suite.add_expectation_configuration(
                ExpectationConfiguration(
                    type=item["type"],
                    kwargs=_gx_kwargs(item["kwargs"]),
                    meta={**(item.get("meta") or {}), _INDEX: index},
                )
            )
        expectation_suite = context.suites.add_or_update(expectation_suite)
        definitions.append(
            context.validation_definitions.add_or_update(
                gx.ValidationDefinition(
                    data=batch, suite=expectation_suite, name=f"image_audit_{table}"
                )
            )
        )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name="image_audit",
            validation_definitions=definitions,
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
            result_format={
                "result_format": "COMPLETE",
                "unexpected_index_column_names": [KEY_COLUMN],
            },
        )
    )
    result = checkpoint.run()
    results: dict[str, dict] = {}
    for validation in result.run_results.values():
        table = "files" if validation.suite_name.endswith("_files") else "classes"
        results[table] = _decoded_validation(validation.to_json_dict())
    return result, results


def _gx_kwargs(kwargs: dict) -> dict:
    """An expectation's arguments with the names it compares against encoded, as the
    table GE sees (`_for_gx`)."""
    if kwargs.get("column") not in NAME_COLUMNS:
        return dict(kwargs)
    encoded = dict(kwargs)
    for key in ("value_set", "value"):
        value = kwargs.get(key)
        if isinstance(value, str):
            encoded[key] = encode_name(value)
        elif isinstance(value, list):
            encoded[key] = [encode_name(item) if isinstance(item, str) else item for item in value]
    return encoded


def _decoded_validation(validation: dict) -> dict:
    """A validation result (JSON) with every name GE saw encoded decoded back."""
    decoded = []
    for item in validation.get("results", []):
        config = dict(item.get("expectation_config") or {})
        kwargs = dict(config.get("kwargs") or {})
        column = kwargs.get("column")
        if column in NAME_COLUMNS:
            kwargs.update(
                {key: _decoded(kwargs[key]) for key in ("value_set", "value") if key in kwargs}
            )
        config["kwargs"] = kwargs
        config["meta"] = dict(config.get("meta") or {})
        decoded.append(
            {
                **item,
                "expectation_config": config,
                "result": _decoded_result(item.get("result") or {}, column),
            }
        )
    return {**validation, "results": decoded}


def _decoded_result(result: dict, column) -> dict:
    result = dict(result)
    for key in ("unexpected_index_list", "partial_unexpected_index_list"):
        if isinstance(result.get(key), list):
            result[key] = [
                {
                    name: _decoded(value) if name in NAME_COLUMNS else value
                    for name, value in entry.items()
                }
                if isinstance(entry, dict)
                else entry
                for entry in result[key]
            ]
    if column not in NAME_COLUMNS:
        return result
    for key in (
        "observed_value",
        "partial_unexpected_list",
        "unexpected_list",
        "partial_missing_list",
    ):
        if key in result:
            result[key] = _decoded(result[key])
    for holder, key in (
        (result, "partial_unexpected_counts"),
        (result.get("details") or {}, "value_counts"),
    ):
        if isinstance(holder.get(key), list):
            holder[key] = [
                {**entry, "value": _decoded(entry.get("value"))}
                if isinstance(entry, dict)
                else entry
                for entry in holder[key]
            ]
    return result


def _raised(item: dict) -> str | None:
    """GE's message when evaluating the expectation raised (a wrong type for the column,
    a metric that failed), else None."""
    info = item.get("exception_info") or {}
    entries = [info] if "raised_exception" in info else list(info.values())
    for entry in entries:
        if isinstance(entry, dict) and entry.get("raised_exception"):
            message = str(entry.get("exception_message") or "it raised an exception").strip()
            return message.splitlines()[0] if message else "it raised an exception"
    return None


def _outcome(table: str, item: dict) -> ExpectationOutcome:
    config = item["expectation_config"]
    result = item.get("result") or {}
    offending = [
        str(entry.get(KEY_COLUMN))
        for entry in (result.get("unexpected_index_list") or [])[:MAX_LISTED]
        if isinstance(entry, dict)
    ]
    observed = result.get("observed_value")
    if config["type"] == "expect_column_distinct_values_to_equal_set":  # what is missing, new
        missing, extra = (
            result.get("partial_missing_list") or [],
            result.get("partial_unexpected_list") or [],
        )
        observed = (
            f"missing: {', '.join(map(str, missing)) or 'none'}; "
            f"new: {', '.join(map(str, extra)) or 'none'}"
        )
        offending = [str(value) for value in [*missing, *extra]]
    elif observed is None and "unexpected_count" in result:
        observed = f"{result['unexpected_count']} of {result.get('element_count')} unexpected"
    return ExpectationOutcome(
        table=table,
        type=config["type"],
        why=str(config["meta"].get("why", "")),
        kwargs={key: value for key, value in config["kwargs"].items() if key != "batch_id"},
        passed=bool(item.get("success")),
        observed=_plain(observed),
        unexpected_count=result.get("unexpected_count"),
        offending=offending,
    )


def _plain(value):
    """JSON-friendly observed values (numpy scalars, sets)."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return sorted(value, key=str)
    return value
