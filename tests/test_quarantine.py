"""Quarantine and restore: a journal that any crash leaves restorable, a restore that decides
per entry and resumes, special files moved as what they are."""

from __future__ import annotations

import errno
import json
import os
import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit import cli
from audit import quarantine as quarantine_module
from audit.outputs import OutputInsideDataset
from audit.quarantine import MANIFEST_NAME, QuarantineRefused, quarantine, restore, select
from audit.scan import scan
from tests.conftest import jpeg, tree_fingerprint, write_dataset

ERRORS = ["cat/deep/nested/cut.jpg", "dog/empty.jpg", "dog/page.jpg"]


class SimulatedCrash(BaseException):
    """Stands for the process dying right after a journal step (nothing catches it)."""


@pytest.fixture
def flagged(tmp_path):
    cut = jpeg(5)
    files = {f"cat/{i}.jpg": jpeg(i) for i in range(4)}
    files.update(
        {
            "cat/deep/nested/cut.jpg": cut[:300],
            "dog/empty.jpg": b"",
            "dog/ok.jpg": jpeg(9),
            "dog/page.jpg": b"<html>nope</html>",
        }
    )
    root = write_dataset(tmp_path / "data", files)
    scan(root, tmp_path / "report", jobs=1)
    return root, tmp_path / "report"


def journal(manifest: Path) -> list[dict]:
    return [json.loads(line) for line in manifest.read_text().splitlines()]


def left_in(folder: Path) -> list[str]:
    """Everything in a quarantine folder but its manifest."""
    return sorted(
        str(path.relative_to(folder)) for path in folder.rglob("*") if path.name != MANIFEST_NAME
    )


def restore_until_done(manifest: Path, tries: int = 3) -> None:
    for _ in range(tries):
        if not restore(manifest).refused:
            return
    raise AssertionError(f"restore did not finish: {restore(manifest).refused}")


def test_quarantine_errors_then_restore(flagged, tmp_path, capsys):
    root, report = flagged
    before = tree_fingerprint(root, directory_times=False)
    assert cli.main(["quarantine", str(report), "--to", str(tmp_path / "q")]) == 0
    assert "3 file(s) moved" in capsys.readouterr().out
    assert not (root / "dog" / "empty.jpg").exists()
    assert (tmp_path / "q" / "cat/deep/nested/cut.jpg").is_file()
    lines = journal(tmp_path / "q" / MANIFEST_NAME)
    assert lines[0]["format"] == "image-audit-quarantine/2"
    assert [line["op"] for line in lines[1:]] == ["intent", "done"] * 3
    assert sorted(line["relpath"] for line in lines if line.get("op") == "intent") == ERRORS
    assert cli.main(["restore", str(tmp_path / "q" / MANIFEST_NAME)]) == 0
    assert tree_fingerprint(root, directory_times=False) == before
    assert left_in(tmp_path / "q") == []
    # A second restore finds everything back: skipped, not refused.
    assert cli.main(["restore", str(tmp_path / "q" / MANIFEST_NAME)]) == 0
    assert "0 restored (each verified), 3 already back, 0 refused" in capsys.readouterr().out


def test_select_by_codes_and_dry_run(flagged, tmp_path, capsys):
    root, report = flagged
    assert [row.path for row in select(report, codes=["empty_file"])] == ["dog/empty.jpg"]
    with pytest.raises(ValueError, match="unknown issue code"):
        select(report, codes=["broken"])
    assert select(report, codes=[]) == []  # an empty --codes is not "every error"
    before = tree_fingerprint(root, directory_times=False)
    argv = ["quarantine", str(report), "--codes", "not_an_image", "--dry-run"]
    assert cli.main([*argv, "--to", str(tmp_path / "q")]) == 0
    assert tree_fingerprint(root, directory_times=False) == before and not (tmp_path / "q").exists()
    assert cli.main(["quarantine", str(report), "--codes", ""]) == 0
    assert "nothing to quarantine" in capsys.readouterr().out
    assert tree_fingerprint(root, directory_times=False) == before


def test_refuses_when_a_file_changed_since_the_report(flagged, tmp_path):
    root, report = flagged
    page = root / "dog" / "page.jpg"
    page.write_bytes(b"<html>edited</html>")  # same size, new content and mtime
    before = tree_fingerprint(root, directory_times=False)
    with pytest.raises(QuarantineRefused, match="changed since the report"):
        quarantine(report, ["dog/empty.jpg", "dog/page.jpg"], tmp_path / "q")
    assert tree_fingerprint(root, directory_times=False) == before  # not even the unchanged one


