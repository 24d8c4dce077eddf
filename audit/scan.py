"""The scan: walk ROOT, inspect every file in parallel, run the dataset checks, report.

Memory stays flat as datasets grow: files are fed to the workers in bounded batches,
each finished record is pickled to a spool file at once, and only compact columns
(audit.table) stay in memory for the dataset checks. The report writers then stream
the spool back.

A worker that dies (a decoder crashing on hostile bytes) does not end the scan: the
batch is retried file by file in fresh workers, and a file that kills its worker
again becomes an `unreadable` row saying so.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from audit import __version__, report
from audit.checks import DATASET_CHECKS, Thresholds, check_file
from audit.dataset import FileEntry, Layout, discover
from audit.inspect import inspect_file
from audit.records import DatasetFinding, FileRecord, Finding
from audit.table import ScanTable

BATCH_SIZE = 2048
CHUNK_SIZE = 64

ProgressCallback = Callable[[int, int], None]


class OutputInsideDataset(ValueError):
    """--out points inside ROOT: the audit never writes into the dataset it reads."""


@dataclass
class ScanResult:
    """What a scan produced: the summary, the report files, the errors to print."""

    root: Path
    out: Path
    summary: dict
    files: dict[str, Path]
    error_lines: list[str]

    def exit_code(self) -> int:
        return self.summary["exit_code"]


def default_jobs() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def scan(
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    against: str | os.PathLike | None = None,
    thresholds: Thresholds | None = None,
    jobs: int | None = None,
    fail_on: str = "error",
    progress: ProgressCallback | None = None,
) -> ScanResult:
    """Audit ROOT (and, with `against`, a second split such as the validation set) and
    write the reports into OUT; see README for the report contract."""
    thresholds = thresholds or Thresholds()
    jobs = jobs or default_jobs()
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if fail_on not in ("error", "warning", "info", "never"):
        raise ValueError(f"fail_on must be one of error, warning, info, never; got {fail_on!r}")
    started = time.monotonic()
    layout = discover(root, against)
    out_path = _check_output(layout, Path(out))
    out_path.mkdir(parents=True, exist_ok=True)

    table = ScanTable(layout.root, layout.classes, layout.splits)
    with tempfile.TemporaryFile(dir=out_path, prefix=".records-", suffix=".spool") as spool:
        done = 0
        for record in inspect_all(layout, thresholds, jobs):
            pickle.dump(record, spool, protocol=pickle.HIGHEST_PROTOCOL)
            table.append(record)
            done += 1
            if progress:
                progress(done, layout.file_count)
        sections, extra_findings, dataset_findings, report_rows = run_dataset_checks(table, thresholds)
        dataset_findings = layout_findings(layout) + dataset_findings
        spool.seek(0)
        context = report.ReportContext(
            root=layout.root,
            out=out_path,
            layout=layout,
            thresholds=thresholds,
            sections=sections,
            dataset_findings=dataset_findings,
            fail_on=fail_on,
            jobs=jobs,
            version=__version__,
            started=started,
            report_rows=report_rows,
        )
        written = report.write_reports(_read_spool(spool), extra_findings, context)
    return ScanResult(layout.root, out_path, written.summary, written.files, written.error_lines)


def _check_output(layout: Layout, out: Path) -> Path:
    out_path = out.expanduser().absolute()
    resolved_out = out_path.resolve()
    for folder in [layout.root] + [folder.path for folder in layout.folders]:
        resolved = folder.resolve()
        if resolved_out == resolved or resolved in resolved_out.parents:
            raise OutputInsideDataset(
                f"--out {out_path} is inside the dataset ({folder}); the audit never writes into "
                "the folders it reads. Choose a folder outside it (default: reports/<name>)."
            )
    return out_path


def _read_spool(spool) -> Iterator[FileRecord]:
    while True:
        try:
            yield pickle.load(spool)
        except EOFError:
            return


def layout_findings(layout: Layout) -> list[DatasetFinding]:
    """Dataset findings that come from the walk itself."""
    if not layout.stray_files:
        return []
    return [
        DatasetFinding(
            "stray_files",
            f"{len(layout.stray_files)} file(s) directly under ROOT belong to no class and were not scanned",
            tuple(layout.stray_files),
        )
    ]


def run_dataset_checks(table: ScanTable, thresholds: Thresholds):
    """Run the registry's dataset checks in order.

    Returns (summary sections by check, findings by row, dataset findings, rows of extra
    report files such as duplicates.csv).
    """
    sections: dict[str, dict] = {}
    extra: dict[int, list[Finding]] = {}
    dataset_findings: list[DatasetFinding] = []
    report_rows: dict[str, list[dict]] = {}
    for name, check in DATASET_CHECKS:
        result = check(table, thresholds)
        sections[name] = result.summary
        dataset_findings += result.dataset_findings
        report_rows.update(result.report_rows)
        for row, findings in result.file_findings.items():
            extra.setdefault(row, []).extend(findings)
            if any(finding.severity == "error" for finding in findings):
                table.mark_unusable([row])
    return sections, extra, dataset_findings, report_rows


# ---------------------------------------------------------------- per-file work

_worker_thresholds: Thresholds | None = None


def _init_worker(thresholds: Thresholds) -> None:
    global _worker_thresholds
    _worker_thresholds = thresholds
    # Ctrl-C is handled once, by the parent, which then stops the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def inspect_entry(entry: FileEntry, thresholds: Thresholds) -> FileRecord:
    """Inspect one file and run the per-file checks; never raises for a bad file."""
    try:
        facts = inspect_file(entry, thresholds.max_pixels)
        findings = check_file(facts, thresholds)
    except Exception as error:  # a bug of ours must not cost the user their whole scan
        return _failed_record(entry, f"audit could not inspect it ({type(error).__name__}: {error})")
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


def _failed_record(entry: FileEntry, reason: str) -> FileRecord:
    return FileRecord(entry.relpath, entry.label, 0, "", "", None, None, "", "", 0, (Finding("unreadable", reason),), entry.split)


def _inspect_in_worker(entry: FileEntry) -> FileRecord:
    return inspect_entry(entry, _worker_thresholds)


def inspect_all(
    layout: Layout,
    thresholds: Thresholds,
    jobs: int,
    worker: Callable[[FileEntry], FileRecord] | None = None,
) -> Iterator[FileRecord]:
    """Records for every file of layout, in walk order.

    worker is the per-file function run in the pool (a module-level function, so the
    workers can import it); the default inspects and checks the file. When no worker
    process can start at all, the files are inspected in this process instead.
    """
    worker = worker or _inspect_in_worker
    entries = layout.iter_files()
    executor = _start_pool(jobs, thresholds) if jobs > 1 else None
    if executor is None:
        for entry in entries:
            yield inspect_entry(entry, thresholds)
        return
    try:
        batches = _batches(entries, BATCH_SIZE)
        current = next(batches, None)
        pending = executor.map(worker, current, chunksize=CHUNK_SIZE) if current else None
        while current:
            # Submit the next batch before draining this one, so workers never idle.
            following = next(batches, None)
            upcoming = executor.map(worker, following, chunksize=CHUNK_SIZE) if following else None
            yielded = 0
            try:
                for record in pending:
                    yield record
                    yielded += 1
            except BrokenProcessPool:
                executor.shutdown(wait=False, cancel_futures=True)
                yield from _isolate(current[yielded:], thresholds, worker)
                executor = _start_pool(jobs, thresholds)
                if executor is None:  # pragma: no cover - the pool worked a moment ago
                    raise
                upcoming = executor.map(worker, following, chunksize=CHUNK_SIZE) if following else None
            current, pending = following, upcoming
    finally:
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def _start_pool(jobs: int, thresholds: Thresholds) -> ProcessPoolExecutor | None:
    """A worker pool that has run a trivial task, or None (with a warning) if none can start.

    Without this ping, a pool that cannot start at all (e.g. a __main__ that worker
    processes cannot re-import) would look like every file crashing its worker.
    """
    # forkserver: workers never inherit the threads of a host such as Streamlit.
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        # Import the worker's modules (numpy, Pillow) once in the server, not in every worker.
        context.set_forkserver_preload(["audit.scan"])
    else:
        context = multiprocessing.get_context()
    executor = ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=context,
        initializer=_init_worker,
        initargs=(thresholds,),
    )
    try:
        executor.submit(os.getpid).result()
    except BrokenProcessPool as error:
        executor.shutdown(wait=False, cancel_futures=True)
        warnings.warn(f"worker processes cannot start ({error}); inspecting files in this process", RuntimeWarning, stacklevel=3)
        return None
    return executor


def _isolate(batch: list[FileEntry], thresholds: Thresholds, worker) -> Iterator[FileRecord]:
    """Re-run the rest of a batch whose pool broke, one file at a time in one worker,
    so the file that kills its worker is the one blamed, and only it."""
    executor = _start_pool(1, thresholds)
    try:
        for entry in batch:
            if executor is None:  # pragma: no cover - workers started a moment ago
                yield inspect_entry(entry, thresholds)
                continue
            try:
                yield executor.submit(worker, entry).result()
            except BrokenProcessPool:
                executor.shutdown(wait=False, cancel_futures=True)
                yield _failed_record(entry, "inspecting it crashed the decoder process")
                executor = _start_pool(1, thresholds)
    finally:
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def _batches(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
