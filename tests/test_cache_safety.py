"""The cache is only a cache: it never runs code, never eats a database it did not make,
survives damage and sharing, and re-reads files on request (--rehash) to find bit rot."""

from __future__ import annotations

import argparse
import builtins
import csv
import os
import pickle
import sqlite3
import threading
from pathlib import Path

import pytest

from audit import __version__, argtypes, cache, cli
from audit.cache import APPLICATION_ID, DEFAULT_NAME, Recheck, ScanCache
from audit.checks import REGISTRY
from audit.dataset import FileEntry, file_key
from audit.errors import UnusableCache
from audit.hashing import ZOOMS
from audit.records import FileRecord, Finding
from audit.reuse import STATE_NAME
from audit.scan import ScanResult, scan
from tests.conftest import jpeg, write_dataset

SETTINGS = REGISTRY.settings_key(REGISTRY.thresholds(), __version__)


def scan_cli(root: Path, out: Path, *extra: str) -> int:
    return cli.main(["scan", str(root), "--out", str(out), "--quiet", "--jobs", "1", *extra])


def rows(out: Path, name: str = "images.csv") -> list[dict]:
    with open(out / name, newline="") as handle:
        return list(csv.DictReader(handle))


def summary_cache(out: Path) -> dict:
    import json

    return json.loads((out / "summary.json").read_text())["cache"]


