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

Great Expectations analytics are off in every path (environment and project config);
its Data Docs site is written under the output folder and kept.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from audit.errors import UserError
from audit.reportio import Report

# Before Great Expectations is imported anywhere in this process.
os.environ["GX_ANALYTICS_ENABLED"] = "False"

SUITE_FORMAT = "image-audit-suite/1"
DUPLICATE_CODES = ("exact_duplicate", "near_duplicate")
MAX_LISTED = 20  # offending files named per expectation


class SuiteError(UserError, ValueError):
    """The suite file is missing, unreadable, or not an image-audit suite."""


@dataclass
class ExpectationOutcome:
    """One expectation's result, as check.html and the history show it."""

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


# ---------------------------------------------------------------- tables


def tables(report_dir: str | os.PathLike):
    """(per-image DataFrame, per-class DataFrame) from an audit report."""
    import pandas as pd

    report = Report(report_dir)
    rows = [asdict(row) for row in report.images()]
    images = pd.DataFrame(
        rows,
        columns=[
            "path",
            "label",
            "split",
            "bytes",
            "format",
            "width",
            "height",
            "severity",
            "issues",
        ],
    )
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
            "files": [entry["files"] for entry in present],
            "usable": [entry["usable"] for entry in present],
            "usable_over_smallest": [
                entry["usable"] / smallest if smallest else math.inf for entry in present
            ],
        }
    )
    return images, classes


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
    """Read and sanity-check a suite file; SuiteError says what is wrong."""
    suite_path = Path(path)
    try:
        suite = json.loads(suite_path.read_text())
    except FileNotFoundError as error:
        raise SuiteError(
            f"no suite file at {suite_path}; "
            f"create one with `python -m audit suite init ROOT --out {suite_path}`"
        ) from error
    except (OSError, json.JSONDecodeError) as error:
        raise SuiteError(f"cannot read the suite {suite_path}: {error}") from error
    if not isinstance(suite, dict) or suite.get("format") != SUITE_FORMAT:
        raise SuiteError(
            f'{suite_path} is not an image-audit suite (expected "format": "{SUITE_FORMAT}")'
        )
    for table in ("files", "classes"):
        expectations = suite.get(table, {}).get("expectations")
        if not isinstance(expectations, list) or any(
            "type" not in item or "kwargs" not in item for item in expectations
        ):
            raise SuiteError(
                f'{suite_path}: "{table}"."expectations" must be a list of {{type, kwargs, meta}}'
            )
    return suite


# ---------------------------------------------------------------- running the checkpoint


def run_checkpoint(
    report_dir: str | os.PathLike, suite: dict, project_dir: str | os.PathLike
) -> CheckOutcome:
    """Validate the report's two tables against the suite through one Checkpoint."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    report = Path(report_dir)
    images, classes = tables(report)
    # The tables are written beside the report and read back through a filesystem data
    # source: then one Checkpoint validates both, with no runtime dataframe to pass.
    table_files = {"files": "check_files.csv", "classes": "check_classes.csv"}
    images.to_csv(report / table_files["files"], index=False)
    classes.to_csv(report / table_files["classes"], index=False)

    project = Path(project_dir)
    context = gx.get_context(mode="file", project_root_dir=str(project))
    context.enable_analytics(False)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.variables.save()
    source = context.data_sources.add_or_update_pandas_filesystem(
        name="image_audit", base_directory=report.absolute()
    )
    definitions = []
    for table in ("files", "classes"):
        asset = source.add_csv_asset(name=table)
        batch = asset.add_batch_definition_path(name="whole", path=table_files[table])
        expectation_suite = gx.ExpectationSuite(name=f"image_audit_{table}")
        for item in suite[table]["expectations"]:
            expectation_suite.add_expectation_configuration(
                ExpectationConfiguration(
                    type=item["type"], kwargs=item["kwargs"], meta=item.get("meta", {})
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
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["path"]},
        )
    )
    result = checkpoint.run()
    outcomes: list[ExpectationOutcome] = []
    results: dict[str, dict] = {}
    for validation in result.run_results.values():
        table = "files" if validation.suite_name.endswith("_files") else "classes"
        results[table] = validation.to_json_dict()
        outcomes.extend(_outcome(table, item) for item in validation.results)
    validation_path = report / "validation_result.json"
    validation_path.write_text(
        json.dumps({"success": result.success, "validations": results}, indent=2, default=str)
        + "\n"
    )
    site = project / "gx" / "uncommitted" / "data_docs" / "local_site"
    pages = sorted(site.glob("validations/**/*.html"))
    return CheckOutcome(bool(result.success), outcomes, validation_path, site / "index.html", pages)


def _outcome(table: str, item) -> ExpectationOutcome:
    config = item.expectation_config
    result = item.result or {}
    key_column = "path" if table == "files" else "class"
    offending = [
        str(entry.get(key_column))
        for entry in (result.get("unexpected_index_list") or [])[:MAX_LISTED]
        if isinstance(entry, dict)
    ]
    observed = result.get("observed_value")
    if config.type == "expect_column_distinct_values_to_equal_set":  # what is missing, what is new
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
        type=config.type,
        why=(config.meta or {}).get("why", ""),
        kwargs={key: value for key, value in config.kwargs.items() if key not in ("batch_id",)},
        passed=bool(item.success),
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
