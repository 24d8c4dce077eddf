"""The audit page with AppTest (issue 18): the answer first, galleries that page, scans in
the background, quarantine batches that restore one at a time, allowed roots per file.

Each test names the defect of issue 18 it covers and what the page did before.
"""

from __future__ import annotations

import os
import shlex
import threading
import time
from pathlib import Path

import pytest

from audit.lock import FolderBusy, folder_lock
from audit.model_findings import LabelIssue
from audit.outputs import default_report_dir
from audit.quarantine import manifest_entries, manifests
from audit.scan import scan
from tests.conftest import jpeg, write_dataset
from tests.imagegen import colour_dataset, encode, photo_like
from tests.test_app import EVIL, app, scanned
from tests.test_model_findings import _publish
from ui.safety import markdown

pytest.importorskip("streamlit")


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """An allowed root holding a dataset with a cross-class copy and a truncated file.

    The page's scans inspect files in the test's process (one job): a worker pool costs
    1-2 s to start per scan here, and tests/test_lock.py covers the pool's workers."""
    monkeypatch.setattr("audit.scan.default_jobs", lambda: 1)
    monkeypatch.setenv("IMAGE_AUDIT_ALLOWED_ROOTS", str(tmp_path))
    monkeypatch.delenv("IMAGE_AUDIT_WORKDIR", raising=False)
    root = colour_dataset(tmp_path / "data", {"blue": 6, "red": 4})
    (root / "red" / "copy.png").write_bytes((root / "blue" / "000.png").read_bytes())
    (root / "red" / EVIL).write_bytes(b"\x89PNG\r\n\x1a\n")  # truncated: an error
    return tmp_path, root


def _report_dir(tmp_path: Path, root: Path) -> Path:
    return default_report_dir(root, base=tmp_path / "reports")


def _table(test, column: str):
    """The first table on the page that has column (AppTest does not keep a table's key)."""
    return next(frame.value for frame in test.dataframe if column in frame.value.columns)


def _errors(test) -> list[str]:
    """The error boxes but the verdict (which is one when the report has errors)."""
    return [box.value for box in test.error if not box.value.startswith("**")]


def _files(root: Path) -> int:
    return sum(1 for path in root.rglob("*") if path.is_file())


def _batch_buttons(test) -> list:
    return [button for button in test.button if str(button.key).startswith("restore_")]


def test_answer_first_exit_code_and_filter(workspace):
    """Defect 7: every report said "exit code 0" (the app scanned with fail-on never), even
    with errors. The verdict, the counts and an issue table that filters come first. Two
    datasets with the same folder name get two reports."""
    tmp_path, root = workspace
    test = scanned(root)
    answer = test.error[0].value  # the worst severity is error: the verdict is an error box
    assert "3 file(s) must not reach training" in answer and "exits 1" in answer
    metrics = {metric.label: metric.value for metric in test.metric}
    assert metrics["Errors"] == "3" and "Warnings" in metrics and "Info" in metrics
    codes = _table(test, "meaning")
    assert set(codes["code"]) >= {"label_conflict", "truncated"}
    test.multiselect(key="code_filter").set_value(["label_conflict"]).run()
    problems = _table(test, "preview")
    assert sorted(problems["path"]) == ["blue/000.png", "red/copy.png"]
    # A clean dataset whose folder has the same name ("data"): exit code 0, and its own
    # report folder (before, same-named datasets overwrote each other's report).
    clean = colour_dataset(tmp_path / "elsewhere" / "data", {"a": 3, "b": 3})
    test = scanned(clean, test)
    assert any("exits 0" in box.value for box in [*test.success, *test.warning])
    assert not test.error  # neither a verdict of errors nor a refusal
    test.radio(key="audit_source").set_value("Open a recent report").run()
    reports = test.selectbox(key="report_choice").options
    assert len([name for name in reports if name.startswith("data-")]) == 2


