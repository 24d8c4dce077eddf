"""Command line: `python -m audit scan ROOT ...` and friends.

Exit codes (DESIGN.md), mapped once by audit.boundary: 0 clean, 1 findings at or above
--fail-on, 2 could not run (bad arguments, missing folder, not a class-folder layout,
unreadable report or suite), 3 unexpected failure, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from audit import __version__, argtypes, model_findings
from audit.boundary import run_command
from audit.checks import REGISTRY, Registry
from audit.errors import AlreadyExists, CannotWrite, InvalidArgument
from audit.escaping import terminal
from audit.outputs import default_report_dir, refuse_inside_dataset

EXIT_CLEAN, EXIT_FINDINGS = 0, 1


def build_parser(registry: Registry = REGISTRY) -> argparse.ArgumentParser:
    """The parser of every subcommand; scan's threshold options come from registry."""
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
        "(exact, near, across labels and splits), class balance, resolution; write images.csv, "
        "findings.csv, duplicates.csv, summary.json, report.html, report.md. ROOT is only read, "
        "never changed.",
    )
    scan.add_argument(
        "root",
        metavar="ROOT",
        help="dataset folder: ROOT/<class>/<images>, or ROOT/<split>/<class>/<images>",
    )
    scan.add_argument(
        "--against",
        metavar="VAL",
        help="a second dataset (e.g. the validation split, VAL/<class>/<images>): images found "
        "in both are split_leak",
    )
    scan.add_argument(
        "--out",
        metavar="DIR",
        help="report folder (default: reports/<ROOT name>-<hash of its path>); must be "
        "outside ROOT",
    )
    scan.add_argument(
        "--fail-on",
        choices=("error", "warning", "info", "never"),
        default="error",
        help="exit 1 when a finding reaches this severity (default: error)",
    )
    scan.add_argument(
        "--jobs", type=argtypes.jobs, metavar="N", help="worker processes (default: all cores)"
    )
    scan.add_argument(
        "--cache",
        metavar="PATH",
        help="incremental cache file (default: DIR/.scan-cache.sqlite next to the reports)",
    )
    scan.add_argument(
        "--no-cache", action="store_true", help="inspect every file again, and keep no cache"
    )
    _add_rehash_options(scan)
    scan.add_argument(
        "--engine",
        choices=("local", "dask"),
        default="local",
        help="local processes (default) or a Dask cluster",
    )
    scan.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (default with --engine dask: "
        "a local cluster)",
    )
    scan.add_argument(
        "--quiet", action="store_true", help="no progress bar and no per-error lines on stderr"
    )
    registry.add_options(scan)
    scan.set_defaults(handler=run_scan, registry=registry)

    quarantine = commands.add_parser(
        "quarantine",
        help="move flagged files out of the dataset, with a manifest that restores them",
        description="Move the files a report flags (default: every file with an error) out of "
        "ROOT into a new quarantine folder, keeping their paths; manifest.jsonl there is a "
        "journal (intent before each move, done after it is verified) that `restore` undoes "
        "after any interruption. Refuses (moving nothing) when a file changed since the "
        "report. Exit 1 when a file changed during its move (it is put back).",
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
        "--top",
        type=argtypes.integer(minimum=1),
        metavar="N",
        help="with --codes suspected_label_issue: only the N files with the lowest "
        "label-quality score in label_issues.csv (the most doubtful labels)",
    )
    quarantine.add_argument(
        "--to",
        metavar="DIR",
        help="a new or empty quarantine folder (default: REPORT_DIR/quarantine-<UTC time>)",
    )
    quarantine.add_argument(
        "--dry-run", action="store_true", help="list what would move; move nothing"
    )
    quarantine.set_defaults(handler=run_quarantine)

    restore = commands.add_parser(
        "restore",
        help="put quarantined files back (from a manifest.jsonl)",
        description="Move every entry of a quarantine manifest back to where it was, verified "
        "(sha256 of a file, target of a link). Entries already back are skipped; an entry "
        "that cannot be restored (its place taken, its copy changed, a damaged manifest "
        "line) is named with the reason and the others are restored (exit 1). Run it again "
        "to finish after an interruption.",
    )
    restore.add_argument(
        "manifest", metavar="MANIFEST", help="manifest.jsonl written by `quarantine`"
    )
    restore.add_argument("--dry-run", action="store_true", help="check and list; move nothing")
    restore.set_defaults(handler=run_restore)

    check = commands.add_parser(
        "check",
        help="scheduled check: scan, validate with Great Expectations, record the outcome",
        description="Scan ROOT (incrementally), validate the per-image and per-class tables "
        "against the suite through a Great Expectations Checkpoint, write "
        "validation_result.json, the Data Docs site, check.html and check.md into DIR, and "
        "append the outcome to the history. Exit 0 pass, 1 fail, 2 could not run.",
    )
    check.add_argument("root", metavar="ROOT", help="dataset folder")
    check.add_argument(
        "--suite",
        metavar="FILE",
        help="suite file (default: ./<ROOT name>.suite.json; make one with `suite init`)",
    )
    check.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (default: reports/<ROOT name>-<hash of its path>-check)",
    )
    check.add_argument(
        "--history",
        metavar="PATH",
        default=None,
        help="history database (default: reports/check-history.sqlite)",
    )
    check.add_argument(
        "--jobs",
        type=argtypes.jobs,
        metavar="N",
        help="worker processes for the scan (default: all cores)",
    )
    _add_rehash_options(check)
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
        description="Scan ROOT and write a suite it passes today, with tolerances: class set, "
        "minimum count per class, maximum imbalance ratio, no error-severity file, no label "
        "conflict, maximum duplicate fraction, minimum resolution, allowed formats.",
    )
    init.add_argument("root", metavar="ROOT", help="dataset folder")
    init.add_argument(
        "--out",
        metavar="FILE",
        help="suite file to write (default: ./<ROOT name>.suite.json; never overwritten)",
    )
    init.add_argument(
        "--report",
        metavar="DIR",
        help="where the scan's reports go (default: reports/<ROOT name>-<hash of its path>)",
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
    past.add_argument("--last", type=argtypes.positive, metavar="N", help="only the last N checks")
    past.set_defaults(handler=run_history)

    demo = commands.add_parser(
        "demo",
        help="build the demo dataset (real images from scikit-learn, with known problems injected)",
        description="Write a demo dataset to DIR: scikit-learn's handwritten digits and sample "
        "photos, plus injected problems (truncated, renamed, duplicated, odd-sized, ...) so "
        "every check fires.",
    )
    demo.add_argument("dest", metavar="DIR", help="folder to create; must not exist or be empty")
    demo.set_defaults(handler=run_demo)
    return argtypes.check_paths(parser)


def _add_rehash_options(command: argparse.ArgumentParser) -> None:
    rehash = command.add_mutually_exclusive_group()
    rehash.add_argument(
        "--rehash",
        action="store_true",
        help="read again every file the cache would serve, and report changed_in_place "
        "when its checksum changed under the same size, mtime and inode (bit rot)",
    )
    rehash.add_argument(
        "--rehash-older-than",
        type=argtypes.age,
        metavar="AGE",
        help="like --rehash, only for files last read longer ago than AGE "
        "(e.g. 7d, 12h, 30m, or seconds)",
    )


def _rehash(args: argparse.Namespace) -> bool | float:
    """--rehash / --rehash-older-than as scan()'s rehash argument."""
    if args.rehash:
        return True
    return False if args.rehash_older_than is None else args.rehash_older_than


def run_scan(args: argparse.Namespace) -> int:
    from audit.progress import Progress
    from audit.scan import scan

    registry: Registry = args.registry
    thresholds = registry.thresholds_from(args)
    if args.no_cache and args.cache:
        raise InvalidArgument("--cache and --no-cache exclude each other")
    if args.scheduler and args.engine != "dask":
        raise InvalidArgument("--scheduler needs --engine dask")
    out = Path(args.out) if args.out else default_report_dir(args.root)
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
            registry=registry,
            rehash=_rehash(args),
        )
    finally:
        if progress:
            progress.close()
    for line in result.warnings:  # also with --quiet: rare, and a person should know
        print(terminal(f"warning: {line}"), file=sys.stderr)
    if not args.quiet:
        for line in result.error_lines:
            print(terminal(line), file=sys.stderr)
    summary = result.summary
    counts = summary["severity_counts"]
    print(
        f"{summary['files']} files, {summary['usable']} usable: {counts['error']} with errors, "
        f"{counts['warning']} with warnings, {counts['info']} with info only; "
        f"{len(summary['classes'])} classes, imbalance ratio {summary['imbalance_ratio']}"
    )
    for finding in summary["dataset_findings"]:
        print(terminal(f"{finding['severity']}: {finding['code']}: {finding['reason']}"))
    weak = model_findings.weak_model_note(summary)
    if weak:
        print(terminal(f"warning: {weak}"))
    print(terminal(f"Reports in {result.out}: {', '.join(result.files)}"))
    print(terminal(result.files["report.html"]))
    return result.exit_code()