def test_each_action_gets_its_own_folder_and_never_overwrites(flagged, tmp_path):
    root, report = flagged
    first = quarantine(report, ["dog/empty.jpg"])
    second = quarantine(report, ["dog/page.jpg"])
    assert first.manifest.parent != second.manifest.parent  # the same second, two folders
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "someone's.txt").write_text("keep me")
    with pytest.raises(QuarantineRefused, match="not empty"):
        quarantine(report, ["cat/deep/nested/cut.jpg"], tmp_path / "q")
    assert (tmp_path / "q" / "someone's.txt").read_text() == "keep me"
    restore(second.manifest)  # one batch undone alone
    assert (root / "dog" / "page.jpg").exists() and not (root / "dog" / "empty.jpg").exists()


def test_a_file_that_changes_during_its_move_is_put_back(flagged, tmp_path, monkeypatch, capsys):
    """Before: the file was left in the quarantine folder with no manifest line, and restore
    said every file was restored."""
    root, report = flagged

    def tamper(step):
        if step == "moved":
            moved = tmp_path / "q" / "dog" / "page.jpg"
            if moved.exists():
                moved.write_bytes(b"<html>changed!</html>")

    monkeypatch.setattr(quarantine_module, "_after_step", tamper)
    assert cli.main(["quarantine", str(report), "--to", str(tmp_path / "q")]) == 1
    out = capsys.readouterr().out
    assert "put back (it changed during the move" in out and "2 file(s) moved" in out
    assert (root / "dog" / "page.jpg").read_bytes() == b"<html>changed!</html>"
    ops = [
        (line.get("op"), line.get("relpath")) for line in journal(tmp_path / "q" / MANIFEST_NAME)
    ]
    assert ("returned", None) in ops
    outcome = restore(tmp_path / "q" / MANIFEST_NAME)
    assert len(outcome.restored) == 2 and not outcome.refused
    assert left_in(tmp_path / "q") == []


JOURNAL_STEPS = ("intent", "moved", "verified", "done")
COPY_STEPS = ("intent", "copied", "placed", "moved", "verified", "done")  # across filesystems


@pytest.mark.parametrize(
    "step, cross_device",
    [(step, False) for step in JOURNAL_STEPS] + [(step, True) for step in COPY_STEPS],
)
def test_a_crash_after_any_quarantine_step_is_restorable(
    flagged, tmp_path, monkeypatch, step, cross_device
):
    root, report = flagged
    before = tree_fingerprint(root, directory_times=False)
    if cross_device:
        across_devices(monkeypatch, tmp_path / "q")
    crash_at(monkeypatch, step, occurrence=2)  # the second file, with one finished before it
    with pytest.raises(SimulatedCrash):
        quarantine(report, ERRORS, tmp_path / "q")
    monkeypatch.setattr(quarantine_module, "_after_step", lambda step: None)
    restore_until_done(tmp_path / "q" / MANIFEST_NAME)
    assert tree_fingerprint(root, directory_times=False) == before
    assert left_in(tmp_path / "q") == []


@pytest.mark.parametrize("step", ["restore-moved", "restore-verified"])
def test_a_crash_during_restore_is_finished_by_the_next_restore(
    flagged, tmp_path, monkeypatch, step
):
    root, report = flagged
    before = tree_fingerprint(root, directory_times=False)
    manifest = quarantine(report, ERRORS, tmp_path / "q").manifest
    crash_at(monkeypatch, step, occurrence=2)
    with pytest.raises(SimulatedCrash):
        restore(manifest)
    monkeypatch.setattr(quarantine_module, "_after_step", lambda step: None)
    outcome = restore(manifest)
    assert len(outcome.restored) + len(outcome.already_back) == 3 and not outcome.refused
    assert tree_fingerprint(root, directory_times=False) == before
    assert left_in(tmp_path / "q") == []


