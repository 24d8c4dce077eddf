"""The audit page: scan a folder (or open a report), then the answer first: the verdict,
the counts, what to look at, and the actions (quarantine, restore) that stay safe.

Scans run in the background (ui.background): clicks and page switches do not stop them.
Every file the page reads (thumbnails) or moves (quarantine, restore) is checked against
the allowed roots through its resolved path (ui.safety.permitted).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from audit.codes import CODES, SEVERITY_RANK
from audit.errors import UserError
from audit.escaping import terminal
from audit.model_findings import LABEL_ISSUES_NAME, MODEL_SUMMARY_NAME, LabelIssue
from audit.outputs import default_report_dir
from audit.quarantine import manifest_entries, quarantine, restore, select
from audit.report import issue_rows, verdict
from audit.reportio import DUPLICATES, IMAGES, SUMMARY_NAME, DuplicateRow, Report
from train.bias import prior_init
from ui import data, gallery
from ui.background import ScanJob, session_watch, start_scan
from ui.safety import (
    OutsideAllowedRoots,
    checked,
    leading_outside,
    markdown,
    permitted,
    readable,
    workdir,
)

PROBLEMS_PER_PAGE = 100  # rows of the problem table; each shown row has its thumbnail
GROUPS_PER_PAGE = 8
MAX_MEMBERS = 12  # of one group per page; its first page holds one per label
TILES_PER_PAGE = 24
GALLERY_CODES = (  # codes whose files a person judges by looking at them
    "label_conflict",
    "possible_label_conflict",
    "suspected_label_issue",
    "low_information",
    "dark",
    "overexposed",
    "blurry",
    "grayscale_in_color",
    "exact_duplicate",
    "near_duplicate",
    "split_leak",
    "resolution_outlier",
    "odd_aspect_ratio",
)
JOB = "scan_job"


def render() -> None:
    st.header("Audit a dataset")
    reports_dir = workdir() / "reports"
    source = st.radio(
        "Dataset", ["Scan a folder", "Open a recent report"], horizontal=True, key="audit_source"
    )
    job: ScanJob | None = st.session_state.get(JOB)
    if source == "Scan a folder":
        # Streamlit forgets a widget's value while another page is shown: keep the folder.
        if "dataset_path" not in st.session_state:
            st.session_state["dataset_path"] = st.session_state.get("dataset_path_kept", "")
        folder = st.text_input(
            "Dataset folder, laid out as ROOT/<class>/<images>", key="dataset_path"
        )
        st.session_state["dataset_path_kept"] = folder
        running = job is not None and job.running
        if st.button("Scan", key="scan", type="primary", disabled=running):
            _start(folder, lambda root: default_report_dir(root, base=reports_dir))
    else:
        reports = data.recent_reports(reports_dir)
        if reports:
            chosen = st.selectbox(
                "Report", reports, format_func=lambda path: terminal(path.name), key="report_choice"
            )
            st.session_state["report_dir"] = str(chosen)
        else:
            st.info(f"No report yet under {markdown(reports_dir)}: scan a folder first.")
    _scan_state()
    report_dir = st.session_state.get("report_dir")
    if not report_dir or not (Path(report_dir) / SUMMARY_NAME).exists():
        st.info("No report yet: scan a dataset folder, or open a recent report.")
        return
    show_report(Path(report_dir))


# ---------------------------------------------------------------- background scans


def _start(folder: str, out_for) -> bool:
    """Start a background scan of folder (refused outside the allowed roots): whether it
    started."""
    try:
        root = checked(folder)
        out = checked(out_for(root))
    except OutsideAllowedRoots as error:
        st.error(f"Refused: {markdown(error)}")
        return False
    job = st.session_state.get(JOB)
    if job is not None and job.running:
        st.warning("A scan is running: wait for it or cancel it first.")
        return False
    st.session_state[JOB] = start_scan(root, out, session_watch())
    st.session_state.pop("scan_collected", None)
    return True


def _scan_state() -> None:
    """The running scan's progress (refreshed by a fragment), or the last scan's outcome."""
    job: ScanJob | None = st.session_state.get(JOB)
    if job is None:
        return
    if job.running:
        _progress()
        return
    if job.phase == "done" and not st.session_state.get("scan_collected"):
        st.session_state["scan_collected"] = True
        st.session_state["report_dir"] = str(job.report_dir)
        gallery.clear_picks()
        data.staleness.clear()
    if job.phase == "done":
        st.success(f"Scanned {markdown(job.root)}: {job.done} file(s).")
        for line in job.warnings:  # the cache's troubles (renamed aside, ran cold)
            st.warning(markdown(line))
    elif job.phase == "cancelled":
        st.warning(
            f"The scan of {markdown(job.root)} stopped ({markdown(job.cancelled)}) after "
            f"{job.done} of {job.total} file(s); no report was written, an earlier one is "
            "unchanged."
        )
    else:
        st.error(f"Cannot scan {markdown(job.root)}: {markdown(job.error)}")


@st.fragment(run_every=0.5)
def _progress() -> None:
    job: ScanJob | None = st.session_state.get(JOB)
    if job is None:
        return
    if not job.running:
        st.rerun()  # the whole page: the report, or the refusal
    fraction = job.done / job.total if job.total else 0.0
    text = (
        f"scanning {job.root.name}: {job.done} of {job.total} files"
        if job.phase == "scanning"
        else f"{job.phase}: {job.root.name}"
    )
    st.progress(min(fraction, 1.0), text=markdown(text))
    if job.cancelled:
        st.caption("Cancelling: the scan stops after the file in hand.")
    elif st.button("Cancel", key="scan_cancel"):
        job.cancel()
    st.caption("The scan goes on in the background while you use the other pages.")


# ---------------------------------------------------------------- the report


def show_report(report_dir: Path) -> None:
    """Everything a report says, the answer first, then the galleries and the actions."""
    # The files the page parses (the others are offered for download one by one).
    read = [
        SUMMARY_NAME,
        IMAGES.file_name,
        DUPLICATES.file_name,
        LABEL_ISSUES_NAME,
        MODEL_SUMMARY_NAME,
    ]
    try:
        outside = leading_outside(checked(report_dir) / name for name in read)
        if outside:
            raise OutsideAllowedRoots(
                f"{', '.join(path.name for path in outside)} of {report_dir} lead(s) outside "
                "the allowed roots"
            )
    except OutsideAllowedRoots as error:
        st.error(f"Cannot read the report: {markdown(error)}")
        return
    try:
        summary = data.summary(str(report_dir), data.mtime(report_dir / SUMMARY_NAME))
        images_mtime = data.mtime(report_dir / IMAGES.file_name)
        images = data.images(str(report_dir), images_mtime)
        places = data.locations(str(report_dir), images_mtime)
        groups = data.duplicates(str(report_dir), data.mtime(report_dir / DUPLICATES.file_name))
    except UserError as error:
        st.error(f"Cannot read the report: {markdown(error)}")
        return
    try:
        suspects = data.label_issues(
            str(report_dir),
            max(
                data.mtime(report_dir / LABEL_ISSUES_NAME),
                data.mtime(report_dir / MODEL_SUMMARY_NAME),
            ),
        )
    except UserError as error:  # a damaged label_issues.csv hides nothing else
        st.warning(markdown(str(error)))
        suspects = None
    if st.session_state.get("picks_for") != str(report_dir):
        gallery.clear_picks()  # ticks belong to one report
        st.session_state["picks_for"] = str(report_dir)
    _answer(summary, report_dir)
    _stale(report_dir, summary)
    _issues(summary)
    _problems(images, places)
    _duplicate_gallery(groups, images, places)
    _code_gallery(images, places, summary)
    _label_issue_gallery(suspects, places)
    st.subheader("Class balance")
    classes = pd.DataFrame(summary["classes"])
    if not classes.empty:
        st.bar_chart(classes.set_index("name")[["usable"]])
    _bias(summary)
    _resolution(images, summary)
    _downloads(report_dir)
    _quarantine(report_dir, images, places)
    _batches(report_dir)


def _answer(summary: dict, report_dir: Path) -> None:
    counts = summary["severity_counts"]
    st.subheader(f"Report: {markdown(report_dir.name)}")
    sentence = verdict(summary)
    worst = str(summary.get("worst_severity", "ok"))
    shown = {"error": st.error, "warning": st.warning}.get(worst, st.success)
    exit_code = summary.get("exit_code")
    fail_on = summary.get("fail_on", "error")
    shown(
        f"**{sentence}** The CLI's scan exits {exit_code} on this report "
        f"(fail-on {markdown(fail_on)})."
    )
    st.text(f"{terminal(summary['root'])} · scanned {summary['created_utc']}")
    duplicates = summary.get("checks", {}).get("duplicates", {})
    columns = st.columns(7)
    columns[0].metric("Files", summary["files"])
    columns[1].metric("Usable", summary["usable"])
    columns[2].metric("Errors", counts["error"])
    columns[3].metric("Warnings", counts["warning"])
    columns[4].metric("Info", counts["info"])
    columns[5].metric("Duplicate groups", duplicates.get("groups", 0))
    columns[6].metric(
        "Imbalance ratio",
        summary["imbalance_ratio"] if summary["imbalance_ratio"] is not None else "-",
    )
    findings = summary.get("dataset_findings", [])
    if findings:
        st.markdown("**Dataset findings**")
        st.markdown(
            "\n".join(
                f"- **{markdown(f['severity'])}** {_code(f['code'])}: {markdown(f['reason'])}"
                for f in findings
            )
        )


def _code(code: str) -> str:
    """An issue code as inline code (the vocabulary's own names need no escaping)."""
    return f"`{code}`" if code in CODES else markdown(code)


def _stale(report_dir: Path, summary: dict) -> None:
    """A banner when the files on disk no longer are those the report describes."""
    try:
        stale = data.staleness(str(report_dir), data.mtime(report_dir / SUMMARY_NAME))
    except (UserError, OSError) as error:
        st.warning(f"Cannot compare the report with the disk: {markdown(error)}")
        return
    if not stale:
        return
    job = st.session_state.get(JOB)
    what = stale if isinstance(stale, str) else stale.describe()
    st.warning(
        f"This report is stale: {markdown(what)}. Its numbers, galleries and "
        "quarantine selection describe the files as they were; re-scan to update it."
    )
    if st.button("Re-scan", key="rescan", disabled=job is not None and job.running):
        if _start(summary["root"], lambda root: report_dir):
            st.rerun()


def _issues(summary: dict) -> None:
    counts = summary.get("issue_counts", {})
    rows = issue_rows({"issue_counts": {c: n for c, n in counts.items() if c in CODES}})
    st.subheader("Issues by code")
    if not rows:
        st.success("No file has any finding.")
        return
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="issues_table")


