"""Records + findings -> images.csv, findings.csv, duplicates.csv, summary.json, report.html,
report.md.

The writers stream the records once. Only what the HTML page shows is kept: the
warning and error rows (up to a cap, the CSVs hold them all), a few sample files per
class, and a bounded sample of sizes for the scatter plot. Each file is written to a
temporary name and renamed, so a crash never leaves a half-written report behind.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from audit import charts, reportio
from audit.checks.base import DatasetChecksResult, Registry, Thresholds
from audit.codes import (
    CODES,
    DATASET_CODES,
    SEVERITIES,
    SEVERITY_RANK,
    at_or_above,
    worst_of,
    worst_severity,
)
from audit.dataset import Layout, file_key, resolve
from audit.escaping import for_report, markdown
from audit.model_findings import ModelFindings, weak_model_note
from audit.records import DatasetFinding, FileRecord, merge_findings
from audit.thumbnails import Thumbnailer, thumbnail_data_uri

SAMPLES_PER_CLASS = 8
MAX_SAMPLES = 400  # with many classes, fewer samples each, so the page stays light
MAX_FLAGGED_ROWS = 5000  # rows of the HTML table; the CSVs list every file
MAX_THUMBNAILS = 1500
MAX_INFO_ROWS = 200
MAX_LISTED_PATHS = 200  # set-aside paths shown in the page (summary.json lists them all)
MAX_SCATTER_POINTS = 4000
MAX_GROUPS_SHOWN = 150  # duplicate groups drawn in the HTML page (duplicates.csv has all)
MAX_MEMBERS_SHOWN = 8
MAX_LABEL_ISSUES_SHOWN = 200  # suspected label issues drawn, worst first (label_issues.csv has all)

# Signal over noise: an info code is "widespread" when more than this share of the usable
# files carry it, and at least WIDESPREAD_MIN_FILES of them. A widespread code describes the
# dataset, not a file (a folder of PNG cut-outs: every file is RGBA and lacks a JFIF marker),
# so report.html and report.md say it once, as a dataset finding with its count, and leave it
# off each file's row; images.csv and findings.csv keep it per file for filtering. Usable
# files are the population training reads; unusable ones are listed for their errors anyway.
# Below the minimum the file list is short enough to read row by row. Warnings and errors are
# never folded: each one is about its own file. Severity counts and exit codes do not change.
WIDESPREAD_INFO_SHARE = 0.5
WIDESPREAD_MIN_FILES = 10
MAX_WIDESPREAD_REASONS = 3  # a widespread code's line counts its reasons when this few differ
_MAX_REASONS_TRACKED = MAX_WIDESPREAD_REASONS + 1  # one more tells "too many to quote"


@dataclass
class ReportContext:
    """What the writers need besides the records."""

    root: Path
    out: Path
    layout: Layout
    registry: Registry
    thresholds: Thresholds
    checks: DatasetChecksResult
    dataset_findings: list[DatasetFinding]  # the walk's and the checks', in that order
    fail_on: str
    jobs: int
    version: str
    started: float  # time.monotonic() at the start of the scan
    cache: dict = field(default_factory=dict)  # hits and misses of the incremental cache
    engine: str = "local"
    thumbnails: Callable[[str], str | None] | None = None  # relpath -> data URI
    # label_issues.csv of the report folder (audit.model_findings.load), applied per record.
    model_findings: ModelFindings = field(default_factory=ModelFindings)


@dataclass
class WrittenReports:
    summary: dict
    files: dict[str, Path]
    error_lines: list[str]


class _Collector:
    """Counts and keeps, while streaming, what the summary and the HTML page need."""

    def __init__(self, classes: tuple[str, ...], total: int, outlier_rows: set[int]):
        self.files = 0
        self.usable = 0
        self.severity_counts = Counter({name: 0 for name in SEVERITIES})
        self.code_counts = Counter({code: 0 for code in CODES})
        self.flagged: list[FileRecord] = []
        self.flagged_total = 0
        # Info-only files, by their set of codes: which codes are widespread is known only at
        # the end, and a file whose codes are all widespread is then not listed. The sets are
        # few (subsets of the info codes), each keeps its first MAX_INFO_ROWS files in order.
        self.info_groups: dict[frozenset[str], list[tuple[int, FileRecord]]] = {}
        self.info_group_totals: Counter[frozenset[str]] = Counter()
        self.usable_code_counts: Counter[str] = Counter()
        self.info_reasons: dict[str, Counter[str]] = {}
        self.samples: dict[str, list[FileRecord]] = {name: [] for name in classes}
        self._samples_per_class = max(
            1, min(SAMPLES_PER_CLASS, MAX_SAMPLES // max(len(classes), 1))
        )
        self.max_sample_pictures = self._samples_per_class * len(classes)
        self.points: list[tuple[int, int, bool]] = []
        self._point_stride = max(1, total // MAX_SCATTER_POINTS)
        self._outlier_rows = outlier_rows
        self.error_lines: list[str] = []
        self.jfif: Counter[str] = Counter()

    def info_rows(self, widespread: Iterable[str]) -> tuple[list[FileRecord], int, int]:
        """Info-only files with a finding that is not widespread (the first MAX_INFO_ROWS, in
        scan order), how many such files there are, and how many are left out because all
        their codes are widespread."""
        folded = set(widespread)
        listed: list[tuple[int, FileRecord]] = []
        total = left_out = 0
        for key, count in self.info_group_totals.items():
            if key <= folded:
                left_out += count
            else:
                total += count
                listed += self.info_groups[key]
        listed.sort(key=lambda item: item[0])
        return [record for _, record in listed[:MAX_INFO_ROWS]], total, left_out

    def add(self, row: int, record: FileRecord, severity: str, codes: tuple[str, ...]) -> None:
        # Once per file in the scan's own process (see write_reports): a file without
        # findings (most of a clean dataset) takes the short path, and no Counter, list or
        # Counter.update call is made per file.
        self.files += 1
        self.severity_counts[severity] += 1
        if codes:
            self._add_findings(row, record, severity, codes)
        if severity == "error":
            return
        self.usable += 1
        if severity != "warning":
            samples = self.samples[record.label]
            if len(samples) < self._samples_per_class:
                samples.append(record)
        if record.width and record.height:
            outlier = row in self._outlier_rows
            if outlier or row % self._point_stride == 0:
                self.points.append((record.width, record.height, outlier))

    def _add_findings(
        self, row: int, record: FileRecord, severity: str, codes: tuple[str, ...]
    ) -> None:
        """add's part for a file with findings (codes not empty)."""
        usable = severity != "error"
        code_counts = self.code_counts
        for code in codes:  # a loop, not Counter.update: one or two codes, no Python call
            code_counts[code] += 1
        if severity in ("warning", "error"):
            self.flagged_total += 1
            if len(self.flagged) < MAX_FLAGGED_ROWS:
                self.flagged.append(record)
        elif severity == "info":
            key = frozenset(codes)
            self.info_group_totals[key] += 1
            group = self.info_groups.get(key)
            if group is None:
                group = self.info_groups[key] = []
            if len(group) < MAX_INFO_ROWS:
                group.append((row, record))
        if usable:
            usable_code_counts = self.usable_code_counts
            for code in codes:
                usable_code_counts[code] += 1
            for finding in record.findings:
                if finding.severity == "info":
                    reasons = self.info_reasons.get(finding.code)
                    if reasons is None:
                        reasons = self.info_reasons[finding.code] = Counter()
                    if finding.reason in reasons or len(reasons) < _MAX_REASONS_TRACKED:
                        reasons[finding.reason] += 1
        else:
            for finding in record.findings:
                if finding.severity == "error":
                    self.error_lines.append(
                        f"error: {record.path}: {finding.code}: {finding.reason}"
                    )
        would_delete = "missing_jfif_marker" in codes
        self.jfif["would_delete"] += would_delete
        self.jfif["would_delete_usable"] += would_delete and usable
        self.jfif["errors_kept"] += (not would_delete) and severity == "error"


