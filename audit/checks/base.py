"""The contract every check declares, and the registry derived from the declarations.

A check says what it is (name, version), what it emits (issue codes), where it runs
(per file in the workers, on the whole dataset once all files are in, or both), the
thresholds it reads (and which of them change per-file results), where its summary
section goes in summary.json, and the extra report tables it writes. From that the
registry derives the CLI options, the validated `Thresholds`, the cache key of
per-file results and the report's sections, so adding a check touches one module.
"""

from __future__ import annotations

import gc
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from audit import argtypes
from audit.codes import CODES, DATASET_CODES
from audit.records import DatasetResult, Finding, merge_findings

if TYPE_CHECKING:
    import argparse

    from audit.inspect import Facts
    from audit.reportio import ReportTable
    from audit.table import ScanTable


@dataclass(frozen=True)
class Threshold:
    """One limit a check applies: its name, default, allowed range and CLI help.

    per_file: whether it changes per-file results (then it enters the cache key, so a
    changed value re-inspects files instead of serving records made with the old one).
    help may use {default}.
    """

    name: str
    default: int | float
    help: str
    minimum: float | None = None
    maximum: float | None = None
    above_minimum: bool = False
    per_file: bool = False
    metavar: str = "N"
    flag: bool = False  # an on/off option (0 or 1): the CLI takes a bare --name for 1

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def is_integer(self) -> bool:
        return isinstance(self.default, int)

    def argtype(self):
        """The argparse type= function that validates this threshold at parse time."""
        if self.is_integer:
            return argtypes.integer(
                None if self.minimum is None else int(self.minimum),
                None if self.maximum is None else int(self.maximum),
            )
        return argtypes.number(self.minimum, self.maximum, self.above_minimum)

    def validate(self, value: Any) -> int | float:
        """value as this threshold's type; ValueError saying what is allowed."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{self.name} must be a number, got {value!r}")
        if self.is_integer and value != int(value):
            raise ValueError(f"{self.name} must be a whole number, got {value!r}")
        problem = argtypes.check_range(value, self.minimum, self.maximum, self.above_minimum)
        if problem:
            raise ValueError(f"{self.name} {problem}, got {value!r}")
        return int(value) if self.is_integer else float(value)


class Check:
    """Base class of a check; subclasses set the class attributes and override one or
    both of check_file (runs in the workers, sees one file) and check_dataset (runs once
    all files are in, sees the compact columns and may add findings to any file)."""

    name: ClassVar[str]
    version: ClassVar[int] = 1  # bump when per-file results change for the same input
    codes: ClassVar[tuple[str, ...]] = ()
    thresholds: ClassVar[tuple[Threshold, ...]] = ()
    tables: ClassVar[tuple[ReportTable, ...]] = ()  # extra report files it fills
    # Where its summary section goes in summary.json (a key path; () = not stored whole),
    # and which keys of the section are also lifted to the top level.
    summary_path: ClassVar[tuple[str, ...] | None] = None  # None: ("checks", name)
    summary_fields: ClassVar[tuple[str, ...]] = ()

    @property
    def per_file(self) -> bool:
        return type(self).check_file is not Check.check_file

    @property
    def per_dataset(self) -> bool:
        return type(self).check_dataset is not Check.check_dataset

    def check_file(
        self, facts: Facts, found: Sequence[Finding], thresholds: Thresholds
    ) -> list[Finding]:
        """Findings for one inspected file; found holds the earlier checks' findings."""
        return []

    def check_dataset(self, table: ScanTable, thresholds: Thresholds) -> DatasetResult:
        """Findings over the whole dataset, a summary section and extra report rows."""
        return DatasetResult({}, {}, [])

    def report_values(self, section: dict) -> dict[str, Any]:
        """Values this check's summary section gives the HTML template (default none)."""
        return {}

    def placement(self) -> tuple[str, ...]:
        return ("checks", self.name) if self.summary_path is None else self.summary_path


class Thresholds:
    """Every limit the registered checks apply, by name, validated; read as attributes
    (`thresholds.max_pixels`). Made by `Registry.thresholds()`; `Thresholds(**values)`
    uses the default registry."""

    __slots__ = ("_values", "_per_file")

    def __init__(self, registry: Registry | None = None, **values: Any):
        if registry is None:
            from audit.checks import REGISTRY

            registry = REGISTRY
        specs = registry.threshold_specs()
        unknown = sorted(set(values) - {spec.name for spec in specs})
        if unknown:
            known = ", ".join(spec.name for spec in specs)
            raise ValueError(f"unknown threshold(s) {', '.join(unknown)}; known: {known}")
        checked = {spec.name: spec.validate(values.get(spec.name, spec.default)) for spec in specs}
        object.__setattr__(self, "_values", checked)
        object.__setattr__(self, "_per_file", tuple(s.name for s in specs if s.per_file))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"no threshold named {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Thresholds are read-only; make new ones with Registry.thresholds()")

    def __getstate__(self) -> tuple[dict, tuple[str, ...]]:
        return self._values, self._per_file

    def __setstate__(self, state: tuple[dict, tuple[str, ...]]) -> None:
        object.__setattr__(self, "_values", state[0])
        object.__setattr__(self, "_per_file", state[1])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Thresholds) and self._values == other._values

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._values.items())))

    def __repr__(self) -> str:
        return f"Thresholds({', '.join(f'{k}={v!r}' for k, v in self._values.items())})"

    def as_dict(self) -> dict[str, int | float]:
        """Every threshold (what summary.json records)."""
        return dict(self._values)

    def per_file(self) -> dict[str, int | float]:
        """The thresholds that shape per-file results (what the cache key covers)."""
        return {name: self._values[name] for name in self._per_file}