def _thumbnail(places: dict, report_path: str) -> str | None:
    place = places.get(report_path)
    if place is None or not permitted(place[1]):
        return None  # outside the dataset or the allowed roots: never read
    return data.thumbnail(place[1], data.mtime(Path(place[1])))


def _problems(images: pd.DataFrame, places: dict) -> None:
    st.subheader("Problem files")
    present = [row["code"] for row in issue_rows({"issue_counts": _code_counts(images)})]
    chosen = st.multiselect(
        "Filter by issue code (none: every file with an error or a warning)",
        present,
        key="code_filter",
    )
    if chosen:
        wanted = set(chosen)
        mask = images["issues"].map(lambda issues: bool(wanted & set(issues.split(";"))))
        flagged = images[mask].copy()
    else:
        flagged = images[images["severity"].isin(["error", "warning"])].copy()
    if flagged.empty:
        st.success("No file has an error or a warning." if not chosen else "No file matches.")
        return
    flagged["order"] = flagged["severity"].map(SEVERITY_RANK).fillna(0) * -1
    flagged = flagged.sort_values(["order", "path"]).drop(columns="order")
    shown = flagged.iloc[_page_slice(len(flagged), PROBLEMS_PER_PAGE, "problems", "files")].copy()
    # An empty cell where there is no preview (None was shown as the text "None").
    shown.insert(0, "preview", [_thumbnail(places, path) or "" for path in shown["path"]])
    st.dataframe(
        shown[["preview", "path", "label", "severity", "issues", "reasons"]],
        column_config={"preview": st.column_config.ImageColumn("preview", width="small")},
        hide_index=True,
        width="stretch",
        key="problems_table",
    )