def write_reports(
    records: Iterable[FileRecord], extra_findings: dict[int, list], context: ReportContext
) -> WrittenReports:
    """Write every report file into context.out; returns the summary and the paths."""
    out = context.out
    outlier_rows = {
        row
        for row, found in extra_findings.items()
        if any(f.code == "resolution_outlier" for f in found)
    }
    collector = _Collector(context.layout.classes, context.layout.file_count, outlier_rows)
    context.model_findings.restrict_to(context.layout.classes)  # suggested: a class
    if isinstance(context.thumbnails, ThumbnailPrefetch):
        # The duplicate groups' pictures are known before the records are read: the workers,
        # idle now, make them while this process writes the tables below. 20,000 photos,
        # 1,500 thumbnails to make: the wait for them after the tables fell from 1.1-2.4 s
        # to 0.4-0.9 s; the whole write_reports gains less (within noise on 2 busy cores),
        # as the workers then share the cores with this process.
        context.thumbnails.prefetch(
            _duplicate_pictures(context, collector.max_sample_pictures), wait=False
        )
    # The loop runs once per file in this process, on a cold scan and on every warm one:
    # its per-file cost is most of writing the reports. Trimming it (here, in
    # reportio.RecordWriter and CsvRows, in _Collector.add) took write_reports, records
    # already read, from 2.07 to 1.52 s of CPU for 100,000 small PNGs (best of 4 on 2
    # shared cores); for 20,000 photos the change is within noise (0.67-0.75 s before,
    # 0.62-0.77 after): a third of theirs is report.html's rendering, and 40% of their
    # rows hold a comma (a reason) and so go through csv.writer.
    apply_model_findings = context.model_findings.apply
    with reportio.record_writer(out) as writer:
        write, add = writer.write, collector.add
        for row, record in enumerate(records):
            extra = extra_findings.get(row)
            if extra is not None:
                record = replace(record, findings=merge_findings(record.findings, extra))
            record = apply_model_findings(record)
            # Severity and codes are derived from the findings: computed once per record here.
            codes = record.codes
            severity = worst_severity(codes) if codes else "ok"
            write(record, severity, codes)
            add(row, record, severity, codes)
    files = {name: out / name for name in ("report.html", "report.md", reportio.SUMMARY_NAME)}
    for table in (reportio.IMAGES, reportio.FINDINGS):
        files[table.file_name] = out / table.file_name
    for table in context.registry.tables():
        rows = context.checks.report_rows.get(table.name, [])
        files[table.file_name] = reportio.write_table(out, table, rows)

    summary = build_summary(collector, context)
    reportio.write_summary(out, summary)
    with reportio.atomic_text(out / "report.html") as handle:
        handle.write(render_html(summary, collector, context))
    with reportio.atomic_text(out / "report.md") as handle:
        handle.write(render_markdown(summary, collector))
    return WrittenReports(summary, files, collector.error_lines)


