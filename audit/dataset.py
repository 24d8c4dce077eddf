"""The only module that knows the ROOT/<class>/<images> convention (and its split variant).

`discover(root, against=None)` checks the layout and counts what is there;
`Layout.iter_files()` then yields every file under every class folder, in a stable
sorted order, lazily (so memory does not grow with the dataset). Rules:

* each top-level folder is a class; files in nested folders belong to it;
* a ROOT whose top-level folders are all split names (train, val, validation, test...)
  and hold class folders is a split layout: ROOT/<split>/<class>/<images>;
* `against` adds a second dataset (another split, e.g. the validation set) with the
  same <class>/<images> layout; its paths stay relative to ROOT (`../val/cat/1.jpg`);
* OS clutter (.DS_Store, Thumbs.db, desktop.ini, any dotfile or dot-folder, which
  Keras's loader skips as well) is listed as ignored, never scanned;
* every folder is entered at most once per scan, across all classes (keyed by device
  and inode), so a loop can never hang the walk and no file is read twice;
* a symlink to a folder inside the scanned dataset(s) (an ancestor, a sibling class,
  itself) is not entered: it is reported (`linked`, kind "folder"); a symlink to a folder
  outside is followed, and its files belong to the class that holds the link;
* a symlink to a file that the walk reaches at its own place is not a second row (the
  file has one row, under its own class): it is reported (`linked`, kind "file"); a link
  to a file outside the dataset is a row of the class holding the link (once, however
  many links lead to it);
* a folder that cannot be listed is reported (`unlistable`): its files are not audited;
* files directly under ROOT (or a split folder) belong to no class: reported, not scanned.

Keras's `image_dataset_from_directory` (follow_links=False, its default) enters no
folder symlink at all, inside or outside, and reads a file symlink as a file of the
class holding it, again.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from audit.errors import UserError

CLUTTER_NAMES = frozenset(
    {"Thumbs.db", "ehthumbs.db", "desktop.ini", "Desktop.ini", "Icon\r", "__MACOSX"}
)
SPLIT_NAMES = frozenset(
    {"train", "training", "val", "valid", "validation", "test", "testing", "dev", "eval"}
)
_CLUTTER_REASON = "OS or tool clutter (Keras skips it too)"


class LayoutError(UserError, ValueError):
    """ROOT cannot be audited as ROOT/<class>/<images> (missing, a file, no class folders)."""


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file found under a class folder."""

    path: str  # absolute path, through any symlinked folders as found
    relpath: str  # POSIX path relative to ROOT: '[<split>/]<class>/.../<name>'
    label: str  # the class folder
    split: str = ""  # '' for a layout without splits


@dataclass(frozen=True, slots=True)
class Skipped:
    """Something found but not scanned, and why."""

    relpath: str
    reason: str


@dataclass(frozen=True, slots=True)
class Link:
    """A symlink the walk did not follow: what it points to is in the dataset already."""

    relpath: str
    kind: str  # "folder" or "file"
    target: str  # where it points, relative to ROOT when inside it


@dataclass(frozen=True, slots=True)
class ClassFolder:
    """One class folder of one split."""

    split: str
    label: str
    path: Path  # absolute
    prefix: str  # its POSIX path relative to ROOT


@dataclass
class Layout:
    """A checked dataset: its class folders and what the walk set aside."""

    root: Path
    folders: list[ClassFolder]
    file_count: int = 0
    files_per_folder: dict[str, int] = field(default_factory=dict)  # by ClassFolder.prefix
    ignored: list[Skipped] = field(default_factory=list)
    stray_files: list[str] = field(default_factory=list)
    against: Path | None = None  # the second dataset of --against, when given
    linked: list[Link] = field(default_factory=list)  # links into the dataset, not followed
    unlistable: list[Skipped] = field(default_factory=list)  # folders not audited
    # Real paths of every folder tree the walk enters: ROOT's, and those of folder links
    # to outside it. Nothing may be written below them.
    real_folders: list[Path] = field(default_factory=list)

    @property
    def classes(self) -> tuple[str, ...]:
        """Every label, sorted as Keras orders them (by folder name)."""
        return tuple(sorted({folder.label for folder in self.folders}))

    @property
    def splits(self) -> tuple[str, ...]:
        """Split names in walk order; ('',) for a layout without splits."""
        return tuple(dict.fromkeys(folder.split for folder in self.folders))

    @property
    def empty_classes(self) -> list[str]:
        """Class folders that hold no file at all (as paths relative to ROOT)."""
        return [
            folder.prefix
            for folder in self.folders
            if self.files_per_folder.get(folder.prefix, 0) == 0
        ]

    def iter_files(self) -> Iterator[FileEntry]:
        """Yield every file under every class folder, sorted, lazily."""
        walk = _Walk(self.root, self.against, self.folders)
        for folder in self.folders:
            for relpath, skipped in walk.folder(folder):
                if skipped is None:
                    yield FileEntry(
                        resolve(self.root, relpath), relpath, folder.label, folder.split
                    )


def within(path: Path, folder: Path) -> bool:
    """Whether path is folder or lies below it (lexically: resolve both first if links
    matter)."""
    return path == folder or folder in path.parents