def _page_slice(count: int, per_page: int, key: str, noun: str) -> slice:
    positions = gallery.page(range(count), per_page, key, noun)
    return slice(positions[0], positions[-1] + 1) if len(positions) else slice(0, 0)


def _code_counts(images: pd.DataFrame) -> dict[str, int]:
    counts: dict[str, int] = {}
    for issues in images["issues"]:
        for code in filter(None, issues.split(";")):
            if code in CODES:
                counts[code] = counts.get(code, 0) + 1
    return counts


def _duplicate_gallery(rows: list[DuplicateRow], images: pd.DataFrame, places: dict) -> None:
    st.subheader("Duplicate groups")
    if not rows:
        st.info("No duplicate found.")
        return
    issues = dict(zip(images["path"], images["issues"], strict=True))
    groups: dict[int, list[DuplicateRow]] = {}
    for row in rows:
        groups.setdefault(row.group, []).append(row)

    def kind(members: list[DuplicateRow]) -> int:
        codes = {code for member in members for code in issues.get(member.path, "").split(";")}
        if "label_conflict" in codes:
            return 0
        if "possible_label_conflict" in codes or len({m.label for m in members}) > 1:
            return 1
        if len({member.split for member in members}) > 1:
            return 2
        return 3

    names = ["label conflict", "possible label conflict", "split leak", "copies"]
    ordered = sorted(groups.items(), key=lambda item: (kind(item[1]), -len(item[1]), item[0]))
    counts = [sum(1 for _, members in ordered if kind(members) == k) for k in range(4)]
    st.text(
        f"{len(ordered)} group(s): {counts[0]} with a label conflict, {counts[1]} with a "
        f"possible label conflict, {counts[2]} across the split, {counts[3]} of copies. "
        "Conflict groups come first; every label of a group shows at least one image."
    )
    options = ["all"] + [name for name, count in zip(names, counts, strict=True) if count]
    chosen = st.selectbox("Show groups", options, key="group_filter")
    if chosen != "all":
        ordered = [item for item in ordered if names[kind(item[1])] == chosen]
    for group_id, members in gallery.page(ordered, GROUPS_PER_PAGE, "groups", "groups"):
        labels = sorted({member.label for member in members})
        flag = names[kind(members)]
        st.markdown(
            f"**Group {group_id}** · {len(members)} files · "
            f"{'labels ' + ', '.join(markdown(label) for label in labels)} · {flag}"
        )
        # A large group pages too: every member can be seen and ticked.
        shown = gallery.page(
            _members_in_order(members), MAX_MEMBERS, f"group{group_id}_members", "members"
        )
        conflict = len(labels) > 1
        tiles = [
            gallery.Tile(
                member.path,
                _thumbnail(places, member.path),
                f"{member.label} · {_role(member, conflict)} · {member.path.rsplit('/', 1)[-1]}",
            )
            for member in shown
        ]
        gallery.grid(tiles, f"group{group_id}")


