"""Quarantine and restore: the only code that moves dataset files, and only when asked.

`quarantine()` moves the selected files of an audit report out of the dataset into a
new quarantine folder (their paths kept), and `restore()` puts them back.

The manifest (manifest.jsonl in the quarantine folder) is a journal, each line flushed
and fsync'd before the next step:

1. `intent`: what is about to move (original, destination, sha256, size, mode, kind);
2. the move, which never replaces anything: within a filesystem a hard link at the new
   place then an unlink of the old name (a rename where hard links are not supported);
   across filesystems a copy under a temporary name that holds the action's random
   token (fsync'd, checked against the source, which must not have changed meanwhile),
   linked into place, then the original is unlinked. Symlinks move as symlinks, FIFOs as
   FIFOs;
3. the moved entry is verified (sha256 of a file, the target of a link, the kind of a
   special file); a file that changed during the move is put back (`returned`);
4. `done`.

A crash (even SIGKILL) at any moment therefore leaves every file either in place or
recorded by an intent line, and `restore()` decides per entry from what it finds on
disk (only for entries whose places lie in the dataset and the quarantine folder the
manifest names: an edited manifest cannot move or delete other files): back in place
already (skipped), in the quarantine folder (moved back and verified), or neither /
changed (refused, with the reason). It restores what it can, can be run again until
everything is back, cleans the temporary copies of an interrupted move, and leaves only
the manifest in the quarantine folder. Manifests of
0.1.0 (one line per moved file, no journal) restore the same way.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from audit import model_findings
from audit.codes import CODES, SEVERITY_RANK
from audit.dataset import within
from audit.errors import CannotWrite, InvalidArgument, UserError
from audit.lock import FolderBusy, folder_lock
from audit.outputs import refuse_inside_dataset
from audit.reportio import ImageRow, Report, matches_row

MANIFEST_NAME = "manifest.jsonl"
MANIFEST_FORMAT = "image-audit-quarantine/2"
PARTIAL_SUFFIX = ".image-audit-partial"  # a cross-filesystem copy before it is placed


class ChangedDuringMove(Exception):
    """The entry changed while it was being moved, or its place was taken meanwhile: it was
    left where it was (never half-moved, nothing overwritten)."""


class QuarantineRefused(UserError, ValueError):
    """Nothing was moved (files changed since the report, a place taken, a bad folder),
    or the manifest cannot be read at all."""


@dataclass(frozen=True)
class Move:
    """One file's entry in the manifest."""

    original: str  # absolute path in the dataset
    relpath: str  # as in images.csv
    quarantined: str  # absolute path in the quarantine folder
    sha256: str  # of the content ('' when the entry was unreadable: broken link, FIFO)
    bytes: int
    mtime_ns: int
    codes: str
    reason: str
    kind: str = "file"  # what lstat saw: file, symlink, fifo, socket, other
    link: str = ""  # a symlink's target, as readlink gives it
    mode: int = 0  # st_mode of the entry itself (0: not recorded, in 0.1.0 manifests)


@dataclass
class QuarantineOutcome:
    """What a quarantine did (or, dry, would do)."""

    manifest: Path
    moved: list[Move] = field(default_factory=list)
    returned: list[tuple[Move, str]] = field(default_factory=list)  # changed while moving


@dataclass
class RestoreOutcome:
    """What a restore did; `refused` names each entry left as it was, and why."""

    restored: list[Move] = field(default_factory=list)
    already_back: list[Move] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (entry or line, why)

    def exit_code(self) -> int:
        return 1 if self.refused else 0


# Tests replace this to stop the process right after a step: "intent", "moved",
# "verified", "done" of a quarantine; "copied", "placed" inside a cross-filesystem move;
# "restore-moved", "restore-verified" of a restore.
_after_step: Callable[[str], None] = lambda step: None  # noqa: E731


# ---------------------------------------------------------------- selecting