def resolve(root: str | os.PathLike, relpath: str) -> str:
    """The absolute path of a report path (relative to ROOT, '../' included), lexically,
    as it was computed: never through a symlinked ROOT's parent."""
    return os.path.normpath(os.path.join(root, relpath))


def file_key(path: str) -> tuple[int, int, int] | None:
    """(size, mtime_ns, inode) of a file, what tells it unchanged.

    None when it cannot be stat'ed.
    """
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns, info.st_ino


def is_clutter(name: str) -> bool:
    """OS and tool clutter that is never part of a dataset (dotfiles included)."""
    return name.startswith(".") or name in CLUTTER_NAMES


def discover(root: str | os.PathLike, against: str | os.PathLike | None = None) -> Layout:
    """Check ROOT (and the `against` dataset) and count the files.

    LayoutError says what is expected.
    """
    root_path = _existing_folder(root)
    against_path: Path | None = None
    ignored: list[Skipped] = []
    stray: list[str] = []
    subdirs = _list_top(root_path, "", ignored, stray)
    if subdirs and all(
        name.lower() in SPLIT_NAMES and _has_subfolder(root_path / name) for name in subdirs
    ):
        folders = []
        for split in subdirs:
            for label in _list_top(root_path / split, f"{split}/", ignored, stray):
                folders.append(
                    ClassFolder(split, label, root_path / split / label, f"{split}/{label}")
                )
        if against is not None:
            raise LayoutError(
                f"{root_path} already holds splits ({', '.join(subdirs)}); "
                "--against is for a ROOT without splits"
            )
    else:
        own, other = _split_names(root_path, against)
        folders = [ClassFolder(own, label, root_path / label, label) for label in subdirs]
        if against is not None:
            against_path = _existing_folder(against)
            if _same_folder(against_path, root_path):
                raise LayoutError(
                    f"--against {against_path} is ROOT itself: every file would be a "
                    "split_leak; give the other split's folder"
                )
            prefix = Path(os.path.relpath(against_path, root_path)).as_posix()
            for label in _list_top(against_path, f"{prefix}/", ignored, stray):
                folders.append(ClassFolder(other, label, against_path / label, f"{prefix}/{label}"))
            if not any(folder.split == other for folder in folders):
                raise LayoutError(
                    f"{against_path} has no class folders; expected VAL/<class>/<images>"
                )
    if not folders:
        found = f"{len(stray)} file(s) directly under it" if stray else "nothing to scan"
        raise LayoutError(
            f"{root_path} has no class folders ({found}). Expected ROOT/<class>/<images>, "
            "e.g. ROOT/cat/001.jpg and ROOT/dog/002.jpg: one folder per label "
            "(or ROOT/train/<class>/... and ROOT/val/<class>/... for splits)."
        )

    folders, class_links = _without_aliases(folders, root_path, against_path)
    layout = Layout(root_path, folders, ignored=ignored, stray_files=stray, against=against_path)
    walk = _Walk(root_path, against_path, folders)
    walk.links.extend(class_links)
    for folder in folders:
        count = 0
        for relpath, skipped in walk.folder(folder):
            if skipped is None:
                count += 1
            else:
                layout.ignored.append(Skipped(relpath, skipped))
        layout.files_per_folder[folder.prefix] = count
        layout.file_count += count
    layout.linked, layout.unlistable = walk.links, walk.unlistable
    layout.real_folders = walk.real_trees()
    return layout


def _without_aliases(
    folders: list[ClassFolder], root: Path, against: Path | None
) -> tuple[list[ClassFolder], list[Link]]:
    """Class folders that are symlinks to another folder of the dataset are aliases, not
    classes: each file would be read under two labels. They are reported as links."""
    bases = [Path(os.path.realpath(root))] + ([Path(os.path.realpath(against))] if against else [])
    kept, links = [], []
    for folder in folders:
        real = Path(os.path.realpath(folder.path))
        base = next((base for base in bases if within(real, base)), None)
        if folder.path.is_symlink() and base is not None:
            shown = real.relative_to(base).as_posix() if base == bases[0] else str(real)
            links.append(Link(folder.prefix, "folder", shown or "."))
        else:
            kept.append(folder)
    return kept, links


def _same_folder(first: Path, second: Path) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


def _existing_folder(path: str | os.PathLike) -> Path:
    folder = Path(path).expanduser()
    if not folder.exists():
        raise LayoutError(f"{folder} does not exist")
    if not folder.is_dir():
        raise LayoutError(
            f"{folder} is a file; expected a folder laid out as ROOT/<class>/<images>"
        )
    return folder.absolute()


def _split_names(root: Path, against) -> tuple[str, str]:
    """Split names for ROOT and `against`: their folder names, told apart if equal."""
    if against is None:
        return "", ""
    own, other = root.name or "root", Path(against).absolute().name or "against"
    return (own, other) if own != other else (own, f"{other} (against)")


