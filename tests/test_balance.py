"""Class balance: usable counts, shares, ratio, empty classes."""

from __future__ import annotations

import pytest

from audit.checks import Thresholds, balance
from audit.records import FileRecord, Finding
from audit.table import ScanTable


def table_of(counts: dict[str, int], broken: dict[str, int] | None = None) -> ScanTable:
    table = ScanTable(None, tuple(counts))
    for label, count in counts.items():
        for index in range(count):
            findings = (
                (Finding("truncated", "cut"),) if index < (broken or {}).get(label, 0) else ()
            )
            table.append(
                FileRecord(f"{label}/{index}", label, 1, "JPEG", "RGB", 8, 8, "", None, 0, findings)
            )
    return table


def test_counts_shares_and_ratio():
    result = balance.check_dataset(
        table_of({"cat": 30, "dog": 10, "fox": 0}, broken={"cat": 5}), Thresholds()
    )
    classes = {entry["name"]: entry for entry in result.summary["classes"]}
    assert classes["cat"] == {
        "name": "cat",
        "files": 30,
        "usable": 25,
        "share": pytest.approx(25 / 35, abs=1e-4),
    }
    assert result.summary["imbalance_ratio"] == 2.5
    assert result.summary["classes_without_usable_images"] == ["fox"]
    assert [f.code for f in result.dataset_findings] == ["empty_class"]


def test_imbalance_over_the_limit_is_a_finding():
    result = balance.check_dataset(table_of({"cat": 40, "dog": 10}), Thresholds(max_imbalance=3))
    assert result.summary["imbalance_ratio"] == 4.0
    assert [f.code for f in result.dataset_findings] == ["class_imbalance"]
    assert "cat 40 / dog 10" in result.dataset_findings[0].reason


def test_no_usable_image_at_all():
    result = balance.check_dataset(table_of({"cat": 2}, broken={"cat": 2}), Thresholds())
    assert result.summary["imbalance_ratio"] is None
