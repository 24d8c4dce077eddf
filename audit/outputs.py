"""Where the tools write: the default report folders, and never inside a dataset.

The default report folder of a dataset is `reports/<folder name>-<8 hex>`, the hex
being the start of the sha256 of its resolved path: two datasets whose folders share
a name (`a/train`, `b/train`) get two report folders instead of overwriting each
other's reports, and the same dataset always gets the same folder.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from audit.dataset import within
from audit.errors import UserError

REPORTS = Path("reports")


class OutputInsideDataset(UserError, ValueError):
    """A path the tool would write resolves inside the dataset it reads."""


def dataset_key(root: str | os.PathLike) -> str:
    """`<folder name>-<8 hex of the resolved path>`: unique per dataset, stable across runs."""
    resolved = Path(root).expanduser().resolve()
    digest = hashlib.sha256(os.fsencode(resolved)).hexdigest()[:8]
    return f"{resolved.name or 'dataset'}-{digest}"


def default_report_dir(
    root: str | os.PathLike, base: str | os.PathLike = REPORTS, suffix: str = ""
) -> Path:
    """The report folder a dataset gets when none is given (suffix e.g. '-check')."""
    return Path(base) / f"{dataset_key(root)}{suffix}"


def refuse_inside_dataset(
    root: str | os.PathLike, path: str | os.PathLike, option: str, against: str | None = None
) -> None:
    """OutputInsideDataset when path, through every symlink, lands in a folder the audit of
    ROOT reads: ROOT, its class folders wherever they really are, folders linked from
    inside them. The one check every writer makes (reports, cache, suite, history,
    quarantine folder, training runs)."""
    from audit.dataset import LayoutError, discover

    try:
        layout = discover(root, against)
    except LayoutError:
        folders = [Path(root)]  # not a dataset (any more): ROOT itself is still not ours
    else:
        folders = layout.real_folders or [layout.root]
    refuse_inside(folders, Path(path), option)


def refuse_inside(folders: Iterable[Path], path: Path, option: str) -> None:
    """OutputInsideDataset when path resolves to one of folders or below one."""
    resolved_path = Path(path).expanduser().resolve()
    for folder in folders:
        resolved = folder.resolve()
        if within(resolved_path, resolved):
            raise OutputInsideDataset(
                f"{option} {path} is inside the dataset ({folder}); the audit never writes "
                "into the folders it reads. Choose a place outside it (default: "
                f"{REPORTS}/<dataset name>-<hash>)."
            )
