"""Command line: `python -m audit scan ROOT ...` and friends.

One error boundary maps every outcome to an exit code (DESIGN.md):
0 clean, 1 findings at or above --fail-on, 2 could not run (bad arguments, missing
folder, not a class-folder layout), 3 unexpected failure, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from audit import __version__
from audit.boundary import CannotRun, run_command

EXIT_CLEAN, EXIT_FINDINGS = 0, 1


def build_parser() -> argparse.ArgumentParser:
    from audit.checks import Thresholds

    defaults = Thresholds()
    parser = argparse.ArgumentParser(
        prog="python -m audit",
        description="Audit an image-classification dataset laid out as ROOT/<class>/<images>.",
        epilog="Exit codes: 0 clean, 1 findings at or above --fail-on, 2 could not run, "
        "3 unexpected failure, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"image-audit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    scan = commands.add_parser(
        "scan",
        help="scan ROOT and write the reports",
        description="Scan ROOT/<class>/<images>: integrity (as TensorFlow decodes), duplicates "
        "(exact, near, across labels and splits), class balance, resolution; write images.csv, findings.csv, duplicates.csv, summary.json, report.html, "
        "report.md. ROOT is only read, never changed.",
    )
    scan.add_argument(
        "root",
        metavar="ROOT",
        help="dataset folder: ROOT/<class>/<images>, or ROOT/<split>/<class>/<images>",
    )
    scan.add_argument(
        "--against",
        metavar="VAL",
        help="a second dataset (e.g. the validation split, VAL/<class>/<images>): images found in both are split_leak",
    )
    scan.add_argument(
        "--out",
        metavar="DIR",
        help="report folder (default: reports/<ROOT name>); must be outside ROOT",
    )
    scan.add_argument(
        "--fail-on",
        choices=("error", "warning", "info", "never"),
        default="error",
        help="exit 1 when a finding reaches this severity (default: error)",
    )
    scan.add_argument("--jobs", type=int, metavar="N", help="worker processes (default: all cores)")
    scan.add_argument(
        "--max-pixels",
        type=int,
        default=defaults.max_pixels,
        metavar="N",
        help=f"decompression-bomb limit: larger images are never decoded (default: {defaults.max_pixels:,})",
    )
    scan.add_argument(
        "--min-side",
        type=int,
        default=defaults.min_side,
        metavar="PX",
        help=f"tiny_image below this side (default: {defaults.min_side}; 0 turns it off)",
    )
    scan.add_argument(
        "--max-aspect-ratio",
        type=float,
        default=defaults.max_aspect_ratio,
        metavar="R",
        help=f"odd_aspect_ratio above long/short side R (default: {defaults.max_aspect_ratio:g})",
    )
    scan.add_argument(
        "--max-imbalance",
        type=float,
        default=defaults.max_imbalance,
        metavar="R",
        help=f"class_imbalance above largest/smallest usable class R (default: {defaults.max_imbalance:g})",
    )
    scan.add_argument(
        "--near-radius",
        type=int,
        default=defaults.near_radius,
        metavar="BITS",
        help=f"near duplicates: pHash Hamming distance at most BITS of 64 (default: {defaults.near_radius}, measured; "
        "tightened automatically for tiny images)",
    )
    scan.add_argument(
        "--cache",
        metavar="PATH",
        help="incremental cache file (default: DIR/.scan-cache.sqlite next to the reports)",
    )
    scan.add_argument(
        "--no-cache", action="store_true", help="inspect every file again, and keep no cache"
    )
    scan.add_argument(
        "--engine",
        choices=("local", "dask"),
        default="local",
        help="local processes (default) or a Dask cluster",
    )
    scan.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (default with --engine dask: a local cluster)",
    )
    scan.add_argument(
        "--quiet", action="store_true", help="no progress bar and no per-error lines on stderr"
    )
    scan.set_defaults(handler=run_scan)

    quarantine = commands.add_parser(
        "quarantine",
        help="move flagged files out of the dataset, with a manifest that restores them",
        description="Move the files a report flags (default: every file with an error) out of ROOT into a "
        "quarantine folder, keeping their paths, and write manifest.jsonl there. Refuses (moving nothing) "
        "when a file changed since the report or a destination exists; verifies sha256 after each move.",
    )
    quarantine.add_argument(
        "report", metavar="REPORT_DIR", help="output folder of `python -m audit scan`"
    )
    chooser = quarantine.add_mutually_exclusive_group()
    chooser.add_argument(
        "--codes", help="comma-separated issue codes, e.g. truncated,label_conflict"
    )
    chooser.add_argument(
        "--severity",
        choices=("error", "warning", "info"),
        help="every file at or above this severity (default: error)",
    )
    quarantine.add_argument(
        "--to", metavar="DIR", help="quarantine folder (default: REPORT_DIR/quarantine-<UTC time>)"
    )
    quarantine.add_argument(
        "--dry-run", action="store_true", help="list what would move; move nothing"
    )
    quarantine.set_defaults(handler=run_quarantine)

    restore = commands.add_parser(
        "restore",
        help="put quarantined files back (from a manifest.jsonl)",
        description="Move every file of a quarantine manifest back to where it was, verifying its sha256; "
        "refuses (restoring nothing) if any original place is taken.",
    )
    restore.add_argument(
        "manifest", metavar="MANIFEST", help="manifest.jsonl written by `quarantine`"
    )
    restore.add_argument("--dry-run", action="store_true", help="check and list; move nothing")
    restore.set_defaults(handler=run_restore)

    check = commands.add_parser(
        "check",
        help="scheduled check: scan, validate with Great Expectations, record the outcome",
        description="Scan ROOT (incrementally), validate the per-image and per-class tables against the suite "
        "through a Great Expectations Checkpoint, write validation_result.json, the Data Docs site, check.html and "
        "check.md into DIR, and append the outcome to the history. Exit 0 pass, 1 fail, 2 could not run.",
    )
    check.add_argument("root", metavar="ROOT", help="dataset folder")
    check.add_argument(
        "--suite",
        metavar="FILE",
        help="suite file (default: ./<ROOT name>.suite.json; make one with `suite init`)",
    )
    check.add_argument(
        "--out", metavar="DIR", help="output folder (default: reports/<ROOT name>-check)"
    )
    check.add_argument(
        "--history",
        metavar="PATH",
        default=None,
        help="history database (default: reports/check-history.sqlite)",
    )
    check.add_argument(
        "--jobs", type=int, metavar="N", help="worker processes for the scan (default: all cores)"
    )
    check.add_argument("--quiet", action="store_true", help="no progress on stderr")
    check.set_defaults(handler=run_check_command)

    suite = commands.add_parser(
        "suite",
        help="manage check suites",
        description="Manage the suites `check` validates against.",
    )
    suite_commands = suite.add_subparsers(dest="suite_command", metavar="SUITE_COMMAND")
    init = suite_commands.add_parser(
        "init",
        help="write a suite from the current dataset (edit it, commit it)",
        description="Scan ROOT and write a suite it passes today, with tolerances: class set, minimum count per class, "
        "maximum imbalance ratio, no error-severity file, no label conflict, maximum duplicate fraction, minimum "
        "resolution, allowed formats.",
    )
    init.add_argument("root", metavar="ROOT", help="dataset folder")
    init.add_argument(
        "--out",
        metavar="FILE",
        help="suite file to write (default: ./<ROOT name>.suite.json; never overwritten)",
    )
    init.add_argument(
        "--report", metavar="DIR", help="where the scan's reports go (default: reports/<ROOT name>)"
    )
    init.set_defaults(handler=run_suite_init)

    past = commands.add_parser(
        "history",
        help="the trend of past checks of a dataset",
        description="Print every recorded check of ROOT.",
    )
    past.add_argument("root", metavar="ROOT", help="dataset folder")
    past.add_argument(
        "--history",
        metavar="PATH",
        default=None,
        help="history database (default: reports/check-history.sqlite)",
    )
    past.add_argument("--last", type=int, metavar="N", help="only the last N checks")
    past.set_defaults(handler=run_history)

    demo = commands.add_parser(
        "demo",
        help="build the demo dataset (real images from scikit-learn, with known problems injected)",
        description="Write a demo dataset to DIR: scikit-learn's handwritten digits and sample photos, "
        "plus injected problems (truncated, renamed, duplicated, odd-sized, ...) so every check fires.",
    )
    demo.add_argument("dest", metavar="DIR", help="folder to create; must not exist or be empty")
    demo.set_defaults(handler=run_demo)
    return parser


def run_scan(args: argparse.Namespace) -> int:
    from audit.checks import Thresholds
    from audit.dataset import LayoutError
    from audit.progress import Progress
    from audit.scan import OutputInsideDataset, scan

    try:
        thresholds = Thresholds(
            max_pixels=args.max_pixels,
            min_side=args.min_side,
            max_aspect_ratio=args.max_aspect_ratio,
            max_imbalance=args.max_imbalance,
            near_radius=args.near_radius,
        )
    except ValueError as error:
        raise CannotRun(str(error)) from error
    if args.jobs is not None and args.jobs < 1:
        raise CannotRun(f"--jobs must be at least 1, got {args.jobs}")
    if args.no_cache and args.cache:
        raise CannotRun("--cache and --no-cache exclude each other")
    if args.scheduler and args.engine != "dask":
        raise CannotRun("--scheduler needs --engine dask")
    out = (
        Path(args.out)
        if args.out
        else Path("reports") / (Path(args.root).resolve().name or "dataset")
    )
    progress = None if args.quiet else Progress("scanning")
    try:
        result = scan(
            args.root,
            out,
            against=args.against,
            thresholds=thresholds,
            jobs=args.jobs,
            fail_on=args.fail_on,
            progress=progress,
            cache=False if args.no_cache else (args.cache or True),
            engine=args.engine,
            scheduler=args.scheduler,
        )
    except (LayoutError, OutputInsideDataset, ImportError) as error:
        raise CannotRun(str(error)) from error
    finally:
        if progress:
            progress.close()
    if not args.quiet:
        for line in result.error_lines:
            print(line, file=sys.stderr)
    summary = result.summary
    counts = summary["severity_counts"]
    print(
        f"{summary['files']} files, {summary['usable']} usable: {counts['error']} with errors, "
        f"{counts['warning']} with warnings, {counts['info']} with info only; "
        f"{len(summary['classes'])} classes, imbalance ratio {summary['imbalance_ratio']}"
    )
    for finding in summary["dataset_findings"]:
        print(f"{finding['severity']}: {finding['code']}: {finding['reason']}")
    print(f"Reports in {result.out}: {', '.join(result.files)}")
    print(result.files["report.html"])
    return result.exit_code()


def run_quarantine(args: argparse.Namespace) -> int:
    from audit.quarantine import QuarantineRefused, quarantine, select

    codes = [code.strip() for code in args.codes.split(",") if code.strip()] if args.codes else None
    try:
        rows = select(args.report, codes=codes, severity=args.severity)
        if not rows:
            print("No file matches: nothing to quarantine.")
            return EXIT_CLEAN
        manifest, moves = quarantine(
            args.report, [row["path"] for row in rows], destination=args.to, dry_run=args.dry_run
        )
    except (QuarantineRefused, ValueError) as error:
        raise CannotRun(str(error)) from error
    verb = "would move" if args.dry_run else "moved"
    for move in moves:
        print(f"{verb}: {move.relpath} -> {move.quarantined}  [{move.codes}]")
    print(
        f"{len(moves)} file(s) {verb}"
        + ("" if args.dry_run else f"; restore with: python -m audit restore {manifest}")
    )
    if not args.dry_run:
        print(manifest)
    return EXIT_CLEAN


def run_restore(args: argparse.Namespace) -> int:
    from audit.quarantine import QuarantineRefused, restore

    try:
        moves = restore(args.manifest, dry_run=args.dry_run)
    except (QuarantineRefused, ValueError) as error:
        raise CannotRun(str(error)) from error
    verb = "would restore" if args.dry_run else "restored"
    for move in moves:
        print(f"{verb}: {move.quarantined} -> {move.original}")
    print(f"{len(moves)} file(s) {verb}, each verified by sha256")
    return EXIT_CLEAN


def _dataset_name(root: str) -> str:
    return Path(root).resolve().name or "dataset"


def run_check_command(args: argparse.Namespace) -> int:
    from audit.check import DEFAULT_HISTORY, run_check
    from audit.dataset import LayoutError
    from audit.expectations import SuiteError
    from audit.progress import Progress
    from audit.scan import OutputInsideDataset

    name = _dataset_name(args.root)
    suite_path = Path(args.suite) if args.suite else Path(f"{name}.suite.json")
    out = Path(args.out) if args.out else Path("reports") / f"{name}-check"
    progress = None if args.quiet else Progress("scanning")
    try:
        result = run_check(
            args.root,
            suite_path,
            out,
            history_path=args.history or DEFAULT_HISTORY,
            jobs=args.jobs,
            progress=progress,
        )
    except (SuiteError, LayoutError, OutputInsideDataset) as error:
        raise CannotRun(str(error)) from error
    finally:
        if progress:
            progress.close()
    outcome = result.outcome
    failed = [item for item in outcome.expectations if not item.passed]
    print(
        f"check {'PASSED' if result.success else 'FAILED'}: {len(outcome.expectations) - len(failed)}/{len(outcome.expectations)} expectations met"
    )
    for item in failed:
        shown = f"; e.g. {', '.join(item.offending[:3])}" if item.offending else ""
        print(
            f"  FAIL {item.table}: {item.type}({item.kwargs.get('column', '')}): observed {item.observed}{shown}"
        )
    for line in result.changes:
        print(f"  since last check: {line}")
    print(f"Data Docs: {outcome.data_docs}")
    print(result.files["check.html"])
    return result.exit_code()


def run_suite_init(args: argparse.Namespace) -> int:
    import json

    from audit.dataset import LayoutError
    from audit.expectations import suite_from_report
    from audit.scan import OutputInsideDataset, scan

    name = _dataset_name(args.root)
    target = Path(args.out) if args.out else Path(f"{name}.suite.json")
    if target.exists():
        raise CannotRun(
            f"{target} exists; a suite is never overwritten (remove it or choose another --out)"
        )
    try:
        scan(
            args.root, Path(args.report) if args.report else Path("reports") / name, fail_on="never"
        )
    except (LayoutError, OutputInsideDataset) as error:
        raise CannotRun(str(error)) from error
    suite = suite_from_report(Path(args.report) if args.report else Path("reports") / name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(suite, indent=2) + "\n")
    count = sum(len(suite[table]["expectations"]) for table in ("files", "classes"))
    print(
        f"{count} expectations written to {target}; edit the tolerances, commit it, then: python -m audit check {args.root} --suite {target}"
    )
    return EXIT_CLEAN


def run_history(args: argparse.Namespace) -> int:
    from audit import history
    from audit.check import DEFAULT_HISTORY

    root = str(Path(args.root).expanduser().absolute())
    print(
        history.trend_table(
            history.runs(args.history or DEFAULT_HISTORY, dataset=root, limit=args.last)
        )
    )
    return EXIT_CLEAN


def run_demo(args: argparse.Namespace) -> int:
    from audit.demo import build_demo

    try:
        root = build_demo(Path(args.dest))
    except (ImportError, FileExistsError) as error:
        raise CannotRun(str(error)) from error
    print(f"Demo dataset written to {root}")
    return EXIT_CLEAN


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    return run_command(build_parser(), argv, "audit")