def test_restore_decides_per_file_and_resumes(flagged, tmp_path, capsys):
    """Before: one altered quarantined file or one damaged line blocked every file, and a
    half-done restore could not be finished."""
    root, report = flagged
    before = tree_fingerprint(root, directory_times=False)
    manifest = quarantine(report, ERRORS, tmp_path / "q").manifest
    altered = tmp_path / "q" / "dog" / "page.jpg"
    original_bytes, times = altered.read_bytes(), altered.stat()
    altered.write_bytes(b"tampered")
    with open(manifest, "a", encoding="utf-8") as handle:
        handle.write('{"op": "intent", "seq": 9, "original": \n')  # a torn last line

    assert cli.main(["restore", str(manifest)]) == 1
    captured = capsys.readouterr()
    assert "refused: " in captured.err and "dog/page.jpg" in captured.err
    assert f"{MANIFEST_NAME} line 8: damaged" in captured.err
    assert "2 restored" in captured.out
    assert (root / "dog" / "empty.jpg").exists() and not (root / "dog" / "page.jpg").exists()

    altered.write_bytes(original_bytes)  # the user puts the right bytes back
    os.utime(altered, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert cli.main(["restore", str(manifest)]) == 1  # the damaged line is still named
    assert "1 restored (each verified), 2 already back, 1 refused" in capsys.readouterr().out
    assert tree_fingerprint(root, directory_times=False) == before


def test_a_taken_original_place_is_refused_alone(flagged, tmp_path):
    root, report = flagged
    manifest = quarantine(report, ERRORS, tmp_path / "q").manifest
    (root / "dog" / "empty.jpg").write_bytes(b"a new file under the old name")
    outcome = restore(manifest)
    assert [what for what, _ in outcome.refused] == [str(root / "dog" / "empty.jpg")]
    assert "taken by something else" in outcome.refused[0][1]
    assert len(outcome.restored) == 2
    assert (root / "dog" / "empty.jpg").read_bytes() == b"a new file under the old name"
    assert (tmp_path / "q" / "dog" / "empty.jpg").exists()  # kept, never overwritten


def test_a_manifest_of_0_1_0_still_restores(flagged, tmp_path):
    """0.1.0 wrote one line per moved file, no header and no journal."""
    root, report = flagged
    before = tree_fingerprint(root, directory_times=False)
    (tmp_path / "q" / "dog").mkdir(parents=True)
    lines = []
    for relpath in ("dog/empty.jpg", "dog/page.jpg"):
        original, moved = root / relpath, tmp_path / "q" / relpath
        row = next(row for row in select(report) if row.path == relpath)
        os.rename(original, moved)
        lines.append(
            json.dumps(
                {
                    "original": str(original),
                    "relpath": relpath,
                    "quarantined": str(moved),
                    "sha256": row.sha256,
                    "bytes": row.bytes,
                    "mtime_ns": row.mtime_ns,
                    "codes": row.issues,
                    "reason": row.reasons,
                }
            )  # fmt: skip
        )
    (tmp_path / "q" / MANIFEST_NAME).write_text("\n".join(lines) + "\n")
    outcome = restore(tmp_path / "q" / MANIFEST_NAME)
    assert len(outcome.restored) == 2 and not outcome.refused
    assert tree_fingerprint(root, directory_times=False) == before


@pytest.mark.parametrize("cross_device", [False, True], ids=["rename", "copy"])
def test_broken_links_fifos_and_sockets_move_as_what_they_are(tmp_path, monkeypatch, cross_device):
    """Before: they could never be quarantined ("changed since the report"), and a
    cross-filesystem move turned a symlink into a copy of its target."""
    root = write_dataset(tmp_path / "data", {"cat/a.jpg": jpeg(1), "dog/b.jpg": jpeg(2)})
    (root / "cat" / "dangling.jpg").symlink_to("no-such-file.jpg")
    (tmp_path / "outside.jpg").write_bytes(jpeg(3))  # a link into the dataset is no row
    (root / "cat" / "link.jpg").symlink_to("../../outside.jpg")
    os.mkfifo(root / "dog" / "pipe.jpg")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(root / "dog" / "sock.jpg"))
    scan(root, tmp_path / "report", jobs=1)
    before = tree_fingerprint(root, directory_times=False)
    moving = ["cat/dangling.jpg", "cat/link.jpg", "dog/pipe.jpg"] + (
        [] if cross_device else ["dog/sock.jpg"]
    )
    if cross_device:
        across_devices(monkeypatch, tmp_path / "q")
    outcome = quarantine(tmp_path / "report", moving, tmp_path / "q")
    assert sorted(move.kind for move in outcome.moved) == sorted(
        ["symlink", "symlink", "fifo"] + ([] if cross_device else ["socket"])
    )
    assert os.readlink(tmp_path / "q" / "cat" / "link.jpg") == "../../outside.jpg"
    assert not any(os.path.lexists(root / path) for path in moving)
    restore_until_done(outcome.manifest)
    assert tree_fingerprint(root, directory_times=False) == before
    assert os.readlink(root / "cat" / "link.jpg") == "../../outside.jpg"
    listener.close()