def select(
    report_dir: str | os.PathLike,
    codes: list[str] | None = None,
    severity: str | None = None,
    top: int | None = None,
) -> list[ImageRow]:
    """images.csv rows chosen by issue codes, or by severity (at or above); default: errors.

    codes=[] selects nothing (an empty --codes is not "every error"). top (only with
    codes=["suspected_label_issue"]): the top files with the lowest label-quality score.
    """
    if codes is not None and severity:
        raise InvalidArgument("choose files by --codes or by --severity, not both")
    unknown = [code for code in codes or [] if code not in CODES]
    if unknown:
        raise InvalidArgument(
            f"unknown issue code(s) {', '.join(unknown)}; known: {', '.join(sorted(CODES))}"
        )
    if severity is not None and severity not in ("error", "warning", "info"):
        raise InvalidArgument(f"severity must be error, warning or info; got {severity!r}")
    if top is not None and codes != [model_findings.CODE]:
        raise InvalidArgument(
            f"--top ranks files by their label-quality score: use it with --codes "
            f"{model_findings.CODE} alone"
        )
    rows = Report(report_dir).images()
    if codes is not None:
        wanted = set(codes)
        chosen = [row for row in rows if wanted & set(row.codes)]
        return chosen if top is None else model_findings.worst(report_dir, chosen, top)
    lowest = SEVERITY_RANK[severity or "error"]
    return [row for row in rows if row.severity != "ok" and SEVERITY_RANK[row.severity] >= lowest]


# ---------------------------------------------------------------- quarantine


def quarantine(
    report_dir: str | os.PathLike,
    relpaths: list[str],
    destination: str | os.PathLike | None = None,
    dry_run: bool = False,
) -> QuarantineOutcome:
    """Move the files (paths as in images.csv) into a new quarantine folder.

    destination defaults to REPORT_DIR/quarantine-<UTC time to the microsecond>/; a
    given one must be new or empty. Refuses, moving nothing, when a file changed since
    the report. With dry_run nothing is written: the moves are planned and checked.
    """
    report = Path(report_dir)
    with folder_lock(report, "quarantine"):
        return _quarantine(report, relpaths, destination, dry_run)


def _quarantine(
    report: Path, relpaths: list[str], destination: str | os.PathLike | None, dry_run: bool
) -> QuarantineOutcome:
    opened = Report(report)
    root = opened.root
    rows = {row.path: row for row in opened.images()}
    missing = [path for path in relpaths if path not in rows]
    if missing:
        raise QuarantineRefused(f"not in the report: {', '.join(missing[:5])}")
    originals, changed = {}, []
    for relpath in relpaths:
        row = rows[relpath]
        originals[relpath] = opened.locate(row)
        why = _changed_since_report(originals[relpath], row)
        if why:
            changed.append(f"{relpath} ({why})")
    if changed:
        raise QuarantineRefused(
            f"{len(changed)} file(s) changed since the report (e.g. {', '.join(changed[:5])}); "
            "nothing was moved. Re-run the scan, then quarantine from the new report."
        )
    target_dir = _new_folder(report, destination, opened, dry_run)  # only once all is checked
    plan = [
        _planned_move(originals[relpath], target_dir / _safe_relative(relpath), rows[relpath])
        for relpath in relpaths
    ]
    outcome = QuarantineOutcome(target_dir / MANIFEST_NAME)
    if dry_run:
        outcome.moved = plan
        return outcome
    token = secrets.token_hex(8)  # names this action's temporary copies: never a user's file
    against = opened.summary.get("against")
    with (
        _journal(outcome.manifest, report, root, against, token) as write,
        _interrupts_between_files() as stop,
    ):
        for sequence, move in enumerate(plan, start=1):
            if stop():
                raise KeyboardInterrupt(
                    f"{len(outcome.moved)} of {len(plan)} file(s) moved; restore them with: "
                    f"python -m audit restore {outcome.manifest}"
                )
            write({"op": "intent", "seq": sequence, **asdict(move)})
            _after_step("intent")
            try:
                _move(Path(move.original), Path(move.quarantined), move, token)
            except ChangedDuringMove as changed_while_moving:
                write({"op": "returned", "seq": sequence, "why": str(changed_while_moving)})
                outcome.returned.append((move, str(changed_while_moving)))
                continue
            _after_step("moved")
            why = _mismatch(Path(move.quarantined), move)
            if why:
                try:
                    _move(Path(move.quarantined), Path(move.original), move, token)
                except ChangedDuringMove as taken:
                    raise QuarantineRefused(
                        f"{move.relpath} changed during its move ({why}) and cannot go back "
                        f"({taken}); it is recorded in {outcome.manifest}: restore it later"
                    ) from None
                write({"op": "returned", "seq": sequence, "why": why})
                outcome.returned.append((move, why))
                continue
            _after_step("verified")
            write({"op": "done", "seq": sequence})
            _after_step("done")
            outcome.moved.append(move)
    if outcome.returned:
        _prune_empty_folders(target_dir)  # the folders made for files that went back
    return outcome


