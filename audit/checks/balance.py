"""Class balance: usable images per class, shares, the imbalance ratio, empty classes."""

from __future__ import annotations

import numpy as np

from audit.checks.base import Check, Threshold
from audit.records import DatasetFinding, DatasetResult


def check_dataset(table, thresholds) -> DatasetResult:
    """Count usable files per class; flag empty classes and a ratio over the limit."""
    usable_rows = table.usable
    files = np.bincount(table.label, minlength=len(table.classes))
    usable = np.bincount(table.label[usable_rows], minlength=len(table.classes))
    total_usable = int(usable.sum())
    classes = [
        {
            "name": name,
            "files": int(files[index]),
            "usable": int(usable[index]),
            "share": round(float(usable[index]) / total_usable, 4) if total_usable else 0.0,
        }
        for index, name in enumerate(table.classes)
    ]
    present = usable[usable > 0]
    ratio = float(present.max() / present.min()) if present.size else None
    empty = [entry["name"] for entry in classes if entry["usable"] == 0]
    summary = {
        "classes": classes,
        "splits": _per_split(table) if len(table.splits) > 1 else {},
        "imbalance_ratio": round(ratio, 3) if ratio is not None else None,
        "largest_class": classes[int(usable.argmax())]["name"] if total_usable else None,
        "smallest_class": _smallest_present(classes),
        "classes_without_usable_images": empty,
        "max_imbalance": thresholds.max_imbalance,
    }
    findings = []
    if empty:
        findings.append(
            DatasetFinding(
                "empty_class",
                f"{len(empty)} class(es) have no usable image: {', '.join(empty)}",
                tuple(empty),
            )
        )
    if ratio is not None and ratio > thresholds.max_imbalance:
        findings.append(
            DatasetFinding(
                "class_imbalance",
                "largest/smallest usable class = "
                f"{summary['largest_class']} {int(present.max())} / "
                f"{summary['smallest_class']} {int(present.min())} = {ratio:.2f}, "
                f"over {thresholds.max_imbalance:g}",
                (summary["largest_class"], summary["smallest_class"]),
            )
        )
    return DatasetResult(summary, {}, findings)


def _smallest_present(classes: list[dict]) -> str | None:
    present = [entry for entry in classes if entry["usable"] > 0]
    return min(present, key=lambda entry: entry["usable"])["name"] if present else None


def _per_split(table) -> dict:
    """Usable files per class within each split (e.g. is validation balanced like train?)."""
    usable = table.usable
    result = {}
    for index, split in enumerate(table.splits):
        in_split = table.split == index
        counts = np.bincount(table.label[in_split & usable], minlength=len(table.classes))
        result[split] = {
            "files": int(in_split.sum()),
            "usable": int((in_split & usable).sum()),
            "classes": {name: int(counts[position]) for position, name in enumerate(table.classes)},
        }
    return result


class BalanceCheck(Check):
    """Usable images per class: class_imbalance and empty_class (runs last)."""

    name = "balance"
    codes = ("class_imbalance", "empty_class")
    thresholds = (
        Threshold(
            "max_imbalance",
            3.0,
            "class_imbalance above largest/smallest usable class R (default: {default})",
            minimum=1,
            maximum=1e9,
            metavar="R",
        ),
    )
    # The per-class counts are summary.json's own top-level fields.
    summary_path = ()
    summary_fields = ("classes", "imbalance_ratio", "splits", "classes_without_usable_images")

    def check_dataset(self, table, thresholds):
        return check_dataset(table, thresholds)
