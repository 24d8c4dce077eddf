"""Quarantine and restore: the only code that moves dataset files, and only when asked.

`quarantine()` moves the selected files of an audit report out of the dataset into a
quarantine folder (their paths kept), and `restore()` puts them back. Both:

* refuse before moving anything when a file changed since the report (size, mtime and
  sha256), or when a destination already exists: nothing is ever overwritten;
* move within a filesystem by rename, across filesystems by copy + fsync + verify +
  unlink; every moved file's sha256 is checked at its new place;
* record each move in a JSON-lines manifest *as it happens* (original path, new path,
  sha256, size, reason), so even an interrupted quarantine can be restored.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from audit.codes import CODES, SEVERITY_RANK
from audit.dataset import resolve
from audit.errors import InvalidArgument, UserError
from audit.reportio import ImageRow, Report, matches_row

MANIFEST_NAME = "manifest.jsonl"


class QuarantineRefused(UserError, ValueError):
    """Nothing was moved: the files changed since the report, or a destination exists."""


@dataclass(frozen=True)
class Move:
    """One manifest line."""

    original: str  # absolute path in the dataset
    relpath: str  # as in images.csv
    quarantined: str  # absolute path in the quarantine folder
    sha256: str
    bytes: int
    mtime_ns: int
    codes: str
    reason: str


def select(
    report_dir: str | os.PathLike, codes: list[str] | None = None, severity: str | None = None
) -> list[ImageRow]:
    """images.csv rows chosen by issue codes, or by severity (at or above); default: errors."""
    if codes and severity:
        raise InvalidArgument("choose files by --codes or by --severity, not both")
    unknown = [code for code in codes or [] if code not in CODES]
    if unknown:
        raise InvalidArgument(
            f"unknown issue code(s) {', '.join(unknown)}; known: {', '.join(sorted(CODES))}"
        )
    severity = severity or ("error" if not codes else None)
    if severity is not None and severity not in ("error", "warning", "info"):
        raise InvalidArgument(f"severity must be error, warning or info; got {severity!r}")
    rows = Report(report_dir).images()
    if codes:
        wanted = set(codes)
        return [row for row in rows if wanted & set(row.codes)]
    lowest = SEVERITY_RANK[severity or "error"]
    return [row for row in rows if row.severity != "ok" and SEVERITY_RANK[row.severity] >= lowest]


def quarantine(
    report_dir: str | os.PathLike,
    relpaths: list[str],
    destination: str | os.PathLike | None = None,
    dry_run: bool = False,
) -> tuple[Path, list[Move]]:
    """Move the files (paths as in images.csv) into a quarantine folder; returns (manifest, moves).

    destination defaults to REPORT_DIR/quarantine-<UTC time>/. With dry_run nothing is
    written: the moves are only planned and checked.
    """
    report = Path(report_dir)
    opened = Report(report)
    root = opened.root
    rows = {row.path: row for row in opened.images()}
    missing = [path for path in relpaths if path not in rows]
    if missing:
        raise QuarantineRefused(f"not in the report: {', '.join(missing[:5])}")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    target_dir = (
        Path(destination).expanduser().absolute()
        if destination
        else (report / f"quarantine-{stamp}").absolute()
    )
    if target_dir.resolve() == root.resolve() or root.resolve() in target_dir.resolve().parents:
        raise QuarantineRefused(f"the quarantine folder {target_dir} is inside the dataset {root}")

    plan = []
    changed, occupied = [], []
    for relpath in relpaths:
        row = rows[relpath]
        original = Path(resolve(root, relpath))
        target = target_dir / _safe_relative(relpath)
        if _changed_since_report(original, row):
            changed.append(relpath)
        if target.exists():
            occupied.append(str(target))
        plan.append(
            Move(
                str(original),
                relpath,
                str(target),
                row.sha256,
                row.bytes,
                row.mtime_ns or 0,
                row.issues,
                row.reasons,
            )
        )
    if changed:
        raise QuarantineRefused(
            f"{len(changed)} file(s) changed since the report (e.g. {', '.join(changed[:5])}); "
            "nothing was moved. Re-run the scan, then quarantine from the new report."
        )
    if occupied:
        raise QuarantineRefused(
            f"destination(s) already exist (e.g. {', '.join(occupied[:3])}); nothing was moved"
        )
    manifest = target_dir / MANIFEST_NAME
    if dry_run:
        return manifest, plan
    target_dir.mkdir(parents=True, exist_ok=True)
    with open(manifest, "a", encoding="utf-8") as log:
        for move in plan:
            _move_verified(Path(move.original), Path(move.quarantined), move.sha256)
            log.write(json.dumps(asdict(move)) + "\n")
            log.flush()
            os.fsync(log.fileno())
    return manifest, plan


def restore(manifest_path: str | os.PathLike, dry_run: bool = False) -> list[Move]:
    """Put every file of a manifest back where it was, verified; refuse if any place is taken."""
    manifest = Path(manifest_path)
    if not manifest.is_file():
        raise QuarantineRefused(f"no manifest at {manifest}")
    moves = [
        Move(**json.loads(line))
        for line in manifest.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    taken = [move.original for move in moves if Path(move.original).exists()]
    if taken:
        raise QuarantineRefused(
            f"{len(taken)} original place(s) are taken again (e.g. {', '.join(taken[:3])}); "
            "nothing was restored "
            "(already restored? a new file there?)"
        )
    absent = [move.quarantined for move in moves if not Path(move.quarantined).is_file()]
    altered = [
        move.quarantined
        for move in moves
        if move.quarantined not in absent and _sha256(Path(move.quarantined)) != move.sha256
    ]
    if absent or altered:
        raise QuarantineRefused(
            f"quarantined files missing ({len(absent)}) or altered ({len(altered)}), "
            f"e.g. {', '.join((absent + altered)[:3])}; "
            "nothing was restored"
        )
    if not dry_run:
        for move in moves:
            _move_verified(Path(move.quarantined), Path(move.original), move.sha256)
    return moves


def _safe_relative(relpath: str) -> PurePosixPath:
    """A path inside the quarantine folder: '..' segments (files of --against) become '__up__'."""
    return PurePosixPath(
        *("__up__" if part == ".." else part for part in PurePosixPath(relpath).parts)
    )


def _changed_since_report(path: Path, row: ImageRow) -> bool:
    try:
        info = os.stat(path)
    except OSError:
        return True
    if not matches_row(info, row):
        return True
    return bool(row.sha256) and _sha256(path) != row.sha256


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _move_verified(source: Path, target: Path, sha256: str) -> None:
    """Move without overwriting; across filesystems copy, fsync, verify, then unlink."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        raise QuarantineRefused(f"{target} appeared during the move; stopped (nothing overwritten)")
    try:
        os.rename(source, target)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        shutil.copy2(source, target)  # keeps mode and modification time
        with open(target, "rb") as handle:
            os.fsync(handle.fileno())
        if sha256 and _sha256(target) != sha256:
            target.unlink()
            raise QuarantineRefused(
                f"the copy of {source} does not match its sha256; the original was left in place"
            ) from None
        source.unlink()
        return
    if sha256 and _sha256(target) != sha256:
        raise QuarantineRefused(
            f"{target} does not match its sha256 after the move; check the disk"
        )
