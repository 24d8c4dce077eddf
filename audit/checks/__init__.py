"""The registry of checks: one entry point runs them all in a fixed order.

Each check declares its contract (audit.checks.base.Check): codes, thresholds, where
it runs, its summary section and report tables. Per-file checks run in the worker
processes right after a file is inspected; they see only that file. Dataset checks
run once all files are in, on compact columns (audit.table.ScanTable), and may add
findings to any file. Order matters: a file that a dataset check marks as an error is
no longer usable for the checks after it (balance counts usable files last).

To add a check: write a module with a Check subclass and add an instance here.
"""

from __future__ import annotations

from audit.checks.balance import BalanceCheck
from audit.checks.base import Check, DatasetChecksResult, Registry, Threshold, Thresholds
from audit.checks.duplicates import DuplicatesCheck
from audit.checks.integrity import DEFAULT_MAX_PIXELS, IntegrityCheck
from audit.checks.names import NamesCheck
from audit.checks.quality import QualityCheck
from audit.checks.resolution import ResolutionCheck
from audit.inspect import Facts
from audit.records import Finding

# Integrity before resolution and quality (they skip files with errors); duplicates
# before quality and balance (label conflicts are not counted as usable, neither in the
# channel statistics nor in the class counts).
REGISTRY = Registry(
    [
        IntegrityCheck(),
        NamesCheck(),
        ResolutionCheck(),
        DuplicatesCheck(),
        QualityCheck(),
        BalanceCheck(),
    ]
)


def check_file(facts: Facts, thresholds: Thresholds) -> tuple[Finding, ...]:
    """All per-file findings of the default registry for one inspected file."""
    return REGISTRY.check_file(facts, thresholds)


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "REGISTRY",
    "Check",
    "DatasetChecksResult",
    "Registry",
    "Threshold",
    "Thresholds",
    "check_file",
]