def widespread_info_codes(usable_code_counts: Mapping[str, int], usable: int) -> dict[str, int]:
    """Info codes carried by most usable files (see WIDESPREAD_INFO_SHARE): code -> how many
    usable files carry it, most common first. Never a warning or an error code."""
    widespread = {
        code: count
        for code, count in usable_code_counts.items()
        if code in CODES
        and CODES[code][0] == "info"
        and count >= WIDESPREAD_MIN_FILES
        and count > WIDESPREAD_INFO_SHARE * usable
    }
    return dict(sorted(widespread.items(), key=lambda item: (-item[1], item[0])))


def _widespread_findings(collector: _Collector) -> list[dict]:
    """One info line per widespread code, for summary.json's dataset_findings."""
    lines = []
    widespread = widespread_info_codes(collector.usable_code_counts, collector.usable)
    for code, count in widespread.items():
        reasons = collector.info_reasons.get(code, Counter()).most_common()
        if len(reasons) == 1 and reasons[0][0]:  # one reason for every file: say it
            what = reasons[0][0]
        elif 1 < len(reasons) <= MAX_WIDESPREAD_REASONS:  # a few kinds (modes): count each
            what = "; ".join(f"{reason} ({n})" for reason, n in reasons)
        else:  # reasons that differ per file (measured values) are for images.csv
            what = CODES[code][1]
        lines.append(
            {
                "code": code,
                "severity": CODES[code][0],
                "reason": f"{count} of {collector.usable} usable files: {what}. "
                "Said once here instead of on each file; per file in images.csv.",
                "subjects": [],
                "files": count,
                "usable": collector.usable,
                "widespread": True,
            }
        )
    return lines