def _members_in_order(members: list[DuplicateRow]) -> list[DuplicateRow]:
    """One member per label first (its keeper when it holds it), then the others: the
    first page of a group never hides a label behind the copies of another."""
    ordered = sorted(members, key=lambda member: (not member.keeper, member.distance or 0))
    first: dict[str, DuplicateRow] = {}
    for member in ordered:
        first.setdefault(member.label, member)
    rest = [member for member in ordered if member not in first.values()]
    return list(first.values()) + rest


def _role(member: DuplicateRow, conflict: bool) -> str:
    # Across labels no copy is "the one to keep": which label is right is for a person.
    if member.keeper:
        return "reference" if conflict else "keeper"
    distance = "" if member.distance is None else f" d={member.distance}"
    return f"{member.kind}{distance}"


def _code_gallery(images: pd.DataFrame, places: dict, summary: dict) -> None:
    counts = _code_counts(images)
    present = [code for code in GALLERY_CODES if counts.get(code)]
    st.subheader("Images by finding")
    if not present:
        st.info("No image has a finding worth looking at in a gallery.")
        return
    code = st.selectbox(
        "Finding",
        present,
        format_func=lambda code: f"{code} ({counts[code]}): {CODES[code][1]}",
        key="gallery_code",
    )
    rows = images[images["issues"].map(lambda issues: code in issues.split(";"))]
    items = list(zip(rows["path"], rows["label"], rows["reasons"], strict=True))
    tiles = [
        gallery.Tile(path, _thumbnail(places, path), f"{label} · {path.rsplit('/', 1)[-1]}")
        for path, label, _ in gallery.page(items, TILES_PER_PAGE, f"code_{code}", "images")
    ]
    gallery.grid(tiles, f"code_{code}")


