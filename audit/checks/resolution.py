"""Resolution: tiny images, odd aspect ratios, and images far from the usual size.

Outliers are judged on the linear size sqrt(width * height), in log2 units, with a
robust rule: a file is an outlier when its distance from the median reaches

    max(k * 1.4826 * MAD, log2(min_factor))

The MAD term adapts to datasets whose sizes vary; the floor handles the common case
where most images share one size (MAD = 0, and IQR = 0 too, which breaks the usual
IQR fences): then anything at least min_factor times smaller or larger than the
median stands out, and nothing else does.
"""

from __future__ import annotations

import math

import numpy as np

from audit.checks.base import Check, Threshold
from audit.inspect import Facts
from audit.records import DatasetResult, Finding

# Below this many usable images a median says little; the outlier rule is skipped.
MIN_IMAGES_FOR_OUTLIERS = 8
MAX_LOG2_DISTANCE = 64.0


def check_file(facts: Facts, found: list[Finding], thresholds) -> list[Finding]:
    """tiny_image and odd_aspect_ratio for a file that is otherwise usable."""
    if facts.width is None or facts.height is None or not facts.decoded:
        return []
    if any(finding.severity == "error" for finding in found):
        return []
    findings = []
    short, long = sorted((facts.width, facts.height))
    if short < thresholds.min_side:
        findings.append(
            Finding(
                "tiny_image",
                f"{facts.width}x{facts.height}: a side is below {thresholds.min_side} px",
            )
        )
    if short > 0 and long / short > thresholds.max_aspect_ratio:
        findings.append(
            Finding(
                "odd_aspect_ratio",
                f"{facts.width}x{facts.height}: aspect ratio {long / short:.1f}:1 is over "
                f"{thresholds.max_aspect_ratio:g}:1",
            )
        )
    return findings


def check_dataset(table, thresholds) -> DatasetResult:
    """resolution_outlier for usable images, with the bounds used."""
    width, height = table.width, table.height
    rows = np.flatnonzero(table.usable & (width > 0) & (height > 0))
    summary: dict = {
        "rule": "|log2(sqrt(w*h)) - median| >= max(k * 1.4826 * MAD, log2(min_factor))",
        "k": thresholds.outlier_mad_k,
        "min_factor": thresholds.outlier_min_factor,
        "images_considered": int(rows.size),
    }
    if rows.size < MIN_IMAGES_FOR_OUTLIERS:
        summary["skipped"] = f"fewer than {MIN_IMAGES_FOR_OUTLIERS} usable images with a known size"
        return DatasetResult(summary, {}, [])

    linear = np.sqrt(width[rows].astype(np.float64) * height[rows])
    log_size = np.log2(linear)
    median = float(np.median(log_size))
    mad = float(np.median(np.abs(log_size - median)))
    allowed = max(thresholds.outlier_mad_k * 1.4826 * mad, math.log2(thresholds.outlier_min_factor))
    # Bounds past 2**64 px mean "no outlier that way"; capped so 2**x stays a float.
    allowed = min(allowed, MAX_LOG2_DISTANCE)
    lower, upper = 2 ** (median - allowed), 2 ** (median + allowed)
    median_side = 2**median
    summary.update(
        median_side_px=round(median_side, 1),
        mad_log2=round(mad, 4),
        lower_side_px=round(lower, 1),
        upper_side_px=round(upper, 1),
        mad_is_zero=mad == 0.0,
    )

    findings: dict[int, list[Finding]] = {}
    # The tolerance keeps an exact factor of min_factor (e.g. 64 px among 32 px) on the
    # outlier side.
    for position in np.flatnonzero(np.abs(log_size - median) >= allowed - 1e-9):
        row = int(rows[position])
        side = float(linear[position])
        direction = "smaller" if side < median_side else "larger"
        factor = max(side, median_side) / min(side, median_side)
        findings[row] = [
            Finding(
                "resolution_outlier",
                f"{width[row]}x{height[row]}: linear size {side:.0f} px "
                f"is {factor:.1f}x {direction} "
                f"than the median {median_side:.0f} px (usual range {lower:.0f}-{upper:.0f} px)",
            )
        ]
    summary["outliers"] = len(findings)
    return DatasetResult(summary, findings, [])


class ResolutionCheck(Check):
    """tiny_image and odd_aspect_ratio per file; resolution_outlier over the dataset."""

    name = "resolution"
    codes = ("tiny_image", "odd_aspect_ratio", "resolution_outlier")
    thresholds = (
        Threshold(
            "min_side",
            32,
            "tiny_image below this side (default: {default}; 0 turns it off)",
            minimum=0,
            maximum=1_000_000,
            per_file=True,
            metavar="PX",
        ),
        Threshold(
            "max_aspect_ratio",
            3.0,
            "odd_aspect_ratio above long/short side R (default: {default})",
            minimum=1,
            maximum=1_000_000,
            per_file=True,
            metavar="R",
        ),
        Threshold(
            "outlier_mad_k",
            3.5,
            "resolution_outlier at K robust deviations (1.4826 x MAD of log2 linear size) "
            "from the median (default: {default})",
            minimum=0,
            maximum=1000,
            above_minimum=True,
            metavar="K",
        ),
        Threshold(
            "outlier_min_factor",
            2.0,
            "... and at least F times smaller or larger than the median linear size "
            "(default: {default})",
            minimum=1,
            maximum=1_000_000,
            metavar="F",
        ),
    )
    # The outlier rule's figures sit beside the thresholds they come from.
    summary_path = ("thresholds", "resolution_outlier")

    def check_file(self, facts, found, thresholds):
        return check_file(facts, list(found), thresholds)

    def check_dataset(self, table, thresholds):
        return check_dataset(table, thresholds)

    def report_values(self, section: dict) -> dict:
        if "lower_side_px" not in section:
            return {}
        return {"scatter_bounds": (section["lower_side_px"], section["upper_side_px"])}
