"""The whole app in a real headless Chromium (Debian's), driven by Playwright.

One served app and one browser for the module (starting them costs seconds); each test
uses its own small dataset. Screenshots go to test-artifacts/ (git-ignored) at the
repository root, or to IMAGE_AUDIT_ARTIFACTS.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from audit.outputs import dataset_key, default_report_dir
from audit.quarantine import manifest_entries, manifests
from tests.conftest import jpeg, write_dataset
from tests.imagegen import colour_dataset

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REPOSITORY = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("IMAGE_AUDIT_ARTIFACTS") or REPOSITORY / "test-artifacts")
FIELD = "Dataset folder, laid out as ROOT/<class>/<images>"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _need_browser():
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("IMAGE_AUDIT_REQUIRE_BROWSER"):
        pytest.fail(
            f"Chromium is required here (IMAGE_AUDIT_REQUIRE_BROWSER) but {CHROMIUM} is missing"
        )
    pytest.skip("Debian's chromium is not installed (make setup-dev installs it where it can)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_served(server: subprocess.Popen, port: int, log_path: Path) -> str:
    """The served app's URL once its health check answers (60 s at most; the test fails
    with the end of the server's log otherwise)."""
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read().strip() == b"ok":
                return url
        except OSError:
            time.sleep(0.3)
    server.terminate()
    pytest.fail("streamlit did not start: " + log_path.read_text()[-2000:])


@pytest.fixture(scope="module")
def served_app(tmp_path_factory):
    """`streamlit run app.py` on a free port, its allowed root a fresh folder."""
    pytest.importorskip("playwright")
    _need_browser()
    work = tmp_path_factory.mktemp("served")
    port = _free_port()
    env = {
        **os.environ,
        "IMAGE_AUDIT_ALLOWED_ROOTS": str(work),
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    log = open(work / "streamlit.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPOSITORY / "app.py"),
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true", "--server.fileWatcherType", "none",
         "--browser.gatherUsageStats", "false"],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = wait_until_served(server, port, work / "streamlit.log")
    yield url, work
    server.terminate()
    server.wait(timeout=20)
    log.close()


@pytest.fixture(scope="module")
def browser(served_app):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(browser, served_app):
    """One page (one session) for the module: the first report loads the page's scripts
    for tables and charts (seconds); later tests reuse them."""
    url, _ = served_app
    tab = browser.new_page(viewport={"width": 1400, "height": 2000})
    tab.goto(url, wait_until="networkidle")
    yield tab
    tab.close()


def _shot(page, name: str) -> Path:
    """A screenshot in the artefacts, once the page's elements are drawn."""
    page.locator("[data-testid='stSkeleton']").first.wait_for(state="detached", timeout=30_000)
    page.wait_for_timeout(300)
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


@pytest.fixture(autouse=True)
def _screenshot_on_failure(request, page):
    """A screenshot of the page as it was when a test failed, in the artefacts."""
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed:  # counted when the test's call was reported
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"failed-{request.node.name}.png"))


def _start_scan(page, root: Path) -> None:
    field = page.get_by_label(FIELD)
    field.fill(str(root))
    field.press("Enter")
    page.get_by_role("button", name="Scan", exact=True).click()


def _report(page, root: Path, timeout: float = 60_000) -> None:
    """Wait for root's report (the page may still show the previous test's)."""
    page.get_by_role("heading", name=f"Report: {dataset_key(root)}").first.wait_for(timeout=timeout)
    page.get_by_role("heading", name="Quarantine", exact=True).first.wait_for(timeout=timeout)


def _page_link(page, name: str):
    return page.locator("section[data-testid='stSidebar']").get_by_text(name, exact=True)


