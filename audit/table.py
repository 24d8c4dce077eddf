"""Compact per-file columns for the dataset-level checks.

Full records stream to disk as they arrive (audit.scan); what the dataset checks need
stays in memory here as typed arrays plus the relative paths: about 150 bytes per
file, so a million files take about 150 MB instead of a million Python objects.
"""

from __future__ import annotations

from array import array

import numpy as np

from audit.hashing import ZOOMS
from audit.records import FileRecord

_NO_ZOOM = (0,) * len(ZOOMS)  # the crop-hash columns of a row without hashes


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

    def mark_unusable(self, rows) -> None:
        """Record that a dataset check found an error in these rows."""
        for row in rows:
            self._usable[row] = False