def build_summary(collector: _Collector, context: ReportContext) -> dict:
    """The summary.json document (see README, "Report contract")."""
    lifted, placed = context.registry.summary_entries(context.checks.sections)
    worst = worst_of(
        [finding.severity for finding in context.dataset_findings]
        + [name for name, count in collector.severity_counts.items() if count]
    )
    layout = context.layout
    summary: dict = {
        "tool": "image-audit",
        "version": context.version,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - context.started, 3),
        "root": str(context.root),
        "against": None if layout.against is None else str(layout.against),
        "out": str(context.out),
        "jobs": context.jobs,
        "engine": context.engine,
        "cache": context.cache,
        "files": collector.files,
        "usable": collector.usable,
        "unusable": collector.files - collector.usable,
        "severity_counts": dict(collector.severity_counts),
        "issue_counts": dict(collector.code_counts),
        **lifted,
        "empty_classes": layout.empty_classes,
        "ignored_files": [{"path": item.relpath, "reason": item.reason} for item in layout.ignored],
        "stray_files": list(layout.stray_files),
        "dataset_findings": [
            {
                "code": f.code,
                "severity": f.severity,
                "reason": f.reason,
                "subjects": list(f.subjects),
            }
            for f in context.dataset_findings
        ]
        # After the checks' findings, and left out of `worst` above: info never changes it.
        + _widespread_findings(collector),
        "thresholds": context.thresholds.as_dict(),
        "checks": {},
        "jfif_filter_comparison": {
            "description": "the Keras tutorial's filter deletes files without b'JFIF' "
            "in their first buffer",
            "would_delete": collector.jfif["would_delete"],
            "would_delete_usable": collector.jfif["would_delete_usable"],
            "errors_it_keeps": collector.jfif["errors_kept"],
        },
        "worst_severity": worst,
        "fail_on": context.fail_on,
        "exit_code": 1 if at_or_above(worst, context.fail_on) else 0,
    }
    imported = context.model_findings.summary()
    if imported is not None:
        summary["label_issues"] = imported
    for key_path, section in placed.items():  # each check's section where it declares
        node = summary
        for key in key_path[:-1]:
            node = node.setdefault(key, {})
        node[key_path[-1]] = section
    return summary


# ---------------------------------------------------------------- HTML and Markdown

