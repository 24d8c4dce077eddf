"""The only module that knows the ROOT/<class>/<images> convention.

`discover(root)` checks the layout and counts what is there; `Layout.iter_files()`
then yields every file under every class folder, in a stable sorted order, lazily
(so memory does not grow with the dataset). Rules:

* each top-level folder is a class; files in nested folders belong to it;
* OS clutter (.DS_Store, Thumbs.db, desktop.ini, any dotfile or dot-folder, which
  Keras's loader skips as well) is listed as ignored, never scanned;
* symlinks are followed, but a folder already visited (a loop, or two links to one
  place) is entered once, so a loop can never hang the walk;
* files directly under ROOT belong to no class: reported, not scanned.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

CLUTTER_NAMES = frozenset({"Thumbs.db", "ehthumbs.db", "desktop.ini", "Desktop.ini", "Icon\r", "__MACOSX"})


class LayoutError(ValueError):
    """ROOT cannot be audited as ROOT/<class>/<images> (missing, a file, no class folders)."""


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file found under a class folder."""

    path: str  # absolute path, through any symlinked folders as found
    relpath: str  # POSIX path relative to ROOT: '<class>/.../<name>'
    label: str  # the top-level class folder


@dataclass(frozen=True, slots=True)
class Skipped:
    """Something found but not scanned, and why."""

    relpath: str
    reason: str


@dataclass
class Layout:
    """A checked dataset root: its classes and what the walk set aside."""

    root: Path
    classes: tuple[str, ...]
    file_count: int = 0
    files_per_class: dict[str, int] = field(default_factory=dict)
    ignored: list[Skipped] = field(default_factory=list)
    stray_files: list[str] = field(default_factory=list)

    @property
    def empty_classes(self) -> list[str]:
        """Class folders that hold no file at all."""
        return [name for name in self.classes if self.files_per_class.get(name, 0) == 0]

    def iter_files(self) -> Iterator[FileEntry]:
        """Yield every file under every class folder, sorted, lazily."""
        for label in self.classes:
            for relpath, skipped in _walk_class(self.root, label):
                if skipped is None:
                    yield FileEntry(str(self.root / relpath), relpath, label)


def is_clutter(name: str) -> bool:
    """OS and tool clutter that is never part of a dataset (dotfiles included)."""
    return name.startswith(".") or name in CLUTTER_NAMES


def discover(root: str | os.PathLike) -> Layout:
    """Check ROOT and count its files; LayoutError says what layout is expected."""
    root_path = Path(root).expanduser()
    if not root_path.exists():
        raise LayoutError(f"{root_path} does not exist")
    if not root_path.is_dir():
        raise LayoutError(f"{root_path} is a file; expected a folder laid out as ROOT/<class>/<images>")
    root_path = root_path.absolute()
    try:
        entries = sorted(os.scandir(root_path), key=lambda entry: entry.name)
    except OSError as error:
        raise LayoutError(f"cannot list {root_path}: {error.strerror or error}") from error

    classes: list[str] = []
    ignored: list[Skipped] = []
    stray: list[str] = []
    for entry in entries:
        if is_clutter(entry.name):
            ignored.append(Skipped(entry.name, "OS or tool clutter (Keras skips it too)"))
        elif _is_dir(entry):
            classes.append(entry.name)
        else:
            stray.append(entry.name)
    if not classes:
        found = f"{len(stray)} file(s) directly under it" if stray else "nothing to scan"
        raise LayoutError(
            f"{root_path} has no class folders ({found}). Expected ROOT/<class>/<images>, "
            "e.g. ROOT/cat/001.jpg and ROOT/dog/002.jpg: one folder per label."
        )

    layout = Layout(root_path, tuple(classes), ignored=ignored, stray_files=stray)
    for label in classes:
        count = 0
        for relpath, skipped in _walk_class(root_path, label):
            if skipped is None:
                count += 1
            else:
                layout.ignored.append(Skipped(relpath, skipped))
        layout.files_per_class[label] = count
        layout.file_count += count
    return layout


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:
        return False


def _walk_class(root: Path, label: str) -> Iterator[tuple[str, str | None]]:
    """Yield (relpath, None) for each file, (relpath, reason) for each thing set aside.

    Depth-first over sorted names. A folder is identified by (device, inode) so one
    reached twice through symlinks is entered only once.
    """
    visited: set[tuple[int, int]] = set()
    stack = [label]
    while stack:
        rel_dir = stack.pop()
        abs_dir = root / rel_dir
        try:
            info = os.stat(abs_dir)
        except OSError as error:
            yield rel_dir, f"folder cannot be read: {error.strerror or error}"
            continue
        key = (info.st_dev, info.st_ino)
        if key in visited:
            yield rel_dir, "folder already visited through another path (symlink loop or alias)"
            continue
        visited.add(key)
        try:
            entries = sorted(os.scandir(abs_dir), key=lambda entry: entry.name)
        except OSError as error:
            yield rel_dir, f"folder cannot be listed: {error.strerror or error}"
            continue
        subdirs = []
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}"
            if is_clutter(entry.name):
                yield rel, "OS or tool clutter (Keras skips it too)"
            elif _is_dir(entry):
                subdirs.append(rel)
            else:
                # Regular files, broken symlinks, FIFOs, sockets: all become rows;
                # inspection reports the ones that cannot be read, without opening a FIFO.
                yield rel, None
        stack.extend(reversed(subdirs))

