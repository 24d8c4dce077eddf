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

import multiprocessing
import os
import signal
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from audit.checks import Thresholds, check_file
from audit.dataset import FileEntry
from audit.inspect import inspect_file
from audit.records import FileRecord, Finding

CHUNK_SIZE = 64  # files per task sent to a worker
DASK_CHUNK_SIZE = 256


def inspect_entry(entry: FileEntry, thresholds: Thresholds) -> FileRecord:
    """Inspect one file and run the per-file checks; never raises for a bad file."""
    try:
        facts = inspect_file(entry, thresholds.max_pixels)
        findings = check_file(facts, thresholds)
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
        "",
        0,
        (Finding("unreadable", reason),),
        entry.split,
    )


def inspect_chunk(entries: list[FileEntry], thresholds: Thresholds) -> list[FileRecord]:
    """A batch of files in one task (what the Dask engine ships to a worker)."""
    return [inspect_entry(entry, thresholds) for entry in entries]


class InlineEngine:
    """Everything in this process: no start-up cost, one core."""

    def __init__(self, thresholds: Thresholds):
        self.thresholds = thresholds

    def submit(self, entries: list[FileEntry]) -> Iterator[FileRecord]:
        return (inspect_entry(entry, self.thresholds) for entry in entries)

    def close(self) -> None:
        pass


# ---------------------------------------------------------------- local process pool

_worker_thresholds: Thresholds | None = None


def _init_worker(thresholds: Thresholds) -> None:
    global _worker_thresholds
    _worker_thresholds = thresholds
    # Ctrl-C is handled once, by the parent, which then stops the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def inspect_in_worker(entry: FileEntry) -> FileRecord:
    """The default per-file function of the local pool (thresholds set by the initializer)."""
    return inspect_entry(entry, _worker_thresholds)


class PoolEngine:
    """A local process pool, started on first use, replaced when a worker dies.

    worker: the module-level per-file function the workers run (tests pass one that
    crashes on purpose).
    """

    def __init__(
        self,
        jobs: int,
        thresholds: Thresholds,
        worker: Callable[[FileEntry], FileRecord] | None = None,
    ):
        self.jobs = jobs
        self.thresholds = thresholds
        self.worker = worker or inspect_in_worker
        self._executor: ProcessPoolExecutor | None = None
        self._generation = 0  # bumped each time the pool is replaced
        self._fallback: InlineEngine | None = None

    def submit(self, entries: list[FileEntry]) -> Iterator[FileRecord]:
        if not entries:
            return iter(())
        executor = self._pool()
        if executor is None:
            return self._fallback.submit(entries)
        generation = self._generation
        return self._results(
            entries, executor.map(self.worker, entries, chunksize=CHUNK_SIZE), generation
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
        if self._executor is None and self._fallback is None:
            self._executor = start_pool(self.jobs, self.thresholds)
            if self._executor is None:
                self._fallback = InlineEngine(self.thresholds)
        return self._executor

    def _replace_pool(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = None
        self._generation += 1

    def _isolate(self, entries: list[FileEntry]) -> Iterator[FileRecord]:
        executor = start_pool(1, self.thresholds)
        try:
            for entry in entries:
                if executor is None:  # pragma: no cover - workers started a moment ago
                    yield inspect_entry(entry, self.thresholds)
                    continue
                try:
                    yield executor.submit(self.worker, entry).result()
                except BrokenProcessPool:
                    executor.shutdown(wait=False, cancel_futures=True)
                    yield failed_record(entry, "inspecting it crashed the decoder process")
                    executor = start_pool(1, self.thresholds)
        finally:
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def start_pool(jobs: int, thresholds: Thresholds) -> ProcessPoolExecutor | None:
    """A worker pool that has run a trivial task, or None (with a warning) if none can start.

    Without this ping, a pool that cannot start at all (e.g. a __main__ that worker
    processes cannot re-import) would look like every file crashing its worker.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        # forkserver: workers never inherit the threads of a host such as Streamlit.
        context = multiprocessing.get_context("forkserver")
        # Import the worker's modules (numpy, Pillow) once in the server, not in every worker.
        context.set_forkserver_preload(["audit.engines"])
    else:
        context = multiprocessing.get_context()
    executor = ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=_init_worker, initargs=(thresholds,)
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

    def __init__(self, jobs: int, thresholds: Thresholds, address: str | None = None):
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as error:
            raise ImportError(
                "--engine dask needs the dask extra: pip install 'image-audit[dask]'"
            ) from error
        self.thresholds = thresholds
        if address:
            self._cluster = None
            self.client = Client(address)
        else:
            self._cluster = LocalCluster(
                n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None
            )
            self.client = Client(self._cluster)

    def submit(self, entries: list[FileEntry]) -> Iterator[FileRecord]:
        chunks = [
            entries[start : start + DASK_CHUNK_SIZE]
            for start in range(0, len(entries), DASK_CHUNK_SIZE)
        ]
        futures = self.client.map(inspect_chunk, chunks, thresholds=self.thresholds, pure=False)
        return self._results(chunks, futures)

    def _results(self, chunks, futures) -> Iterator[FileRecord]:
        for chunk, future in zip(chunks, futures):
            try:
                yield from future.result()
            except (
                Exception
            ):  # a worker died on this chunk: one task per file, blame only the culprit
                for entry in chunk:
                    try:
                        yield self.client.submit(
                            inspect_entry, entry, self.thresholds, pure=False
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
