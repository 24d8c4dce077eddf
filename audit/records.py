"""Typed records passed between the scan, the checks and the report writers."""

from __future__ import annotations

from dataclasses import dataclass, field

from audit.codes import CODES, SEVERITY_RANK, severity_of, worst_severity


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem with one file: a code from audit.codes and the reason in words."""

    code: str
    reason: str

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unknown issue code {self.code!r}")

    @property
    def severity(self) -> str:
        return CODES[self.code][0]

    def __reduce__(self):
        # Pickled as a constructor call: much faster to load than dataclass __setstate__.
        return (Finding, (self.code, self.reason))


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One row of images.csv: what was measured and what was found."""

    path: str  # POSIX, relative to ROOT
    label: str
    bytes: int
    format: str
    mode: str
    width: int | None
    height: int | None
    sha256: str
    phash: int | None  # 64-bit pHash; None when undecodable (hex only in images.csv)
    mtime_ns: int
    findings: tuple[Finding, ...] = ()
    split: str = ""  # '' for a layout without splits
    phash_zoom: tuple[int, ...] = ()  # pHashes of centred crops (see audit.hashing.ZOOMS)
    # Quality measures as plain values in audit.measures.FIELDS order; () when not measured.
    measures: tuple = ()

    @property
    def severity(self) -> str:
        return worst_severity(finding.code for finding in self.findings)

    def __reduce__(self):
        # Records travel from worker processes pickled: a constructor call loads fastest.
        return (
            FileRecord,
            (
                self.path,
                self.label,
                self.bytes,
                self.format,
                self.mode,
                self.width,
                self.height,
                self.sha256,
                self.phash,
                self.mtime_ns,
                self.findings,
                self.split,
                self.phash_zoom,
                self.measures,
            ),
        )

    @property
    def usable(self) -> bool:
        """Whether the file may reach training (no error-severity finding)."""
        return self.severity != "error"

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(finding.code for finding in self.findings)


def merge_findings(*groups) -> tuple[Finding, ...]:
    """Combine findings, one per code (reasons of a repeated code joined), worst first."""
    by_code: dict[str, list[str]] = {}
    for group in groups:
        for finding in group:
            reasons = by_code.setdefault(finding.code, [])
            if finding.reason not in reasons:
                reasons.append(finding.reason)
    merged = [Finding(code, "; ".join(reasons)) for code, reasons in by_code.items()]
    merged.sort(key=lambda finding: -SEVERITY_RANK[finding.severity])  # stable: keeps check order
    return tuple(merged)


@dataclass(frozen=True, slots=True)
class DatasetFinding:
    """A problem with the dataset as a whole (class balance, layout)."""

    code: str
    reason: str
    subjects: tuple[str, ...] = ()  # the classes or paths concerned

    @property
    def severity(self) -> str:
        return severity_of(self.code)


@dataclass
class DatasetResult:
    """What one dataset check adds: a summary.json section and findings."""

    summary: dict
    file_findings: dict[int, list[Finding]]  # row index -> findings for that file
    dataset_findings: list[DatasetFinding]
    report_rows: dict[str, list[dict]] = field(default_factory=dict)  # extra report file -> rows