def test_conflict_group_shows_every_label_and_pages(workspace):
    """Defect 4: the gallery showed 30 groups and the first six members of each (keeper
    first): the copy under the other label never appeared, and in a conflict group one
    copy was called "keeper". Before: the `red` caption was missing from the group."""
    tmp_path, root = workspace
    picture = jpeg(7)
    files = {f"blue/page1_copy{i}.jpg": picture for i in range(7)}
    files["red/zz_page1_copy.jpg"] = picture  # sorts last: the 8th member of its group
    for group in range(9):  # nine more groups of copies: two pages of eight groups
        files.update({f"blue/g{group}_{i}.jpg": jpeg(100 + group) for i in range(2)})
    data = write_dataset(tmp_path / "conflicts", files)
    test = scanned(data)
    assert not test.expander  # no section folds away over its own button (defect 7)
    captions = [caption for image in test.get("image") for caption in image.captions]
    conflict = [caption for caption in captions if "page1_copy" in caption]
    assert {caption.split(" · ")[0] for caption in conflict} == {"blue", "red"}
    assert not any("keeper" in caption for caption in conflict)  # no side is the right one
    assert "red · " in conflict[1]  # one image per label first
    assert not any("\\_" in caption for caption in captions)  # captions are plain text (defect 7)
    assert test.number_input(key="groups_page").max == 2
    shown = {text.value for text in test.markdown if text.value.startswith("**Group")}
    test.number_input(key="groups_page").set_value(2).run()
    later = {text.value for text in test.markdown if text.value.startswith("**Group")}
    assert len(shown) == 8 and len(later) == 2 and not shown & later


def test_quarantine_twice_restore_each_batch_and_stale_banner(workspace):
    """Defects 1 and 7: one folder per action, a Restore button beside each; after a
    quarantine the report says it is stale and offers a Re-scan; a second quarantine from
    the stale report works (before: 'N file(s) changed since the report')."""
    tmp_path, root = workspace
    test = scanned(root)
    assert not [warning for warning in test.warning if "stale" in warning.value]
    # First action: one file ticked in a gallery (per-file selection).
    pick = next(box for box in test.checkbox if "_pick_" in str(box.key))
    pick.check().run()
    test.radio(key="quarantine_severity").set_value("files ticked in the galleries").run()
    test.checkbox(key="quarantine_confirm_0").check().run()
    test.button(key="quarantine_go").click().run()
    assert not test.exception and not _errors(test), _errors(test)
    assert any("stale" in warning.value for warning in test.warning)
    # Second action, from the stale report: the errors still in the dataset.
    test.radio(key="quarantine_severity").set_value("files with errors").run()
    test.checkbox(key="quarantine_confirm_1").check().run()
    test.button(key="quarantine_go").click().run()
    assert not _errors(test), _errors(test)
    batches = manifests(_report_dir(tmp_path, root))
    moved = [[move.original for move in manifest_entries(batch)[0]] for batch in batches]
    assert [len(paths) for paths in moved] == [1, 2]  # the ticked file, then the 2 other errors
    assert _files(root) == 12 - 3 and len(_batch_buttons(test)) == 2
    # Restore the second batch alone, then the first.
    test.button(key=f"restore_{batches[1].parent.name}").click().run()
    assert any("2 file(s) restored" in message.value for message in test.success)
    assert all(Path(path).exists() for path in moved[1]) and not Path(moved[0][0]).exists()
    assert test.button(key=f"restore_{batches[1].parent.name}").disabled
    test.button(key=f"restore_{batches[0].parent.name}").click().run()
    assert all(test.button(key=f"restore_{batch.parent.name}").disabled for batch in batches)
    assert _files(root) == 12


def test_stale_banner_rescans(workspace, monkeypatch):
    """Defect 7: after the dataset changed the report was shown as current."""
    tmp_path, root = workspace
    test = scanned(root)
    (root / "blue" / "001.png").unlink()
    from ui import data

    data.staleness.clear()
    test.run()
    banner = [warning.value for warning in test.warning if "stale" in warning.value]
    assert banner and "1 removed" in banner[0]
    test.button(key="rescan").click().run()
    assert test.session_state["scan_job"].wait(timeout=60)
    test.run()
    assert not [warning for warning in test.warning if "stale" in warning.value]
    assert {metric.label: metric.value for metric in test.metric}["Files"] == "11"
    # A large report compares folders only: a file added shows, by its folder.
    monkeypatch.setattr(data, "FULL_CHECK_FILES", 5)
    time.sleep(0.01)
    (root / "red" / "new.png").write_bytes((root / "blue" / "002.png").read_bytes())
    data.staleness.clear()
    test.run()
    banner = [warning.value for warning in test.warning if "stale" in warning.value]
    assert banner and markdown("1 folder(s) changed") in banner[0] and "/red" in banner[0]


