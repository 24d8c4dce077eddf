"""An embedded SQLite cache of per-file records, so a re-scan decodes only what changed.

Keyed by the file's absolute path, and valid only while its size, modification time and
inode are unchanged and the settings that shape a record are the same: the tool version,
the per-file checks with their versions, and their thresholds, as the checks declare
them (audit.checks.base.Registry.settings_key). Changed and new files are inspected
again; rows of files that are gone are dropped at the end of a complete scan.

Crash safety: SQLite in WAL mode, records committed in small batches. A scan killed at
any moment (even SIGKILL) leaves a consistent database holding every record committed
before it; the next scan reuses those and inspects the rest.

The default cache lives next to the reports (`<out>/.scan-cache.sqlite`), never inside
the dataset.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

from audit.dataset import FileEntry, file_key
from audit.records import FileRecord

DEFAULT_NAME = ".scan-cache.sqlite"
SCHEMA_VERSION = "3"  # a cache of another version is dropped and rebuilt
COMMIT_EVERY = 256  # records per transaction
COMMIT_SECONDS = 2.0
SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    settings TEXT NOT NULL,
    record BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS thumbnails (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    uri TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
LOOKUP_CHUNK = 500  # paths per SELECT ... IN (...)


class ScanCache:
    """Lookups and stores for one scan; use as a context manager."""

    def __init__(self, path: str | os.PathLike, settings: str):
        """settings: what records depend on besides the file (Registry.settings_key);
        a record stored under other settings is a miss."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.connection = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._closed = False
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=NORMAL")
        self._open_schema()
        # Paths seen by this scan, in a temporary table: rows of files not seen are dropped
        # at the end.
        self.connection.execute("CREATE TEMP TABLE seen (path TEXT PRIMARY KEY)")
        self.hits = self.misses = 0
        self._pending = 0
        self._last_commit = time.monotonic()
        self.connection.execute("BEGIN")

    def _open_schema(self) -> None:
        self.connection.execute("BEGIN IMMEDIATE")
        self.connection.execute(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        row = self.connection.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None or row[0] != SCHEMA_VERSION:
            self.connection.execute("DROP TABLE IF EXISTS files")
            self.connection.execute("DROP TABLE IF EXISTS thumbnails")
        for statement in SCHEMA.strip().split(";"):
            if statement.strip():
                self.connection.execute(statement)
        self.connection.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,)
        )
        self.connection.execute("COMMIT")

    def __enter__(self) -> "ScanCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def key_of(entry: FileEntry) -> tuple[int, int, int] | None:
        """(size, mtime_ns, inode) of the file, or None when it cannot be stat'ed."""
        return file_key(entry.path)

    def lookup_many(self, entries: list[FileEntry], keys: list) -> list[FileRecord | None]:
        """Cached records for unchanged files (relabelled for this scan), None for the others."""
        self.connection.executemany(
            "INSERT OR IGNORE INTO seen (path) VALUES (?)", [(entry.path,) for entry in entries]
        )
        rows: dict[str, tuple] = {}
        paths = [entry.path for entry, key in zip(entries, keys, strict=True) if key is not None]
        for start in range(0, len(paths), LOOKUP_CHUNK):
            chunk = paths[start : start + LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in self.connection.execute(
                "SELECT path, size, mtime_ns, inode, settings, record FROM files "
                f"WHERE path IN ({marks})",
                chunk,
            ):
                rows[row[0]] = row
        found: list[FileRecord | None] = []
        for entry, key in zip(entries, keys, strict=True):
            row = rows.get(entry.path)
            if key is None or row is None or tuple(row[1:4]) != key or row[4] != self.settings:
                self.misses += 1
                found.append(None)
                continue
            self.hits += 1
            record = pickle.loads(row[5])
            # The same file may sit under another label or split in this scan's layout.
            if (record.path, record.label, record.split) != (
                entry.relpath,
                entry.label,
                entry.split,
            ):
                record = replace(record, path=entry.relpath, label=entry.label, split=entry.split)
            found.append(record)
        return found

    def thumbnail(self, path: str, key: tuple[int, int, int] | None) -> str | None:
        """A cached thumbnail data URI ('' when the file had none), or None when not cached."""
        if key is None:
            return None
        row = self.connection.execute(
            "SELECT size, mtime_ns, inode, uri FROM thumbnails WHERE path = ?", (path,)
        ).fetchone()
        return row[3] if row is not None and tuple(row[:3]) == key else None

    def store_thumbnail(self, path: str, key: tuple[int, int, int] | None, uri: str | None) -> None:
        if key is not None:
            self.connection.execute(
                "INSERT OR REPLACE INTO thumbnails (path, size, mtime_ns, inode, uri) "
                "VALUES (?, ?, ?, ?, ?)",
                (path, *key, uri or ""),
            )
            self._maybe_commit()

    def store(self, entry: FileEntry, key: tuple[int, int, int] | None, record: FileRecord) -> None:
        """Remember a freshly inspected file (not if it could not be stat'ed, or changed
        between the stat and the read: the record would not match the key)."""
        if key is None or (record.bytes, record.mtime_ns) != key[:2]:
            return
        self.connection.execute(
            "INSERT OR REPLACE INTO files (path, size, mtime_ns, inode, settings, record) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                entry.path,
                *key,
                self.settings,
                pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL),
            ),
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
            for table in ("files", "thumbnails"):
                cursor = self.connection.execute(
                    f"DELETE FROM {table} WHERE substr(path, 1, ?) = ? "
                    "AND path NOT IN (SELECT path FROM seen)",
                    (len(prefix), prefix),
                )
                removed += cursor.rowcount if table == "files" else 0
        self.connection.execute("COMMIT")
        self.connection.execute("BEGIN")
        return removed

    def close(self) -> None:
        if not self._closed:
            self.connection.execute("COMMIT")
            self.connection.close()
            self._closed = True
