"""Scans that run in the background of an app session: they survive reruns and page
switches, can be cancelled, and end with the session.

Streamlit runs a page's script again on every click, and interrupts the run in progress
to do so: a scan made inside the script was cancelled, silently, by any click. Here the
scan runs in a thread of its own; the page only reads its progress. The thread calls
`audit.scan.scan`, which takes the report folder's lock (a second scan of the same
dataset, from this session, another session or the CLI, is refused with the holder's
name) and stops its worker processes before it returns, whatever way it returns.

A scan stops between two files when Cancel is pressed or when its session has ended
(Streamlit ends a session whose browser has been gone for `server.disconnectedSessionTTL`
seconds, 120 by default): the progress callback raises ScanCancelled, the scan unwinds,
its workers are stopped and waited for, and the lock is released. The report of a
previous scan of the same dataset stays as it was (reports are written only at the end).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from audit.dataset import discover
from audit.errors import UserError
from audit.scan import scan
from ui.safety import ROOTS_VARIABLE, OutsideAllowedRoots, allowed_roots, checked


class ScanCancelled(Exception):
    """Raised inside the scan's progress callback to stop it between two files."""


@dataclass
class ScanJob:
    """One background scan and what the page shows of it."""

    root: Path
    out: Path
    started: float = field(default_factory=time.monotonic)
    phase: str = "starting"
    done: int = 0
    total: int = 0
    report_dir: Path | None = None  # set when the report is written
    error: str | None = None  # a refusal or failure, one line
    cancelled: str | None = None  # why it stopped early
    warnings: list[str] = field(default_factory=list)  # the scan's one-line warnings
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def cancel(self, why: str = "cancelled") -> None:
        """Ask the scan to stop between two files."""
        self.cancelled = self.cancelled or why
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the scan's thread; whether it has ended."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running


def session_watch() -> Callable[[], bool]:
    """A function telling whether the current Streamlit session still lives: False once
    its browser has been gone for longer than server.disconnectedSessionTTL (the time
    after which Streamlit itself may drop the session). Always True outside a served app
    (AppTest, a plain script)."""
    from streamlit import config
    from streamlit.runtime import Runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    context = get_script_run_ctx()
    if context is None or not Runtime.exists():
        return lambda: True
    runtime, session_id = Runtime.instance(), context.session_id
    grace = float(config.get_option("server.disconnectedSessionTTL"))
    gone_since: list[float] = []

    def alive() -> bool:
        if runtime.is_active_session(session_id):
            gone_since.clear()
            return True
        if not gone_since:
            gone_since.append(time.monotonic())
        return time.monotonic() - gone_since[0] < grace

    return alive


def start_scan(
    root: Path, out: Path, alive: Callable[[], bool] = lambda: True, jobs: int | None = None
) -> ScanJob:
    """Start scanning root into out in a background thread and return its job at once."""
    job = ScanJob(root, out)

    def checkpoint() -> None:
        if not job._cancel.is_set() and not alive():
            job.cancel("the session ended")
        if job._cancel.is_set():
            raise ScanCancelled(job.cancelled)

    def progress(done: int, total: int) -> None:
        job.done, job.total = done, total
        checkpoint()

    def run() -> None:
        try:
            job.phase = "checking paths"
            outside_allowed_roots(root, checkpoint)
            job.phase = "scanning"
            result = scan(root, out, progress=progress, jobs=jobs)
            job.report_dir, job.warnings = result.out, result.warnings
            job.phase = "done"
        except ScanCancelled:
            job.phase = "cancelled"
        except UserError as error:
            job.error, job.phase = str(error), "refused"
        except Exception as error:  # noqa: BLE001 - shown on the page, never lost in a thread
            logging.getLogger(__name__).exception("the background scan of %s failed", root)
            job.error, job.phase = f"{type(error).__name__}: {error}", "failed"

    job._thread = threading.Thread(target=run, name=f"scan {root.name}", daemon=True)
    job._thread.start()
    return job


def outside_allowed_roots(root: Path, checkpoint: Callable[[], None] = lambda: None) -> None:
    """OutsideAllowedRoots naming the first class folder, folder link or file link under
    root that leads outside the allowed roots: the app reads nothing there. The walk is
    the scan's own (audit.dataset), so exactly the files the scan would read are checked.
    checkpoint is called every 500 files (Cancel stops the check too)."""
    layout = discover(root)
    for folder in layout.folders:
        _inside(Path(os.path.realpath(folder.path)), folder.prefix)
    for tree in layout.real_folders:  # folder links met deeper in the walk
        _inside(tree, str(tree))
    for number, entry in enumerate(layout.iter_files(), start=1):
        if os.path.islink(entry.path):  # its folder is checked above: only a link leads out
            _inside(Path(os.path.realpath(entry.path)), entry.relpath)
        if number % 500 == 0:
            checkpoint()


def _inside(real: Path, shown: str) -> None:
    try:
        checked(real)
    except OutsideAllowedRoots:
        raise OutsideAllowedRoots(
            f"{shown} leads to {real}, outside the allowed roots "
            f"({', '.join(map(str, allowed_roots()))}); nothing was scanned. Set "
            f"{ROOTS_VARIABLE} to allow it."
        ) from None
