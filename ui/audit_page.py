"""The audit page: scan a folder (or open a report), then see what will break training."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from audit.dataset import resolve
from audit.errors import UserError
from audit.escaping import markdown
from audit.outputs import default_report_dir
from audit.quarantine import quarantine, select
from audit.reportio import DUPLICATES, IMAGES, SUMMARY_NAME, DuplicateRow
from audit.scan import scan
from train.bias import prior_init
from ui import data
from ui.safety import OutsideAllowedRoots, checked, workdir

MAX_PROBLEM_THUMBNAILS = 200
MAX_GROUPS = 30
MAX_MEMBERS = 6


def render() -> None:
    st.header("Audit a dataset")
    reports_dir = workdir() / "reports"
    source = st.radio(
        "Dataset", ["Scan a folder", "Open a recent report"], horizontal=True, key="audit_source"
    )
    if source == "Scan a folder":
        folder = st.text_input(
            "Dataset folder, laid out as ROOT/<class>/<images>", key="dataset_path"
        )
        if st.button("Scan", key="scan", type="primary"):
            _scan(folder, reports_dir)
    else:
        reports = data.recent_reports(reports_dir)
        if reports:
            chosen = st.selectbox(
                "Report", reports, format_func=lambda path: path.name, key="report_choice"
            )
            st.session_state["report_dir"] = str(chosen)
        else:
            st.info(f"No report yet under {reports_dir}: scan a folder first.")
    report_dir = st.session_state.get("report_dir")
    if not report_dir or not (Path(report_dir) / SUMMARY_NAME).exists():
        st.info("No report yet: scan a dataset folder, or open a recent report.")
        return
    show_report(Path(report_dir))


def _scan(folder: str, reports_dir: Path) -> None:
    try:
        root = checked(folder)
    except OutsideAllowedRoots as error:
        st.error(f"Refused: {error}")
        return
    bar = st.progress(0.0, text="scanning")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"scanning: {done} of {total} files")

    try:
        result = scan(
            root, default_report_dir(root, base=reports_dir), progress=progress, fail_on="never"
        )
    except UserError as error:
        bar.empty()
        st.error(f"Cannot scan: {error}")
        return
    bar.progress(1.0, text=f"scanned {result.summary['files']} files")
    st.session_state["report_dir"] = str(result.out)


def show_report(report_dir: Path) -> None:
    try:
        summary = data.summary(str(report_dir), data.mtime(report_dir / SUMMARY_NAME))
        images = data.images(str(report_dir), data.mtime(report_dir / IMAGES.file_name))
        groups = data.duplicates(str(report_dir), data.mtime(report_dir / DUPLICATES.file_name))
    except UserError as error:
        st.error(f"Cannot read the report: {error}")
        return
    counts = summary["severity_counts"]
    duplicates = summary.get("checks", {}).get("duplicates", {})
    st.subheader(f"Report: {report_dir.name}")
    st.text(
        f"{summary['root']} · scanned {summary['created_utc']} · exit code {summary['exit_code']}"
    )

    columns = st.columns(5)
    columns[0].metric("Files", summary["files"])
    columns[1].metric("Usable", summary["usable"])
    columns[2].metric("Errors", counts["error"])
    columns[3].metric("Duplicate groups", duplicates.get("groups", 0))
    columns[4].metric(
        "Imbalance ratio",
        summary["imbalance_ratio"] if summary["imbalance_ratio"] is not None else "-",
    )
    _bias(summary)

    st.subheader("Class balance")
    classes = pd.DataFrame(summary["classes"])
    if not classes.empty:
        st.bar_chart(classes.set_index("name")[["usable"]])
    _resolution(images, summary)
    _problems(images, report_dir, summary["root"])
    _duplicate_gallery(groups, summary["root"])
    _downloads(report_dir)
    _quarantine(report_dir)


def _bias(summary: dict) -> None:
    present = [entry for entry in summary["classes"] if entry["usable"] > 0]
    if len(present) < 2:
        st.info("Fewer than two classes with usable images: no output bias to suggest.")
        return
    init = prior_init([entry["name"] for entry in present], [entry["usable"] for entry in present])
    if init.binary:
        bias = (
            f"sigmoid bias {init.bias[0]:+.4f} "
            f"(log of {present[1]['name']}/{present[0]['name']}: "
            f"{present[1]['name']} is the positive class)"
        )
    else:
        bias = "softmax biases log(prior): " + ", ".join(
            f"{name} {value:+.3f}" for name, value in zip(init.classes, init.bias, strict=True)
        )
    st.text(
        f"Suggested output bias: {bias}; expected initial loss {init.expected_loss:.4f} "
        f"(a zero bias would start at {init.zero_bias_loss:.4f})"
    )


def _resolution(images: pd.DataFrame, summary: dict) -> None:
    st.subheader("Resolution")
    usable = images[(images["severity"] != "error") & images["width"].notna()].copy()
    if usable.empty:
        st.info("No decodable image to plot.")
        return
    usable["outlier"] = (
        usable["issues"].str.contains("resolution_outlier").map({True: "outlier", False: "usual"})
    )
    shown = pd.concat(
        [usable[usable["outlier"] == "outlier"], usable[usable["outlier"] == "usual"].head(5000)]
    )
    st.scatter_chart(shown, x="width", y="height", color="outlier")
    rule = summary["thresholds"]["resolution_outlier"]
    if "lower_side_px" in rule:
        st.text(
            f"Usual linear size {rule['lower_side_px']}-{rule['upper_side_px']} px "
            f"around a median of {rule['median_side_px']} px; "
            f"{rule.get('outliers', 0)} outlier(s)."
        )


def _problems(images: pd.DataFrame, report_dir: Path, root: str) -> None:
    st.subheader("Problem files")
    flagged = images[images["severity"].isin(["error", "warning"])].copy()
    if flagged.empty:
        st.success("No file has an error or a warning.")
        return
    flagged["order"] = flagged["severity"].map({"error": 0, "warning": 1})
    flagged = flagged.sort_values(["order", "path"]).drop(columns="order")
    thumbnails = []
    for position, path in enumerate(flagged["path"]):
        absolute = resolve(root, path)
        thumbnails.append(
            data.thumbnail(absolute, data.mtime(Path(absolute)))
            if position < MAX_PROBLEM_THUMBNAILS
            else None
        )
    flagged.insert(0, "preview", thumbnails)
    st.dataframe(
        flagged[["preview", "path", "label", "severity", "issues", "reasons"]],
        column_config={"preview": st.column_config.ImageColumn("preview", width="small")},
        hide_index=True,
        width="stretch",
    )


def _duplicate_gallery(rows: list[DuplicateRow], root: str) -> None:
    st.subheader("Duplicate groups")
    if not rows:
        st.info("No duplicate found.")
        return
    groups: dict[int, list[DuplicateRow]] = {}
    for row in rows:
        groups.setdefault(row.group, []).append(row)
    for group_id, members in list(groups.items())[:MAX_GROUPS]:
        labels = {member.label for member in members}
        splits = {member.split for member in members}
        flags = (" · label conflict" if len(labels) > 1 else "") + (
            " · split leak" if len(splits) > 1 else ""
        )
        st.markdown(f"**Group {markdown(group_id)}** · {len(members)} files{flags}")
        columns = st.columns(min(len(members), MAX_MEMBERS))
        shown = sorted(members, key=lambda member: not member.keeper)[:MAX_MEMBERS]
        for column, member in zip(columns, shown, strict=False):
            absolute = resolve(root, member.path)
            uri = data.thumbnail(absolute, data.mtime(Path(absolute)))
            role = "keeper" if member.keeper else f"{member.kind} d={member.distance}"
            caption = markdown(f"{member.label} · {role} · {member.path.rsplit('/', 1)[-1]}")
            if uri:
                column.image(uri, caption=caption, width=96)
            else:
                column.text(caption)
    if len(groups) > MAX_GROUPS:
        st.text(f"First {MAX_GROUPS} of {len(groups)} groups; duplicates.csv lists them all.")


def _downloads(report_dir: Path) -> None:
    st.subheader("Report files")
    columns = st.columns(len(data.REPORT_FILES))
    for column, name in zip(columns, data.REPORT_FILES, strict=True):
        path = report_dir / name
        if path.exists():
            column.download_button(name, path.read_bytes(), file_name=name, key=f"download_{name}")


def _quarantine(report_dir: Path) -> None:
    with st.expander("Quarantine flagged files (moves them out of the dataset, restorable)"):
        severity = st.radio(
            "Select files with findings at or above",
            ["error", "warning"],
            horizontal=True,
            key="quarantine_severity",
        )
        try:
            rows = select(report_dir, severity=severity)
        except UserError as error:
            st.error(str(error))
            return
        if not rows:
            st.info("No file matches.")
            return
        st.dataframe(
            pd.DataFrame(
                [
                    {"path": row.report_path, "severity": row.severity, "issues": row.issues}
                    for row in rows
                ]
            ),
            hide_index=True,
        )
        confirmed = st.checkbox(
            f"I understand: these {len(rows)} files will be moved out of the dataset into a "
            f"new quarantine folder under {report_dir}, with a manifest that restores them.",
            key="quarantine_confirm",
        )
        if st.button("Quarantine", key="quarantine_go", disabled=not confirmed):
            try:
                checked(report_dir)
                outcome = quarantine(report_dir, [row.path for row in rows])
            except (UserError, OutsideAllowedRoots) as error:
                st.error(f"Refused: {error}")
                return
            returned = f"; {len(outcome.returned)} changed while moving and were put back"
            st.success(
                f"{len(outcome.moved)} file(s) moved{returned if outcome.returned else ''}. "
                f"Restore with: python -m audit restore {outcome.manifest}"
            )