def run_quarantine(args: argparse.Namespace) -> int:
    from audit.quarantine import quarantine, select

    codes = None if args.codes is None else [c.strip() for c in args.codes.split(",") if c.strip()]
    rows = select(args.report, codes=codes, severity=args.severity, top=args.top)
    _warn_weak_label_issues(args.report, rows, args.top)
    if not rows:
        print("No file matches: nothing to quarantine.")
        return EXIT_CLEAN
    outcome = quarantine(
        args.report, [row.path for row in rows], destination=args.to, dry_run=args.dry_run
    )
    verb = "would move" if args.dry_run else "moved"
    for move in outcome.moved:
        print(terminal(f"{verb}: {move.relpath} -> {move.quarantined}  [{move.codes}]"))
    for move, why in outcome.returned:
        print(terminal(f"put back (it changed during the move: {why}): {move.relpath}"))
    hint = "" if args.dry_run else f"; restore with: python -m audit restore {outcome.manifest}"
    print(terminal(f"{len(outcome.moved)} file(s) {verb}{hint}"))
    if not args.dry_run:
        print(terminal(outcome.manifest))
    return EXIT_FINDINGS if outcome.returned else EXIT_CLEAN


def _warn_weak_label_issues(report: str, rows: list, top: int | None) -> None:
    """Without --top, every suspected label issue of a weak held-out model is taken: say so."""
    from audit.reportio import Report

    count = sum(model_findings.CODE in row.codes for row in rows)
    weak = model_findings.weak_model_note(Report(report).summary) if count and not top else None
    if weak:
        print(
            terminal(
                f"warning: {count} file(s) selected by {model_findings.CODE}, and {weak}; "
                "take the most doubtful first with --top N"
            ),
            file=sys.stderr,
        )


