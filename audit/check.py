"""One scheduled check: scan (incrementally), validate with Great Expectations, record, report.

Writes into OUT: the scan's reports, the Great Expectations project and its Data Docs
site (OUT/gx-project/gx/uncommitted/data_docs/local_site/: rewritten by audit.datadocs
to hold no script and load nothing from another host; names in it percent-encoded),
validation_result.json (names as they are), great_expectations.log when GE logged
anything, and check.html / check.md: the check's own summary. A suite that cannot be
evaluated (audit.expectations.SuiteError, exit 2) leaves no row in the history. A
second check (or scan) on the same OUT while one runs is refused at once, naming the
process that holds it (audit.lock); the history takes concurrent writers from several
OUT folders (SQLite transactions).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from audit import expectations, history
from audit.escaping import markdown
from audit.lock import LOCK_NAME, folder_lock
from audit.outputs import refuse_inside_dataset
from audit.reportio import Report
from audit.scan import scan

DEFAULT_HISTORY = Path("reports") / "check-history.sqlite"


@dataclass
class CheckResult:
    success: bool
    outcome: expectations.CheckOutcome
    changes: list[str]
    files: dict[str, Path] = field(default_factory=dict)
    run_id: int = 0

    def exit_code(self) -> int:
        return 0 if self.success else 1


def run_check(
    root: str | os.PathLike,
    suite_path: str | os.PathLike,
    out: str | os.PathLike,
    history_path: str | os.PathLike = DEFAULT_HISTORY,
    jobs: int | None = None,
    progress=None,
    rehash: bool | float = False,
) -> CheckResult:
    """Check ROOT against the suite; SuiteError (exit 2) when the suite cannot be used.

    rehash: as scan()'s (re-read cached files to find changed_in_place)."""
    out_path = Path(out).absolute()
    refuse_inside_dataset(root, out_path, "--out")  # before the lock creates the folder
    refuse_inside_dataset(root, Path(history_path), "--history")
    created = not out_path.exists()
    with folder_lock(out_path, "check"):  # one writer per folder: a second check exits 2
        try:  # the suite is read under the lock, so a busy folder is refused at once
            suite = expectations.load_suite(suite_path)
        except expectations.SuiteError:
            if created:  # leave no trace of a check that could not run
                (out_path / LOCK_NAME).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    out_path.rmdir()
            raise
        scanned = scan(root, out_path, jobs=jobs, fail_on="never", progress=progress, rehash=rehash)
        outcome = expectations.run_checkpoint(
            out_path, suite, out_path / "gx-project", suite_name=f"the suite {suite_path}"
        )
        summary = scanned.summary
        run = history.Run(
            id=0,
            time_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            dataset=summary["root"],
            suite=str(Path(suite_path).absolute()),
            success=outcome.success,
            files=summary["files"],
            usable=summary["usable"],
            errors=summary["severity_counts"]["error"],
            expectations={item.key: item.passed for item in outcome.expectations},
            state={
                "classes": {
                    entry["name"]: entry["usable"] for entry in summary["classes"] if entry["files"]
                },
                "error_files": _error_files(out_path),
                "out": str(out_path),
            },
        )
        earlier = history.runs(history_path, dataset=run.dataset, limit=1)
        changed = history.changes(earlier[-1] if earlier else None, run)
        run.id = history.append(history_path, run)
        files = _write_summaries(out_path, outcome, changed, run, summary)
    return CheckResult(outcome.success, outcome, changed, files, run.id)


def _error_files(report_dir: Path) -> list[str]:
    return [row.path for row in Report(report_dir).images() if row.severity == "error"]


_environment = Environment(
    loader=PackageLoader("audit", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


def _write_summaries(
    out: Path, outcome, changed: list[str], run: history.Run, summary: dict
) -> dict[str, Path]:
    failed = [item for item in outcome.expectations if not item.passed]
    docs = os.path.relpath(outcome.data_docs, out)
    pages = [os.path.relpath(page, out) for page in outcome.validation_pages]
    html = _environment.get_template("check.html.j2").render(
        outcome=outcome,
        failed=failed,
        changes=changed,
        run=run,
        summary=summary,
        docs=docs,
        pages=pages,
        gx_log=expectations.GX_LOG if outcome.gx_messages else None,
    )
    (out / "check.html").write_text(html, encoding="utf-8")
    lines = [
        f"# Dataset check: {'PASS' if outcome.success else 'FAIL'} "
        f"({markdown(Path(summary['root']).name)})",
        "",
        f"{run.time_utc} · {summary['files']} files, {summary['usable']} usable, "
        f"{summary['severity_counts']['error']} with errors · "
        f"{len(outcome.expectations) - len(failed)}/{len(outcome.expectations)} "
        "expectations met",
        "",
        "## Since the previous check",
        "",
        *[f"- {markdown(line)}" for line in changed],
        "",
        "## Expectations",
        "",
        "| result | table | expectation | column | observed | offending |",
        "|---|---|---|---|---|---|",
    ]
    for item in outcome.expectations:
        offending = ", ".join(item.offending[:5]) + (" ..." if len(item.offending) > 5 else "")
        lines.append(
            f"| {'pass' if item.passed else '**FAIL**'} | {item.table} | `{item.type}` | "
            f"{markdown(item.kwargs.get('column', ''))} | "
            f"{markdown(str(item.observed))} | {markdown(offending)} |"
        )
    lines += ["", f"Data Docs: `{docs}` · full report: `report.html`", ""]
    if outcome.gx_messages:
        lines += [
            f"Great Expectations logged {len(outcome.gx_messages)} message(s) while validating "
            f"or drawing its Data Docs: `{expectations.GX_LOG}`",
            "",
        ]
    (out / "check.md").write_text("\n".join(lines), encoding="utf-8")
    return {
        "check.html": out / "check.html",
        "check.md": out / "check.md",
        "validation_result.json": outcome.validation_result,
        "data_docs": outcome.data_docs,
    }
