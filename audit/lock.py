"""One writer per output folder: scan, check and quarantine take the folder's lock.

The lock is an advisory `flock` on `<folder>/.image-audit.lock`, held for the whole
command and released by the kernel when the process ends, even on SIGKILL: a stale
lock file never blocks anyone. The file records who holds it (process id, command and
start time), so a second command refuses at once with a message naming the holder
instead of failing later (SQLite's "database is locked", interleaved reports).

Within one thread the lock is re-entrant: `check` holds it and calls `scan` on the
same folder.
"""

from __future__ import annotations

import fcntl
import os
import stat
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from audit.errors import CannotWrite, UserError

LOCK_NAME = ".image-audit.lock"

_held: dict[tuple[str, int], int] = {}  # (resolved folder, thread) -> re-entry depth
_guard = threading.Lock()


class FolderBusy(UserError):
    """Another process is writing into the same output folder."""


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return "another process"
    return text or "another process"


@contextmanager
def folder_lock(folder: Path, command: str | None = None) -> Iterator[None]:
    """Hold the output folder's lock (creating the folder); FolderBusy when it is held,
    CannotWrite when the folder cannot be made or written."""
    # Re-entrant per thread: `check` locks and calls `scan` in one thread, while two
    # threads of one process (the app) scanning into one folder exclude each other.
    key = (str(folder.resolve()), threading.get_ident())
    with _guard:
        reentered = key in _held
        if reentered:
            _held[key] += 1
    if reentered:
        try:
            yield
        finally:
            with _guard:
                _held[key] -= 1
        return

    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Never through a symlink (a lock "file" linked into a dataset would be truncated),
        # and only a regular file.
        descriptor = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as error:
        raise CannotWrite(
            f"cannot write the lock file {folder / LOCK_NAME}: {error.strerror or error}; "
            "remove it if it is a link, or choose another folder"
        ) from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise CannotWrite(f"{folder / LOCK_NAME} is not a regular file; remove it")
    handle = os.fdopen(descriptor, "r+", encoding="utf-8")
    path = folder / LOCK_NAME
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusy(
                f"{folder} is in use by {_holder(path)}; wait for it to finish or choose "
                "another output folder"
            ) from None
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        handle.seek(0)
        handle.truncate()
        what = f"{command}, from {_command_line()}" if command else _command_line()
        handle.write(f"process {os.getpid()} ({what}, since {started})\n")
        handle.flush()
        with _guard:
            _held[key] = 1
        try:
            yield
        finally:
            with _guard:
                _held.pop(key, None)
            handle.seek(0)
            handle.truncate()
    finally:
        handle.close()  # releases the flock


def _command_line() -> str:
    program = Path(sys.argv[0] or "python")
    shown = f"python -m {program.parent.name}" if program.name == "__main__.py" else program.name
    return " ".join([shown, *sys.argv[1:]])[:200]