_environment = Environment(
    loader=PackageLoader("audit", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    # Names that are not UTF-8 are shown as the CSVs show them (bytes as \xNN).
    finalize=lambda value: (
        for_report(value) if isinstance(value, str) and not value.isascii() else value
    ),
    trim_blocks=True,
    lstrip_blocks=True,
)


# The page's one line about this run (when, how long, how many processes): a scan that
# reuses the previous reports (audit.reuse) rewrites exactly this line.
_RUN_LINE = _environment.from_string(
    '<span class="path">{{ root }}</span> · {{ created_utc }} · image-audit {{ version }} · '
    "{{ duration_s }} s on {{ jobs }} process(es)"
)


def run_line(root: str, summary: Mapping) -> Markup:
    """The page's line about the run: ROOT, created_utc, version, duration_s and jobs."""
    return Markup(
        _RUN_LINE.render(
            root=root,
            created_utc=summary["created_utc"],
            version=summary["version"],
            duration_s=summary["duration_s"],
            jobs=summary["jobs"],
        )
    )


def render_html(summary: dict, collector: _Collector, context: ReportContext) -> str:
    """The self-contained report page: every file name escaped, thumbnails inlined."""
    max_pixels = context.thresholds.max_pixels
    budget = [MAX_THUMBNAILS]
    made: dict[str, str | None] = {}

    make: Callable[[str], str | None] = context.thumbnails or Thumbnailer(context.root, max_pixels)

    def thumb_path(path: str) -> str | None:
        if path not in made:
            if budget[0] <= 0:
                return None
            budget[0] -= 1
            made[path] = make(path)
        return made[path]

    def thumb(record: FileRecord) -> str | None:
        if record.width is None or "decompression_bomb" in record.codes:
            return None
        return thumb_path(record.path)

    severity_order = {"error": 0, "warning": 1}
    flagged = sorted(
        collector.flagged, key=lambda record: (severity_order[record.severity], record.path)
    )
    widespread = _widespread_codes(summary)
    info_rows, info_total, info_left_out = collector.info_rows(widespread)
    # What each check's section gives the page (the scatter's bounds, the duplicates' figures).
    values = context.registry.report_values(context.checks.sections)
    template = _environment.get_template("report.html.j2")

    def pictures() -> dict:
        """The page's parts that carry thumbnails (in the order they take the budget)."""
        return {
            "samples": [
                (name, [(record, thumb(record)) for record in records])
                for name, records in collector.samples.items()
            ],
            "duplicate_groups": _duplicate_groups(
                context.checks.report_rows.get(reportio.DUPLICATES.name, []), thumb_path
            ),
            "flagged": [(record, thumb(record)) for record in flagged],
            "label_issues": [
                (record, issue, thumb(record))
                for record, issue in context.model_findings.worst_first()[:MAX_LABEL_ISSUES_SHOWN]
            ],
        }

    if isinstance(make, ThumbnailPrefetch):
        # A first pass only names the thumbnails the page will show; they are then made
        # on the scan's worker processes at once (measured at 20,000 photos: 1,500
        # thumbnails took 4.8 s of a 57 s cold scan in the scan's own process, while the
        # workers sat idle), and the second pass finds them ready.
        prefetch, wanted = make, list[str]()
        make = wanted.append
        pictures()
        prefetch.prefetch(wanted)
        make, budget[0] = prefetch, MAX_THUMBNAILS
        made.clear()
    return template.render(
        summary=summary,
        run_line=run_line(str(context.root), summary),
        max_listed=MAX_LISTED_PATHS,
        title=context.root.name or str(context.root),
        codes=CODES,
        dataset_codes=DATASET_CODES,
        issue_rows=issue_rows(summary),
        **pictures(),
        label_issues_total=len(context.model_findings.applied),
        flagged_total=collector.flagged_total,
        info_rows=info_rows,
        info_total=info_total,
        info_left_out=info_left_out,
        widespread=widespread,
        class_chart=Markup(charts.class_bar_chart(summary["classes"])),
        scatter=Markup(charts.resolution_scatter(collector.points, values.get("scatter_bounds"))),
        scatter_sampled=len(collector.points) < collector.usable,
        thumbnails_capped=budget[0] <= 0,
        verdict=verdict(summary),
        **values,
    )


class ThumbnailPrefetch:
    """A Thumbnailer whose thumbnails can be made ahead, several at once, by `map`
    (function, paths, max_pixels) -> uris in order (the scan's worker pool)."""

    def __init__(self, thumbnailer: Thumbnailer, map_function: Callable | None):
        self.thumbnailer = thumbnailer
        self.map_function = map_function
        self.ready: dict[str, str | None] = {}
        self._pending: list[tuple[list[tuple[str, str, tuple | None]], Iterable]] = []
        self._asked: set[str] = set()

    def prefetch(self, relpaths: Iterable[str], wait: bool = True) -> None:
        """Make the thumbnails of relpaths that the cache does not hold, in parallel; any
        trouble (a worker lost) leaves the rest to be made one by one when asked for.
        wait=False hands them to the workers and returns: the next call that waits (or
        the first thumbnail asked for) collects them."""
        maker = self.thumbnailer
        todo = []
        for relpath in dict.fromkeys(relpaths):
            if relpath in self._asked:
                continue
            self._asked.add(relpath)
            path = resolve(maker.root, relpath)
            key = file_key(path) if maker.cache is not None else None
            cached = maker.cache.thumbnail(path, key) if key is not None else None
            if cached is not None:
                self.ready[relpath] = cached or None
            else:
                todo.append((relpath, path, key))
        if self.map_function is not None and todo:
            try:
                # The pool's map submits every path at once and yields the results in order.
                uris = self.map_function(
                    thumbnail_data_uri, [path for _, path, _ in todo], maker.max_pixels
                )
                self._pending.append((todo, uris))
            except Exception:  # BrokenProcessPool and the like: made on request
                pass
        if wait:
            self._collect()

    def _collect(self) -> None:
        pending, self._pending = self._pending, []
        cache = self.thumbnailer.cache
        for todo, uris in pending:
            try:
                for (relpath, path, key), uri in zip(todo, uris, strict=True):
                    self.ready[relpath] = uri
                    if key is not None:
                        cache.store_thumbnail(path, key, uri)
            except Exception:  # BrokenProcessPool and the like: the rest are made on request
                continue

    def __call__(self, relpath: str) -> str | None:
        if self._pending:
            self._collect()
        if relpath in self.ready:
            return self.ready[relpath]
        return self.thumbnailer(relpath)


def _duplicate_groups(rows: list[dict], thumb_path) -> list[dict]:
    """Groups for the page (already ordered: label conflicts, split leaks, largest)."""
    groups: dict[int, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    shown = []
    for group_id, members in list(groups.items())[:MAX_GROUPS_SHOWN]:
        members = sorted(members, key=lambda member: (not member["keeper"], member["path"]))
        shown.append(
            {
                "id": group_id,
                "conflict": len({member["label"] for member in members}) > 1,
                "leak": len({member["split"] for member in members}) > 1,
                "size": len(members),
                "members": [
                    {**member, "uri": thumb_path(member["path"])}
                    for member in members[:MAX_MEMBERS_SHOWN]
                ],
            }
        )
    return shown


def _duplicate_pictures(context: ReportContext, samples_at_most: int) -> list[str]:
    """The duplicate groups' pictures the page surely shows. They take the thumbnail budget
    after the samples (see render_html's pictures), so those within the budget left after
    the most samples there can be are shown whichever samples the records give."""
    wanted: list[str] = []
    _duplicate_groups(context.checks.report_rows.get(reportio.DUPLICATES.name, []), wanted.append)
    return list(dict.fromkeys(wanted))[: max(0, MAX_THUMBNAILS - samples_at_most)]


def _widespread_codes(summary: dict) -> list[str]:
    """The widespread info codes that summary.json's dataset_findings name."""
    return [f["code"] for f in summary["dataset_findings"] if f.get("widespread")]


def issue_rows(summary: dict) -> list[dict]:
    """Issue codes with their count, severity and meaning: the report's issues-by-code table
    (and the app's), worst severity first, then the most frequent."""
    rows = [
        {"code": code, "severity": CODES[code][0], "count": count, "meaning": CODES[code][1]}
        for code, count in summary["issue_counts"].items()
        if count
    ]
    return sorted(
        rows, key=lambda row: (-SEVERITY_RANK[row["severity"]], -row["count"], row["code"])
    )


def verdict(summary: dict) -> str:
    """The report's verdict sentence (report.html, report.md and the app lead with it)."""
    errors = summary["severity_counts"]["error"]
    warnings = summary["severity_counts"]["warning"]
    if errors:
        return f"{errors} file(s) must not reach training; {warnings} more need a look."
    if warnings:
        return f"No file will break training; {warnings} file(s) need a look."
    return "No file will break training, and nothing needs a look."


def render_markdown(summary: dict, collector: _Collector) -> str:
    """The short text summary a scheduled job mails or posts."""
    counts = summary["severity_counts"]
    lines = [
        f"# Image audit: {markdown(Path(summary['root']).name)}",
        "",
        f"**{verdict(summary)}** (exit code {summary['exit_code']}, fail-on {summary['fail_on']})",
        "",
        "| files | usable | errors | warnings | info | classes | imbalance ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {summary['files']} | {summary['usable']} | {counts['error']} "
        f"| {counts['warning']} | {counts['info']} "
        f"| {len(summary['classes'])} "
        f"| {summary['imbalance_ratio'] if summary['imbalance_ratio'] is not None else '-'} |",
        "",
    ]
    weak = weak_model_note(summary)
    if weak:
        lines += [f"**Warning:** {markdown(weak)}", ""]
    by_code = issue_rows(summary)
    if by_code:
        lines += ["## Issues", "", "| code | severity | files | meaning |", "|---|---|---:|---|"]
        lines += [
            f"| `{row['code']}` | {row['severity']} | {row['count']} | {row['meaning']} |"
            for row in by_code
        ]
        lines.append("")
    if summary["dataset_findings"]:
        lines += ["## Dataset findings", ""]
        lines += [
            f"- **{f['severity']}** `{f['code']}`: {markdown(f['reason'])}"
            for f in summary["dataset_findings"]
        ]
        lines.append("")
    lines += ["## Classes", "", "| class | files | usable | share |", "|---|---:|---:|---:|"]
    lines += [
        f"| {markdown(c['name'])} | {c['files']} | {c['usable']} | {c['share'] * 100:.1f}% |"
        for c in summary["classes"]
    ]
    lines.append("")
    errors = collector.error_lines[:50]
    if errors:
        lines += [f"## Errors (first {len(errors)} of {len(collector.error_lines)})", ""]
        lines += [f"- {markdown(line.removeprefix('error: '))}" for line in errors]
        lines.append("")
    lines += [
        "Full tables: `images.csv`, `findings.csv`, `duplicates.csv`; "
        "the page to read first: `report.html`.",
        "",
    ]
    return "\n".join(lines)