def _new_folder(
    report: Path, destination: str | os.PathLike | None, opened: Report, dry_run: bool
) -> Path:
    """A quarantine folder of its own for this action (created unless dry_run), never
    inside the dataset."""
    against = opened.summary.get("against")
    if destination:
        target = Path(destination).expanduser().absolute()
        refuse_inside_dataset(opened.root, target, "--to", against)
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            kind = "a folder that is not empty" if target.is_dir() else "not a folder"
            raise QuarantineRefused(
                f"--to {target} is {kind}: each quarantine gets a new folder (its manifest "
                "restores that action alone)"
            )
        if not dry_run:
            try:
                target.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise CannotWrite(f"cannot create --to {target}: {error.strerror}") from None
        return target
    refuse_inside_dataset(opened.root, report.absolute(), "the report folder", against)
    while True:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
        target = (report / f"quarantine-{stamp}").absolute()
        if dry_run:
            return target
        try:
            target.mkdir(parents=True)  # exclusive: two actions never share a folder
            return target
        except FileExistsError:
            continue


def _planned_move(original: Path, quarantined: Path, row: ImageRow) -> Move:
    info = os.lstat(original)
    kind = _kind(info.st_mode)
    return Move(
        original=str(original),
        relpath=row.path,
        quarantined=str(quarantined),
        sha256=row.sha256,
        bytes=row.bytes,
        mtime_ns=row.mtime_ns or 0,
        codes=row.issues,
        reason=row.reasons,
        kind=kind,
        link=os.readlink(original) if kind == "symlink" else "",
        mode=info.st_mode,
    )


