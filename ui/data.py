"""Loading reports and runs for the pages: the only place st.cache_data is used.

Each loader takes the file's modification time as an argument, so a rewritten report is
read again while an unchanged one is served from the cache.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import streamlit as st

from audit.checks import DEFAULT_MAX_PIXELS
from audit.thumbnails import thumbnail_data_uri

REPORT_FILES = (
    "report.html",
    "report.md",
    "summary.json",
    "images.csv",
    "findings.csv",
    "duplicates.csv",
)


def mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


@st.cache_data(show_spinner=False)
def summary(report_dir: str, modified: float) -> dict:
    return json.loads((Path(report_dir) / "summary.json").read_text())


@st.cache_data(show_spinner=False)
def images(report_dir: str, modified: float) -> pd.DataFrame:
    frame = pd.read_csv(
        Path(report_dir) / "images.csv",
        dtype={"issues": str, "reasons": str, "format": str, "split": str},
        keep_default_na=False,
    )
    for column in ("width", "height", "bytes"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


@st.cache_data(show_spinner=False)
def duplicates(report_dir: str, modified: float) -> list[dict]:
    path = Path(report_dir) / "duplicates.csv"
    return list(csv.DictReader(open(path, encoding="utf-8"))) if path.exists() else []


@st.cache_data(show_spinner=False, max_entries=5000)
def thumbnail(path: str, modified: float) -> str | None:
    return thumbnail_data_uri(path, DEFAULT_MAX_PIXELS)


def recent_reports(reports_dir: Path) -> list[Path]:
    """Report folders (holding summary.json) under reports_dir, newest first."""
    if not reports_dir.is_dir():
        return []
    found = [path.parent for path in reports_dir.glob("*/summary.json")]
    return sorted(found, key=lambda path: mtime(path / "summary.json"), reverse=True)