def test_a_class_folder_linked_outside_the_allowed_roots(workspace, tmp_path_factory):
    """Defect 2: the check applied to the typed folder only: a class folder linked to
    elsewhere was scanned and shown, and quarantine moved a file there. Now the scan is
    refused, and a report made by the CLI moves nothing there."""
    tmp_path, root = workspace
    outside = colour_dataset(tmp_path_factory.mktemp("outside") / "elsewhere", {"green": 3})
    (outside / "green" / "copy.png").write_bytes((root / "blue" / "000.png").read_bytes())
    os.symlink(outside / "green", root / "green")
    test = scanned(root)
    refusal = " ".join(_errors(test))
    assert "green leads to" in refusal and "outside the allowed roots" in refusal
    assert not _report_dir(tmp_path, root).exists()
    # A report written by the CLI (no allowed roots there), opened in the app.
    scan(root, _report_dir(tmp_path, root), jobs=1)
    test.radio(key="audit_source").set_value("Open a recent report").run()
    test.radio(key="quarantine_severity").set_value("files with errors").run()
    test.checkbox(key="quarantine_confirm_0").check().run()
    test.button(key="quarantine_go").click().run()
    assert "outside the allowed roots" in " ".join(_errors(test))
    assert (outside / "green" / "copy.png").exists() and (root / "red" / "copy.png").exists()
    # Its images are not read either: no thumbnail of a green file.
    captions = [caption for image in test.get("image") for caption in image.captions]
    assert captions and not any(caption.startswith("green") for caption in captions)


def test_scan_survives_reruns_cancel_and_session_end(workspace, monkeypatch):
    """Defect 3: any click during a scan cancelled it, silently. Now the scan runs in the
    background: other clicks and pages leave it running; Cancel stops it and says so; the
    lock is held while it runs and released, with its workers, when it stops."""
    tmp_path, root = workspace
    import ui.background

    real_scan = ui.background.scan
    release = threading.Event()

    def slow_scan(*args, progress, **options):
        def held(done, total):
            release.wait(5)
            progress(done, total)

        return real_scan(*args, progress=held, **options)

    monkeypatch.setattr(ui.background, "scan", slow_scan)
    test = app()
    test.text_input(key="dataset_path").input(str(root)).run()
    test.button(key="scan").click().run()
    job = test.session_state["scan_job"]
    report_dir = _report_dir(tmp_path, root)
    deadline = time.monotonic() + 30
    while job.phase != "scanning" and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    assert job.running
    with pytest.raises(FolderBusy), folder_lock(report_dir):
        pass  # the background scan holds the report folder's lock
    test.sidebar.radio(key="page").set_value("Checks").run()
    test.sidebar.radio(key="page").set_value("Audit").run()
    assert job.running and test.button(key="scan").disabled
    test.button(key="scan_cancel").click().run()
    release.set()
    assert job.wait(timeout=30) and job.phase == "cancelled"
    test.run()
    assert any("stopped (cancelled)" in warning.value for warning in test.warning)
    with folder_lock(report_dir):
        pass  # released
    assert not (report_dir / "summary.json").exists()

    from ui.background import start_scan

    ended = start_scan(root, report_dir, alive=lambda: False, jobs=1)
    assert ended.wait(timeout=30) and ended.cancelled == "the session ended"
    with folder_lock(report_dir):
        pass


