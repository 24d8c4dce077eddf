"""Loading reports and runs for the pages: the only place st.cache_data is used.

Each loader takes the file's modification time as an argument, so a rewritten report is
read again while an unchanged one is served from the cache.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pandas as pd
import streamlit as st

from audit.checks import DEFAULT_MAX_PIXELS
from audit.reportio import DUPLICATES, FINDINGS, IMAGES, SUMMARY_NAME, DuplicateRow, Report
from audit.thumbnails import thumbnail_data_uri

REPORT_FILES = (
    "report.html",
    "report.md",
    SUMMARY_NAME,
    IMAGES.file_name,
    FINDINGS.file_name,
    DUPLICATES.file_name,
)


def mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


@st.cache_data(show_spinner=False)
def summary(report_dir: str, modified: float) -> dict:
    return Report(report_dir).summary


@st.cache_data(show_spinner=False)
def images(report_dir: str, modified: float) -> pd.DataFrame:
    # As images.csv writes them: names that are not UTF-8 are no text Arrow can carry.
    rows = [{**asdict(row), "path": row.report_path} for row in Report(report_dir).images()]
    frame = pd.DataFrame(rows, columns=list(IMAGES.columns))
    for column in ("width", "height", "bytes"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


@st.cache_data(show_spinner=False)
def duplicates(report_dir: str, modified: float) -> list[DuplicateRow]:
    return Report(report_dir).duplicates()


@st.cache_data(show_spinner=False, max_entries=5000)
def thumbnail(path: str, modified: float) -> str | None:
    return thumbnail_data_uri(path, DEFAULT_MAX_PIXELS)


def recent_reports(reports_dir: Path) -> list[Path]:
    """Report folders (holding summary.json) under reports_dir, newest first."""
    if not reports_dir.is_dir():
        return []
    found = [path.parent for path in reports_dir.glob(f"*/{SUMMARY_NAME}")]
    return sorted(found, key=lambda path: mtime(path / SUMMARY_NAME), reverse=True)
