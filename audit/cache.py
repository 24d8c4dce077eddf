"""An embedded SQLite cache of per-file records, so a re-scan decodes only what changed.

Keyed by the file's absolute path, and valid only while its size, modification time and
inode are unchanged and the settings that shape a record (tool version, per-file
thresholds) are the same. Changed and new files are inspected again; rows of files that
are gone are dropped at the end of a complete scan.

Crash safety: SQLite in WAL mode, records committed in small batches. A scan killed at
any moment (even SIGKILL) leaves a consistent database holding every record committed
before it; the next scan reuses those and inspects the rest.

The default cache lives next to the reports (`<out>/.scan-cache.sqlite`), never inside
the dataset.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

from audit import __version__
from audit.dataset import FileEntry
from audit.records import FileRecord

DEFAULT_NAME = ".scan-cache.sqlite"
COMMIT_EVERY = 256  # records per transaction
COMMIT_SECONDS = 2.0
SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    settings TEXT NOT NULL,
    scan INTEGER NOT NULL,
    record BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def settings_key(thresholds) -> str:
    """What a cached record depends on besides the file: version and per-file thresholds."""
    relevant = (__version__, thresholds.max_pixels, thresholds.min_side, thresholds.max_aspect_ratio)
    return hashlib.sha256(repr(relevant).encode()).hexdigest()[:16]


class ScanCache:
    """Lookups and stores for one scan; use as a context manager."""

    def __init__(self, path: str | os.PathLike, thresholds):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.settings = settings_key(thresholds)
        self.connection = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=NORMAL")
        self.connection.executescript(SCHEMA)
        # Claim a scan number at once, so a scan killed later cannot share it with the next one.
        self.connection.execute("BEGIN IMMEDIATE")
        row = self.connection.execute("SELECT value FROM meta WHERE key = 'last_scan'").fetchone()
        self.scan_id = (int(row[0]) if row else 0) + 1
        self.connection.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_scan', ?)", (str(self.scan_id),))
        self.connection.execute("COMMIT")
        self.hits = self.misses = 0
        self._pending = 0
        self._last_commit = time.monotonic()
        self.connection.execute("BEGIN")

    def __enter__(self) -> "ScanCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def key_of(entry: FileEntry) -> tuple[int, int, int] | None:
        """(size, mtime_ns, inode) of the file, or None when it cannot be stat'ed."""
        try:
            info = os.stat(entry.path)
        except OSError:
            return None
        return info.st_size, info.st_mtime_ns, info.st_ino

    def lookup(self, entry: FileEntry, key: tuple[int, int, int] | None) -> FileRecord | None:
        """The cached record for an unchanged file (relabelled for this scan), else None."""
        if key is None:
            self.misses += 1
            return None
        row = self.connection.execute(
            "SELECT size, mtime_ns, inode, settings, record FROM files WHERE path = ?", (entry.path,)
        ).fetchone()
        if row is None or tuple(row[:3]) != key or row[3] != self.settings:
            self.misses += 1
            return None
        self.hits += 1
        self.connection.execute("UPDATE files SET scan = ? WHERE path = ?", (self.scan_id, entry.path))
        self._maybe_commit()
        record = pickle.loads(row[4])
        # The same file may sit under another label or split in this scan's layout.
        return replace(record, path=entry.relpath, label=entry.label, split=entry.split)

    def store(self, entry: FileEntry, key: tuple[int, int, int] | None, record: FileRecord) -> None:
        """Remember a freshly inspected file (not if it could not be stat'ed, or changed
        between the stat and the read: the record would not match the key)."""
        if key is None or (record.bytes, record.mtime_ns) != key[:2]:
            return
        self.connection.execute(
            "INSERT OR REPLACE INTO files (path, size, mtime_ns, inode, settings, scan, record) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (entry.path, *key, self.settings, self.scan_id, pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)),
        )
        self._maybe_commit()

    def _maybe_commit(self) -> None:
        self._pending += 1
        if self._pending >= COMMIT_EVERY or time.monotonic() - self._last_commit > COMMIT_SECONDS:
            self.connection.execute("COMMIT")
            self.connection.execute("BEGIN")
            self._pending = 0
            self._last_commit = time.monotonic()

    def finish(self, roots: list[Path]) -> int:
        """After a complete scan: drop rows of files under these roots that were not seen."""
        removed = 0
        for root in roots:
            prefix = str(root).rstrip(os.sep) + os.sep
            cursor = self.connection.execute(
                "DELETE FROM files WHERE scan != ? AND substr(path, 1, ?) = ?", (self.scan_id, len(prefix), prefix)
            )
            removed += cursor.rowcount
        self.connection.execute("COMMIT")
        self.connection.execute("BEGIN")
        return removed

    def close(self) -> None:
        if self.connection is not None:
            self.connection.execute("COMMIT")
            self.connection.close()
            self.connection = None