def _label_issue_gallery(suspects: list[LabelIssue] | None, places: dict) -> None:
    if suspects is None:
        return
    st.subheader("Suspected label issues")
    if not suspects:
        st.success("The model's out-of-fold predictions doubt no label.")
        return
    st.text(
        f"{len(suspects)} file(s) whose label a model trained without them doubts, worst "
        "first (label_issues.csv): given label, then the one the model suggests."
    )
    tiles = [
        gallery.Tile(
            row.path,
            _thumbnail(places, row.path),
            f"given {row.label} → suggested {row.suggested_label} · score {row.score:.2f} · "
            f"{row.path.rsplit('/', 1)[-1]}",
        )
        for row in gallery.page(suspects, TILES_PER_PAGE, "label_issues", "files")
    ]
    gallery.grid(tiles, "label_issues")


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
    usable = usable[(usable["width"] > 0) & (usable["height"] > 0)]
    if usable.empty:
        st.info("No decodable image to plot.")
        return
    usable["outlier"] = (
        usable["issues"].str.contains("resolution_outlier").map({True: "outlier", False: "usual"})
    )
    shown = pd.concat(
        [usable[usable["outlier"] == "outlier"], usable[usable["outlier"] == "usual"].head(5000)]
    )
    # Log axes whose domains hold every point with a margin: Vega's rounded ("nice") domain
    # left the largest outlier outside its axis.
    domains = {
        axis: [float(shown[axis].min()) / 1.25, float(shown[axis].max()) * 1.25]
        for axis in ("width", "height")
    }
    chart = (
        alt.Chart(shown[["width", "height", "outlier", "path"]])
        .mark_circle(size=36, clip=True)
        .encode(
            x=alt.X("width:Q", scale=alt.Scale(type="log", domain=domains["width"], nice=False)),
            y=alt.Y("height:Q", scale=alt.Scale(type="log", domain=domains["height"], nice=False)),
            color=alt.Color("outlier:N"),
            tooltip=["path", "width", "height"],
        )
    )
    st.altair_chart(chart, width="stretch")
    rule = summary["thresholds"]["resolution_outlier"]
    if "lower_side_px" in rule:
        st.text(
            f"Usual linear size {rule['lower_side_px']}-{rule['upper_side_px']} px "
            f"around a median of {rule['median_side_px']} px; "
            f"{rule.get('outliers', 0)} outlier(s)."
        )


def _downloads(report_dir: Path) -> None:
    st.subheader("Report files")
    columns = st.columns(len(data.REPORT_FILES))
    for column, name in zip(columns, data.REPORT_FILES, strict=True):
        path = report_dir / name
        if readable(path):
            column.download_button(name, path.read_bytes(), file_name=name, key=f"download_{name}")


# ---------------------------------------------------------------- quarantine and restore


