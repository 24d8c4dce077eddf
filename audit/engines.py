"""Engines that run the per-file inspection: in this process, in a local process pool, or on Dask.

All engines share one interface: `submit(entries)` returns an iterator over the records
of those entries, in order; batches can be submitted ahead so workers never idle.
`close()` releases the workers. The per-file function (`inspect_entry`) is the same
everywhere, so results are identical whichever engine ran them.

A worker that dies (a decoder crashing on hostile bytes) does not end the scan. The
local engine replaces its pool; the batch that was running is retried one file at a
time in a single worker, so the file that kills it is the one blamed (an `unreadable`
row saying so). A batch that was merely waiting in the broken pool is resubmitted whole.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat
from multiprocessing.context import BaseContext
from typing import Protocol

from audit.checks import REGISTRY, Registry, Thresholds
from audit.dataset import FileEntry
from audit.errors import MissingDependency, UserError
from audit.inspect import Facts, inspect_files
from audit.records import FileRecord, Finding

CHUNK_SIZE = 64  # files per task sent to a worker
DASK_CHUNK_SIZE = 256
SCHEDULER_TIMEOUT = "10s"  # how long to try to reach --scheduler


class Engine(Protocol):
    """What the scan needs of an engine (audit.scan.inspect_all)."""

    def submit(self, entries: list[FileEntry]) -> Iterator[FileRecord]:
        """The records of entries, in order; may be called again before this one is drained."""
        ...

    def close(self) -> None:
        """Release the workers."""
        ...


@dataclass(frozen=True)
class FileWork:
    """What a worker does with one file: inspect it, then run the registry's per-file
    checks with these thresholds. Picklable, so it travels to the workers once."""

    thresholds: Thresholds
    registry: Registry = field(default=REGISTRY)


def inspect_entry(entry: FileEntry, work: FileWork) -> FileRecord:
    """Inspect one file and run the per-file checks; never raises for a bad file."""
    return inspect_chunk([entry], work)[0]


def inspect_chunk(entries: list[FileEntry], work: FileWork) -> list[FileRecord]:
    """Inspect a chunk of files (one worker task: their hashes and measures are computed
    together, audit.inspect.inspect_files) and run the per-file checks; never raises for
    a bad file."""
    limit = work.thresholds.max_pixels
    try:
        observed = inspect_files(entries, limit)
    except Exception:  # a bug in the chunk's shared work: each file alone, to blame one
        observed = []
        for entry in entries:
            try:
                observed += inspect_files([entry], limit)
            except Exception as error:
                observed.append(error)
    return [_record_of(entry, facts, work) for entry, facts in zip(entries, observed, strict=True)]


def _record_of(entry: FileEntry, facts: Facts | Exception, work: FileWork) -> FileRecord:
    try:
        if isinstance(facts, Exception):
            raise facts
        findings = work.registry.check_file(facts, work.thresholds)
    except Exception as error:  # a bug of ours must not cost the user their whole scan
        return failed_record(entry, f"audit could not inspect it ({type(error).__name__}: {error})")
    return FileRecord(
        path=facts.relpath,
        label=facts.label,
        bytes=facts.bytes,
        format=facts.format,
        mode=facts.mode,
        width=facts.width,
        height=facts.height,
        sha256=facts.sha256,
        phash=facts.phash,
        mtime_ns=facts.mtime_ns,
        findings=findings,
        split=entry.split,
        phash_zoom=facts.phash_zoom,
        measures=facts.measures.as_tuple() if facts.measures is not None else (),
    )


def failed_record(entry: FileEntry, reason: str) -> FileRecord:
    """The row for a file whose inspection itself failed."""
    return FileRecord(
        entry.relpath,
        entry.label,
        0,
        "",
        "",
        None,
        None,
        "",
        None,
        0,
        (Finding("unreadable", reason),),
        entry.split,
    )


class InlineEngine:
    """Everything in this process: no start-up cost, one core."""

    def __init__(self, work: FileWork):
        self.work = work

    def submit(self, entries: list[FileEntry]) -> Iterator[FileRecord]:
        return (
            record
            for chunk in _chunks(entries, CHUNK_SIZE)
            for record in inspect_chunk(chunk, self.work)
        )

    def close(self) -> None:
        pass


# ---------------------------------------------------------------- local process pool

_worker_work: FileWork | None = None


def _init_worker(work: FileWork, scan_process: tuple[int, str | None]) -> None:
    global _worker_work
    _worker_work = work
    # Ctrl-C is handled once, by the parent, which then stops the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with(*scan_process)
    _large_blocks_returned()


# glibc's mallopt options: allocations of at least this many bytes are memory-mapped;
# free memory at the heap's top is given back past this many.
_M_MMAP_THRESHOLD = -3
_M_TRIM_THRESHOLD = -1
_MMAP_FROM_BYTES = 4 << 20
_TRIM_FROM_BYTES = 8 << 20


def _large_blocks_returned() -> None:
    """Keep a worker's large decode buffers out of the heap, so freeing one gives it back.

    glibc raises its mmap threshold each time a mapped block is freed, so the next
    decodes come from the heap, where the small values a chunk keeps until its hashes and
    measures are computed (audit.inspect.inspect_files) pin them. Measured on 160 PNGs of
    4000x3000, jobs 2, peak memory of all processes: 278-279 MB with files inspected one by
    one, 341-356 MB in chunks, 283-335 MB in chunks with these fixed thresholds (mapped
    from 4 MB, the heap's top given back past 8 MB). A 1 MB threshold gave 278-281 MB but
    cost 0.2-0.36 ms of CPU per photo: the chunk's numpy arrays (2-3 MB) were mapped and
    unmapped, page by page faulted in, every time; at 4 MB the CPU is as without (0.75-0.78
    ms per photo, one process). Not glibc: nothing to do."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_FROM_BYTES)
        libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_FROM_BYTES)
    except (OSError, AttributeError):
        pass


