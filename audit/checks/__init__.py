"""The registry of checks: one entry point runs them all in a fixed order.

Per-file checks run in the worker processes right after a file is inspected; they
see only that file. Dataset checks run once all files are in, on compact columns
(audit.table.ScanTable), and may add findings to any file. Order matters: a file that
a dataset check marks as an error is no longer usable for the checks after it
(balance counts usable files last).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from audit.checks import balance, duplicates, integrity, resolution
from audit.inspect import Facts
from audit.records import Finding, merge_findings

# Pillow's own default warning threshold (Image.MAX_IMAGE_PIXELS), about 89.5 megapixels.
DEFAULT_MAX_PIXELS = 89_478_485


@dataclass(frozen=True)
class Thresholds:
    """Every limit a check applies; all of them are written to summary.json."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    min_side: int = 32
    max_aspect_ratio: float = 3.0
    outlier_mad_k: float = 3.5
    outlier_min_factor: float = 2.0
    max_imbalance: float = 3.0
    near_radius: int = duplicates.DEFAULT_RADIUS

    def __post_init__(self) -> None:
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be a positive pixel count, got {self.max_pixels}")
        if self.min_side < 0:
            raise ValueError(
                f"min_side must be 0 (off) or a positive side in pixels, got {self.min_side}"
            )
        if self.max_aspect_ratio < 1:
            raise ValueError(
                f"max_aspect_ratio must be >= 1 (long side / short side), got {self.max_aspect_ratio}"
            )
        if self.outlier_mad_k <= 0 or self.outlier_min_factor < 1:
            raise ValueError("outlier_mad_k must be > 0 and outlier_min_factor >= 1")
        if not 0 <= self.near_radius <= 31:
            raise ValueError(
                f"near_radius must be 0 to 31 bits of the 64-bit pHash, got {self.near_radius}"
            )
        if self.max_imbalance < 1:
            raise ValueError(
                f"max_imbalance must be >= 1 (largest / smallest class), got {self.max_imbalance}"
            )

    def as_dict(self) -> dict:
        return asdict(self)


def check_file(facts: Facts, thresholds: Thresholds) -> tuple[Finding, ...]:
    """All per-file findings for one inspected file, one per code."""
    found = integrity.check_file(facts, thresholds.max_pixels)
    found += resolution.check_file(facts, found, thresholds)
    return merge_findings(found)


# Dataset checks in the order they run; each takes (table, thresholds) and returns a
# DatasetResult. Duplicates come before balance so label conflicts are not counted.
DATASET_CHECKS = (
    ("resolution", resolution.check_dataset),
    ("duplicates", duplicates.check_dataset),
    ("balance", balance.check_dataset),
)
