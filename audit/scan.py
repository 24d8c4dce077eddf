"""The scan: walk ROOT, inspect every file (cached, in parallel), run the dataset checks, report.

Memory stays flat as datasets grow: files are fed to the engine in bounded batches,
each finished record is written to a spool file at once (plain values through
marshal: nothing is unpickled, nothing can run), and only compact columns
(audit.table) stay in memory for the dataset checks. The report writers then stream
the spool back.

With a cache (audit.cache), unchanged files are not decoded again: each batch is looked
up first and only the misses go to the engine (audit.engines: local processes or Dask);
no worker even starts when nothing changed. When nothing the reports depend on changed
at all, the previous reports are kept (audit.reuse): the scan is then the walk, a stat
and a cache lookup per file.
"""

from __future__ import annotations

import json
import marshal
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path

from audit import __version__, model_findings, neighbors, report, reportio, reuse
from audit.cache import DEFAULT_NAME, ScanCache
from audit.checks import REGISTRY, Registry, Thresholds
from audit.dataset import Layout, discover, file_key
from audit.engines import DaskEngine, Engine, FileWork, InlineEngine, PoolEngine
from audit.errors import InvalidArgument
from audit.lock import folder_lock
from audit.outputs import refuse_inside
from audit.records import DatasetFinding, FileRecord, Finding
from audit.table import ScanTable
from audit.thumbnails import Thumbnailer

BATCH_SIZE = 2048
ENGINES = ("local", "dask")
FAIL_ON = ("error", "warning", "info", "never")

ProgressCallback = Callable[[int, int], None]