@dataclass
class DatasetChecksResult:
    """What the dataset checks produced, together."""

    sections: dict[str, dict] = field(default_factory=dict)  # summary section by check name
    file_findings: dict[int, list[Finding]] = field(default_factory=dict)  # row -> findings
    dataset_findings: list = field(default_factory=list)  # DatasetFinding
    report_rows: dict[str, list[dict]] = field(default_factory=dict)  # table name -> rows


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for a while (as it was before, after).

    The dataset checks allocate many small objects that form no cycles (relations,
    findings, report rows); each allocation burst made the collector walk every object
    the scan holds: 0.07-0.15 s CPU of 0.70-0.85 s on photos-20000 (measured, best of 3).
    What is garbage is freed by reference counting as before; cycles wait until after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Registry:
    """The checks in the order they run, and everything derived from their declarations.

    Order matters: per-file checks see the findings of those before them; a file that a
    dataset check marks as an error is no longer usable for the dataset checks after it.
    """

    def __init__(self, checks: Iterable[Check]):
        self.checks: tuple[Check, ...] = tuple(checks)
        names = [check.name for check in self.checks]
        if len(set(names)) != len(names):
            raise ValueError(f"check names must be unique: {names}")
        threshold_names = [spec.name for spec in self.threshold_specs()]
        if len(set(threshold_names)) != len(threshold_names):
            raise ValueError(f"threshold names must be unique: {threshold_names}")
        for check in self.checks:
            unknown = [c for c in check.codes if c not in CODES and c not in DATASET_CODES]
            if unknown:
                raise ValueError(f"check {check.name} emits unknown code(s) {unknown}")

    def with_check(self, check: Check) -> Registry:
        """A registry with one more check, run last."""
        return Registry((*self.checks, check))

    @property
    def file_checks(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if check.per_file)

    @property
    def dataset_checks(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if check.per_dataset)

    def threshold_specs(self) -> tuple[Threshold, ...]:
        return tuple(spec for check in self.checks for spec in check.thresholds)

    def thresholds(self, **values: Any) -> Thresholds:
        """Validated thresholds: the defaults, overridden by values."""
        return Thresholds(self, **values)

    def tables(self) -> tuple[ReportTable, ...]:
        return tuple(table for check in self.checks for table in check.tables)

    def settings_key(self, thresholds: Thresholds, version: str) -> str:
        """What a cached per-file record depends on besides the file itself: the tool
        version, the per-file checks with their versions, and their thresholds."""
        relevant = {
            "version": version,
            "file_checks": [[check.name, check.version] for check in self.file_checks],
            "thresholds": thresholds.per_file(),
        }
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]

    def check_file(self, facts: Facts, thresholds: Thresholds) -> tuple[Finding, ...]:
        """All per-file findings for one inspected file, one per code."""
        found: list[Finding] = []
        for check in self.file_checks:
            found += check.check_file(facts, found, thresholds)
        return merge_findings(found)

    def run_dataset_checks(self, table: ScanTable, thresholds: Thresholds) -> DatasetChecksResult:
        """Run the dataset checks in order; an error one finds makes the file unusable
        for the checks after it."""
        result = DatasetChecksResult()
        with _collector_paused():
            self._run_dataset_checks(table, thresholds, result)
        return result

    def _run_dataset_checks(
        self, table: ScanTable, thresholds: Thresholds, result: DatasetChecksResult
    ) -> None:
        for check in self.dataset_checks:
            outcome = check.check_dataset(table, thresholds)
            result.sections[check.name] = outcome.summary
            result.dataset_findings += outcome.dataset_findings
            result.report_rows.update(outcome.report_rows)
            for row, findings in outcome.file_findings.items():
                result.file_findings.setdefault(row, []).extend(findings)
                if any(finding.severity == "error" for finding in findings):
                    table.mark_unusable([row])

    def summary_entries(self, sections: dict[str, dict]) -> tuple[dict, dict]:
        """(top-level summary.json entries, nested entries by key path) from the sections."""
        top: dict[str, Any] = {}
        nested: dict[tuple[str, ...], dict] = {}
        for check in self.checks:
            if check.name not in sections:
                continue
            section = sections[check.name]
            for key in check.summary_fields:
                top[key] = section.get(key)
            if check.placement():
                nested[check.placement()] = section
        return top, nested

    def report_values(self, sections: dict[str, dict]) -> dict[str, Any]:
        """Template values the checks derive from their sections, merged."""
        values: dict[str, Any] = {}
        for check in self.checks:
            values.update(check.report_values(sections.get(check.name, {})))
        return values

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        """One CLI option per threshold (--name-with-dashes), validated at parse time."""
        group = parser.add_argument_group("thresholds (every one is written to summary.json)")
        for spec in self.threshold_specs():
            if spec.flag:
                group.add_argument(
                    spec.option,
                    dest=spec.name,
                    action="store_const",
                    const=1,
                    default=spec.default,
                    help=spec.help,
                )
                continue
            default = f"{spec.default:,}" if spec.is_integer else f"{spec.default:g}"
            group.add_argument(
                spec.option,
                dest=spec.name,
                type=spec.argtype(),
                default=spec.default,
                metavar=spec.metavar,
                help=spec.help.format(default=default),
            )

    def thresholds_from(self, namespace: object) -> Thresholds:
        """Thresholds from parsed CLI options (see add_options)."""
        specs = self.threshold_specs()
        return self.thresholds(**{spec.name: getattr(namespace, spec.name) for spec in specs})
