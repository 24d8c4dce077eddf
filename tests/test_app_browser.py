"""The whole app in a real headless Chromium (Debian's), driven by Playwright.

Scan, see duplicates.
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

from tests.imagegen import colour_dataset

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


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


@pytest.fixture
def served_app(tmp_path):
    pytest.importorskip("playwright")
    _need_browser()
    port = _free_port()
    env = {
        **os.environ,
        "IMAGE_AUDIT_ALLOWED_ROOTS": str(tmp_path),
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    app = Path(__file__).resolve().parents[1] / "app.py"
    log = open(tmp_path / "streamlit.log", "w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(app),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--server.fileWatcherType",
            "none",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read().strip() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
    else:
        server.terminate()
        pytest.fail("streamlit did not start: " + (tmp_path / "streamlit.log").read_text()[-2000:])
    yield url, tmp_path
    server.terminate()
    server.wait(timeout=20)
    log.close()


def test_scan_in_the_browser_shows_the_duplicate_gallery(served_app):
    from playwright.sync_api import sync_playwright

    url, work = served_app
    root = colour_dataset(work / "data", {"blue": 10, "red": 6})
    (root / "red" / "copy_of_blue.png").write_bytes((root / "blue" / "000.png").read_bytes())
    flags = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        page.goto(url, wait_until="networkidle")
        field = page.get_by_label("Dataset folder, laid out as ROOT/<class>/<images>")
        field.fill(str(root))
        field.press("Enter")
        page.get_by_role("button", name="Scan").click()
        page.get_by_role("heading", name="Duplicate groups").wait_for(timeout=120_000)
        page.get_by_text("label conflict").first.wait_for(timeout=60_000)
        gallery_images = page.locator("img[src^='data:image']")
        gallery_images.first.wait_for(timeout=60_000)
        assert gallery_images.count() >= 2
        screenshot = work / "app-duplicates.png"
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    assert screenshot.stat().st_size > 10_000
