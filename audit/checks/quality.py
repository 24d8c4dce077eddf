"""Image quality: near-constant, dark, overexposed and blurry pictures, gray pictures in a
colour dataset, and the per-channel statistics of the usable images.

The measures come from the decode the scan makes anyway (audit.measures: the JPEG DCT
draft at 1/1..1/8 scale in YCbCr, others at full size, viewed at a long side of at most
64 px); what each check reads:

* low_information: `contrast`, the largest R, G or B standard deviation in 8-bit levels.
  Below the threshold the picture is blank, a solid colour or a black frame; its pHash
  is noise, so the duplicate search groups such files by exact identity only (it reads
  ScanTable.low_information). Such a file gets no dark, overexposed or blurry finding
  (they say nothing more about a flat picture). Over the dataset: a class where they
  cluster gets a dataset-level line.
* dark: `dark_level`, the 99th percentile of luma (0..1): even the brightest parts of
  the picture are below the threshold.
* overexposed: `bright_level`, the 5th percentile of luma (0..1): 95% of the picture is
  brighter than the threshold (washed out). A picture with blown highlights but black
  shadows is not flagged.
* blurry: `focus`, the RMS of the Laplacian of luma over its standard deviation at the
  64 px view: fine detail against contrast, independent of the picture's size and
  exposure. Blur is judged at thumbnail scale: what is still soft at 64 px; images with
  a side under 64 px are not judged.
* grayscale_in_color: `colour_spread`, the 99th percentile of |Cb - 128| and |Cr - 128|:
  at or below the threshold the channels are equal. A dataset-level decision: only in a
  dataset where at least `min_color_share` of the usable measured images are in colour
  (in an all-grayscale dataset, gray is normal). low_information files are left out
  of both counts.

Thresholds (README, "Image quality") were measured on real photos: scikit-learn's two
sample photos, scikit-image's bundled photos and Debian desktop-base wallpapers, with
darkened, brightened, blurred and gray copies: see bench/quality_thresholds.py.
"""

from __future__ import annotations

import math

import numpy as np

from audit.checks.base import Check, Threshold
from audit.measures import VIEW_DESCRIPTION, Measures
from audit.records import DatasetFinding, DatasetResult, Finding

# A class gets the low_information dataset line with at least this many such files...
MIN_CLUSTER_FILES = 3
# Blur is judged at the 64 px view: a smaller image (32 px digits, icons) is its own view,
# and its softness is its resolution, not a focus problem. Not judged below this side.
MIN_BLUR_SIDE = 64


def check_file(facts, found, thresholds) -> list[Finding]:
    """low_information, dark, overexposed and blurry for a decoded, otherwise usable file."""
    if facts.measures is None or not facts.decoded:
        return []
    if any(finding.severity == "error" for finding in found):
        return []
    sharp_enough = facts.width is not None and facts.height is not None
    judge_blur = sharp_enough and min(facts.width, facts.height) >= MIN_BLUR_SIDE
    return judge(facts.measures, thresholds, judge_blur)


def judge(measured: Measures, thresholds, judge_blur: bool = True) -> list[Finding]:
    """The per-file quality findings for one file's measures."""
    if measured.contrast < thresholds.low_information_below:
        return [
            Finding(
                "low_information",
                f"contrast {measured.contrast:.1f} levels (largest R/G/B standard deviation "
                f"at 64 px) is below {thresholds.low_information_below:g}: near-constant pixels",
            )
        ]
    findings = []
    if measured.dark_level < thresholds.dark_below:
        findings.append(
            Finding(
                "dark",
                f"the brightest 1% of the picture is at {measured.dark_level:.2f} of full "
                f"brightness, below {thresholds.dark_below:g}",
            )
        )
    if measured.bright_level > thresholds.overexposed_above:
        findings.append(
            Finding(
                "overexposed",
                f"the darkest 5% of the picture is at {measured.bright_level:.2f} of full "
                f"brightness, above {thresholds.overexposed_above:g}",
            )
        )
    if judge_blur and measured.focus < thresholds.blurry_below:
        findings.append(
            Finding(
                "blurry",
                f"focus {measured.focus:.3f} (Laplacian RMS / luma std at 64 px) is below "
                f"{thresholds.blurry_below:g}",
            )
        )
    return findings


def check_dataset(table, thresholds) -> DatasetResult:
    """grayscale_in_color, low_information clusters, and channel_stats."""
    usable = table.usable & table.measured
    findings: dict[int, list[Finding]] = {}
    spread = table.colour_spread
    # A flat frame's channels are trivially equal: it is low_information, not gray.
    known = ~np.isnan(spread) & ~table.low_information
    gray_in_colour = usable & known & (spread <= thresholds.grayscale_spread)
    in_colour = usable & known & (spread > thresholds.grayscale_spread)
    measured = int(usable.sum())
    colour_count = int(in_colour.sum())
    colour_share = colour_count / measured if measured else 0.0
    colour_dataset = measured > 0 and colour_share >= thresholds.min_color_share
    if colour_dataset:
        for row in np.flatnonzero(gray_in_colour):
            findings[int(row)] = [
                Finding(
                    "grayscale_in_color",
                    f"colour spread {spread[row]:.1f} levels (99th percentile of the "
                    f"chroma's distance from neutral) is at most "
                    f"{thresholds.grayscale_spread:g}: its channels are equal, while "
                    f"{colour_count} of {measured} usable images "
                    f"({colour_share:.0%}) are in colour (at least "
                    f"{thresholds.min_color_share:.0%})",
                )
            ]
    dataset_findings = _low_information_clusters(table, thresholds)
    summary = {
        "channel_stats": channel_stats(table),
        "image_quality": {
            "measured": measured,
            "in_colour": colour_count,
            "gray_in_colour_files": int(gray_in_colour.sum()),
            "colour_dataset": bool(colour_dataset),
            "low_information_files": int(table.low_information.sum()),
            "view": VIEW_DESCRIPTION,
        },
    }
    return DatasetResult(summary, findings, dataset_findings)