class Payload:
    """Unpickling this runs a shell command that creates a file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# ------------------------------------------------------------------ not our file: refused


def foreign_database(path: Path, kind: str) -> bytes:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        connection.executemany(
            "INSERT INTO customers (name) VALUES (?)", [(f"c{i}",) for i in range(50)]
        )
        if kind == "lookalike":  # tables named like the old cache's must not make it ours
            connection.execute("DROP TABLE customers")
            connection.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
            connection.execute("INSERT INTO meta VALUES ('schema', 'customers')")
            connection.execute("CREATE TABLE files (path TEXT, record BLOB)")
        if kind == "other application":
            connection.execute("PRAGMA application_id = 305419896")
    connection.close()
    return path.read_bytes()


@pytest.mark.parametrize("kind", ["plain", "lookalike", "other application"])
def test_a_foreign_database_is_refused_and_left_byte_identical(
    small_dataset, tmp_path, capsys, kind
):
    database = tmp_path / "crm.sqlite"
    before = foreign_database(database, kind)
    assert scan_cli(small_dataset, tmp_path / "out", "--cache", str(database)) == 2
    error = capsys.readouterr().err
    assert "is not a cache of this tool" in error and "left as it is" in error
    assert database.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("crm")) == [
        "crm.sqlite"
    ]  # no -wal, -shm or -journal left beside it
    with sqlite3.connect(database) as connection:
        tables = {
            n for (n,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    connection.close()
    assert tables == ({"meta", "files"} if kind == "lookalike" else {"customers"})


@pytest.mark.parametrize("kind", ["text file", "folder", "broken link"])
def test_a_text_file_folder_or_broken_link_is_refused_and_left_alone(
    small_dataset, tmp_path, capsys, kind
):
    target = tmp_path / "notes.txt"
    if kind == "text file":
        target.write_text("shopping list\n" * 20)
    elif kind == "folder":
        target.mkdir()
        (target / "keep.txt").write_text("keep")
    else:
        target.symlink_to(tmp_path / "nowhere")
    assert scan_cli(small_dataset, tmp_path / "out", "--cache", str(target)) == 2
    assert "is not a cache of this tool" in capsys.readouterr().err
    if kind == "text file":
        assert target.read_text() == "shopping list\n" * 20
    elif kind == "folder":
        assert os.listdir(target) == ["keep.txt"]
    else:
        assert target.is_symlink() and not (tmp_path / "nowhere").exists()


def test_an_unwritable_place_is_refused(small_dataset, tmp_path, monkeypatch, capsys):
    """Simulated (tests run as root): opening the cache for writing raises EACCES."""
    place = tmp_path / "readonly" / "cache.sqlite"
    real_open = builtins.open

    def refusing_open(file, mode="r", *args, **kwargs):
        if Path(str(file)) == place and any(flag in mode for flag in "aw+x"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing_open)
    assert scan_cli(small_dataset, tmp_path / "out", "--cache", str(place)) == 2
    assert "cannot write the cache" in capsys.readouterr().err
    assert not place.exists()


def test_an_uncreatable_folder_is_refused(small_dataset, tmp_path, monkeypatch, capsys):
    real_mkdir = Path.mkdir

    def refusing_mkdir(self, *args, **kwargs):
        if self == tmp_path / "nope":
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refusing_mkdir)
    cache_path = tmp_path / "nope" / "cache.sqlite"
    assert scan_cli(small_dataset, tmp_path / "out", "--cache", str(cache_path)) == 2
    assert "Permission denied" in capsys.readouterr().err


def test_our_own_new_and_empty_files_are_accepted(small_dataset, tmp_path):
    empty = tmp_path / "empty.sqlite"
    empty.touch()  # what mktemp leaves
    assert scan_cli(small_dataset, tmp_path / "out", "--cache", str(empty)) == 0
    with sqlite3.connect(empty) as connection:
        assert connection.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    connection.close()
    assert scan_cli(small_dataset, tmp_path / "out", "--cache", str(empty)) == 0
    assert summary_cache(tmp_path / "out")["hits"] == 12


# ------------------------------------------------------------------ damaged: renamed aside


def truncated_copy(database: Path) -> None:
    data = database.read_bytes()
    assert len(data) >= 4 * 4096, "the test needs a cache of several pages"
    database.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_default_cache_is_renamed_aside_and_the_scan_runs_cold(
    small_dataset, tmp_path, capsys, damage
):
    out = tmp_path / "out"
    assert scan_cli(small_dataset, out) == 0
    expected = (out / "images.csv").read_bytes()
    database = out / DEFAULT_NAME
    if damage == "garbage":
        database.write_bytes(b"\x00garbage\xff" * 500)
    else:
        truncated_copy(database)
    damaged = database.read_bytes()
    capsys.readouterr()

    assert scan_cli(small_dataset, out) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("warning: the cache ")
    assert "renamed it to .scan-cache.sqlite.corrupt-" in warnings[0]
    aside = [p for p in out.iterdir() if p.name.startswith(DEFAULT_NAME + ".corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes() == damaged  # kept, never deleted
    assert (out / "images.csv").read_bytes() == expected
    assert summary_cache(out)["misses"] == 12  # cold
    assert scan_cli(small_dataset, out) == 0
    assert summary_cache(out)["hits"] == 12  # and the new cache works


def test_a_damaged_cache_of_ours_under_another_name_is_renamed_too(small_dataset, tmp_path, capsys):
    database = tmp_path / "shared.sqlite"
    assert scan_cli(small_dataset, tmp_path / "out", "--cache", str(database)) == 0
    truncated_copy(database)  # still carries our application id
    assert scan_cli(small_dataset, tmp_path / "out", "--cache", str(database)) == 0
    assert "renamed it to shared.sqlite.corrupt-" in capsys.readouterr().err


def test_damage_found_mid_scan_leaves_the_cache_with_a_warning(small_dataset, tmp_path):
    database = tmp_path / "c.sqlite"
    entries = [FileEntry(str(p), f"cat/{p.name}", "cat") for p in (small_dataset / "cat").iterdir()]
    keys = [file_key(entry.path) for entry in entries]
    store = ScanCache(database, SETTINGS)

    class Damaged:
        in_transaction = False

        def execute(self, *args):
            raise sqlite3.DatabaseError("database disk image is malformed")

        def close(self):
            pass

    store.connection.close()
    store.connection = Damaged()  # type: ignore[assignment]
    assert store.lookup_many(entries, keys) == [None] * len(entries)
    assert store.connection is None and len(store.warnings) == 1
    assert (
        "malformed" in store.warnings[0] and "renamed it to c.sqlite.corrupt-" in store.warnings[0]
    )
    store.close()


# ------------------------------------------------------------------ never unpickles


def plant_previous_version_cache(database: Path, root: Path, schema: str, marker: Path) -> None:
    """The cache of the versions before this one: pickled records, no application id; rows
    match the files as they are, so the old code would unpickle each of them."""
    with sqlite3.connect(database) as connection:
        connection.executescript(
            """
            CREATE TABLE files (path TEXT PRIMARY KEY, size INTEGER NOT NULL,
                mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, settings TEXT NOT NULL,
                record BLOB NOT NULL);
            CREATE TABLE thumbnails (path TEXT PRIMARY KEY, size INTEGER NOT NULL,
                mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, uri TEXT NOT NULL);
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            """
        )
        connection.execute("INSERT INTO meta VALUES ('schema', ?)", (schema,))
        payload = pickle.dumps(Payload(marker))
        for path in sorted(root.rglob("*.jpg")):
            connection.execute(
                "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?)",
                (str(path), *file_key(str(path)), SETTINGS, payload),
            )
    connection.close()


@pytest.mark.parametrize("schema", ["2", "3"])
@pytest.mark.parametrize("place", ["default", "explicit"])
def test_a_previous_version_cache_is_rebuilt_without_unpickling(
    small_dataset, tmp_path, schema, place
):
    marker = tmp_path / "payload-ran"
    out = tmp_path / "out"
    out.mkdir()
    database = out / DEFAULT_NAME if place == "default" else tmp_path / "old-cache.sqlite"
    plant_previous_version_cache(database, small_dataset, schema, marker)
    extra = ("--cache", str(database)) if place == "explicit" else ()

    code = scan_cli(small_dataset, out, *extra)
    assert not marker.exists()  # (the code before this test: created by the unpickling)
    assert code == 0
    assert summary_cache(out)["misses"] == 12 and summary_cache(out)["warnings"] == []
    scan(small_dataset, tmp_path / "reference", jobs=1, cache=False)
    assert (out / "images.csv").read_bytes() == (tmp_path / "reference" / "images.csv").read_bytes()
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert "meta" not in {
            name for (name,) in connection.execute("SELECT name FROM sqlite_master")
        }
    connection.close()
    assert not marker.exists()


def test_a_crafted_row_runs_nothing_and_is_a_miss(small_dataset, tmp_path):
    marker = tmp_path / "payload-ran"
    out = tmp_path / "out"
    assert scan_cli(small_dataset, out) == 0
    expected = (out / "images.csv").read_bytes()
    payload = pickle.dumps(Payload(marker))
    crafted = {
        "cat_0.jpg": ("findings", payload),  # a pickle where JSON belongs
        "cat_1.jpg": ("findings", '[["rm -rf /", "no such code"]]'),
        "cat_2.jpg": ("findings", "[" * 100_000),  # deep nesting
        "cat_3.jpg": ("phash_zoom", "[1, 2, 3, 4, 5]"),  # the wrong number of hashes
        "dog_0.jpg": ("sha256", "not a checksum"),
        "dog_1.jpg": ("width", "wide"),
        "dog_2.jpg": ("phash", 1.5),
        "dog_3.jpg": ("findings", '{"code": "truncated"}'),
    }
    with sqlite3.connect(out / DEFAULT_NAME) as connection:
        for name, (column, value) in crafted.items():
            label = name.split("_")[0]
            path = os.fsencode(str(small_dataset / label / name))
            assert (
                connection.execute(
                    f"UPDATE files SET {column} = ? WHERE path = ?", (value, path)
                ).rowcount
                == 1
            )
        connection.execute("UPDATE thumbnails SET uri = 'javascript:alert(1)'")
    connection.close()
    # The tree is unchanged: without this, the scan would reuse the reports whole and read
    # no record at all (audit.reuse). Here the records are to be read.
    (out / STATE_NAME).unlink()

    assert scan_cli(small_dataset, out) == 0
    assert not marker.exists()
    cache_summary = summary_cache(out)
    assert (cache_summary["hits"], cache_summary["misses"]) == (12 - len(crafted), len(crafted))
    assert (out / "images.csv").read_bytes() == expected
    assert "javascript:" not in (out / "report.html").read_text()
    assert scan_cli(small_dataset, out) == 0
    assert summary_cache(out)["hits"] == 12  # the crafted rows were replaced


# ------------------------------------------------------------------ round trips


def test_extreme_hashes_inodes_and_non_utf8_paths_round_trip(tmp_path):
    top = (1 << 64) - 1
    name = os.fsdecode(b"/data/cat/\xff\xfe caf\xe9.jpg")  # not UTF-8: surrogate escapes
    entries = [
        FileEntry(name, "cat/\udcff.jpg", "cat"),
        FileEntry("/data/cat/zero.jpg", "cat/zero.jpg", "cat", "train"),
        FileEntry("/data/cat/half.jpg", "cat/half.jpg", "cat"),
    ]
    rest = (0,) * (len(ZOOMS) - 1)  # one hash per variant view
    hashes = [(top, (top, *rest)), (0, (*rest, top)), (1 << 63, ())]
    keys = [(10, 5, top), (11, -7, 0), (12, 9, 1 << 63)]  # an inode past 2**63, mtime before 1970
    records = [
        FileRecord(
            entry.relpath,
            entry.label,
            key[0],
            "JPEG",
            "RGB",
            48,
            40,
            f"{index:064x}",
            phash,
            key[1],
            (Finding("missing_jfif_marker", "reason with 'quotes', \"more\" and ; | ,"),),
            entry.split,
            zoom,
            # A decoded record carries its quality measures (audit.measures.FIELDS order).
            (0.5, 0.1, 20.0, 0.7, None, 1.5, 2.0, 2.5, 1.0, 1.5, 2.0, 12),
        )
        for index, (entry, key, (phash, zoom)) in enumerate(zip(entries, keys, hashes, strict=True))
    ]
    database = tmp_path / "c.sqlite"
    with ScanCache(database, SETTINGS) as store:
        assert store.lookup_many(entries, keys) == [None, None, None]
        for entry, key, record in zip(entries, keys, records, strict=True):
            assert store.store(entry, key, record) == record
        store.store_thumbnail(name, keys[0], "data:image/jpeg;base64,AAAA")
    with ScanCache(database, SETTINGS) as store:
        assert store.lookup_many(entries, keys) == records
        assert store.thumbnail(name, keys[0]) == "data:image/jpeg;base64,AAAA"
        assert store.lookup_many(entries[:1], [(10, 5, top - 1)]) == [None]  # another inode
        assert store.finish([Path("/data/cat")]) == 0  # all three were seen
    with ScanCache(database, SETTINGS) as store:
        store.lookup_many(entries[1:], keys[1:])
        assert store.finish([Path("/data/cat")]) == 1  # the non-UTF-8 one was not seen
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM thumbnails").fetchone()[0] == 0
    connection.close()


# ------------------------------------------------------------------ sharing


def test_a_cache_locked_too_long_is_left_with_a_warning(small_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "BUSY_TIMEOUT_S", 0.2)
    database = tmp_path / "shared.sqlite"
    scan(small_dataset, tmp_path / "warm", jobs=1, cache=database)
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing, for longer than the timeout
    try:
        result = scan(small_dataset, tmp_path / "out", jobs=1, cache=database)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code() == 0 and result.summary["files"] == 12
    assert len(result.warnings) == 1 and "stayed locked" in result.warnings[0]
    assert result.summary["cache"]["used"] is False
    assert (tmp_path / "out" / "images.csv").read_bytes() == (
        tmp_path / "warm" / "images.csv"
    ).read_bytes()

    # Locked in the middle of a scan: the lookups so far stand, the rest are misses.
    entries = [FileEntry(str(p), f"cat/{p.name}", "cat") for p in (small_dataset / "cat").iterdir()]
    keys = [file_key(entry.path) for entry in entries]
    with ScanCache(database, SETTINGS) as store:
        assert all(isinstance(hit, FileRecord) for hit in store.lookup_many(entries, keys))
        holder = sqlite3.connect(database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            monkeypatch.setattr(cache, "COMMIT_EVERY", 1)
            record = store.lookup_many(entries[:1], keys[:1])[0]
            assert isinstance(record, FileRecord)
            store.store(entries[0], keys[0], record)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert store.connection is None and "stayed locked" in store.warnings[0]
        assert store.lookup_many(entries, keys) == [None] * len(entries)


def test_two_scans_of_different_folders_share_one_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "COMMIT_EVERY", 4)  # many short write transactions that meet
    roots = [
        write_dataset(
            tmp_path / f"d{n}", {f"c{i % 3}/{n}_{i}.jpg": jpeg(1000 * n + i) for i in range(90)}
        )
        for n in range(2)
    ]
    database = tmp_path / "shared.sqlite"
    results: dict[int, ScanResult] = {}

    def run(n: int) -> None:
        results[n] = scan(roots[n], tmp_path / f"out{n}", jobs=1, cache=database)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n in range(2):
        result = results[n]
        assert result.exit_code() == 0 and result.warnings == []
        assert result.summary["cache"]["misses"] == 90
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM files").fetchone()[0] == 180
    connection.close()
    again = scan(roots[0], tmp_path / "out0", jobs=1, cache=database)
    assert again.summary["cache"]["hits"] == 90


# ------------------------------------------------------------------ rehash


def rot_in_place(path: Path) -> None:
    """Change bytes inside the file, keeping its size, inode and modification time."""
    before = os.stat(path)
    with open(path, "r+b") as handle:
        handle.seek(before.st_size // 2)
        byte = handle.read(1)
        handle.seek(before.st_size // 2)
        handle.write(bytes([byte[0] ^ 0x55]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )


def changed_in_place(out: Path) -> list[str]:
    return [row["path"] for row in rows(out) if "changed_in_place" in row["issues"].split(";")]


def test_bit_rot_is_found_with_rehash_and_not_without(small_dataset, tmp_path, capsys):
    out = tmp_path / "out"
    assert scan_cli(small_dataset, out) == 0
    old_sha = {row["path"]: row["sha256"] for row in rows(out)}
    rot_in_place(small_dataset / "cat" / "cat_1.jpg")

    scan_cli(small_dataset, out)
    assert changed_in_place(out) == [] and summary_cache(out)["hits"] == 12  # invisible

    scan_cli(small_dataset, out, "--rehash")
    assert changed_in_place(out) == ["cat/cat_1.jpg"]
    cache_summary = summary_cache(out)
    assert (cache_summary["hits"], cache_summary["rehashed"]) == (0, 12)
    finding = [row for row in rows(out, "findings.csv") if row["code"] == "changed_in_place"]
    assert len(finding) == 1 and finding[0]["severity"] == "warning"
    new_sha = {row["path"]: row["sha256"] for row in rows(out)}["cat/cat_1.jpg"]
    assert old_sha["cat/cat_1.jpg"][:16] in finding[0]["reason"]
    assert new_sha[:16] in finding[0]["reason"] and new_sha != old_sha["cat/cat_1.jpg"]

    capsys.readouterr()
    scan_cli(small_dataset, out, "--rehash")  # reported by the scan that found it, once
    assert changed_in_place(out) == []
    assert capsys.readouterr().err == ""


def test_rehash_older_than_reads_only_records_verified_before_that(small_dataset, tmp_path):
    out = tmp_path / "out"
    assert scan(small_dataset, out, jobs=1).exit_code() == 0
    eight_days_ns = 8 * 86400 * 10**9
    aged = [small_dataset / "cat" / "cat_1.jpg", small_dataset / "dog" / "dog_2.jpg"]
    with sqlite3.connect(out / DEFAULT_NAME) as connection:
        for path in aged:
            connection.execute(
                "UPDATE files SET verified_ns = verified_ns - ? WHERE path = ?",
                (eight_days_ns, os.fsencode(str(path))),
            )
    connection.close()
    for path in [*aged, small_dataset / "fox" / "fox_0.jpg"]:  # fox_0 was verified just now
        rot_in_place(path)

    week = argtypes.age("7d")
    result = scan(small_dataset, out, jobs=1, rehash=week)
    assert (result.summary["cache"]["rehashed"], result.summary["cache"]["hits"]) == (2, 10)
    assert changed_in_place(out) == ["cat/cat_1.jpg", "dog/dog_2.jpg"]

    # Just verified: the same age now re-reads nothing; --rehash (age 0) re-reads all.
    assert scan(small_dataset, out, jobs=1, rehash=week).summary["cache"]["rehashed"] == 0
    assert scan(small_dataset, out, jobs=1, rehash=True).summary["cache"]["rehashed"] == 12
    assert changed_in_place(out) == ["fox/fox_0.jpg"]


def test_recheck_ignores_a_file_that_changed_between_stat_and_read(tmp_path):
    entry = FileEntry("/data/cat/a.jpg", "cat/a.jpg", "cat")
    record = FileRecord("cat/a.jpg", "cat", 10, "JPEG", "RGB", 1, 1, "b" * 64, 0, 6)
    with ScanCache(tmp_path / "c.sqlite", SETTINGS) as store:
        # The read saw another mtime than the stat: not "in place", and not stored.
        assert store.store(entry, (10, 5, 1), record, Recheck("a" * 64)) == record
        assert store.store(entry, (10, 6, 1), record, Recheck("")).codes == ()
        assert store.store(entry, (10, 6, 1), record, Recheck("a" * 64)).codes == (
            "changed_in_place",
        )


def test_rehash_options_parse_and_check_takes_them(small_dataset, tmp_path, capsys):
    parser = cli.build_parser()
    assert parser.parse_args(["check", "R", "--rehash-older-than", "7d"]).rehash_older_than == (
        7 * 86400
    )
    assert parser.parse_args(["check", "R", "--rehash"]).rehash is True
    for text, seconds in [
        ("90", 90),
        ("30m", 1800),
        ("12h", 43200),
        ("1.5d", 129600),
        ("2w", 1209600),
    ]:
        assert argtypes.age(text) == seconds
    for bad in ["", "x", "7x", "-1d", "nan", "infh", "1e308w"]:
        with pytest.raises(argparse.ArgumentTypeError):
            argtypes.age(bad)
    assert cli.main(["scan", str(small_dataset), "--rehash", "--rehash-older-than", "1d"]) == 2
    out = tmp_path / "out"
    assert scan_cli(small_dataset, out, "--rehash", "--no-cache") == 2
    assert "needs the cache" in capsys.readouterr().err
    with pytest.raises(UnusableCache):
        ScanCache(small_dataset / "cat" / "cat_0.jpg", SETTINGS)  # a JPEG is not a cache


def test_a_side_past_int32_in_a_cached_row_is_a_miss(small_dataset, tmp_path):
    """Attack: width 2**63 - 1 in a cached row crashed the scan (exit 3, OverflowError in
    the scan table). A side the inspection could never give is a miss."""
    out = tmp_path / "out"
    assert scan_cli(small_dataset, out) == 0
    with sqlite3.connect(out / DEFAULT_NAME) as connection:
        connection.execute("UPDATE files SET width = 9223372036854775807, height = 1")
    (out / STATE_NAME).unlink()  # read the records (an unchanged tree reuses the reports)
    assert scan_cli(small_dataset, out) == 0
    assert summary_cache(out)["misses"] == 12
