"""Compact per-file columns for the dataset-level checks.

Full records stream to disk as they arrive (audit.scan); what the dataset checks need
stays in memory here as typed arrays plus the relative paths: about 150 bytes per
file, so a million files take about 150 MB instead of a million Python objects.
"""

from __future__ import annotations

from array import array

import numpy as np

from audit.hashing import ZOOMS
from audit.measures import FIELDS
from audit.records import FileRecord

_NO_ZOOM = (0,) * len(ZOOMS)  # the crop-hash columns of a row without hashes
_SPREAD = FIELDS.index("colour_spread")
_CONTRAST = FIELDS.index("contrast")
# The quality findings that make a file a worse keeper of a duplicate group (the codes of
# audit.checks.quality's per-file judgement; the per-file findings are on the record
# before any dataset check runs).
QUALITY_WARNINGS = frozenset({"low_information", "dark", "overexposed", "blurry"})
_SUMS = slice(FIELDS.index("sum_r"), FIELDS.index("pixels") + 1)  # 3 sums, 3 squares, pixels
_NO_SUMS = (0.0,) * 7


class ScanTable:
    """Columns in row order: label index, size, usability, hashes."""

    def __init__(self, root, classes: tuple[str, ...], splits: tuple[str, ...] = ("",)):
        self.root = root
        self.classes = classes
        self.splits = splits
        self._label_index = {name: index for index, name in enumerate(classes)}
        self._split_index = {name: index for index, name in enumerate(splits)}
        self.paths: list[str] = []  # relative to root, as in images.csv
        self._label = array("i")
        self._split = array("i")
        self._bytes = array("q")
        self._width = array("i")
        self._height = array("i")
        self._usable = bytearray()
        self._phash = array("Q")
        self._zoom = array("Q")  # len(ZOOMS) per row
        self._has_phash = bytearray()
        self._sha256 = bytearray()
        self._low_information = bytearray()
        self._measured = bytearray()
        self._colour_spread = array("d")  # NaN: not measured, or a one-channel file
        self._contrast = array("d")  # NaN: not measured
        self._quality_warning = bytearray()
        self._channel_sums = array("d")  # 7 per row: R, G, B sums, their squares, pixels

    def append(self, record: FileRecord) -> None:
        """Add one record's columns (in the order rows are written)."""
        self.paths.append(record.path)
        self._label.append(self._label_index[record.label])
        self._split.append(self._split_index[record.split])
        self._bytes.append(record.bytes)
        self._width.append(record.width if record.width is not None else -1)
        self._height.append(record.height if record.height is not None else -1)
        self._usable.append(record.usable)
        self._phash.append(record.phash if record.phash is not None else 0)
        self._has_phash.append(record.phash is not None)
        zoom = record.phash_zoom or _NO_ZOOM
        if len(zoom) != len(ZOOMS):
            raise ValueError(f"phash_zoom holds one hash per zoom in {ZOOMS}, got {zoom!r}")
        self._zoom.extend(zoom)
        self._sha256 += bytes.fromhex(record.sha256) if record.sha256 else bytes(32)
        codes = {finding.code for finding in record.findings}
        self._low_information.append("low_information" in codes)
        self._quality_warning.append(bool(codes & QUALITY_WARNINGS))
        quality = record.measures
        self._measured.append(bool(quality))
        spread = quality[_SPREAD] if quality else None
        self._colour_spread.append(float("nan") if spread is None else float(spread))
        self._contrast.append(float(quality[_CONTRAST]) if quality else float("nan"))
        self._channel_sums.extend(quality[_SUMS] if quality else _NO_SUMS)

    def __len__(self) -> int:
        return len(self._label)

    def _column(self, buffer, dtype, width: int = 1) -> np.ndarray:
        """A read-only view of one column (an empty array before the first row)."""
        if not len(self):
            return np.zeros((0, width) if width > 1 else 0, dtype)
        values = np.frombuffer(buffer, dtype=dtype)
        return values.reshape(-1, width) if width > 1 else values

    @property
    def label(self) -> np.ndarray:
        return self._column(self._label, np.int32)

    @property
    def split(self) -> np.ndarray:
        return self._column(self._split, np.int32)

    @property
    def bytes(self) -> np.ndarray:
        return self._column(self._bytes, np.int64)

    @property
    def width(self) -> np.ndarray:
        return self._column(self._width, np.int32)

    @property
    def height(self) -> np.ndarray:
        return self._column(self._height, np.int32)

    @property
    def usable(self) -> np.ndarray:
        return self._column(self._usable, np.bool_).copy()  # a copy: checks may combine it freely

    @property
    def phash(self) -> np.ndarray:
        return self._column(self._phash, np.uint64)

    @property
    def phash_zoom(self) -> np.ndarray:
        """(n, len(ZOOMS)) uint64: pHashes of the centred crops (zeros where undecodable)."""
        return self._column(self._zoom, np.uint64, len(ZOOMS))

    @property
    def has_phash(self) -> np.ndarray:
        return self._column(self._has_phash, np.bool_)

    @property
    def sha256(self) -> np.ndarray:
        """32-byte digests as a (n, 32) uint8 array (zeros where unreadable)."""
        return self._column(self._sha256, np.uint8, 32)

    @property
    def low_information(self) -> np.ndarray:
        """bool: the file got the low_information finding (near-constant pixels, whose
        pHash is noise); False for undecodable rows."""
        return self._column(self._low_information, np.bool_)

    @property
    def contrast(self) -> np.ndarray:
        """float64: the largest R, G or B standard deviation in 8-bit levels at the measures'
        view (audit.measures), for every measured file, errors included; NaN where not
        measured."""
        return self._column(self._contrast, np.float64)

    @property
    def quality_warning(self) -> np.ndarray:
        """bool: the file got a per-file quality warning (QUALITY_WARNINGS: blurry, dark,
        overexposed, low_information)."""
        return self._column(self._quality_warning, np.bool_)

    @property
    def measured(self) -> np.ndarray:
        """bool: the file's quality measures are known (audit.measures)."""
        return self._column(self._measured, np.bool_)

    @property
    def colour_spread(self) -> np.ndarray:
        """float64: the 99th percentile of max(R,G,B) - min(R,G,B) in 8-bit levels; NaN
        for a file that stores one channel or was not measured."""
        return self._column(self._colour_spread, np.float64)

    @property
    def channel_sums(self) -> np.ndarray:
        """(n, 7) float64: per-channel sums and sums of squares of the measured view at
        0..1 (R, G, B, R², G², B²) and its pixel count; zeros where not measured."""
        return self._column(self._channel_sums, np.float64, 7)

    def mark_unusable(self, rows) -> None:
        """Record that a dataset check found an error in these rows."""
        for row in rows:
            self._usable[row] = False
