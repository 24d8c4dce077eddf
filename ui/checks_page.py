"""The checks page: the history of scheduled checks and the latest check's own page."""

from __future__ import annotations

import pandas as pd
import streamlit as st
import streamlit.components.v1 as components

from audit import history
from ui.safety import OutsideAllowedRoots, checked, workdir


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
    st.subheader("Expectations over time (1 = met)")
    over_time = pd.DataFrame(
        [{key: int(ok) for key, ok in run.expectations.items()} for run in runs],
        index=[run.id for run in runs],
    )
    st.line_chart(over_time)
    st.subheader("Since the previous check")
    previous = runs[-2] if len(runs) > 1 else None
    for line in history.changes(previous, runs[-1]):
        st.text(f"- {line}")
    _latest_pages(runs[-1])


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
    if page.exists():
        components.html(page.read_text(encoding="utf-8"), height=520, scrolling=True)
    if docs.exists():
        st.text(f"Great Expectations Data Docs: {docs}")
        st.download_button(
            "Data Docs index.html", docs.read_bytes(), file_name="index.html", key="docs_index"
        )
        # The validation pages are static HTML (the index is drawn by JavaScript): embed the
        # latest ones.
        pages = sorted(
            docs.parent.glob("validations/**/*.html"), key=lambda page: page.stat().st_mtime
        )[-2:]
        for page in pages:
            with st.expander(f"Data Docs: {page.parent.parent.parent.name}"):
                components.html(page.read_text(encoding="utf-8"), height=600, scrolling=True)
    validation = folder / "validation_result.json"
    if validation.exists():
        st.download_button(
            "validation_result.json",
            validation.read_bytes(),
            file_name="validation_result.json",
            key="validation_json",
        )