# Linux prctl option: the signal a process gets when its parent thread ends.
_PR_SET_PDEATHSIG = 1
_WATCH_SECONDS = 0.5


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks) from /proc/PID/stat (fields 3 and 22), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()  # the name may hold ')'
        return fields[0].decode(), fields[19].decode()
    except (OSError, IndexError):
        return None


def process_identity(pid: int) -> tuple[int, str | None]:
    """(pid, start time) of a process: the start time tells a reused pid apart (Linux)."""
    stat_fields = _proc_stat(pid)
    return pid, None if stat_fields is None else stat_fields[1]


def _alive(pid: int, started: str | None) -> bool:
    if started is None:  # no /proc: the parent process id is the watch
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    stat_fields = _proc_stat(pid)
    # Gone, a zombie (ended, not yet reaped), or another process under a reused pid.
    return stat_fields is not None and stat_fields[0] != "Z" and stat_fields[1] == started


def _die_with(pid: int, started: str | None) -> None:
    """End this worker when the scan process ends, however it ends (even SIGKILL).

    The pool's workers are children of the forkserver, not of the scan: the kernel's
    parent-death signal covers the forkserver going away, and a watcher thread covers the
    scan itself (checked every _WATCH_SECONDS; a pid reused by another process does not
    fool it, the start time differs).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the watcher alone

    def watch() -> None:
        while _alive(pid, started):
            time.sleep(_WATCH_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="watch-scan-process", daemon=True).start()


def inspect_in_worker(entry: FileEntry) -> FileRecord:
    """The default per-file function of the local pool (its work set by the initializer)."""
    return inspect_chunk_in_worker([entry])[0]


def inspect_chunk_in_worker(entries: list[FileEntry]) -> list[FileRecord]:
    """The local pool's task: a chunk of files (see inspect_chunk)."""
    if _worker_work is None:
        raise RuntimeError("inspect_in_worker runs only in a pool started by start_pool")
    return inspect_chunk(entries, _worker_work)


def _each(worker: Callable[[FileEntry], FileRecord], entries: list[FileEntry]) -> list[FileRecord]:
    """A chunk task made of a per-file function (a pool given its own worker)."""
    return [worker(entry) for entry in entries]


def _chunks(entries: list[FileEntry], size: int) -> list[list[FileEntry]]:
    return [entries[start : start + size] for start in range(0, len(entries), size)]


