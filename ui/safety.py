"""What the app may touch: folders under the allowed roots only, and text shown escaped."""

from __future__ import annotations

import os
from pathlib import Path

from audit import escaping
from audit.errors import UserError

ROOTS_VARIABLE = "IMAGE_AUDIT_ALLOWED_ROOTS"  # os.pathsep-separated folders
WORKDIR_VARIABLE = (
    "IMAGE_AUDIT_WORKDIR"  # where reports/ and runs/ go (default: the working folder)
)


class OutsideAllowedRoots(UserError, ValueError):
    """A path outside every allowed root: the app neither reads nor writes there."""


def allowed_roots() -> list[Path]:
    """The folders the app may read and write under (default: the working folder)."""
    configured = os.environ.get(ROOTS_VARIABLE, "")
    roots = [
        Path(part).expanduser().resolve() for part in configured.split(os.pathsep) if part.strip()
    ]
    return roots or [Path.cwd().resolve()]


def workdir() -> Path:
    """Where the app keeps reports/ and runs/; it must itself be allowed."""
    return checked(os.environ.get(WORKDIR_VARIABLE) or allowed_roots()[0])


def checked(path: str | os.PathLike) -> Path:
    """The resolved path if it lies under an allowed root, else OutsideAllowedRoots."""
    if not str(path).strip():
        raise OutsideAllowedRoots("no folder given")
    resolved = Path(path).expanduser().resolve()
    for root in allowed_roots():
        if resolved == root or root in resolved.parents:
            return resolved
    roots = ", ".join(str(root) for root in allowed_roots())
    raise OutsideAllowedRoots(
        f"{resolved} is outside the allowed roots ({roots}); set {ROOTS_VARIABLE} to allow it"
    )


def permitted(path: str | os.PathLike) -> bool:
    """Whether the app may read or move the file at path: the folder that holds it and
    the file itself (through every link) both resolve under an allowed root. A class
    folder or a file that is a link to elsewhere fails; a missing file is judged by its
    folder."""
    place = Path(path)
    try:
        checked(place.parent)
        if os.path.lexists(place):
            checked(place)
    except OutsideAllowedRoots:
        return False
    return True


def readable(path: str | os.PathLike) -> Path | None:
    """The file's resolved path when it exists and lies, through every link, under an
    allowed root; None otherwise. Every file the app reads goes through this (or through
    permitted): checking the folder alone let a link inside it lead anywhere."""
    place = Path(path)
    if not place.is_file() or not permitted(place):
        return None
    return place.resolve()


def leading_outside(paths) -> list[Path]:
    """Those of paths that exist but lead outside the allowed roots (readable refuses
    them): a page names them and reads nothing of what they belong to."""
    return [Path(path) for path in paths if os.path.lexists(path) and readable(path) is None]


def markdown(text: object) -> str:
    """audit.escaping.markdown for the Markdown Streamlit renders, with ":" escaped too:
    Streamlit reads :name[...] as a directive (coloured text) and a folder named
    ":red[x]" lost its ":red". report.md, plain CommonMark, keeps its colons as they are."""
    return escaping.markdown(text).replace(":", "\\:")