def test_quarantine_inside_the_dataset_is_refused(flagged):
    root, report = flagged
    with pytest.raises(OutputInsideDataset, match="inside the dataset"):
        quarantine(report, ["dog/empty.jpg"], root / "q")


def test_ctrl_c_stops_between_files_and_says_where_the_manifest_is(
    flagged, tmp_path, monkeypatch, capsys
):
    root, report = flagged
    before = tree_fingerprint(root, directory_times=False)

    def press_ctrl_c(step):
        if step == "moved":
            os.kill(os.getpid(), 2)  # SIGINT in the middle of the first file's move

    monkeypatch.setattr(quarantine_module, "_after_step", press_ctrl_c)
    assert cli.main(["quarantine", str(report), "--to", str(tmp_path / "q")]) == 130
    err = capsys.readouterr().err
    assert "1 of 3 file(s) moved; restore them with: python -m audit restore" in err
    assert str(tmp_path / "q" / MANIFEST_NAME) in err
    assert [line.get("op") for line in journal(tmp_path / "q" / MANIFEST_NAME)][1:] == [
        "intent",
        "done",
    ]  # the first file finished its move; the next one never started
    monkeypatch.setattr(quarantine_module, "_after_step", lambda step: None)
    restore_until_done(tmp_path / "q" / MANIFEST_NAME)
    assert tree_fingerprint(root, directory_times=False) == before


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_any_selection_round_trips_byte_identical(tmp_path_factory, data):
    work = tmp_path_factory.mktemp("prop")
    names = data.draw(
        st.lists(
            st.sampled_from(["a", "b", "c/d", "c/e", "f/g/h", "i"]),
            min_size=1,
            max_size=6,
            unique=True,
        )
    )
    files = {
        f"{label}/{name}.jpg": (jpeg(index) if index % 3 else jpeg(index)[:200])
        for index, (label, name) in enumerate(
            (label, name) for label in ("cat", "dog") for name in names
        )
    }
    root = write_dataset(work / "data", files)
    scan(root, work / "report", jobs=1, cache=False)
    chosen = data.draw(st.lists(st.sampled_from(sorted(files)), unique=True, max_size=len(files)))
    before = tree_fingerprint(root, directory_times=False)
    outcome = quarantine(work / "report", chosen, work / "q")
    assert all(not (root / path).exists() for path in chosen)
    if chosen:
        restore_until_done(outcome.manifest)
    assert tree_fingerprint(root, directory_times=False) == before


# ---------------------------------------------------------------- helpers


def crash_at(monkeypatch, step: str, occurrence: int) -> None:
    """Die (SimulatedCrash) the occurrence-th time the journal reaches step."""
    seen = {"count": 0}

    def after(name):
        if name == step:
            seen["count"] += 1
            if seen["count"] == occurrence:
                raise SimulatedCrash(step)

    monkeypatch.setattr(quarantine_module, "_after_step", after)


def across_devices(monkeypatch, folder: Path) -> None:
    """os.link and os.rename fail with EXDEV between the dataset and folder, as if folder
    were on another filesystem."""
    inside = str(folder)

    def guard(real):
        def operation(source, target, **options):
            if str(source).startswith(inside) != str(target).startswith(inside):
                raise OSError(errno.EXDEV, "Invalid cross-device link")
            return real(source, target, **options)

        return operation

    monkeypatch.setattr(os, "link", guard(os.link))
    monkeypatch.setattr(os, "rename", guard(os.rename))