def test_label_issue_and_quality_galleries(workspace):
    """The findings of this wave get galleries: suspected label issues (label_issues.csv,
    given and suggested label) and the quality codes."""
    tmp_path, root = workspace
    from PIL import Image

    Image.new("RGB", (32, 32), (128, 128, 128)).save(root / "blue" / "blank.png")
    test = scanned(root)
    options = test.selectbox(key="gallery_code").options
    assert any(option.startswith("low_information (1)") for option in options)
    test.selectbox(key="gallery_code").set_value("low_information").run()
    captions = [caption for image in test.get("image") for caption in image.captions]
    assert "blue · blank.png" in captions + [text.value for text in test.text]
    assert not [s for s in test.subheader if s.value == "Suspected label issues"]
    report_dir = _report_dir(tmp_path, root)
    _publish(  # label_issues.csv with its label_issues.json, as label-issues writes them
        report_dir,
        [
            LabelIssue("red/001.png", "a" * 64, "red", "blue", 0.091, 2),
            LabelIssue("blue/002.png", "b" * 64, "blue", "red", 0.40, 1),
        ],
    )
    test.run()
    assert [s for s in test.subheader if s.value == "Suspected label issues"]
    captions = [caption for image in test.get("image") for caption in image.captions]
    assert any(
        caption.startswith("given red → suggested blue · score 0.09") for caption in captions
    )


def test_every_problem_row_has_its_preview(workspace, monkeypatch):
    """Defect 8: past row 200 the preview column showed "None" (thumbnails stopped at 200
    rows); now the table pages and every row of a page has its thumbnail (pages of 10
    here, of 100 in the app)."""
    tmp_path, root = workspace
    monkeypatch.setattr("ui.audit_page.PROBLEMS_PER_PAGE", 10)
    picture = encode(photo_like(40, 30), "PNG")
    data = write_dataset(tmp_path / "many", {f"a/{i:03d}.png": picture for i in range(24)})
    write_dataset(data, {"b/x.png": jpeg(3)})  # a JPEG named .png: a warning too
    test = scanned(data)
    table = _table(test, "preview")
    assert len(table) == 10 and table["preview"].notna().all()
    test.number_input(key="problems_page").set_value(3).run()
    table = _table(test, "preview")
    assert len(table) == 5 and table["preview"].notna().all()


def test_file_links_are_checked_one_by_one(workspace, tmp_path_factory):
    """Defect 2, per file: a file link to outside the allowed roots is refused by name and
    not read; a link to a file inside them is fine (both sides)."""
    tmp_path, root = workspace
    from ui.background import outside_allowed_roots
    from ui.safety import OutsideAllowedRoots, permitted

    os.symlink(root / "blue" / "001.png", root / "red" / "inside_link.png")
    outside_allowed_roots(root)  # a link to a file inside: no refusal
    assert permitted(root / "red" / "inside_link.png")
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "secret.png"
    elsewhere.write_bytes((root / "blue" / "002.png").read_bytes())
    os.symlink(elsewhere, root / "red" / "outside_link.png")
    with pytest.raises(OutsideAllowedRoots, match="red/outside_link.png leads to"):
        outside_allowed_roots(root)
    assert not permitted(root / "red" / "outside_link.png")
    assert permitted(root / "red" / "gone.png")  # missing: judged by its folder


