"""The scan: walk ROOT, inspect every file (cached, in parallel), run the dataset checks, report.

Memory stays flat as datasets grow: files are fed to the engine in bounded batches,
each finished record is pickled to a spool file at once, and only compact columns
(audit.table) stay in memory for the dataset checks. The report writers then stream
the spool back.

With a cache (audit.cache), unchanged files are not decoded again: each batch is looked
up first and only the misses go to the engine (audit.engines: local processes or Dask);
no worker even starts when nothing changed.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from audit import __version__, report
from audit.cache import DEFAULT_NAME, ScanCache
from audit.checks import DATASET_CHECKS, Thresholds
from audit.dataset import Layout, discover
from audit.engines import DaskEngine, InlineEngine, PoolEngine
from audit.records import DatasetFinding, FileRecord, Finding
from audit.table import ScanTable
from audit.thumbnails import Thumbnailer

BATCH_SIZE = 2048
ENGINES = ("local", "dask")

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
    cache: str | os.PathLike | bool = True,
    engine: str = "local",
    scheduler: str | None = None,
) -> ScanResult:
    """Audit ROOT (and, with `against`, a second split such as the validation set) and
    write the reports into OUT; see README for the report contract.

    cache: True for OUT/.scan-cache.sqlite, a path for another file, False for none.
    engine: "local" (processes on this machine) or "dask" (scheduler address, or a
    LocalCluster when None).
    """
    thresholds = thresholds or Thresholds()
    jobs = jobs or default_jobs()
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if fail_on not in ("error", "warning", "info", "never"):
        raise ValueError(f"fail_on must be one of error, warning, info, never; got {fail_on!r}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    started = time.monotonic()
    layout = discover(root, against)
    out_path = _check_output(layout, Path(out))
    out_path.mkdir(parents=True, exist_ok=True)
    cache_path = _cache_path(layout, out_path, cache)

    table = ScanTable(layout.root, layout.classes, layout.splits)
    file_cache = ScanCache(cache_path, thresholds) if cache_path else None
    runner = _engine(engine, jobs, thresholds, scheduler)
    try:
        with tempfile.TemporaryFile(dir=out_path, prefix=".records-", suffix=".spool") as spool:
            done = 0
            for record in inspect_all(layout, runner, file_cache):
                pickle.dump(record, spool, protocol=pickle.HIGHEST_PROTOCOL)
                table.append(record)
                done += 1
                if progress:
                    progress(done, layout.file_count)
            if file_cache is not None:
                file_cache.finish([layout.root] + [folder.path for folder in layout.folders])
            sections, extra_findings, dataset_findings, report_rows = run_dataset_checks(
                table, thresholds
            )
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
                cache=_cache_summary(file_cache, cache_path),
                thumbnails=Thumbnailer(layout.root, thresholds.max_pixels, file_cache),
                engine=engine,
            )
            written = report.write_reports(_read_spool(spool), extra_findings, context)
    finally:
        runner.close()
        if file_cache is not None:
            file_cache.close()
    return ScanResult(layout.root, out_path, written.summary, written.files, written.error_lines)


def _cache_path(layout: Layout, out: Path, cache) -> Path | None:
    if cache is False or cache is None:
        return None
    path = out / DEFAULT_NAME if cache is True else Path(cache).expanduser().absolute()
    _refuse_inside(layout, path, "--cache")
    return path


def _cache_summary(file_cache: ScanCache | None, path: Path | None) -> dict:
    if file_cache is None:
        return {"used": False}
    return {"used": True, "path": str(path), "hits": file_cache.hits, "misses": file_cache.misses}


def _engine(name: str, jobs: int, thresholds: Thresholds, scheduler: str | None):
    if name == "dask":
        return DaskEngine(jobs, thresholds, scheduler)
    return PoolEngine(jobs, thresholds) if jobs > 1 else InlineEngine(thresholds)


def _check_output(layout: Layout, out: Path) -> Path:
    out_path = out.expanduser().absolute()
    _refuse_inside(layout, out_path, "--out")
    return out_path


def _refuse_inside(layout: Layout, path: Path, option: str) -> None:
    resolved_path = path.resolve()
    for folder in [layout.root] + [folder.path for folder in layout.folders]:
        resolved = folder.resolve()
        if resolved_path == resolved or resolved in resolved_path.parents:
            raise OutputInsideDataset(
                f"{option} {path} is inside the dataset ({folder}); the audit never writes into "
                "the folders it reads. Choose a place outside it (default: reports/<name>)."
            )


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


def inspect_all(layout: Layout, engine, cache: ScanCache | None = None) -> Iterator[FileRecord]:
    """Records for every file of layout, in walk order.

    Each batch is looked up in the cache first; only the misses go to the engine, and
    the next batch is submitted before this one is drained, so workers never idle.
    """
    pending = None
    for batch in _batches(layout.iter_files(), BATCH_SIZE):
        keys = [cache.key_of(entry) for entry in batch] if cache else [None] * len(batch)
        cached = cache.lookup_many(batch, keys) if cache else [None] * len(batch)
        misses = [entry for entry, hit in zip(batch, cached) if hit is None]
        submitted = engine.submit(misses)
        if pending is not None:
            yield from _drain(*pending, cache)
        pending = (batch, keys, cached, submitted)
    if pending is not None:
        yield from _drain(*pending, cache)


def _drain(batch, keys, cached, submitted, cache) -> Iterator[FileRecord]:
    for entry, key, hit in zip(batch, keys, cached):
        if hit is not None:
            yield hit
            continue
        record = next(submitted)
        if cache is not None:
            cache.store(entry, key, record)
        yield record


def _batches(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