def _low_information_clusters(table, thresholds) -> list[DatasetFinding]:
    """One line per class where near-constant files cluster."""
    flat = table.low_information
    if not flat.any():
        return []
    counts = np.bincount(table.label[flat], minlength=len(table.classes))
    totals = np.bincount(table.label, minlength=len(table.classes))
    lines = []
    for index, name in enumerate(table.classes):
        count, total = int(counts[index]), int(totals[index])
        if count >= MIN_CLUSTER_FILES and count >= thresholds.low_information_share * total:
            lines.append((name, count, total))
    if not lines:
        return []
    shown = ", ".join(f"{name}: {count} of {total}" for name, count, total in lines)
    return [
        DatasetFinding(
            "low_information",
            f"near-constant images (blank, solid colour, black frames) cluster in "
            f"{len(lines)} class(es), at least {MIN_CLUSTER_FILES} files and "
            f"{thresholds.low_information_share:.0%} of the class: {shown}. A placeholder "
            "or a broken export step may have filled them in",
            tuple(name for name, _, _ in lines),
        )
    ]


def channel_stats(table) -> dict | None:
    """Pooled per-channel mean and standard deviation of the usable measured images, at
    0..1 in RGB order (a one-channel image adds equal channels); None when there are
    none. Pixel-weighted over each image's 64 px view (VIEW_DESCRIPTION)."""
    rows = table.usable & table.measured
    if not rows.any():
        return None
    sums = table.channel_sums[rows].sum(axis=0)
    pixels = float(sums[6])
    if pixels <= 0:
        return None
    mean = sums[0:3] / pixels
    variance = np.maximum(sums[3:6] / pixels - mean * mean, 0.0)
    return {
        "input_range": [0, 1],
        "channels": 3,
        "mean": [round(float(value), 6) for value in mean],
        "std": [round(math.sqrt(float(value)), 6) for value in variance],
        "images": int(rows.sum()),
        "decode": VIEW_DESCRIPTION,
    }


class QualityCheck(Check):
    """low_information, dark, overexposed, blurry per file; grayscale_in_color, clusters and
    channel statistics over the dataset."""

    name = "quality"
    # 1: the measures of audit.measures (JPEG decoded in YCbCr at the draft scale).
    version = 1
    codes = ("low_information", "dark", "overexposed", "blurry", "grayscale_in_color")
    thresholds = (
        Threshold(
            "low_information_below",
            6.0,
            "low_information below this contrast: the largest R/G/B standard deviation in "
            "8-bit levels at 64 px (default: {default})",
            minimum=0,
            maximum=255,
            per_file=True,
            metavar="LEVELS",
        ),
        Threshold(
            "low_information_share",
            0.05,
            "a dataset line when a class holds at least 3 low_information files and this "
            "share of its files (default: {default})",
            minimum=0,
            maximum=1,
            metavar="F",
        ),
        Threshold(
            "dark_below",
            0.25,
            "dark when the brightest 1%% of the picture is below this brightness, 0..1 "
            "(default: {default}; 0 turns it off)",
            minimum=0,
            maximum=1,
            per_file=True,
            metavar="F",
        ),
        Threshold(
            "overexposed_above",
            0.65,
            "overexposed when the darkest 5%% of the picture is above this brightness, 0..1 "
            "(default: {default}; 1 turns it off)",
            minimum=0,
            maximum=1,
            per_file=True,
            metavar="F",
        ),
        Threshold(
            "blurry_below",
            0.25,
            "blurry below this focus: Laplacian RMS / luma standard deviation at 64 px "
            "(default: {default}; 0 turns it off)",
            minimum=0,
            maximum=100,
            per_file=True,
            metavar="F",
        ),
        Threshold(
            "grayscale_spread",
            3.0,
            "grayscale_in_color at or below this colour spread, the 99th percentile of "
            "|Cb-128| and |Cr-128| in 8-bit levels (default: {default})",
            minimum=0,
            maximum=255,
            metavar="LEVELS",
        ),
        Threshold(
            "min_color_share",
            0.5,
            "grayscale_in_color only where at least this share of usable images is in "
            "colour (default: {default})",
            minimum=0,
            maximum=1,
            metavar="F",
        ),
    )
    summary_path = ()  # its two keys go to the top level of summary.json
    summary_fields = ("channel_stats", "image_quality")

    def check_file(self, facts, found, thresholds):
        return check_file(facts, list(found), thresholds)

    def check_dataset(self, table, thresholds):
        return check_dataset(table, thresholds)