@dataclass
class ScanResult:
    """What a scan produced: the summary, the report files, the errors to print."""

    root: Path
    out: Path
    summary: dict
    files: dict[str, Path]
    error_lines: list[str]
    warnings: list[str] = field(default_factory=list)  # one line each: the cache's troubles

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
    registry: Registry = REGISTRY,
    rehash: bool | float = False,
) -> ScanResult:
    """Audit ROOT (and, with `against`, a second split such as the validation set) and
    write the reports into OUT; see README for the report contract.

    cache: True for OUT/.scan-cache.sqlite, a path for another file, False for none.
    A path holding something else than this tool's cache is refused (UnusableCache);
    a damaged cache is renamed aside and the scan runs cold (a line in `warnings`).
    rehash: re-read files the cache would serve and report `changed_in_place` when a
    checksum changed under unchanged size, mtime and inode: True for every such file,
    a number of seconds for those last read longer ago (needs the cache).
    engine: "local" (processes on this machine) or "dask" (scheduler address, or a
    LocalCluster when None).
    registry: the checks to run (default: every check of audit.checks).
    Raises a UserError (exit 2) when it cannot run as asked.
    """
    thresholds = thresholds or registry.thresholds()
    jobs = jobs or default_jobs()
    if jobs < 1:
        raise InvalidArgument(f"jobs must be at least 1, got {jobs}")
    if fail_on not in FAIL_ON:
        raise InvalidArgument(f"fail_on must be one of {', '.join(FAIL_ON)}; got {fail_on!r}")
    if engine not in ENGINES:
        raise InvalidArgument(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    started = time.monotonic()
    layout = discover(root, against)
    out_path = _check_output(layout, Path(out))
    # One writer per output folder: a second scan, check or quarantine there is refused.
    with folder_lock(out_path, "scan"):
        return _scan_into(
            layout, out_path, thresholds, registry, jobs, fail_on, progress, cache, engine,
            scheduler, started, rehash,
        )  # fmt: skip


def _scan_into(
    layout: Layout,
    out_path: Path,
    thresholds: Thresholds,
    registry: Registry,
    jobs: int,
    fail_on: str,
    progress: ProgressCallback | None,
    cache: str | os.PathLike | bool,
    engine: str,
    scheduler: str | None,
    started: float,
    rehash: bool | float = False,
) -> ScanResult:
    cache_path = _cache_path(layout, out_path, cache)
    # label_issues.csv of OUT (python -m train label-issues): read first, so that an
    # unreadable one stops the scan (exit 2) before any work.
    imported = model_findings.load(out_path)

    table = ScanTable(layout.root, layout.classes, layout.splits)
    settings = registry.settings_key(thresholds, __version__)
    rehash_age = _rehash_age(rehash, cache_path)
    file_cache = ScanCache(cache_path, settings, rehash_age) if cache_path else None
    inputs = reuse.input_digests(
        out_path,
        version=__version__,
        checks=[(check.name, str(check.version)) for check in registry.checks],
        thresholds=thresholds.as_dict(),
        fail_on=fail_on,
    )
    if file_cache is not None and file_cache.used and rehash_age is None:
        reused = _reuse_reports(
            layout, out_path, inputs, file_cache, cache_path, jobs, engine, started, progress
        )
        if reused is not None:
            file_cache.close()
            return reused
    # From here until the new state is written, a scan killed at any moment leaves no
    # state: the next one cannot reuse reports of which some are old and some new.
    reuse.forget(out_path)
    if layout.file_count > neighbors.BRUTE_FORCE_UP_TO:
        _load_search_kernels_meanwhile()
    tree = reuse.TreeDigest() if file_cache is not None else None
    runner = _engine(engine, jobs, FileWork(thresholds, registry), scheduler)
    try:
        with tempfile.TemporaryFile(dir=out_path, prefix=".records-", suffix=".spool") as spool:
            done = 0
            for record in inspect_all(layout, runner, file_cache, tree):
                _write_spool(record, spool)
                table.append(record)
                done += 1
                if progress:
                    progress(done, layout.file_count)
            if file_cache is not None:
                file_cache.finish([layout.root] + [folder.path for folder in layout.folders])
            checked = registry.run_dataset_checks(table, thresholds)
            spool.seek(0)
            context = report.ReportContext(
                root=layout.root,
                out=out_path,
                layout=layout,
                registry=registry,
                thresholds=thresholds,
                checks=checked,
                dataset_findings=layout_findings(layout) + checked.dataset_findings,
                fail_on=fail_on,
                jobs=jobs,
                version=__version__,
                started=started,
                cache=_cache_summary(file_cache, cache_path),
                thumbnails=report.ThumbnailPrefetch(
                    Thumbnailer(layout.root, thresholds.max_pixels, file_cache),
                    runner.map if isinstance(runner, PoolEngine) else None,
                ),
                engine=engine,
                model_findings=imported,
            )
            written = report.write_reports(_read_spool(spool), checked.file_findings, context)
            if tree is not None and file_cache is not None and file_cache.used:
                reuse.remember(
                    out_path,
                    inputs,
                    tree.finish(layout),
                    layout.file_count,
                    written.files,
                    written.error_lines,
                    written.summary["created_utc"],
                )
    finally:
        runner.close()
        if file_cache is not None:
            file_cache.close()
    warnings = file_cache.warnings if file_cache is not None else []
    return ScanResult(
        layout.root, out_path, written.summary, written.files, written.error_lines, warnings
    )


def _load_search_kernels_meanwhile() -> None:
    """Load the near-duplicate search's compiled kernels in a background thread while the
    files are read: 0.55 s of CPU in a fresh process (numba's import and first call,
    audit.neighbors.load_kernels), which would otherwise be paid after the last file,
    when the dataset checks start, with the workers idle."""

    def load() -> None:
        try:
            neighbors.load_kernels()
        except Exception:  # the search loads them itself when it runs, and says what fails
            pass

    threading.Thread(target=load, name="load-search-kernels", daemon=True).start()


def _cache_path(layout: Layout, out: Path, cache) -> Path | None:
    if cache is False or cache is None:
        return None
    path = out / DEFAULT_NAME if cache is True else Path(cache).expanduser().absolute()
    refuse_inside(_dataset_folders(layout), path, "--cache")
    return path


def _rehash_age(rehash: bool | float, cache_path: Path | None) -> float | None:
    """rehash as seconds (0: every file), None for no rehash; InvalidArgument when it
    makes no sense."""
    if rehash is False or rehash is None:
        return None
    age = 0.0 if rehash is True else float(rehash)
    if not math.isfinite(age) or age < 0:
        raise InvalidArgument(
            f"rehash must be True or an age of at least 0 seconds, got {rehash!r}"
        )
    if cache_path is None:
        raise InvalidArgument(
            "--rehash compares files with their cached checksums: it needs the cache "
            "(without one, every file is read anyway)"
        )
    return age


def _cache_summary(file_cache: ScanCache | None, path: Path | None) -> dict:
    if file_cache is None or not file_cache.used:
        summary: dict = {"used": False}
        if file_cache is not None:
            summary.update(path=str(path), warnings=list(file_cache.warnings))
        return summary
    return {
        "used": True,
        "path": str(path),
        "hits": file_cache.hits,
        "misses": file_cache.misses,
        "rehashed": file_cache.rehashed,
        "warnings": list(file_cache.warnings),
    }


def _engine(name: str, jobs: int, work: FileWork, scheduler: str | None) -> Engine:
    if name == "dask":
        return DaskEngine(jobs, work, scheduler)
    return PoolEngine(jobs, work) if jobs > 1 else InlineEngine(work)


def _dataset_folders(layout: Layout) -> list[Path]:
    """Every folder the scan reads, really: nothing is written below them."""
    return [layout.root, *layout.real_folders, *(folder.path for folder in layout.folders)]


def _check_output(layout: Layout, out: Path) -> Path:
    out_path = out.expanduser().absolute()
    refuse_inside(_dataset_folders(layout), out_path, "--out")
    return out_path


def _write_spool(record: FileRecord, spool) -> None:
    """One record as a tuple of plain values (marshal round-trips names that are not UTF-8)."""
    findings = tuple((finding.code, finding.reason) for finding in record.findings)
    # Framed (4-byte length, then the bytes): marshal.load on a file reads it in small
    # pieces, 27 us a record against 2 us for loads() of one read (a second per 40,000
    # files, in the scan's own process).
    data = marshal.dumps(
        (record.path, record.label, record.bytes, record.format, record.mode, record.width,
         record.height, record.sha256, record.phash, record.mtime_ns, findings, record.split,
         record.phash_zoom, record.measures)
    )  # fmt: skip
    spool.write(len(data).to_bytes(4, "little"))
    spool.write(data)


def _read_spool(spool) -> Iterator[FileRecord]:
    """The records _write_spool wrote, in order (codes checked again by Finding)."""
    while head := spool.read(4):
        fields = marshal.loads(spool.read(int.from_bytes(head, "little")))
        (path, label, size, format_, mode, width, height, sha256, phash, mtime_ns, found,
         split, zoom, quality) = fields  # fmt: skip
        findings = tuple(Finding(code, reason) for code, reason in found)
        yield FileRecord(path, label, size, format_, mode, width, height, sha256, phash,
                         mtime_ns, findings, split, zoom, quality)  # fmt: skip


def layout_findings(layout: Layout) -> list[DatasetFinding]:
    """Dataset findings that come from the walk itself."""
    findings = []
    if layout.unlistable:
        shown = "; ".join(f"{item.relpath} ({item.reason})" for item in layout.unlistable[:5])
        findings.append(
            DatasetFinding(
                "unlistable_folder",
                f"{len(layout.unlistable)} folder(s) under a class could not be read, so the "
                f"files below them are not audited: {shown}",
                tuple(item.relpath for item in layout.unlistable),
            )
        )
    for kind, keras in (
        ("folder", "Keras's loader does not enter folder links at all (follow_links=False)"),
        ("file", "Keras's loader reads each linked file again, under the link's class"),
    ):
        links = [link for link in layout.linked if link.kind == kind]
        if links:
            shown = ", ".join(f"{link.relpath} -> {link.target}" for link in links[:5])
            more = f" and {len(links) - 5} more" if len(links) > 5 else ""
            findings.append(
                DatasetFinding(
                    f"linked_{kind}",
                    f"{len(links)} {kind} link(s) point into the dataset and were not followed "
                    f"(each {kind} is audited once, at its own place): {shown}{more}. {keras}",
                    tuple(link.relpath for link in links),
                )
            )
    if layout.stray_files:
        findings.append(
            DatasetFinding(
                "stray_files",
                f"{len(layout.stray_files)} file(s) directly under ROOT belong to no class "
                "and were not scanned",
                tuple(layout.stray_files),
            )
        )
    return findings


# ---------------------------------------------------------------- reuse


def _reuse_reports(
    layout: Layout,
    out: Path,
    inputs: dict[str, str],
    file_cache: ScanCache,
    cache_path: Path | None,
    jobs: int,
    engine: str,
    started: float,
    progress: ProgressCallback | None,
) -> ScanResult | None:
    """The previous scan's reports, when nothing they depend on changed (audit.reuse);
    None when the scan must run. Costs the walk, a stat and a cache lookup per file, and
    reading the reports once to check them."""
    state = reuse.recall(out)
    if state is None or state.inputs != inputs or state.files != layout.file_count:
        return None
    tree = reuse.TreeDigest()
    done = 0
    for batch in _batches(layout.iter_files(), BATCH_SIZE):
        keys = [file_key(entry.path) for entry in batch]
        for entry, key in zip(batch, keys, strict=True):
            tree.add(entry, key)
        # A file the cache would not serve (changed, unreadable before) ends the check at once.
        if file_cache.count_fresh(batch, keys) != len(batch):
            return None
        done += len(batch)
        if progress:
            progress(done, layout.file_count)
    if tree.finish(layout) != state.tree or not reuse.reports_intact(out, state):
        return None
    summary_path = out / reportio.SUMMARY_NAME
    html_path = out / "report.html"
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        html = html_path.read_text(encoding="utf-8")
        old_line = report.run_line(str(layout.root), summary)
    except (OSError, ValueError, KeyError, TypeError):  # not as this version writes them
        return None
    if html.count(old_line) != 1:
        return None
    reuse.forget(out)  # until the rewritten files are in place
    file_cache.count_served(layout.file_count)
    summary.update(
        created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        duration_s=round(time.monotonic() - started, 3),
        jobs=jobs,
        engine=engine,
        cache={**_cache_summary(file_cache, cache_path), "reused_from": state.created_utc},
    )
    reportio.write_summary(out, summary)
    with reportio.atomic_text(html_path) as handle:
        handle.write(html.replace(old_line, report.run_line(str(layout.root), summary)))
    files = {name: out / name for name in state.reports}
    reuse.remember(
        out, inputs, state.tree, state.files, files, state.error_lines, state.created_utc
    )
    return ScanResult(
        layout.root, out, summary, files, list(state.error_lines), list(file_cache.warnings)
    )


# ---------------------------------------------------------------- per-file work


def inspect_all(
    layout: Layout,
    engine,
    cache: ScanCache | None = None,
    tree: reuse.TreeDigest | None = None,
) -> Iterator[FileRecord]:
    """Records for every file of layout, in walk order.

    Each batch is looked up in the cache first; only the misses go to the engine, and
    the next batch is submitted before this one is drained, so workers never idle.
    tree: fed every file with the key the cache judged it by (what a later reuse of
    this scan's reports compares).
    """
    pending = None
    for batch in _batches(layout.iter_files(), BATCH_SIZE):
        keys = [cache.key_of(entry) for entry in batch] if cache else [None] * len(batch)
        if tree is not None:
            for entry, key in zip(batch, keys, strict=True):
                tree.add(entry, key)
        cached = cache.lookup_many(batch, keys) if cache else [None] * len(batch)
        # Misses, and files the cache knows but is to read again (Recheck: --rehash).
        misses = [
            entry
            for entry, hit in zip(batch, cached, strict=True)
            if not isinstance(hit, FileRecord)
        ]
        submitted = engine.submit(misses)
        if pending is not None:
            yield from _drain(*pending, cache)
        pending = (batch, keys, cached, submitted)
    if pending is not None:
        yield from _drain(*pending, cache)


def _drain(batch, keys, cached, submitted, cache) -> Iterator[FileRecord]:
    for entry, key, hit in zip(batch, keys, cached, strict=True):
        if isinstance(hit, FileRecord):
            yield hit
            continue
        record = next(submitted)
        if cache is not None:
            record = cache.store(entry, key, record, recheck=hit)
        yield record


def _batches(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