def _list_top(folder: Path, prefix: str, ignored: list[Skipped], stray: list[str]) -> list[str]:
    """Sub-folder names of folder (sorted); clutter and loose files are recorded."""
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as error:
        raise LayoutError(f"cannot list {folder}: {error.strerror or error}") from error
    names = []
    for entry in entries:
        if is_clutter(entry.name):
            ignored.append(Skipped(prefix + entry.name, _CLUTTER_REASON))
        elif _is_dir(entry):
            names.append(entry.name)
        else:
            stray.append(prefix + entry.name)
    return names


def _has_subfolder(folder: Path) -> bool:
    try:
        return any(_is_dir(entry) and not is_clutter(entry.name) for entry in os.scandir(folder))
    except OSError:
        return False


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:
        return False


class _Walk:
    """One pass over the class folders: folders entered once across all classes, links
    into the dataset reported instead of followed, unlistable folders reported."""

    def __init__(self, root: Path, against: Path | None, folders: list[ClassFolder]):
        self.root = root
        self.bases = [(Path(os.path.realpath(root)), "")]
        if against is not None:
            prefix = Path(os.path.relpath(against, root)).as_posix()
            self.bases.append((Path(os.path.realpath(against)), prefix + "/"))
        # Where the walk reaches files at their own place: the class folders, really.
        self.class_trees = [Path(os.path.realpath(folder.path)) for folder in folders]
        self.visited: set[tuple[int, int]] = set()
        self.linked_files: set[tuple[int, int]] = set()  # files reached through a link
        self.outside_trees: list[Path] = []
        self.links: list[Link] = []
        self.unlistable: list[Skipped] = []

    def real_trees(self) -> list[Path]:
        """Real paths of every tree the walk enters (ROOT, class folders linked from
        elsewhere, folder links to outside)."""
        trees = [base for base, _ in self.bases] + self.class_trees + self.outside_trees
        return list(dict.fromkeys(trees))

    def _inside(self, real: Path) -> str | None:
        """real's path relative to ROOT when it lies in a scanned dataset, else None."""
        for base, prefix in self.bases:
            if within(real, base):
                return prefix + real.relative_to(base).as_posix()
        return None

    def _in_class_tree(self, real: Path) -> bool:
        """Whether the walk reaches real (a file or folder) under a class folder by itself,
        without following any link (clutter folders are never entered)."""
        for tree in self.class_trees:
            if within(real, tree):
                return not any(is_clutter(part) for part in real.relative_to(tree).parts)
        return False

    def folder(self, folder: ClassFolder) -> Iterator[tuple[str, str | None]]:
        """(relpath, None) per file to audit, (relpath, reason) per thing set aside.

        Depth-first over sorted names.
        """
        stack = [(folder.path, folder.prefix)]
        while stack:
            abs_dir, rel_dir = stack.pop()
            try:
                info = os.stat(abs_dir)
            except OSError as error:
                self.unlistable.append(Skipped(rel_dir, _os_reason(error)))
                continue
            key = (info.st_dev, info.st_ino)
            if key in self.visited:
                yield rel_dir, "folder already visited through another path"
                continue
            self.visited.add(key)
            try:
                entries = sorted(os.scandir(abs_dir), key=lambda entry: entry.name)
            except OSError as error:
                self.unlistable.append(Skipped(rel_dir, _os_reason(error)))
                continue
            subdirs = []
            for entry in entries:
                rel = f"{rel_dir}/{entry.name}"
                if is_clutter(entry.name):
                    yield rel, _CLUTTER_REASON
                elif _is_symlink(entry):
                    followed = self._link(entry, rel)
                    if followed == "folder":
                        subdirs.append((abs_dir / entry.name, rel))
                    elif followed == "file":
                        yield rel, None
                elif _is_dir(entry):
                    subdirs.append((abs_dir / entry.name, rel))
                else:
                    # Regular files, FIFOs, sockets: all become rows; inspection reports
                    # the ones that cannot be read, without opening a FIFO.
                    yield rel, None
            stack.extend(reversed(subdirs))

    def _link(self, entry: os.DirEntry, rel: str) -> str | None:
        """What to do with a symlink: "folder" (enter), "file" (a row), None (reported)."""
        try:
            target = os.stat(entry.path)
        except OSError:
            return "file"  # broken (or a loop of links): a row that says so
        real = Path(os.path.realpath(entry.path))
        inside = self._inside(real)
        shown = str(real) if inside is None else inside or "."
        if stat.S_ISDIR(target.st_mode):
            if inside is not None or self._in_class_tree(real):
                self.links.append(Link(rel, "folder", shown))
                return None
            if (target.st_dev, target.st_ino) not in self.visited:
                self.outside_trees.append(real)
            return "folder"  # outside: followed (entered once, like any folder)
        if self._in_class_tree(real):
            self.links.append(Link(rel, "file", shown))  # it has its own row, at its place
            return None
        key = (target.st_dev, target.st_ino)
        if key in self.linked_files:
            self.links.append(Link(rel, "file", shown))  # a second link to the same file
            return None
        self.linked_files.add(key)
        return "file"


def _is_symlink(entry: os.DirEntry) -> bool:
    try:
        return entry.is_symlink()
    except OSError:
        return False


def _os_reason(error: OSError) -> str:
    return f"cannot be listed: {error.strerror or error}"
