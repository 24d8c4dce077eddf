"""Reusing a report folder's reports when nothing they depend on changed.

A scan writes, after every report file is in place, a small state file next to them
(`OUT/.scan-state.json`): the digest of every input besides the dataset's files
(`input_digests`), the digest of the tree as the walk saw it (every path with its size,
modification time and inode, and everything the walk set aside), the sha256 of each
report file, and the error lines for stderr. A later scan into the same folder that
finds

* the same inputs (tool version and code, checks, every threshold, --fail-on, and the
  folder's extra inputs such as label_issues.csv),
* the same tree (the same criterion as the cache: path, size, mtime and inode),
* every file served by the cache (a file the cache does not hold fresh, such as one that
  could not be read, is read again), and
* every report file intact (its sha256 as written: a report edited by hand, replaced,
  half-written by a killed scan or deleted is noticed)

keeps the reports and rewrites only what says when and how the scan ran (summary.json's
created_utc, duration_s, jobs, engine, cache; the same line of report.html). Anything else
runs the whole scan. `--rehash` and `--no-cache` never reuse.

Crash safety: a scan removes the state file before it writes any report and writes it
(atomically) only after the last one, so a scan killed in between leaves no state and the
next scan runs in full. The state file is plain JSON with its own checksum; one that does
not parse or check is ignored, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from audit import reportio
from audit.dataset import FileEntry, Layout

STATE_NAME = ".scan-state.json"
STATE_FORMAT = 1
_READ_CHUNK = 1 << 20

# Files in the report folder that a scan reads besides the dataset: name -> digest function
# (of the folder). A new input registers here, so a change to it bypasses the reuse.
ExtraInput = Callable[[Path], str]


def _label_issues_digest(folder: Path) -> str:
    from audit import model_findings

    return model_findings.digest(folder)


EXTRA_INPUTS: dict[str, ExtraInput] = {"label_issues.csv": _label_issues_digest}


def input_digests(
    out: Path, *, version: str, checks: Iterable[tuple[str, str]], thresholds: dict, fail_on: str
) -> dict[str, str]:
    """Everything besides the dataset's files that the reports depend on, one digest (or
    value) per input: tool version, the audit package's code, the checks with their
    versions, every threshold (options included, e.g. mirror), --fail-on, and each extra
    input file of the report folder (EXTRA_INPUTS)."""
    digests = {
        "version": version,
        "code": code_digest(),
        "checks": _sha256_text(json.dumps(sorted(map(list, checks)))),
        "thresholds": _sha256_text(json.dumps(thresholds, sort_keys=True)),
        "fail_on": fail_on,
    }
    for name, digest in EXTRA_INPUTS.items():
        digests[f"file:{name}"] = digest(out)
    return digests


_code: str | None = None


def code_digest() -> str:
    """sha256 over this package's sources and templates: a development change without a
    version bump still bypasses reuse (about 1 ms, once per process)."""
    global _code
    if _code is None:
        package = Path(__file__).resolve().parent
        digest = hashlib.sha256()
        for path in sorted(package.rglob("*")):
            if path.suffix in (".py", ".j2") and "__pycache__" not in path.parts:
                digest.update(path.relative_to(package).as_posix().encode())
                digest.update(path.read_bytes())
        _code = digest.hexdigest()
    return _code


class TreeDigest:
    """The dataset as the walk and the stat calls saw it, in walk order."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self.files = 0

    def add(self, entry: FileEntry, key: tuple[int, int, int] | None) -> None:
        """One file and its (size, mtime_ns, inode) key (None: could not be stat'ed)."""
        self.files += 1
        self._digest.update(
            repr((entry.path, entry.relpath, entry.label, entry.split, key)).encode(
                "utf-8", "surrogatepass"
            )
        )

    def finish(self, layout: Layout) -> str:
        """The digest, with what the walk found besides the files (call after the walk)."""
        aside = (
            str(layout.root),
            None if layout.against is None else str(layout.against),
            [(f.split, f.label, str(f.path), f.prefix) for f in layout.folders],
            sorted(layout.files_per_folder.items()),
            [(item.relpath, item.reason) for item in layout.ignored],
            list(layout.stray_files),
            [(link.relpath, link.kind, link.target) for link in layout.linked],
            [(item.relpath, item.reason) for item in layout.unlistable],
            self.files,
        )
        self._digest.update(repr(aside).encode("utf-8", "surrogatepass"))
        return self._digest.hexdigest()


@dataclass(frozen=True)
class State:
    """What a complete scan left in its report folder."""

    inputs: dict[str, str]
    tree: str
    files: int
    reports: dict[str, str]  # report file name -> sha256, in ScanResult.files order
    error_lines: list[str]
    created_utc: str


def forget(out: Path) -> None:
    """Remove the state: from now until a new one is written, nothing is reused."""
    try:
        os.unlink(out / STATE_NAME)
    except FileNotFoundError:
        pass


def remember(
    out: Path,
    inputs: dict[str, str],
    tree: str,
    files: int,
    reports: dict[str, Path],
    error_lines: list[str],
    created_utc: str,
) -> None:
    """Write the state of a complete scan (after every report file is in place)."""
    body = {
        "format": STATE_FORMAT,
        "inputs": inputs,
        "tree": tree,
        "files": files,
        "reports": [[name, file_sha256(path)] for name, path in reports.items()],
        "error_lines": error_lines,
        "created_utc": created_utc,
    }
    text = json.dumps(body, sort_keys=True)  # ASCII: names that are not UTF-8 escaped
    document = json.dumps({"check": _sha256_text(text), "body": body}, sort_keys=True)
    with reportio.atomic_text(out / STATE_NAME) as handle:
        handle.write(document + "\n")


def recall(out: Path) -> State | None:
    """The state a complete scan left, or None (none, unreadable, or failing its check)."""
    try:
        document = json.loads((out / STATE_NAME).read_text(encoding="ascii"))
        body = document["body"]
        if document["check"] != _sha256_text(json.dumps(body, sort_keys=True)):
            return None
        if body["format"] != STATE_FORMAT:
            return None
        state = State(
            dict(body["inputs"]),
            str(body["tree"]),
            int(body["files"]),
            {str(name): str(digest) for name, digest in body["reports"]},
            [str(line) for line in body["error_lines"]],
            str(body["created_utc"]),
        )
    except (OSError, ValueError, TypeError, KeyError, AttributeError, UnicodeError):
        return None
    return state


def reports_intact(out: Path, state: State) -> bool:
    """Whether every report file the state names is in place with the content written."""
    for name, digest in state.reports.items():
        if "/" in name or name.startswith(".") or not name:
            return False
        try:
            if file_sha256(out / name) != digest:
                return False
        except OSError:
            return False
    return True


def file_sha256(path: Path) -> str:
    """sha256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
