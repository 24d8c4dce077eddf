"""The training and checks pages in a real headless Chromium (Debian's), driven by Playwright.

One app server, started from a folder other than the project (its .streamlit/config.toml
must still apply: no usage statistics, so no request to data.streamlit.io), serves both:

* Training: a real run of the recipe (tiny images, a long budget) is started, its curves
  appear live, it is stopped, and its folder says so (a last "stopped" event, exit 130, the
  stage in progress cut off, no process left);
* Checks: the latest check's page, hostile HTML with a Home link, scripts and third-party
  resources, is embedded: clicking Home inside it loads nothing, and nothing is fetched
  from another host.

Screenshots are saved in the test's temporary folder (printed on failure) and, when
IMAGE_AUDIT_ARTEFACTS names a folder, copied there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

from audit.outputs import default_report_dir
from tests.imagegen import colour_dataset
from tests.test_app_browser import CHROMIUM, _free_port, _need_browser, wait_until_served
from train import human

pytestmark = pytest.mark.slow
PROJECT = Path(__file__).resolve().parents[1]
HOSTILE_PAGE = """<!DOCTYPE html><html><head>
<script src="https://cdn.example.com/jquery.js"></script>
<link rel="stylesheet" href="https://fonts.example.com/font.css">
</head><body onload="parent.document.title='owned'">
<a href="../../../../index.html" id="home">Home</a>
<a href="/">Home again</a>
<img src="https://tracker.example.com/pixel.gif">
<h1>Validation of <b>&lt;img src=x onerror=alert(1)&gt;.png</b></h1>
<script>parent.document.body.innerHTML = 'owned';</script>
</body></html>"""


def _history_with_a_hostile_page(work: Path) -> None:
    from audit import history

    out = work / "reports" / "data-check"
    out.mkdir(parents=True)
    (out / "check.html").write_text(HOSTILE_PAGE)
    history.append(
        work / "reports" / "check-history.sqlite",
        history.Run(
            0,
            "2026-11-27T02:15:00+00:00",
            str(work / "data"),
            "suite.json",
            False,
            12,
            12,
            0,
            {"files:no_errors": True, "classes:min_count": False},
            {"out": str(out)},
        ),
    )


@pytest.fixture
def served_elsewhere(tmp_path):
    """The app served from tmp_path/elsewhere (not the project folder), usage statistics left
    to the project's config file."""
    pytest.importorskip("playwright")
    _need_browser()
    port = _free_port()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("STREAMLIT_")  # the config file must do it, not the environment
    }
    env["IMAGE_AUDIT_ALLOWED_ROOTS"] = str(tmp_path)
    log = open(tmp_path / "streamlit.log", "w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(PROJECT / "app.py"),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--server.fileWatcherType",
            "none",
        ],
        cwd=elsewhere,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = wait_until_served(server, port, tmp_path / "streamlit.log")
    yield url, tmp_path
    server.terminate()
    server.wait(timeout=20)
    log.close()
    for process in (tmp_path / "runs").glob("*/app_process.json"):  # nothing left running
        pid = json.loads(process.read_text())["pid"]
        try:
            os.killpg(pid, 9)
        except ProcessLookupError:
            pass


def _keep(screenshot: Path) -> None:
    target = os.environ.get("IMAGE_AUDIT_ARTEFACTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(target) / screenshot.name)


def test_training_started_watched_live_and_stopped_and_checks_embedded_safely(served_elsewhere):
    from playwright.sync_api import expect, sync_playwright

    url, work = served_elsewhere
    root = colour_dataset(work / "data", {"blue": 12, "red": 12}, side=16)
    from audit.scan import scan

    scan(root, default_report_dir(root, base=work / "reports"), jobs=1, cache=False)
    _history_with_a_hostile_page(work)
    requested: list[str] = []
    flags = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
        context = browser.new_context(viewport={"width": 1400, "height": 2200})
        context.on("request", lambda request: requested.append(request.url))
        page = context.new_page()
        page.goto(url, wait_until="networkidle")
        page.get_by_text("Training", exact=True).click()
        # Only the baseline stage: clear the default (sanity) stages, type one.
        page.locator("[data-testid='stMultiSelect'] input").click()
        for _ in range(8):
            page.keyboard.press("Backspace")
        page.keyboard.type("baseline")
        page.keyboard.press("Enter")
        page.keyboard.press("Escape")
        page.get_by_label("Steps per run").fill("200000")  # far more than the test waits for
        page.get_by_label("Evaluations").fill("20000")  # an evaluation every 10 steps
        page.get_by_role("button", name="Start in the background").click()
        expect(page.get_by_role("button", name="Start in the background")).to_be_disabled()

        # While TensorFlow loads in the run's process: the Checks page, in a second tab.
        checks_tab = context.new_page()
        checks_tab.goto(url, wait_until="networkidle")
        checks_tab.get_by_text("Checks", exact=True).click()
        checks_tab.get_by_text("Expectations, check by check").wait_for(timeout=30_000)
        frame = checks_tab.frame_locator("iframe").first
        frame.get_by_text("Home", exact=True).click()
        frame.get_by_text("Home again").click()
        checks_tab.wait_for_timeout(500)
        # The frame still shows the page (escaped), not the app or anything else.
        expect(frame.locator("h1")).to_contain_text("<img src=x onerror=alert(1)>.png")
        assert frame.locator("[data-testid='stApp']").count() == 0  # no app in the frame
        assert checks_tab.title() != "owned"
        checks = work / "checks.png"
        checks_tab.screenshot(path=str(checks), full_page=True)
        checks_tab.close()

        page.get_by_text("Curves: one line per stage and run").wait_for(timeout=90_000)
        (run,) = [path for path in (work / "runs").iterdir() if path.is_dir()]
        live = work / "training-live.png"
        page.screenshot(path=str(live), full_page=True)
        page.get_by_role("button", name="Stop this run").click()
        page.get_by_text(f"Run {run.name}: stopped").wait_for(timeout=60_000)
        expect(page.get_by_role("button", name="Start in the background")).to_be_enabled()
        stopped = work / "training-stopped.png"
        page.screenshot(path=str(stopped), full_page=True)
        browser.close()
    for screenshot in (live, stopped, checks):
        assert screenshot.stat().st_size > 10_000
        _keep(screenshot)
    # The run folder says what happened: stopped by the app with Ctrl-C's exit code.
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "stopped" and events[-1]["exit_code"] == 130
    assert any(event["event"] == "epoch" for event in events)
    assert json.loads((run / "app_process.json").read_text())["exit_code"] == 130
    assert "train: interrupted" in (run / "train.log").read_text()
    # What the human baseline draws from: the run's validation images, as the CLI counted them.
    names, paths, labels = human.validation_set(run)
    counted = re.search(r"(\d+) validation images", (run / "train.log").read_text())
    assert counted and len(paths) == int(counted.group(1)) and set(labels) == {0, 1}
    assert names == ["blue", "red"] and all(Path(p).parent.parent == root for p in paths)
    # Nothing requested from another host: no CDN, no tracker, no usage statistics.
    foreign = [
        address
        for address in requested
        if urlparse(address).scheme in ("http", "https", "ws", "wss")
        and urlparse(address).hostname != "127.0.0.1"
    ]
    assert not foreign, foreign