def _until(condition, timeout: float = 60.0) -> None:
    """Wait until condition() holds (a file the served app writes), failing after timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the app"
        time.sleep(0.1)


def test_scan_survives_navigation(page, served_app):
    """Defect 3: before, any click during a scan (here: another page) cancelled it and no
    report came."""
    _, work = served_app
    root = colour_dataset(work / "pets", {"cat": 60, "dog": 60})
    _start_scan(page, root)
    page.get_by_role("button", name="Cancel").wait_for(timeout=30_000)  # it is running
    _page_link(page, "Checks").click()
    page.get_by_role("heading", name="Scheduled checks").or_(
        page.get_by_text("No check recorded yet")
    ).first.wait_for(timeout=30_000)
    _page_link(page, "Audit").click()
    _report(page, root)
    page.get_by_text("Scanned ").first.wait_for()
    assert page.get_by_label(FIELD).input_value() == str(root)  # the folder is kept
    _shot(page, "app-scan-after-navigation")
    assert (default_report_dir(root, base=work / "reports") / "summary.json").is_file()


def test_quarantine_twice_then_restore_each_batch(page, served_app):
    """Defect 1: every quarantine of the app went to one folder and nothing could undo
    one batch; now each action has its folder and a Restore button."""
    _, work = served_app
    root = colour_dataset(work / "shapes", {"blue": 5, "red": 4})
    (root / "red" / "copy_of_blue.png").write_bytes((root / "blue" / "000.png").read_bytes())
    (root / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    _start_scan(page, root)
    _report(page, root)
    box = page.get_by_role("checkbox", name="quarantine").first  # a gallery tick box
    page.get_by_text("quarantine", exact=True).first.click()
    try:
        page.get_by_text("1 ticked").wait_for(timeout=15_000)
    except Exception as error:  # playwright's TimeoutError (playwright is imported lazily)
        if type(error).__name__ != "TimeoutError":
            raise
        # On a loaded machine a click can land while the page is still being drawn after
        # the scan and be dropped by the browser; a person clicks again, and so do we.
        assert not box.is_checked()
        page.get_by_text("quarantine", exact=True).first.click()
        page.get_by_text("1 ticked").wait_for()
    page.get_by_text("files ticked in the galleries").click()
    report_dir = default_report_dir(root, base=work / "reports")
    for round_ in range(2):
        if round_:
            page.get_by_text("files with errors", exact=True).click()
        page.get_by_text("I understand").click()
        page.get_by_role("button", name="Quarantine", exact=True).click()
        # The first round's message is still on the page: wait for this round's batch.
        _until(lambda wanted=round_ + 1: len(manifests(report_dir)) == wanted)
        page.get_by_text("moved to quarantine-").first.wait_for()
    page.get_by_text("This report is stale").wait_for()
    batches = manifests(report_dir)
    assert [len(manifest_entries(batch)[0]) for batch in batches] == [1, 2]
    assert sum(1 for path in root.rglob("*") if path.is_file()) == 11 - 3
    _shot(page, "app-two-quarantines")
    for batch in reversed(batches):
        page.get_by_text(f"{batch.parent.name}:").first.wait_for()
        page.get_by_role("button", name="Restore").and_(page.locator(":enabled")).first.click()
        count = len(manifest_entries(batch)[0])
        page.get_by_text(f"{batch.parent.name}: {count} file(s) restored").wait_for()
        assert all(Path(move.original).exists() for move in manifest_entries(batch)[0])
    assert sum(1 for path in root.rglob("*") if path.is_file()) == 11
    _shot(page, "app-restored")


def test_class_folder_linked_outside_is_refused(page, served_app, tmp_path_factory):
    """Defect 2: a class folder linked to outside the allowed roots was scanned."""
    _, work = served_app
    root = colour_dataset(work / "linked", {"blue": 3, "red": 3})
    outside = colour_dataset(tmp_path_factory.mktemp("outside") / "data", {"green": 3})
    os.symlink(outside / "green", root / "green")
    _start_scan(page, root)
    page.get_by_text("outside the allowed roots").first.wait_for(timeout=30_000)
    _shot(page, "app-linked-class-refused")
    assert not default_report_dir(root, base=work / "reports").exists()


def test_conflict_group_shows_both_labels(page, served_app):
    """Defect 4: the copy under the other label was cut off (first six members shown)."""
    _, work = served_app
    picture = jpeg(11)
    files = {f"cat/page1_copy{i}.jpg": picture for i in range(7)}
    files["dog/zz_page1_copy.jpg"] = picture
    files.update({f"dog/{i}.jpg": jpeg(40 + i) for i in range(3)})
    root = write_dataset(work / "conflict", files)
    _start_scan(page, root)
    _report(page, root)
    page.get_by_text("label conflict", exact=False).first.wait_for()
    captions = page.locator("[data-testid='stImageCaption']")
    # The page may still be drawing the gallery: wait for the other label's copy, then read.
    captions.filter(has_text="zz_page1_copy.jpg").first.wait_for(timeout=30_000)
    texts = captions.all_inner_texts()
    assert any(text.startswith("dog · ") and "zz_page1_copy.jpg" in text for text in texts)
    assert any(text.startswith("cat · ") for text in texts)
    assert not any("\\_" in text for text in texts)  # shown as named, not Markdown-escaped
    _shot(page, "app-conflict-group")