def test_a_file_that_is_no_manifest_is_refused_whole(tmp_path, capsys):
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text('hello\n[1, 2]\n{"unexpected": true}\n')
    assert cli.main(["restore", str(garbage)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a quarantine manifest" in err[0] and "line 1" in err[0]


def test_names_that_are_not_utf8_quarantine_and_restore(tmp_path, capsys):
    """A file name with a byte that is not UTF-8 once killed the scan (exit 3)."""
    root = write_dataset(tmp_path / "data", {"cat/a.jpg": jpeg(1), "dog/b.jpg": jpeg(2)})
    odd = os.path.join(os.fsencode(root), b"dog", b"bad\xffname\nx.jpg")
    with open(odd, "wb") as handle:
        handle.write(b"not an image")
    before = tree_fingerprint(root, directory_times=False)
    assert cli.main(["scan", str(root), "--out", str(tmp_path / "r"), "--jobs", "1"]) == 1
    err = capsys.readouterr().err
    assert "error: dog/bad\\xffname\\nx.jpg: not_an_image" in err  # escaped, on one line
    (row,) = select(tmp_path / "r", codes=["undecodable_name"])
    assert os.fsencode(row.path) == b"dog/bad\xffname\nx.jpg"
    assert row.report_path == "dog/bad\\xffname\nx.jpg"
    outcome = quarantine(tmp_path / "r", [row.path], tmp_path / "q")
    assert not os.path.lexists(odd)
    restore_until_done(outcome.manifest)
    assert tree_fingerprint(root, directory_times=False) == before


def test_a_users_file_that_looks_like_a_temporary_copy_is_never_deleted(flagged, tmp_path):
    """Before: restore unlinked '<entry>.image-audit-partial' next to each entry, a user's
    file included (attack: a file lost, exit 0). Temporary names now hold a random token."""
    root, report = flagged
    lookalike = root / "dog" / "page.jpg.image-audit-partial"
    lookalike.write_bytes(b"the user's own bytes")
    outcome = quarantine(report, ["dog/page.jpg"], tmp_path / "q")
    restore_until_done(outcome.manifest)
    assert lookalike.read_bytes() == b"the user's own bytes"


def test_an_edited_manifest_cannot_move_or_delete_other_files(flagged, tmp_path, capsys):
    """Before: entries pointing outside the dataset or the quarantine folder were obeyed:
    an unrelated file was deleted and another moved (attack F2)."""
    root, report = flagged
    manifest = quarantine(report, ["dog/page.jpg"], tmp_path / "q").manifest
    victim, secret = tmp_path / "victim.txt", tmp_path / "secret.txt"
    victim.write_text("unrelated")
    secret.write_text("elsewhere")
    intent = next(line for line in journal(manifest) if line.get("op") == "intent")
    forged = [
        {**intent, "seq": 7, "quarantined": str(victim)},
        {**intent, "seq": 8, "original": str(tmp_path / "moved-here" / "secret.txt"),
         "quarantined": str(secret)},
    ]  # fmt: skip
    with open(manifest, "a", encoding="utf-8") as handle:
        for entry in forged:
            handle.write(json.dumps(entry) + "\n")
    outcome = restore(manifest)
    refused = dict(outcome.refused)
    assert "outside the manifest's folder" in refused[str(root / "dog" / "page.jpg")]
    assert "outside the manifest's folder" in refused[str(tmp_path / "moved-here/secret.txt")]
    assert victim.read_text() == "unrelated" and secret.read_text() == "elsewhere"
    assert not (tmp_path / "moved-here").exists()


def test_a_file_written_during_a_cross_device_copy_stays_with_its_write(
    flagged, tmp_path, monkeypatch, capsys
):
    """Before: the copy was placed and the edited original unlinked: the write was lost."""
    root, report = flagged
    across_devices(monkeypatch, tmp_path / "q")
    page = root / "dog" / "page.jpg"

    def write_meanwhile(step):
        if step == "copied":
            with open(page, "ab") as handle:
                handle.write(b"<!-- a write during the copy -->")

    monkeypatch.setattr(quarantine_module, "_after_step", write_meanwhile)
    argv = ["quarantine", str(report), "--codes", "not_an_image", "--to", str(tmp_path / "q")]
    assert cli.main(argv) == 1
    assert "put back (it changed during the move" in capsys.readouterr().out
    assert page.read_bytes().endswith(b"<!-- a write during the copy -->")
    assert left_in(tmp_path / "q") == []  # no copy, no temporary file


def test_a_place_taken_during_a_cross_device_restore_is_not_overwritten(
    flagged, tmp_path, monkeypatch
):
    """Before: the copy was renamed over a file that appeared at the original place."""
    root, report = flagged
    manifest = quarantine(report, ["dog/page.jpg"], tmp_path / "q").manifest
    across_devices(monkeypatch, tmp_path / "q")
    page = root / "dog" / "page.jpg"

    def take_the_place(step):
        if step == "copied":
            page.write_bytes(b"someone else's new file")

    monkeypatch.setattr(quarantine_module, "_after_step", take_the_place)
    outcome = restore(manifest)
    assert [what for what, _ in outcome.refused] == [str(page)]
    assert page.read_bytes() == b"someone else's new file"
    assert (tmp_path / "q" / "dog" / "page.jpg").exists()  # still in the quarantine folder
