"""Compact per-file columns for the dataset-level checks.

Full records stream to disk as they arrive (audit.scan); what the dataset checks need
stays in memory here as typed arrays: about 60 bytes per file, so a million files
take about 60 MB instead of a million Python objects.
"""

from __future__ import annotations

from array import array

import numpy as np

from audit.records import FileRecord


class ScanTable:
    """Columns in row order: label index, size, usability, hashes."""

    def __init__(self, classes: tuple[str, ...]):
        self.classes = classes
        self._label_index = {name: index for index, name in enumerate(classes)}
        self._label = array("i")
        self._width = array("i")
        self._height = array("i")
        self._usable = bytearray()
        self._phash = array("Q")
        self._has_phash = bytearray()
        self._sha256 = bytearray()

    def append(self, record: FileRecord) -> None:
        """Add one record's columns (in the order rows are written)."""
        self._label.append(self._label_index[record.label])
        self._width.append(record.width if record.width is not None else -1)
        self._height.append(record.height if record.height is not None else -1)
        self._usable.append(record.usable)
        self._phash.append(int(record.phash, 16) if record.phash else 0)
        self._has_phash.append(bool(record.phash))
        self._sha256 += bytes.fromhex(record.sha256) if record.sha256 else bytes(32)

    def __len__(self) -> int:
        return len(self._label)

    @property
    def label(self) -> np.ndarray:
        return np.frombuffer(self._label, dtype=np.int32) if len(self) else np.zeros(0, np.int32)

    @property
    def width(self) -> np.ndarray:
        return np.frombuffer(self._width, dtype=np.int32) if len(self) else np.zeros(0, np.int32)

    @property
    def height(self) -> np.ndarray:
        return np.frombuffer(self._height, dtype=np.int32) if len(self) else np.zeros(0, np.int32)

    @property
    def usable(self) -> np.ndarray:
        return np.frombuffer(self._usable, dtype=np.bool_).copy() if len(self) else np.zeros(0, bool)

    @property
    def phash(self) -> np.ndarray:
        return np.frombuffer(self._phash, dtype=np.uint64) if len(self) else np.zeros(0, np.uint64)

    @property
    def has_phash(self) -> np.ndarray:
        return np.frombuffer(self._has_phash, dtype=np.bool_) if len(self) else np.zeros(0, bool)

    @property
    def sha256(self) -> np.ndarray:
        """32-byte digests as a (n, 32) uint8 array (zeros where unreadable)."""
        return np.frombuffer(self._sha256, dtype=np.uint8).reshape(-1, 32)

    def mark_unusable(self, rows) -> None:
        """Record that a dataset check found an error in these rows."""
        for row in rows:
            self._usable[row] = False
