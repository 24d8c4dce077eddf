"""Shared fixtures: datasets are generated per test under tmp_path."""

from __future__ import annotations

import os

# Before any test module imports TensorFlow: see train/__init__.py (oneDNN heap corruption).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import hashlib
from pathlib import Path

import pytest

from tests.imagegen import encode, photo_like


def write_dataset(root: Path, files: dict[str, bytes]) -> Path:
    """Create root/<relpath> for each entry; returns root."""
    for relpath, data in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def jpeg(seed: int, width: int = 48, height: int = 40) -> bytes:
    return encode(photo_like(width, height, seed=seed), "JPEG", quality=90)


def tree_fingerprint(root: Path, directory_times: bool = True) -> dict[str, tuple]:
    """Every path under root with its type, mode, size, mtime and content hash.

    directory_times=False leaves out folders' size and mtime, which change whenever an
    entry leaves and comes back (quarantine + restore), while every file stays identical.
    """
    fingerprint = {}
    for directory, folders, files in os.walk(root, followlinks=False):
        for name in sorted(folders + files):
            path = Path(directory) / name
            info = os.lstat(path)
            is_file = path.is_file() and not path.is_symlink()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if is_file else None
            if is_file or directory_times:
                fingerprint[str(path.relative_to(root))] = (
                    info.st_mode,
                    info.st_size,
                    info.st_mtime_ns,
                    digest,
                )
            else:
                fingerprint[str(path.relative_to(root))] = (info.st_mode,)
    return fingerprint


@pytest.fixture
def small_dataset(tmp_path: Path) -> Path:
    """Three clean classes of small distinct JPEGs."""
    files = {
        f"{label}/{label}_{index}.jpg": jpeg(seed=100 * number + index)
        for number, label in enumerate(("cat", "dog", "fox"))
        for index in range(4)
    }
    return write_dataset(tmp_path / "data", files)
