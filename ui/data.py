"""Loading reports and runs for the pages: the only place st.cache_data is used.

Each loader takes the file's modification time as an argument, so a rewritten report is
read again while an unchanged one is served from the cache.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import streamlit as st

from audit import model_findings
from audit.checks import DEFAULT_MAX_PIXELS
from audit.errors import UserError
from audit.model_findings import LabelIssue
from audit.quarantine import manifest_entries, manifests
from audit.reportio import (
    DUPLICATES,
    FINDINGS,
    IMAGES,
    SUMMARY_NAME,
    DuplicateRow,
    Report,
    ReportError,
    Staleness,
    report_is_stale,
)
from audit.thumbnails import thumbnail_data_uri

REPORT_FILES = (
    "report.html",
    "report.md",
    SUMMARY_NAME,
    IMAGES.file_name,
    FINDINGS.file_name,
    DUPLICATES.file_name,
)


def _name_bytes(text: str) -> bytes:
    # Streamlit hashes a str argument with str.encode(), which refuses the surrogate
    # escapes of a name that is not UTF-8 (a file dog/dup\xff.png crashed the page).
    return text.encode("utf-8", "surrogateescape")


def cached(**options):
    """st.cache_data whose str arguments may be any file name (bytes that are not UTF-8
    included)."""
    return st.cache_data(show_spinner=False, hash_funcs={str: _name_bytes}, **options)


def mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


@cached()
def summary(report_dir: str, modified: float) -> dict:
    return Report(report_dir).summary


@cached()
def images(report_dir: str, modified: float) -> pd.DataFrame:
    # As images.csv writes them: names that are not UTF-8 are no text Arrow can carry.
    rows = [{**asdict(row), "path": row.report_path} for row in Report(report_dir).images()]
    frame = pd.DataFrame(rows, columns=list(IMAGES.columns))
    for column in ("width", "height", "bytes"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


@cached()
def duplicates(report_dir: str, modified: float) -> list[DuplicateRow]:
    return Report(report_dir).duplicates()


@cached()
def locations(report_dir: str, modified: float) -> dict[str, tuple[str, str]]:
    """images.csv's path (as written) -> (the file's real relative path, its absolute
    place); rows whose path leads out of the dataset are left out (never read)."""
    report = Report(report_dir)
    found = {}
    for row in report.images():
        try:
            found[row.report_path] = (row.path, str(report.locate(row)))
        except ReportError:
            continue
    return found


@cached()
def label_issues(report_dir: str, modified: float) -> list[LabelIssue] | None:
    """label_issues.csv's rows (worst first), or None when the report has none; read as a
    scan imports them (audit.model_findings.load: with the label_issues.json they belong
    to). modified: the later of the two files' modification times (the cache key)."""
    findings = model_findings.load(report_dir)
    return findings.issues if findings.source is not None else None


# A report is checked against the disk at most every STALE_TTL_S seconds, and an action of
# the app (quarantine, restore) clears the cache at once. The full check stats every file
# and walks the tree: 2,000 files took 0.11-0.12 s here (2 busy cores), so about a minute
# for a million. Past FULL_CHECK_FILES files only the folders are compared: a file added,
# removed or renamed changes its folder's modification time (a file rewritten in place
# does not: the banner says what was checked).
STALE_TTL_S = 20
FULL_CHECK_FILES = 20_000


@cached(ttl=STALE_TTL_S)
def staleness(report_dir: str, modified: float) -> Staleness | str:
    """What changed on disk since the report: a Staleness (empty: nothing), or for a large
    report a sentence naming the folders changed since the scan ("" when none)."""
    report = Report(report_dir)
    if report.summary["files"] <= FULL_CHECK_FILES:
        return report_is_stale(report)
    scanned = mtime(Path(report_dir) / SUMMARY_NAME) - report.summary.get("duration_s", 0)
    folders = {os.path.dirname(place) for _, place in locations(report_dir, modified).values()}
    changed = sorted(folder for folder in folders if mtime(Path(folder)) > scanned)
    if not changed:
        return ""
    return (
        f"{len(changed)} folder(s) changed since the scan (e.g. {', '.join(changed[:3])}; "
        f"with {report.summary['files']} files only folders are compared)"
    )


def batches(report_dir: Path) -> list[dict]:
    """The quarantines made into report_dir, oldest first: manifest, entries, how many
    of them are still in the quarantine folder ("away") and how many of those find their
    original place taken by another file ("taken")."""
    found = []
    for manifest in manifests(report_dir):
        try:
            moves, header = manifest_entries(manifest)
        except (UserError, OSError) as error:  # one unreadable manifest hides no other
            found.append(
                {"manifest": manifest, "error": str(error), "moves": [], "away": 0, "taken": 0}
            )
            continue
        # A file is away while its quarantined copy is there, even when something else
        # took its original place meanwhile (Restore then says why it refuses it).
        away = [move for move in moves if os.path.lexists(move.quarantined)]
        taken = sum(1 for move in away if os.path.lexists(move.original))
        found.append(
            {"manifest": manifest, "created": header.get("created_utc", ""), "moves": moves,
             "away": len(away), "taken": taken, "error": None}
        )  # fmt: skip
    return found


@cached(max_entries=5000)
def thumbnail(path: str, modified: float) -> str | None:
    return thumbnail_data_uri(path, DEFAULT_MAX_PIXELS)


def recent_reports(reports_dir: Path) -> list[Path]:
    """Report folders (holding summary.json) under reports_dir, newest first."""
    if not reports_dir.is_dir():
        return []
    found = [path.parent for path in reports_dir.glob(f"*/{SUMMARY_NAME}")]
    return sorted(found, key=lambda path: mtime(path / SUMMARY_NAME), reverse=True)