def run_restore(args: argparse.Namespace) -> int:
    from audit.quarantine import restore

    outcome = restore(args.manifest, dry_run=args.dry_run)
    verb = "would restore" if args.dry_run else "restored"
    for move in outcome.restored:
        print(terminal(f"{verb}: {move.quarantined} -> {move.original}"))
    for what, why in outcome.refused:
        print(terminal(f"refused: {what}: {why}"), file=sys.stderr)
    print(
        f"{len(outcome.restored)} {verb} (each verified), {len(outcome.already_back)} already "
        f"back, {len(outcome.refused)} refused"
        + ("; fix what is refused and run restore again" if outcome.refused else "")
    )
    return outcome.exit_code()


def _dataset_name(root: str) -> str:
    return Path(root).resolve().name or "dataset"


def run_check_command(args: argparse.Namespace) -> int:
    from audit.check import DEFAULT_HISTORY, run_check
    from audit.progress import Progress

    suite_path = Path(args.suite) if args.suite else Path(f"{_dataset_name(args.root)}.suite.json")
    out = Path(args.out) if args.out else default_report_dir(args.root, suffix="-check")
    progress = None if args.quiet else Progress("scanning")
    try:
        result = run_check(
            args.root,
            suite_path,
            out,
            history_path=args.history or DEFAULT_HISTORY,
            jobs=args.jobs,
            progress=progress,
            rehash=_rehash(args),
        )
    finally:
        if progress:
            progress.close()
    outcome = result.outcome
    failed = [item for item in outcome.expectations if not item.passed]
    met = len(outcome.expectations) - len(failed)
    verdict = "PASSED" if result.success else "FAILED"
    print(f"check {verdict}: {met}/{len(outcome.expectations)} expectations met")
    for item in failed:
        shown = f"; e.g. {', '.join(item.offending[:3])}" if item.offending else ""
        column = item.kwargs.get("column", "")
        print(
            terminal(f"  FAIL {item.table}: {item.type}({column}): observed {item.observed}{shown}")
        )
    for line in result.changes:
        print(terminal(f"  since last check: {line}"))
    print(terminal(f"Data Docs: {outcome.data_docs}"))
    print(terminal(result.files["check.html"]))
    return result.exit_code()


def run_suite_init(args: argparse.Namespace) -> int:
    import json

    from audit.expectations import suite_from_report
    from audit.scan import scan

    target = Path(args.out) if args.out else Path(f"{_dataset_name(args.root)}.suite.json")
    if target.exists():
        raise AlreadyExists(
            f"{target} exists; a suite is never overwritten (remove it or choose another --out)"
        )
    refuse_inside_dataset(args.root, target, "--out")
    report = Path(args.report) if args.report else default_report_dir(args.root)
    scan(args.root, report, fail_on="never")
    suite = suite_from_report(report)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(suite, indent=2) + "\n")
    except OSError as error:
        raise CannotWrite(f"cannot write the suite {target}: {error.strerror or error}") from None
    count = sum(len(suite[table]["expectations"]) for table in ("files", "classes"))
    print(
        terminal(
            f"{count} expectations written to {target}; edit the tolerances, commit it, then: "
            f"python -m audit check {args.root} --suite {target}"
        )
    )
    return EXIT_CLEAN


def run_history(args: argparse.Namespace) -> int:
    from audit import history
    from audit.check import DEFAULT_HISTORY

    root = str(Path(args.root).expanduser().absolute())
    runs = history.runs(args.history or DEFAULT_HISTORY, dataset=root, limit=args.last)
    print(history.trend_table(runs))
    return EXIT_CLEAN


def run_demo(args: argparse.Namespace) -> int:
    from audit.demo import build_demo

    root = build_demo(Path(args.dest))
    print(terminal(f"Demo dataset written to {root}"))
    return EXIT_CLEAN


def main(argv: list[str] | None = None, registry: Registry = REGISTRY) -> int:
    """Run the CLI; returns the exit code."""
    return run_command(build_parser(registry), argv, "audit")