def _quarantine(report_dir: Path, images: pd.DataFrame, places: dict) -> None:
    # A plain section, not an expander: ticking the confirmation reruns the page, and an
    # expander then closed over the button it had just enabled.
    st.subheader("Quarantine")
    st.caption(
        "Moves files out of the dataset into a new folder of their own under the report "
        "folder, with a manifest; each quarantine can be restored alone below."
    )
    done = st.session_state.pop("quarantine_done", None)
    if done:
        st.success(done[0])
        st.code(done[1], language="bash")
    ticked = gallery.picked()
    choice = st.radio(
        "Select",
        ["files with errors", "files with errors or warnings", "files ticked in the galleries"],
        horizontal=True,
        key="quarantine_severity",
        # The options stay the same (a changed option list would reset the choice).
        captions=["", "", f"{len(ticked)} ticked"],
    )
    try:
        if choice == "files ticked in the galleries":
            # Every ticked file, whatever its severity: a suspected label issue may have
            # none of its own ("ok"), and select(severity=...) would drop it silently.
            wanted = set(ticked)
            rows = [row for row in Report(report_dir).images() if row.report_path in wanted]
            unknown = len(wanted) - len(rows)
            if unknown:
                st.warning(
                    f"{unknown} ticked file(s) are not in this report's images.csv: left out."
                )
        else:
            rows = select(report_dir, severity="warning" if "warnings" in choice else "error")
    except UserError as error:
        st.error(markdown(str(error)))
        return
    here = [row for row in rows if _on_disk(places, row.report_path)]
    gone = len(rows) - len(here)
    if gone:
        st.info(f"{gone} selected file(s) are no longer in the dataset (quarantined or removed).")
    if not here:
        st.info("No file to quarantine.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {"path": row.report_path, "severity": row.severity, "issues": row.issues}
                for row in here
            ]
        ),
        hide_index=True,
        key="quarantine_table",
    )
    confirmed = st.checkbox(
        f"I understand: these {len(here)} files will be moved out of the dataset into a "
        f"new quarantine folder under {report_dir}, with a manifest that restores them.",
        key=f"quarantine_confirm_{st.session_state.get('quarantine_round', 0)}",
    )
    if st.button("Quarantine", key="quarantine_go", disabled=not confirmed):
        outside = [row.report_path for row in here if not permitted(places[row.report_path][1])]
        try:
            if outside:
                raise OutsideAllowedRoots(
                    f"{len(outside)} file(s) lie outside the allowed roots through a link "
                    f"(e.g. {', '.join(outside[:3])}); nothing was moved"
                )
            checked(report_dir)
            outcome = quarantine(report_dir, [row.path for row in here])
        except UserError as error:
            st.error(f"Refused: {markdown(error)}")
            return
        finally:
            data.staleness.clear()
        returned = f"; {len(outcome.returned)} changed while moving and were put back"
        st.session_state["quarantine_done"] = (
            f"{len(outcome.moved)} file(s) moved to {outcome.manifest.parent.name}"
            f"{returned if outcome.returned else ''}. Restore them with its Restore button "
            "below, or with:",
            # Quoted for a shell: a folder name may hold spaces, $ or quotes.
            terminal(f"python -m audit restore {shlex.quote(str(outcome.manifest))}"),
        )
        # A new confirmation box for the next action (a widget's value cannot be reset
        # once it is drawn).
        st.session_state["quarantine_round"] = st.session_state.get("quarantine_round", 0) + 1
        gallery.clear_picks()
        st.rerun()


def _on_disk(places: dict, report_path: str) -> bool:
    place = places.get(report_path)
    return place is not None and (Path(place[1]).is_symlink() or Path(place[1]).exists())


def _batches(report_dir: Path) -> None:
    found = data.batches(report_dir)
    message = st.session_state.pop("restore_done", None)
    if message:
        (st.warning if message[0] else st.success)(message[1])
    if not found:
        return
    st.subheader("Quarantined batches")
    for batch in reversed(found):
        manifest = batch["manifest"]
        name = manifest.parent.name
        if batch["error"]:
            st.error(markdown(f"{name}: {batch['error']}"))
            continue
        columns = st.columns([4, 1])
        taken = (
            f" ({batch['taken']} of them with their original place taken by another file: "
            "Restore refuses those)"
            if batch["taken"]
            else ""
        )
        columns[0].text(
            f"{name}: {len(batch['moves'])} file(s), {batch['away']} still in quarantine{taken}"
        )
        if columns[1].button("Restore", key=f"restore_{name}", disabled=not batch["away"]):
            _restore(manifest)


def _restore(manifest: Path) -> None:
    try:
        moves, _ = manifest_entries(manifest)
        outside = [move.relpath for move in moves if not permitted(move.original)]
        if outside:
            raise OutsideAllowedRoots(
                f"{len(outside)} file(s) of {manifest.parent.name} belong outside the allowed "
                f"roots (e.g. {', '.join(outside[:3])}); nothing was restored"
            )
        outcome = restore(manifest)
    except UserError as error:
        st.error(f"Refused: {markdown(error)}")
        return
    finally:
        data.staleness.clear()
    refused = "".join(
        f"; refused {markdown(path)}: {markdown(why)}" for path, why in outcome.refused[:5]
    )
    st.session_state["restore_done"] = (
        len(outcome.refused),
        f"{manifest.parent.name}: {len(outcome.restored)} file(s) restored, "
        f"{len(outcome.already_back)} already back{refused}",
    )
    st.rerun()