@contextmanager
def _journal(
    path: Path, report: Path, root: Path, against: str | None, token: str
) -> Iterator[Callable[[dict], None]]:
    """Append-only manifest lines, each flushed and fsync'd before the caller goes on."""
    with open(path, "a", encoding="utf-8") as handle:

        def write(entry: dict) -> None:
            # ensure_ascii: names that are not UTF-8 (surrogate escapes) survive the round trip
            handle.write(json.dumps(entry, ensure_ascii=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

        if handle.tell() == 0:
            created = datetime.now(timezone.utc).isoformat(timespec="seconds")
            write({"format": MANIFEST_FORMAT, "report": str(report.absolute()), "root": str(root),
                   "against": against, "created_utc": created, "token": token})  # fmt: skip
            _fsync_folder(path.parent)
        yield write


@contextmanager
def _interrupts_between_files() -> Iterator[Callable[[], bool]]:
    """Ctrl-C is noted and takes effect between two files, never in the middle of a move."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False  # signal handlers belong to the main thread (the app uses others)
        return
    pressed: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: pressed.append(number))
    try:
        yield lambda: bool(pressed)
    finally:
        signal.signal(signal.SIGINT, previous)


# ---------------------------------------------------------------- restore


def restore(manifest_path: str | os.PathLike, dry_run: bool = False) -> RestoreOutcome:
    """Put back every entry of a manifest that can be, verified; refuse the others by name.

    Entries already back (recognised by content) are skipped; a damaged manifest line is
    refused with its line number while the other lines are restored. Run it again after
    fixing what was refused (or after an interruption) to finish.
    """
    manifest = Path(manifest_path)
    if not manifest.is_file():
        raise QuarantineRefused(f"no manifest at {manifest}")
    with open(manifest, "rb") as handle:
        try:  # one restore per manifest at a time (the lock ends with the process)
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusy(f"another restore of {manifest} is running") from None
        moves, outcome, header = _read_manifest(manifest)
        token = header.get("token")
        if not token and not dry_run:  # a 0.1.0 manifest: give this restore's copies a name
            token = secrets.token_hex(8)
            with open(manifest, "a", encoding="utf-8") as append:
                append.write(json.dumps({"token": token}) + "\n")
        for move in moves:
            outside = _outside_its_places(move, manifest, header)
            if outside:
                outcome.refused.append((move.original, outside))
                continue
            try:
                _restore_one(move, outcome, dry_run, token or "")
            except (OSError, ChangedDuringMove) as error:
                outcome.refused.append((move.original, f"cannot move it back: {error}"))
        if not dry_run and not outcome.refused:
            _prune_empty_folders(manifest.parent)
    return outcome


def manifests(report_dir: str | os.PathLike) -> list[Path]:
    """The manifests of the quarantines made into REPORT_DIR's own folders (the default,
    one `quarantine-<UTC time>` folder per action), oldest first."""
    return sorted(Path(report_dir).glob(f"quarantine-*/{MANIFEST_NAME}"))


def manifest_entries(manifest_path: str | os.PathLike) -> tuple[list[Move], dict]:
    """The entries a restore of this manifest would consider (files moved or being moved,
    not those put back during the quarantine) and its header (empty for 0.1.0's);
    QuarantineRefused when no line of it reads as a manifest. Damaged lines are left out
    here; restore() names them."""
    moves, _, header = _read_manifest(Path(manifest_path))
    return moves, header


def _outside_its_places(move: Move, manifest: Path, header: dict) -> str | None:
    """Why an entry may not be restored as written (a manifest edited to move or delete
    other files), or None. The quarantined entry must lie in the manifest's folder, the
    original in the dataset the manifest names (0.1.0 manifests name none: the original
    must at least end with the entry's relative path)."""
    folder = Path(os.path.normpath(manifest.parent.absolute()))
    quarantined = Path(os.path.normpath(move.quarantined))
    if quarantined == folder or not within(quarantined, folder):
        return f"its quarantined place {move.quarantined} is outside the manifest's folder"
    original = Path(os.path.normpath(move.original))
    roots = [Path(os.path.normpath(header[key])) for key in ("root", "against") if header.get(key)]
    if roots:
        if not any(original != root and within(original, root) for root in roots):
            return f"its original place {move.original} is outside the dataset {roots[0]}"
    elif ".." not in move.relpath.split("/") and not str(original).endswith(
        os.sep + os.path.normpath(move.relpath)
    ):
        return f"its original place {move.original} does not end with {move.relpath}"
    return None


def _read_manifest(manifest: Path) -> tuple[list[Move], RestoreOutcome, dict]:
    """The entries to restore, in order, an outcome holding the damaged lines, and the
    header (empty for a 0.1.0 manifest)."""
    outcome = RestoreOutcome()
    entries: dict[int, Move] = {}
    settled: set[int] = set()  # returned during the quarantine: never moved
    names = {item.name for item in fields(Move)}
    header: dict = {}
    try:
        text = manifest.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as error:
        raise QuarantineRefused(f"cannot read the manifest {manifest}: {error}") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict):
                raise ValueError("not a JSON object")
            if set(entry) == {"token"} and isinstance(entry["token"], str):
                header.setdefault("token", entry["token"])  # added by a restore of 0.1.0's
                continue
            if "format" in entry:
                header = {**entry, **header}
                if entry["format"] != MANIFEST_FORMAT:
                    raise QuarantineRefused(
                        f"{manifest} is a manifest of format {entry['format']!r}; this version "
                        f"reads {MANIFEST_FORMAT} and 0.1.0 manifests"
                    )
                continue
            operation = entry.pop("op", None)
            sequence = entry.pop("seq", None) if operation else -number
            if operation in ("done", "returned"):
                if operation == "returned":
                    settled.add(int(sequence))
                continue
            if operation not in (None, "intent"):
                raise ValueError(f"unknown operation {operation!r}")
            unknown = sorted(set(entry) - names)
            if unknown:
                raise ValueError(f"unknown key(s) {', '.join(unknown)}")
            entries[int(sequence)] = Move(**entry)  # a 0.1.0 line is a finished move
        except QuarantineRefused:
            raise
        except (ValueError, TypeError) as error:
            outcome.refused.append((f"{manifest.name} line {number}", f"damaged: {error}"))
    if not entries and not header and outcome.refused:
        raise QuarantineRefused(
            f"{manifest} is not a quarantine manifest: no line of it reads as one "
            f"({outcome.refused[0][0]}: {outcome.refused[0][1]})"
        )
    moves = [move for sequence, move in entries.items() if sequence not in settled]
    return moves, outcome, header


def _restore_one(move: Move, outcome: RestoreOutcome, dry_run: bool, token: str) -> None:
    original, quarantined = Path(move.original), Path(move.quarantined)
    if not dry_run:
        for leftover in (original, quarantined):  # a cross-filesystem copy cut short
            _remove_partial(leftover, token)
    if os.path.lexists(original):
        why = _mismatch(original, move)
        if why:
            outcome.refused.append(
                (move.original, f"the original place is taken by something else ({why})")
            )
            return
        if os.path.lexists(quarantined) and not dry_run:
            if _mismatch(quarantined, move) is None:
                os.unlink(quarantined)  # both places hold it: an interrupted move's 2nd copy
            else:
                outcome.refused.append(
                    (move.quarantined, "it is back in place, and this differs from it: left")
                )
                return
        outcome.already_back.append(move)
        return
    if not os.path.lexists(quarantined):
        outcome.refused.append(
            (move.original, f"neither it nor its quarantined copy {quarantined} exists")
        )
        return
    why = _mismatch(quarantined, move)
    if why:
        outcome.refused.append((move.quarantined, f"the quarantined entry changed: {why}"))
        return
    if dry_run:
        outcome.restored.append(move)
        return
    _move(quarantined, original, move, token)
    _after_step("restore-moved")
    why = _mismatch(original, move)
    if why:  # the move itself altered it: say so, it stays where it is now
        outcome.refused.append((move.original, f"moved back, but it no longer matches: {why}"))
        return
    _after_step("restore-verified")
    outcome.restored.append(move)


def _prune_empty_folders(folder: Path) -> None:
    """Remove the quarantine folder's emptied sub-folders (the manifest stays)."""
    for directory, _, _ in sorted(os.walk(folder), key=lambda item: -len(item[0])):
        if Path(directory) != folder:
            try:
                os.rmdir(directory)
            except OSError:
                pass  # not empty: something else lives there; leave it


# ---------------------------------------------------------------- moving and checking


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "other"


def _mismatch(path: Path, move: Move) -> str | None:
    """Why the entry at path is not the one the manifest recorded, or None when it is."""
    try:
        info = os.lstat(path)
    except OSError as error:
        return f"cannot stat it: {error.strerror or error}"
    kind = _kind(info.st_mode)
    if move.kind != "file" or move.mode:  # 0.1.0 entries did not record the kind
        if kind != move.kind:
            return f"it is a {kind}, was a {move.kind}"
    if kind == "symlink":
        target = os.readlink(path)
        if move.link and target != move.link:
            return f"the link points to {target!r}, was {move.link!r}"
        if move.link or not move.sha256:
            return None
    if kind in ("fifo", "socket", "other"):
        return None
    if not move.sha256:
        return None  # unreadable when scanned: nothing to compare
    try:
        digest = _sha256(path)
    except OSError as error:
        return f"cannot read it: {error.strerror or error}"
    return None if digest == move.sha256 else f"sha256 {digest[:12]}... != {move.sha256[:12]}..."


def _changed_since_report(path: Path, row: ImageRow) -> str | None:
    """Why the entry no longer is what the report saw, or None."""
    try:
        os.lstat(path)
    except OSError:
        return "gone"
    try:
        info = os.stat(path)
    except OSError:
        info = None  # a broken link
    if not row.sha256:
        # Unreadable when scanned (broken link, FIFO, socket...): still not a readable file?
        readable = info is not None and stat.S_ISREG(info.st_mode) and os.access(path, os.R_OK)
        return "it became a readable file" if readable and info and info.st_size else None
    if info is None or not stat.S_ISREG(info.st_mode):
        return "it is no longer a regular file"
    if not matches_row(info, row):
        return "size or modification time changed"
    try:
        return None if _sha256(path) == row.sha256 else "content changed"
    except OSError as error:
        return f"cannot read it: {error.strerror or error}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _move(source: Path, target: Path, move: Move, token: str) -> None:
    """Move one entry, never overwriting: a hard link to the new place then an unlink (a
    rename where links are not supported); across filesystems a copy under a temporary
    name (token in it), fsync'd and checked against the source, then placed the same way.
    ChangedDuringMove when the source changed during the copy or the place got taken: the
    entry is then still where it was."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(target):
        raise ChangedDuringMove(f"{target} exists (nothing is overwritten)")
    try:
        _place(source, target)
        return
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
    partial = _partial(target, token)
    _remove_partial(target, token)
    before = os.lstat(source)
    if stat.S_ISLNK(before.st_mode):
        os.symlink(os.readlink(source), partial)
    elif stat.S_ISFIFO(before.st_mode):
        os.mkfifo(partial, stat.S_IMODE(before.st_mode))
    elif stat.S_ISREG(before.st_mode):
        shutil.copy2(source, partial, follow_symlinks=False)  # content, mode and mtime
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
    else:
        raise QuarantineRefused(
            f"{source} is a {_kind(before.st_mode)}: it can move within its filesystem only"
        )
    if not stat.S_ISLNK(before.st_mode):
        os.utime(partial, ns=(before.st_atime_ns, before.st_mtime_ns))
    _after_step("copied")
    after = os.lstat(source)
    changed = (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (
        before.st_size, before.st_mtime_ns, before.st_ctime_ns,
    )  # fmt: skip
    if not changed and stat.S_ISREG(before.st_mode) and move.sha256:
        changed = _sha256(partial) != move.sha256
    if changed:
        os.unlink(partial)
        raise ChangedDuringMove(f"{source} changed while it was copied; it stays where it was")
    try:
        _place(partial, target)
    except FileExistsError:
        os.unlink(partial)
        raise ChangedDuringMove(
            f"{target} appeared during the move (nothing overwritten)"
        ) from None
    _fsync_folder(target.parent)
    _after_step("placed")
    os.unlink(source)


def _place(source: Path, target: Path) -> None:
    """source's entry at target, never replacing what is there: link + unlink (atomic
    no-replace); a rename after a check where the filesystem has no hard links."""
    try:
        os.link(source, target, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as error:
        if error.errno == errno.EXDEV:
            raise
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "exists", str(target)) from None
        os.rename(source, target)  # no hard links here (EPERM, ENOTSUP, EMLINK)
        return
    os.unlink(source)


def _partial(path: Path, token: str) -> Path:
    return path.with_name(f".{path.name}.{token}{PARTIAL_SUFFIX}")


def _remove_partial(path: Path, token: str) -> None:
    if not token:
        return
    partial = _partial(path, token)
    if os.path.lexists(partial):
        os.unlink(partial)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _safe_relative(relpath: str) -> PurePosixPath:
    """A path inside the quarantine folder: '..' segments (files of --against) become '__up__'."""
    return PurePosixPath(
        *("__up__" if part == ".." else part for part in PurePosixPath(relpath).parts)
    )