class PoolEngine:
    """A local process pool, started on first use, replaced when a worker dies.

    worker: the module-level per-file function the workers run when a chunk's worker died
    (to find the file that kills it); chunk_worker: the one they run for each chunk (by
    default the chunk version of worker). Tests pass functions that crash on purpose.
    """

    def __init__(
        self,
        jobs: int,
        work: FileWork,
        worker: Callable[[FileEntry], FileRecord] | None = None,
        chunk_worker: Callable[[list[FileEntry]], list[FileRecord]] | None = None,
    ):
        self.jobs = jobs
        self.work = work
        self.worker = worker or inspect_in_worker
        self.chunk_worker = chunk_worker or (
            inspect_chunk_in_worker if worker is None else partial(_each, worker)
        )
        self._executor: ProcessPoolExecutor | None = None
        self._generation = 0  # bumped each time the pool is replaced
        self._no_pool = False  # workers could not start: inspect in this process
        self._closed = False
        _hold_forkserver()

    def submit(self, entries: list[FileEntry]) -> Iterator[FileRecord]:
        if not entries:
            return iter(())
        executor = self._pool()
        if executor is None:
            return InlineEngine(self.work).submit(entries)
        generation = self._generation
        chunks = executor.map(self.chunk_worker, _chunks(entries, CHUNK_SIZE))
        return self._results(entries, (record for chunk in chunks for record in chunk), generation)

    def map(self, function: Callable, items: list, *constants) -> Iterator:
        """function(item, *constants) for each item on the running workers, in order
        (the report's thumbnails); in this process when no pool was started."""
        if self._executor is None:
            return (function(item, *constants) for item in items)
        return self._executor.map(
            function, items, *(repeat(value) for value in constants), chunksize=8
        )

    def _results(self, entries, results, generation) -> Iterator[FileRecord]:
        done = 0
        try:
            for record in results:
                yield record
                done += 1
        except BrokenProcessPool:
            rest = entries[done:]
            if generation == self._generation:
                # This batch was running when the pool died: find the culprit file by file.
                self._replace_pool()
                yield from self._isolate(rest)
            else:
                # The pool was already replaced because of another batch: run again, whole.
                yield from self.submit(rest)

    def _pool(self) -> ProcessPoolExecutor | None:
        if self._executor is None and not self._no_pool:
            self._executor = start_pool(self.jobs, self.work)
            if self._executor is None:
                self._no_pool = True
        return self._executor

    def _replace_pool(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = None
        self._generation += 1

    def _isolate(self, entries: list[FileEntry]) -> Iterator[FileRecord]:
        executor = start_pool(1, self.work)
        try:
            for entry in entries:
                if executor is None:  # pragma: no cover - workers started a moment ago
                    yield inspect_entry(entry, self.work)
                    continue
                try:
                    yield executor.submit(self.worker, entry).result()
                except BrokenProcessPool:
                    executor.shutdown(wait=False, cancel_futures=True)
                    yield failed_record(entry, "inspecting it crashed the decoder process")
                    executor = start_pool(1, self.work)
        finally:
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers and wait for them: none outlives the scan."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if not self._closed:
            self._closed = True
            _release_forkserver()


_forkserver_users = 0
_forkserver_guard = threading.Lock()


def _hold_forkserver() -> None:
    global _forkserver_users
    with _forkserver_guard:
        _forkserver_users += 1


def _release_forkserver() -> None:
    """Stop multiprocessing's forkserver when the last pool of this process closes, so no
    helper process outlives a scan (the next pool starts a new one, in about 0.3 s)."""
    global _forkserver_users
    with _forkserver_guard:
        _forkserver_users -= 1
        if _forkserver_users:
            return
        from multiprocessing import forkserver

        # A private method (CPython's own tests use it; present since 3.8): without it the
        # server stops only when this process exits.
        stop = getattr(getattr(forkserver, "_forkserver", None), "_stop", None)
        if stop is not None:
            with contextlib.suppress(OSError, ChildProcessError):
                stop()


def start_pool(jobs: int, work: FileWork) -> ProcessPoolExecutor | None:
    """A worker pool that has run a trivial task, or None (with a warning) if none can start.

    Without this ping, a pool that cannot start at all (e.g. a __main__ that worker
    processes cannot re-import) would look like every file crashing its worker.
    """
    context: BaseContext
    if "forkserver" in multiprocessing.get_all_start_methods():
        # forkserver: workers never inherit the threads of a host such as Streamlit.
        server = multiprocessing.get_context("forkserver")
        # Import the worker's modules (numpy, Pillow) once in the server, not in every worker.
        server.set_forkserver_preload(["audit.engines"])
        context = server
    else:
        context = multiprocessing.get_context()
    executor = ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=context,
        initializer=_init_worker,
        initargs=(work, process_identity(os.getpid())),
    )
    try:
        executor.submit(os.getpid).result()
    except BrokenProcessPool as error:
        executor.shutdown(wait=False, cancel_futures=True)
        warnings.warn(
            f"worker processes cannot start ({error}); inspecting files in this process",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return executor


# ---------------------------------------------------------------- Dask


class DaskEngine:
    """Batches of files as Dask tasks, on a scheduler at `address` or a LocalCluster.

    Workers must see the same paths as this process (a shared filesystem, or the same
    machine) and have this package installed.
    """

    def __init__(self, jobs: int, work: FileWork, address: str | None = None):
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as error:
            raise MissingDependency(
                "--engine dask needs the dask extra: pip install 'image-audit[dask]'"
            ) from error
        self.work = work
        if address:
            self._cluster = None
            try:
                self.client = Client(address, timeout=SCHEDULER_TIMEOUT)
            except OSError as error:  # refused, unreachable, timed out
                raise UserError(
                    f"cannot reach the Dask scheduler {address} ({error}); is it running, and "
                    "is the address host:port of its scheduler (tcp://...)?"
                ) from None
        else:
            self._cluster = LocalCluster(
                n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None
            )
            self.client = Client(self._cluster)

    def submit(self, entries: list[FileEntry]) -> Iterator[FileRecord]:
        chunks = _chunks(entries, DASK_CHUNK_SIZE)
        futures = self.client.map(inspect_chunk, chunks, work=self.work, pure=False)
        return self._results(chunks, futures)

    def _results(self, chunks, futures) -> Iterator[FileRecord]:
        for chunk, future in zip(chunks, futures, strict=True):
            try:
                yield from future.result()
            except Exception:  # a worker died on this chunk: one task per file, blame the culprit
                for entry in chunk:
                    try:
                        yield self.client.submit(
                            inspect_entry, entry, self.work, pure=False
                        ).result()
                    except Exception as error:
                        yield failed_record(
                            entry,
                            f"inspecting it failed on the Dask worker ({type(error).__name__})",
                        )

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()
