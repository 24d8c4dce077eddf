"""An embedded SQLite cache of per-file records, so a re-scan decodes only what changed.

Keyed by the file's absolute path (as bytes, so names that are not UTF-8 fit), and valid
only while its size, modification time and inode are unchanged and the settings that
shape a record are the same: the tool version, the per-file checks with their versions,
and their thresholds, as the checks declare them (audit.checks.base.Registry.settings_key).
Changed and new files are inspected again; rows of files that are gone are dropped at
the end of a complete scan.

Only a cache. Records are typed columns and JSON, never pickles: whoever can write the
file can at worst make unchanged files report wrong values, never run code, and a row
that does not decode is a miss. The file carries an application id and a schema version
in its SQLite header. What the cache does with what it finds at its path:

* nothing, an empty file, an empty database: it becomes the cache;
* this tool's cache: used; of another schema version, rebuilt empty;
* a cache of the versions before (no application id; exactly the tables files, meta and
  thumbnails of their shapes; records pickled): rebuilt empty, its records never read;
* anything else (another database, a text file, a folder, a damaged database): when it
  carries the cache's own name (`.scan-cache.sqlite`, the default place) it is renamed
  aside as `<name>.corrupt-<UTC time>`, never deleted, and the scan runs cold with a
  warning; under any other name it is refused (UnusableCache, exit 2) and left untouched.
  A damaged file with this tool's application id is renamed aside under any name.

Crash safety: SQLite in WAL mode, records written in short transactions of a few hundred
(or every 2 s). A scan killed at any moment (even SIGKILL) leaves a consistent database
holding every record committed before it; the next scan reuses those and inspects the rest.

Sharing: one cache may serve several scans at once (`--cache PATH` for several datasets).
Writers wait for each other up to a busy timeout; a cache still locked after it, or one
that fails in the middle of a scan, is left for the rest of that scan with a warning (the
report is complete either way; a damaged one is renamed aside).

Rehash: each record remembers when its file was last read in full (`verified_ns`). With
`rehash_older_than` the cache serves only records verified more recently; older ones come
back from lookup_many as Recheck, the file is read again, and store() reports a checksum
that changed under unchanged size, modification time and inode as `changed_in_place`.

The default cache lives next to the reports (`<out>/.scan-cache.sqlite`), never inside
the dataset.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
import time
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

from audit.dataset import FileEntry, file_key
from audit.errors import UnusableCache
from audit.hashing import ZOOMS
from audit.measures import Measures
from audit.records import FileRecord, Finding, merge_findings

DEFAULT_NAME = ".scan-cache.sqlite"
APPLICATION_ID = 0x49414331  # b"IAC1": image-audit cache, in the SQLite header (offset 68)
# PRAGMA user_version; versions 1-3 had no application id and pickles; 5 added the
# quality measures (a version-4 cache is rebuilt empty: its records lack them).
SCHEMA_VERSION = 5
COMMIT_EVERY = 256  # records per write transaction
COMMIT_SECONDS = 2.0
BUSY_TIMEOUT_S = 20.0  # how long a writer waits for another scan's transaction
LOOKUP_CHUNK = 500  # paths per SELECT ... IN (...)
MAX_SIDE = 2**31 - 1  # what the scan table holds (int32); inspection gives no larger side

SQLITE_MAGIC = b"SQLite format 3\x00"
LEGACY_TABLES = frozenset({"files", "thumbnails", "meta"})
LEGACY_FILE_KEY = ("path", "size", "mtime_ns", "inode", "settings")
FILE_COLUMNS = (
    "path",
    "size",
    "mtime_ns",
    "inode",
    "settings",
    "verified_ns",
    "format",
    "mode",
    "width",
    "height",
    "sha256",
    "phash",
    "phash_zoom",
    "findings",
    "measures",
)
THUMBNAIL_COLUMNS = ("path", "size", "mtime_ns", "inode", "uri")
SCHEMA = (
    """CREATE TABLE files (
        path BLOB PRIMARY KEY,          -- os.fsencode(absolute path)
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL,         -- st_ino as a signed 64-bit value
        settings TEXT NOT NULL,         -- Registry.settings_key
        verified_ns INTEGER NOT NULL,   -- when the file was last read in full
        format TEXT NOT NULL,
        mode TEXT NOT NULL,
        width INTEGER,
        height INTEGER,
        sha256 TEXT NOT NULL,
        phash INTEGER,                  -- the unsigned 64-bit pHash as a signed value
        phash_zoom TEXT NOT NULL,       -- JSON list of unsigned pHashes
        findings TEXT NOT NULL,         -- JSON list of [code, reason]
        measures TEXT NOT NULL          -- JSON list in audit.measures.FIELDS order, or []
    )""",
    """CREATE TABLE thumbnails (
        path BLOB PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        uri TEXT NOT NULL               -- a data:image/jpeg;base64 URI, '' for none
    )""",
)

_SHA256 = re.compile(r"[0-9a-f]{64}")
_THUMBNAIL_URI = re.compile(r"data:image/jpeg;base64,[A-Za-z0-9+/]*={0,2}")
_UINT64 = 1 << 64


@dataclass(frozen=True, slots=True)
class Recheck:
    """A cached file to read again (rehash): the checksum the cache holds for it."""

    sha256: str


class ScanCache:
    """Lookups and stores for one scan; use as a context manager.

    Raises UnusableCache (exit 2) when path holds something that is not this tool's
    cache under another name than DEFAULT_NAME, or cannot be written. Every other
    problem becomes a line in `warnings` and the scan goes on (without the cache, or
    with a new one when the old file was renamed aside).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        settings: str,
        rehash_older_than: float | None = None,
    ):
        """settings: what records depend on besides the file (Registry.settings_key);
        a record stored under other settings is a miss. rehash_older_than: seconds; a
        record whose file was last read longer ago is not served but re-read (0: all)."""
        self.path = Path(path)
        self.settings = settings
        self.warnings: list[str] = []
        self.hits = self.misses = self.rehashed = 0
        self.used = False  # whether the file opened as a cache at all
        self._rehash_before_ns: int | None = None
        if rehash_older_than is not None:
            self._rehash_before_ns = time.time_ns() - int(rehash_older_than * 1e9)
        self._files: list[tuple] = []
        self._thumbnails: list[tuple] = []
        self._stale_thumbnails: list[tuple[bytes]] = []
        self._last_commit = time.monotonic()
        self.connection: sqlite3.Connection | None = None
        self._open()

    # ------------------------------------------------------------------ opening

    def _open(self) -> None:
        for _ in range(2):  # a second time after a damaged file was renamed aside
            verdict, why = _inspect(self.path)
            if verdict in ("other", "damaged"):
                self._set_aside_or_refuse(verdict, why)
                continue
            _probe_writable(self.path)
            try:
                connection = sqlite3.connect(
                    self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None
                )
            except sqlite3.Error as error:
                self._cannot_open(error)
                return
            try:
                verdict, why = _initialise(connection)
            except sqlite3.Error as error:
                _close_quietly(connection)
                if _kind(error) == "damaged":
                    self._set_aside_or_refuse(
                        "damaged" if verdict == "ours" else "other", str(error)
                    )
                    continue
                self._cannot_open(error)
                return
            if verdict != "ours":
                _close_quietly(connection)
                self._set_aside_or_refuse(verdict, why)
                continue
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                # Paths seen by this scan: rows of files not seen are dropped at the end.
                connection.execute("CREATE TEMP TABLE seen (path BLOB PRIMARY KEY)")
            except sqlite3.Error as error:
                _close_quietly(connection)
                self._cannot_open(error)
                return
            self.connection = connection
            self.used = True
            return
        self.warnings.append(
            f"the cache {self.path} was replaced while it was opened; this scan goes on without it"
        )

    def _set_aside_or_refuse(self, verdict: str, why: str) -> None:
        """Rename what is at the path aside (our name or our damaged file), else refuse."""
        if verdict != "damaged" and self.path.name != DEFAULT_NAME:
            raise UnusableCache(
                f"--cache {self.path} is not a cache of this tool ({why}); it was left as it "
                f"is. Choose another path (default: DIR/{DEFAULT_NAME}) or --no-cache."
            )
        try:
            target = set_aside(self.path)
        except OSError as error:
            raise UnusableCache(
                f"the cache {self.path} cannot be used ({why}) and could not be renamed "
                f"aside ({error.strerror or error}); move it away or use --no-cache"
            ) from None
        self.warnings.append(
            f"the cache {self.path} could not be used ({why}); renamed it to {target.name} "
            "and started a new one (every file is read again this time)"
        )

    def _cannot_open(self, error: sqlite3.Error) -> None:
        if _kind(error) == "unwritable":
            raise UnusableCache(
                f"cannot write the cache {self.path} ({error}); choose another --cache, "
                "or --no-cache"
            ) from None
        self.warnings.append(_trouble(self.path, "opening it", error))

    # ------------------------------------------------------------------ the scan's calls

    def __enter__(self) -> ScanCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def key_of(entry: FileEntry) -> tuple[int, int, int] | None:
        """(size, mtime_ns, inode) of the file, or None when it cannot be stat'ed."""
        return file_key(entry.path)

    def lookup_many(
        self, entries: list[FileEntry], keys: list
    ) -> list[FileRecord | Recheck | None]:
        """For each entry: the cached record of an unchanged file (relabelled for this
        scan), a Recheck when that record is due for a rehash, or None (inspect it)."""
        rows = self._rows_of(entries, keys)
        found: list[FileRecord | Recheck | None] = []
        for entry, key in zip(entries, keys, strict=True):
            row = rows.get(os.fsencode(entry.path))
            record = self._record_of(entry, key, row) if row is not None else None
            if row is None or record is None:
                self.misses += 1
                found.append(None)
            elif self._rehash_before_ns is not None and row[4] <= self._rehash_before_ns:
                self.rehashed += 1
                found.append(Recheck(record.sha256))
            else:
                self.hits += 1
                found.append(record)
        return found

    def count_fresh(self, entries: list[FileEntry], keys: list) -> int:
        """How many entries the cache would serve as they are (same key and settings, not
        due for a rehash), without decoding their records: what a reuse of the previous
        reports needs to know (audit.reuse). Counted as hits when all are fresh."""
        if self.connection is None or self._rehash_before_ns is not None:
            return 0
        wanted = {
            os.fsencode(entry.path): key
            for entry, key in zip(entries, keys, strict=True)
            if key is not None
        }
        paths = list(wanted)
        fresh = 0
        try:
            for start in range(0, len(paths), LOOKUP_CHUNK):
                chunk = paths[start : start + LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                for path, size, mtime_ns, inode, settings, verified_ns in self.connection.execute(
                    "SELECT path, size, mtime_ns, inode, settings, verified_ns FROM files "
                    f"WHERE path IN ({marks})",
                    chunk,
                ):
                    fresh += (
                        settings == self.settings
                        and _is_int(verified_ns)
                        and _key_of_row(size, mtime_ns, inode) == wanted.get(path)
                    )
        except sqlite3.Error as error:
            self._give_up("looking records up", error)
            return 0
        return fresh

    def count_served(self, files: int) -> None:
        """Count files served without a lookup_many (a reuse of the previous reports)."""
        self.hits += files

    def store(
        self,
        entry: FileEntry,
        key: tuple[int, int, int] | None,
        record: FileRecord,
        recheck: Recheck | None = None,
    ) -> FileRecord:
        """Remember a freshly inspected file; return its record as this scan reports it.

        Not stored when the file could not be stat'ed or changed between the stat and
        the read (the record would not match the key). After a Recheck, a checksum that
        differs from the cached one under the same size, mtime and inode adds the
        finding changed_in_place to the returned record (not to the stored one: the scan
        that detects it reports it).
        """
        if key is None or (record.bytes, record.mtime_ns) != key[:2]:
            return record
        path = os.fsencode(entry.path)
        if self.connection is not None:
            self._files.append(_row_of(path, key, self.settings, record))
        changed = (
            recheck is not None
            and bool(recheck.sha256)
            and bool(record.sha256)
            and record.sha256 != recheck.sha256
        )
        if changed and recheck is not None:
            if self.connection is not None:
                self._stale_thumbnails.append((path,))
            finding = Finding(
                "changed_in_place",
                f"its sha256 changed from {recheck.sha256[:16]} to {record.sha256[:16]} "
                "(first 16 hex digits) while its size, modification time and inode stayed "
                "the same: bit rot, or a tool that rewrote it and restored its time",
            )
            record = replace(record, findings=merge_findings(record.findings, (finding,)))
        self._maybe_flush()
        return record

    def thumbnail(self, path: str, key: tuple[int, int, int] | None) -> str | None:
        """A cached thumbnail data URI ('' when the file had none), or None when not cached."""
        if key is None or self.connection is None:
            return None
        try:
            row = self.connection.execute(
                "SELECT size, mtime_ns, inode, uri FROM thumbnails WHERE path = ?",
                (os.fsencode(path),),
            ).fetchone()
        except sqlite3.Error as error:
            self._give_up("reading a thumbnail", error)
            return None
        if row is None or _key_of_row(row[0], row[1], row[2]) != key:
            return None
        uri = row[3]
        if not isinstance(uri, str) or (uri and not _THUMBNAIL_URI.fullmatch(uri)):
            return None
        return uri

    def store_thumbnail(self, path: str, key: tuple[int, int, int] | None, uri: str | None) -> None:
        if key is not None and self.connection is not None:
            self._thumbnails.append((os.fsencode(path), key[0], key[1], _signed(key[2]), uri or ""))
            self._maybe_flush()

    def finish(self, roots: list[Path]) -> int:
        """After a complete scan: drop rows of files under these roots that were not seen."""
        self._flush()
        if self.connection is None:
            return 0
        removed = 0
        try:
            self.connection.execute("BEGIN IMMEDIATE")
            for root in roots:
                prefix = os.fsencode(str(root).rstrip(os.sep) + os.sep)
                for table in ("files", "thumbnails"):
                    cursor = self.connection.execute(
                        f"DELETE FROM {table} WHERE substr(path, 1, ?) = ? "
                        "AND path NOT IN (SELECT path FROM seen)",
                        (len(prefix), prefix),
                    )
                    removed += cursor.rowcount if table == "files" else 0
            self.connection.execute("COMMIT")
        except sqlite3.Error as error:
            self._give_up("dropping the rows of deleted files", error)
            return 0
        return removed

    def close(self) -> None:
        self._flush()
        if self.connection is not None:
            _close_quietly(self.connection)
            self.connection = None

    # ------------------------------------------------------------------ internals

    def _rows_of(self, entries: list[FileEntry], keys: list) -> dict[bytes, tuple]:
        if self.connection is None:
            return {}
        rows: dict[bytes, tuple] = {}
        try:
            self.connection.execute("BEGIN")  # the temp table only: no lock on the cache
            self.connection.executemany(
                "INSERT OR IGNORE INTO seen (path) VALUES (?)",
                [(os.fsencode(entry.path),) for entry in entries],
            )
            self.connection.execute("COMMIT")
            paths = [
                os.fsencode(entry.path)
                for entry, key in zip(entries, keys, strict=True)
                if key is not None
            ]
            for start in range(0, len(paths), LOOKUP_CHUNK):
                chunk = paths[start : start + LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                for row in self.connection.execute(
                    f"SELECT {', '.join(FILE_COLUMNS)} FROM files WHERE path IN ({marks})",
                    chunk,
                ):
                    rows[row[0]] = row[1:]
        except sqlite3.Error as error:
            self._give_up("looking records up", error)
            return {}
        return rows

    def _record_of(self, entry: FileEntry, key, row: tuple) -> FileRecord | None:
        """The record a row holds for entry, or None: changed file, other settings, or a
        row that does not decode (a miss, never an error)."""
        size, mtime_ns, inode, settings, verified_ns = row[:5]
        if key is None or _key_of_row(size, mtime_ns, inode) != key or settings != self.settings:
            return None
        if not _is_int(verified_ns):
            return None
        try:
            return _decode(entry, size, mtime_ns, row[5:])
        except (ValueError, TypeError, OverflowError, RecursionError):
            return None

    def _maybe_flush(self) -> None:
        pending = len(self._files) + len(self._thumbnails)
        if pending >= COMMIT_EVERY or time.monotonic() - self._last_commit > COMMIT_SECONDS:
            self._flush()

    def _flush(self) -> None:
        files, thumbnails, stale = self._files, self._thumbnails, self._stale_thumbnails
        self._files, self._thumbnails, self._stale_thumbnails = [], [], []
        self._last_commit = time.monotonic()
        if self.connection is None or not (files or thumbnails or stale):
            return
        marks = ", ".join("?" * len(FILE_COLUMNS))
        try:
            self.connection.execute("BEGIN IMMEDIATE")
            self.connection.executemany(
                f"INSERT OR REPLACE INTO files ({', '.join(FILE_COLUMNS)}) VALUES ({marks})",
                files,
            )
            self.connection.executemany("DELETE FROM thumbnails WHERE path = ?", stale)
            self.connection.executemany(
                "INSERT OR REPLACE INTO thumbnails (path, size, mtime_ns, inode, uri) "
                "VALUES (?, ?, ?, ?, ?)",
                thumbnails,
            )
            self.connection.execute("COMMIT")
        except sqlite3.Error as error:
            self._give_up("storing records", error)

    def _give_up(self, action: str, error: sqlite3.Error) -> None:
        """Leave the cache for the rest of this scan, saying why (renamed aside if damaged)."""
        if self.connection is not None:
            _close_quietly(self.connection)
            self.connection = None
        self._files, self._thumbnails, self._stale_thumbnails = [], [], []
        line = _trouble(self.path, action, error)
        if _kind(error) == "damaged":
            try:
                line += f"; renamed it to {set_aside(self.path).name}"
            except OSError as rename_error:
                line += f"; it could not be renamed aside ({rename_error.strerror})"
        self.warnings.append(line)


# ---------------------------------------------------------------------- rows


def _signed(value: int) -> int:
    """An unsigned 64-bit value as the signed one SQLite can hold."""
    return value - _UINT64 if value >= _UINT64 >> 1 else value


def _unsigned(value: int) -> int:
    return value + _UINT64 if value < 0 else value


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _key_of_row(size, mtime_ns, inode) -> tuple[int, int, int] | None:
    if not (_is_int(size) and _is_int(mtime_ns) and _is_int(inode)):
        return None
    return size, mtime_ns, _unsigned(inode)


def _row_of(path: bytes, key: tuple[int, int, int], settings: str, record: FileRecord) -> tuple:
    return (
        path,
        key[0],
        key[1],
        _signed(key[2]),
        settings,
        time.time_ns(),
        record.format,
        record.mode,
        record.width,
        record.height,
        record.sha256,
        None if record.phash is None else _signed(int(record.phash)),
        json.dumps([int(value) for value in record.phash_zoom]),
        json.dumps([[finding.code, finding.reason] for finding in record.findings]),
        json.dumps(list(record.measures), allow_nan=False),
    )


def _decode(entry: FileEntry, size: int, mtime_ns: int, fields: tuple) -> FileRecord:
    """A FileRecord from the stored columns; ValueError or TypeError for anything that
    is not what store() writes."""
    format_, mode, width, height, sha256, phash, zoom_text, findings_text, measures_text = fields
    if not (isinstance(format_, str) and isinstance(mode, str)):
        raise TypeError("format and mode are text")
    for side in (width, height):
        if side is not None and not (_is_int(side) and 0 <= side <= MAX_SIDE):
            raise TypeError("a side is an integer from 0 to 2**31 - 1, or NULL")
    if not (isinstance(sha256, str) and (sha256 == "" or _SHA256.fullmatch(sha256))):
        raise ValueError("sha256 is 64 lowercase hex digits or empty")
    if phash is not None and not _is_int(phash):
        raise TypeError("phash is an integer or NULL")
    if not all(isinstance(text, str) for text in (zoom_text, findings_text, measures_text)):
        raise TypeError("phash_zoom, findings and measures are JSON text")
    zoom = json.loads(zoom_text)
    if not (
        isinstance(zoom, list)
        and len(zoom) in (0, len(ZOOMS))
        and all(_is_int(value) and 0 <= value < _UINT64 for value in zoom)
    ):
        raise ValueError("phash_zoom is a list of unsigned 64-bit hashes, one per zoom")
    pairs = json.loads(findings_text)
    if not isinstance(pairs, list):
        raise ValueError("findings is a list")
    findings = []
    for pair in pairs:
        if not (
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
        ):
            raise ValueError("a finding is [code, reason]")
        findings.append(Finding(pair[0], pair[1]))  # ValueError for an unknown code
    quality = json.loads(measures_text)
    if not isinstance(quality, list):
        raise ValueError("measures is a list")
    if quality:
        quality = list(Measures.from_tuple(quality).as_tuple())  # ValueError, TypeError
    elif phash is not None:
        # Every decoded file is measured (audit.inspect); a decoded record without its
        # measures was not written by this version.
        raise ValueError("a decoded file's record holds its measures")
    return FileRecord(
        path=entry.relpath,
        label=entry.label,
        bytes=size,
        format=format_,
        mode=mode,
        width=width,
        height=height,
        sha256=sha256,
        phash=None if phash is None else _unsigned(phash),
        mtime_ns=mtime_ns,
        findings=tuple(findings),
        split=entry.split,
        phash_zoom=tuple(zoom),
        measures=tuple(quality),
    )


# ---------------------------------------------------------------------- the file itself


def _inspect(path: Path) -> tuple[str, str]:
    """What is at path, found without changing it: ('new' | 'legacy' | 'ours' | 'other' |
    'damaged', why). 'damaged' only for a file with this tool's application id."""
    try:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            info = os.stat(path)
    except FileNotFoundError:
        if os.path.lexists(path):
            return "other", "a broken symbolic link"
        return "new", ""
    except OSError as error:
        raise UnusableCache(
            f"cannot read the cache {path} ({error.strerror or error}); choose another "
            "--cache, or --no-cache"
        ) from None
    if stat.S_ISDIR(info.st_mode):
        return "other", "a folder"
    if not stat.S_ISREG(info.st_mode):
        return "other", "not a regular file"
    if info.st_size == 0:
        return "new", ""
    try:
        with open(path, "rb") as handle:
            header = handle.read(100)
    except OSError as error:
        raise UnusableCache(
            f"cannot read the cache {path} ({error.strerror or error}); choose another "
            "--cache, or --no-cache"
        ) from None
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        return "other", "not an SQLite database"
    application_id = int.from_bytes(header[68:72], "big", signed=True)
    if application_id == APPLICATION_ID:
        if _cut_short(path, header, info.st_size):
            return "damaged", "shorter than its header says: truncated"
        return "ours", ""
    if application_id != 0:
        return "other", f"an SQLite database of another application (id {application_id:#x})"
    return _inspect_tables(path)


def _cut_short(path: Path, header: bytes, size: int) -> bool:
    """Whether the file is shorter than the page count in its header (valid only when
    the change counter matches 'version-valid-for', and no write-ahead log holds pages)."""
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    valid = pages > 0 and header[24:28] == header[92:96]
    wal = path.with_name(path.name + "-wal")
    if not valid or (wal.exists() and wal.stat().st_size > 0):
        return False
    return size < pages * page_size


def _inspect_tables(path: Path) -> tuple[str, str]:
    """An SQLite database without application id: empty, the previous version's cache,
    or another database; read through an immutable, read-only connection (no locks, no
    journal, nothing written)."""
    uri = f"file:{quote(os.fsencode(path))}?mode=ro&immutable=1"
    try:
        connection = sqlite3.connect(uri, uri=True)
        try:
            tables = _tables(connection)
            legacy = _is_legacy(connection, tables)
        finally:
            connection.close()
    except sqlite3.Error as error:
        return "other", f"an SQLite database that cannot be read: {error}"
    if not tables:
        return "new", ""
    if legacy:
        return "legacy", ""
    return "other", f"an SQLite database with tables {', '.join(sorted(tables))}"


def _tables(connection: sqlite3.Connection) -> set[str]:
    return {
        name
        for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not str(name).startswith("sqlite_")
    }


def _is_legacy(connection: sqlite3.Connection, tables: set[str]) -> bool:
    """The cache of the versions before the application id, by its exact shape: tables
    files (path, size, mtime_ns, inode, settings, ..., record: pickles, never read), meta
    (key, value) and, from the second version on, thumbnails."""
    if not ({"files", "meta"} <= tables <= LEGACY_TABLES):
        return False
    files = _columns(connection, "files")
    return (
        files[:5] == LEGACY_FILE_KEY
        and "record" in files
        and _columns(connection, "meta") == ("key", "value")
        and ("thumbnails" not in tables or _columns(connection, "thumbnails") == THUMBNAIL_COLUMNS)
    )


def _columns(connection: sqlite3.Connection, table: str) -> tuple[str, ...]:
    return tuple(row[1] for row in connection.execute(f"PRAGMA table_info({table})"))


def _initialise(connection: sqlite3.Connection) -> tuple[str, str]:
    """Under a write lock, look again (a write-ahead log may hold what the file did not
    show) and make the database this tool's cache of SCHEMA_VERSION: ('ours', '') when
    it is, else (verdict, why) with nothing written."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        application_id = connection.execute("PRAGMA application_id").fetchone()[0]
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        tables = _tables(connection)
        if application_id == APPLICATION_ID:
            rebuild = version != SCHEMA_VERSION or not _shape_is_current(connection)
        elif application_id == 0 and (not tables or _is_legacy(connection, tables)):
            rebuild = True
        else:
            connection.execute("ROLLBACK")
            why = (
                f"an SQLite database of another application (id {application_id:#x})"
                if application_id
                else f"an SQLite database with tables {', '.join(sorted(tables))}"
            )
            return "other", why
        if rebuild:
            for table in sorted(tables & LEGACY_TABLES):
                connection.execute(f"DROP TABLE {table}")
            for statement in SCHEMA:
                connection.execute(statement)
            connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            try:
                connection.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        raise
    return "ours", ""


def _shape_is_current(connection: sqlite3.Connection) -> bool:
    return (
        _columns(connection, "files") == FILE_COLUMNS
        and _columns(connection, "thumbnails") == THUMBNAIL_COLUMNS
    )


def _probe_writable(path: Path) -> None:
    """UnusableCache when the cache cannot be created or written (opening for append
    changes nothing in an existing file)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab"):
            pass
    except OSError as error:
        raise UnusableCache(
            f"cannot write the cache {path} ({error.strerror or error}); choose another "
            "--cache, or --no-cache"
        ) from None


def set_aside(path: Path) -> Path:
    """Rename path (and its -wal, -shm, -journal files) to `<name>.corrupt-<UTC time>`;
    never overwrites, never deletes. Returns the new path."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    number = 1
    while True:
        target = path.with_name(
            f"{path.name}.corrupt-{stamp}" + (f"-{number}" if number > 1 else "")
        )
        if not any(
            os.path.lexists(target.with_name(target.name + suffix))
            for suffix in ("", "-wal", "-shm", "-journal")
        ):
            break
        number += 1
    os.rename(path, target)
    for suffix in ("-wal", "-shm", "-journal"):
        side = path.with_name(path.name + suffix)
        if os.path.lexists(side):
            os.rename(side, target.with_name(target.name + suffix))
    return target


def _kind(error: sqlite3.Error) -> str:
    """'busy', 'damaged', 'unwritable' or 'other', from SQLite's result code."""
    code = getattr(error, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(error).lower()
    if primary in (5, 6) or "locked" in text or "busy" in text:  # SQLITE_BUSY, _LOCKED
        return "busy"
    if primary in (11, 26) or "malformed" in text or "not a database" in text:  # CORRUPT, NOTADB
        return "damaged"
    if primary in (3, 8, 14, 23):  # SQLITE_PERM, _READONLY, _CANTOPEN, _AUTH
        return "unwritable"
    return "other"


def _trouble(path: Path, action: str, error: sqlite3.Error) -> str:
    if _kind(error) == "busy":
        return (
            f"the cache {path} stayed locked by another process for {BUSY_TIMEOUT_S:g} s "
            f"while {action}; this scan goes on without it (its report is complete)"
        )
    return f"the cache {path} failed while {action} ({error}); this scan goes on without it"


def _close_quietly(connection: sqlite3.Connection) -> None:
    try:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
    except sqlite3.Error:
        pass
    try:
        connection.close()
    except sqlite3.Error:
        pass
