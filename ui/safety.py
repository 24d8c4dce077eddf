"""What the app may touch: folders under the allowed roots only, and text shown escaped."""

from __future__ import annotations

import os
from pathlib import Path

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
