"""The checks page: the history of scheduled checks and the latest check's own page.

Pages are embedded with Streamlit's iframe (st.iframe, or components.html before it),
which always allows scripts and same-origin access to the app: each goes through
audit.datadocs.safe_page(embedded=True) first (no script, a script-src 'none' policy,
nothing loaded, links inert), whether `check` already rewrote it or an older version of
the tool wrote it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st
import streamlit.components.v1 as components

from audit import history
from audit.datadocs import safe_page
from ui.safety import OutsideAllowedRoots, checked, markdown, readable, workdir


def render() -> None:
    st.header("Scheduled checks")
    history_path = workdir() / "reports" / "check-history.sqlite"
    past = history.runs(history_path)
    if not past:
        st.info(
            f"No check recorded yet in {history_path}. Run one with "
            "`python -m audit suite init ROOT` then "
            "`python -m audit check ROOT --suite ROOT.suite.json`."
        )
        return
    datasets = sorted({run.dataset for run in past})
    dataset = st.selectbox("Dataset", datasets, key="check_dataset")
    runs = [run for run in past if run.dataset == dataset]
    table = pd.DataFrame(
        {
            "run": [run.id for run in runs],
            "time (UTC)": [run.time_utc[:19] for run in runs],
            "result": ["PASS" if run.success else "FAIL" for run in runs],
            "files": [run.files for run in runs],
            "usable": [run.usable for run in runs],
            "errors": [run.errors for run in runs],
            "failed expectations": [
                ", ".join(key for key, ok in run.expectations.items() if not ok) or "-"
                for run in runs
            ],
        }
    )
    st.dataframe(table, hide_index=True, width="stretch")
    st.subheader("Expectations, check by check")
    grid = expectation_grid(runs)
    st.dataframe(grid.style.map(_colour), width="stretch")
    st.subheader("Since the previous check")
    previous = runs[-2] if len(runs) > 1 else None
    for line in history.changes(previous, runs[-1]):
        st.text(f"- {line}")
    _latest_pages(runs[-1])


def expectation_grid(runs: list[history.Run]) -> pd.DataFrame:
    """Checks x expectations: "pass" or "fail" per expectation of each check, "-" where that
    check's suite did not hold the expectation; newest check first."""
    keys = list(dict.fromkeys(key for run in runs for key in run.expectations))
    rows = [
        {
            key: ("pass" if run.expectations[key] else "fail") if key in run.expectations else "-"
            for key in keys
        }
        for run in reversed(runs)
    ]
    index = [f"#{run.id} {run.time_utc[:16].replace('T', ' ')}" for run in reversed(runs)]
    return pd.DataFrame(rows, index=pd.Index(index, name="check (UTC)"), columns=keys)


def _colour(value: str) -> str:
    return {"pass": "background-color: #d7f5dd", "fail": "background-color: #fbd5d5"}.get(value, "")


def _latest_pages(run: history.Run) -> None:
    out = run.state.get("out")
    if not out:
        return
    try:
        folder = checked(out)
    except OutsideAllowedRoots as error:
        st.warning(f"The latest check's folder is not shown: {error}")
        return
    page = folder / "check.html"
    docs = folder / "gx-project" / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    st.subheader("Latest check")
    if readable(page):
        _embed(_embeddable(page), height=520)
    elif os.path.lexists(page):
        st.warning(f"{markdown(page)} is not shown: it leads outside the allowed roots.")
    if readable(docs):
        st.text(f"Great Expectations Data Docs: {docs}")
        st.download_button(
            "Data Docs index.html",
            safe_page(docs.read_text(encoding="utf-8", errors="replace")),
            file_name="index.html",
            mime="text/html",
            key="docs_index",
        )
        # The validation pages are static HTML: embed the latest run's (validations/SUITE/
        # RUN NAME/RUN TIME/PAGE.html; run times sort as text).
        pages = sorted(docs.parent.glob("validations/*/*/*/*.html"))
        latest = max((page.parent.name for page in pages), default="")
        for page in [page for page in pages if page.parent.name == latest and readable(page)]:
            with st.expander(f"Data Docs: {page.parent.parent.parent.name}"):
                _embed(_embeddable(page), height=600)
    validation = folder / "validation_result.json"
    if readable(validation):
        st.download_button(
            "validation_result.json",
            validation.read_bytes(),
            file_name="validation_result.json",
            key="validation_json",
        )


def _embeddable(page: Path) -> str:
    """A page's HTML as the component iframe may show it (see the module's docstring)."""
    return safe_page(page.read_text(encoding="utf-8", errors="replace"), embedded=True)


def _embed(page: str, height: int) -> None:
    """page (already made embeddable) in an iframe with its own scroll bar."""
    if hasattr(st, "iframe"):  # newer Streamlit, where components.html is deprecated
        st.iframe(page, height=height)
    else:
        components.html(page, height=height, scrolling=True)