def test_hostile_folder_name_non_utf8_file_and_a_large_group(workspace):
    """Attack on issue 18, findings 1, 5, 7 and 8: a file name that is not UTF-8 crashed
    the page (st.cache_data hashed its name); the heading showed the folder name as
    Markdown ($...$ became math); a group past 12 members listed the rest in
    duplicates.csv only; a file without preview showed "None" in the problem table."""
    tmp_path, _ = workspace
    root = colour_dataset(tmp_path / "x $a^2$ **b**", {"cat": 2, "dog": 2})
    picture = (root / "cat" / "000.png").read_bytes()
    for index in range(13):  # 14 copies in cat: two pages of 12
        (root / "cat" / f"copy{index:02d}.png").write_bytes(picture)
    with open(os.fsencode(root / "dog") + b"/dup\xff.png", "wb") as handle:
        handle.write(picture)  # a cross-label copy whose name is not UTF-8
    (root / "dog" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    test = scanned(root)
    report = _report_dir(tmp_path, root)
    assert test.subheader[0].value == f"Report: {markdown(report.name)}"
    assert "\\$a^2\\$ \\*\\*b\\*\\*" in test.subheader[0].value
    captions = [caption for image in test.get("image") for caption in image.captions]
    assert "dog · reference · dup\\xff.png" in captions or any(
        caption.endswith("dup\\xff.png") for caption in captions
    ), captions
    assert test.number_input(key="group1_members_page").max == 2

    def members(test) -> list[str]:  # the group's tiles: "label · role · name"
        shown = [caption for image in test.get("image") for caption in image.captions]
        return [caption for caption in shown if caption.count(" · ") == 2]

    first = members(test)
    test.number_input(key="group1_members_page").set_value(2).run()
    later = members(test)
    assert (len(first), len(later)) == (12, 3) and not set(first) & set(later)
    assert sum(caption.startswith("dog · ") for caption in first) == 1  # each label first
    assert not [text.value for text in test.caption if "duplicates.csv" in text.value]
    problems = _table(test, "preview")
    assert problems.loc[problems["path"] == "dog/bad.png", "preview"].tolist() == [""]


def test_ticked_label_issues_quarantine_and_a_taken_place_stays_away(
    workspace, monkeypatch, tmp_path_factory
):
    """Attack on issue 18, findings 3, 5, 6 and 2: files ticked in "Suspected label
    issues" with no finding of their own were dropped ("2 ticked", then "No file to
    quarantine"); once a quarantined file's place was taken again the batch read "0 still
    in quarantine" with Restore disabled; the restore command was not quoted for a shell;
    report.md linked to elsewhere was offered for download."""
    tmp_path, root = workspace
    work = tmp_path / "work $HOME 'q'"  # reports under a folder a shell would expand
    work.mkdir()
    monkeypatch.setenv("IMAGE_AUDIT_WORKDIR", str(work))
    test = scanned(root)
    report = default_report_dir(root, base=work / "reports")
    _publish(
        report,
        [
            LabelIssue("blue/003.png", "a" * 64, "blue", "red", 0.05, 1),
            LabelIssue("red/002.png", "b" * 64, "red", "blue", 0.1, 2),
        ],
    )
    secret = tmp_path_factory.mktemp("outside") / "secret.md"
    secret.write_text("SECRET")
    (report / "report.md").unlink()
    (report / "report.md").symlink_to(secret)
    test.run()
    downloads = [button.label for button in test.get("download_button")]
    assert "report.md" not in downloads and "report.html" in downloads
    for box in [box for box in test.checkbox if "label_issues_pick" in str(box.key)]:
        box.check().run()
    test.radio(key="quarantine_severity").set_value("files ticked in the galleries").run()
    (chosen,) = [
        f.value for f in test.dataframe if list(f.value.columns) == ["path", "severity", "issues"]
    ]
    assert sorted(chosen["path"]) == ["blue/003.png", "red/002.png"]
    test.checkbox(key="quarantine_confirm_0").check().run()
    test.button(key="quarantine_go").click().run()
    assert not _errors(test), _errors(test)
    (manifest,) = manifests(report)
    assert test.code[0].value == f"python -m audit restore {shlex.quote(str(manifest))}"
    assert not (root / "blue" / "003.png").exists() and not (root / "red" / "002.png").exists()
    (root / "blue" / "003.png").write_bytes(b"another file in its place")
    test.run()
    line = next(text.value for text in test.text if text.value.startswith(manifest.parent.name))
    assert "2 still in quarantine (1 of them with their original place taken" in line
    test.button(key=f"restore_{manifest.parent.name}").click().run()
    refusal = " ".join(box.value for box in test.warning)
    assert "1 file(s) restored" in refusal and "the original place is taken" in refusal
    assert (root / "red" / "002.png").exists()
    line = next(text.value for text in test.text if text.value.startswith(manifest.parent.name))
    assert "1 still in quarantine" in line
    assert not test.button(key=f"restore_{manifest.parent.name}").disabled
    # A report file linked to elsewhere: the report is not read at all.
    secret.write_text((report / "images.csv").read_text())
    (report / "images.csv").unlink()
    (report / "images.csv").symlink_to(secret)
    test.run()
    assert any("images.csv" in e and "outside the allowed roots" in e for e in _errors(test))
