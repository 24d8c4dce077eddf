"""Hostile trees: every file once, under the right label, never a traceback, nothing changed.

Random trees with names holding spaces, unicode, newlines, control characters and bytes
that are not UTF-8; symlinks to files and folders up, down, sideways and outside; broken
links, FIFOs, empty files, deep nesting.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit import cli
from audit.reportio import Report
from tests.conftest import tree_fingerprint
from tests.imagegen import encode, photo_like

PICTURE = encode(photo_like(40, 32, seed=7), "PNG")
NAMES = [
    b"plain",
    b"with space",
    "caf\u00e9 \u732b".encode(),
    b"new\nline",
    b"tab\tand\x1bescape",
    b"bad\xffbyte",
    b"<img src=x onerror=alert(1)>",
    b"pipe|and*star",
]
CONTENTS = {"picture": PICTURE, "empty": b"", "garbage": b"not an image at all"}
REPOSITORY = Path(__file__).resolve().parent.parent


@st.composite
def trees(draw):
    """(class names, entries): entries are (kind, class index, depth, name, detail)."""
    classes = draw(st.lists(st.sampled_from(NAMES), min_size=2, max_size=3, unique=True))
    entry = st.tuples(
        st.sampled_from(["file", "file", "file", "fifo", "file_link", "folder_link", "broken"]),
        st.integers(0, len(classes) - 1),
        st.integers(0, 4),  # nesting depth
        st.sampled_from(NAMES),
        st.sampled_from(["picture", "empty", "garbage", "up", "root", "sideways", "outside",
                         "down", "self"]),
    )  # fmt: skip
    return classes, draw(st.lists(entry, min_size=1, max_size=12))


def build(base: Path, classes: list[bytes], entries: list[tuple]) -> tuple[bytes, bytes]:
    """The tree under base/root (as bytes paths), and a folder outside it."""
    root = os.fsencode(base / "root")
    outside = os.fsencode(base / "outside")
    os.makedirs(os.path.join(outside, b"sub"))
    with open(os.path.join(outside, b"sub", b"o.png"), "wb") as handle:
        handle.write(PICTURE)
    with open(os.path.join(outside, b"far.png"), "wb") as handle:
        handle.write(encode(photo_like(36, 30, seed=9), "PNG"))
    for name in classes:
        os.makedirs(os.path.join(root, name))
    for number, (kind, index, depth, name, detail) in enumerate(entries):
        folder = os.path.join(root, classes[index], *[b"d%d" % level for level in range(depth)])
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, b"%d-%s" % (number, name))
        if kind == "file":
            with open(path + b".png", "wb") as handle:
                handle.write(CONTENTS.get(detail, PICTURE))
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "broken":
            os.symlink(b"no-such-target", path)
        elif kind == "file_link":
            other = os.path.join(root, classes[(index + 1) % len(classes)], b"linked.png")
            if not os.path.exists(other):
                with open(other, "wb") as handle:
                    handle.write(encode(photo_like(30, 30, seed=number), "PNG"))
            target = os.path.join(outside, b"far.png") if detail == "outside" else other
            os.symlink(target, path + b".png")
        else:  # folder_link
            targets = {
                "up": b"..",
                "root": root,
                "self": b".",
                "sideways": os.path.join(root, classes[(index + 1) % len(classes)]),
                "outside": os.path.join(outside, b"sub"),
                "down": os.path.join(folder, b"below"),
            }
            target = targets.get(detail, b"..")
            if detail == "down":
                os.makedirs(target, exist_ok=True)
            os.symlink(target, path)
    return root, outside


def real_class_files(root: bytes, classes: list[bytes]) -> dict[str, str]:
    """Every entry that is not a folder and not a symlink, found without following links:
    relpath -> class label (these must each have exactly one row)."""
    expected = {}
    for name in classes:
        for directory, folders, files in os.walk(os.path.join(root, name)):
            folders[:] = [f for f in folders if not f.startswith(b".")]
            for file in files:
                full = os.path.join(directory, file)
                if not os.path.islink(full) and not file.startswith(b"."):
                    expected[os.fsdecode(os.path.relpath(full, root))] = os.fsdecode(name)
    return expected


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(trees())
def test_every_file_once_under_its_label_and_the_tree_unchanged(tmp_path_factory, tree):
    classes, entries = tree
    base = tmp_path_factory.mktemp("hostile")
    root, outside = build(base, classes, entries)
    before = tree_fingerprint(Path(os.fsdecode(root)))
    out = base / "report"
    code = cli.main(["scan", os.fsdecode(root), "--out", str(out), "--jobs", "1", "--quiet"])
    assert code in (0, 1)
    assert tree_fingerprint(Path(os.fsdecode(root))) == before  # nothing written or changed

    rows = Report(out).images()
    by_path = {row.path: row for row in rows}
    assert len(by_path) == len(rows)
    # A file whose real place is in a class folder: exactly one row, with that class.
    for relpath, label in real_class_files(root, classes).items():
        assert relpath in by_path, relpath
        assert by_path[relpath].label == label
    # Every row is the class that holds it, and no real file is read twice.
    real_files = []
    for row in rows:
        assert row.label == row.path.split("/", 1)[0]
        full = os.path.join(root, os.fsencode(row.path))
        if os.path.exists(full):
            real_files.append(os.path.realpath(full))
    assert len(real_files) == len(set(real_files)), "a file was read twice"
    # A file reached only through a link to outside ROOT has one row.
    outside_rows = [f for f in real_files if f.startswith(os.path.realpath(outside))]
    assert len(outside_rows) == len(set(outside_rows))


def test_a_closed_stdout_ends_quietly_with_the_scans_own_exit_code(tmp_path):
    """Before: `scan ... | head -1` gave a BrokenPipeError trace and exit 3."""
    root = tmp_path / "data"
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        (root / label / "a.png").write_bytes(PICTURE)
    (root / "dog" / "empty.png").write_bytes(b"")  # an error: the scan's own code is 1
    process = subprocess.Popen(
        [sys.executable, "-m", "audit", "scan", str(root), "--out", str(tmp_path / "o"),
         "--jobs", "1", "--quiet"],
        cwd=REPOSITORY, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    process.stdout.readline()
    process.stdout.close()  # the reader leaves, as `head -1` does
    err = process.stderr.read().decode()
    assert process.wait() == 1
    assert "Traceback" not in err and "BrokenPipe" not in err
