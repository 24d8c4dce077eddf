"""Data Docs written by `check`, and the app's embedding of them: no raw name, no script,
nothing from another host, links that stay in their frame."""

from __future__ import annotations

import contextlib
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from audit import cli
from audit.datadocs import CONTENT_SECURITY_POLICY, safe_page
from audit.escaping import html, markdown
from tests.conftest import jpeg, write_dataset

HOSTILE_FILE = "cat/<img src=x onerror=alert(1)>.jpg"
PERCENT_FILE = "cat/100%41 é;$x.jpg"  # "%41" is text here: decoded back as it was, not as "A"
HOSTILE_CLASS = "<b onclick=alert(2)>x"  # a class added since the suite
RAW = ("<img src=x", "onerror=alert", "<b onclick", "onclick=alert", "100%41")
POLICY = f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
URL_ATTRIBUTES = ("href", "src", "srcset", "data", "action", "formaction", "poster", "background")


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.found.append((tag, {name: value or "" for name, value in attrs}))


def tags(text: str) -> list[tuple[str, dict]]:
    """Every element's tag and attributes, as a browser's parser would find them."""
    parser = _Tags()
    parser.feed(text)
    parser.close()
    return parser.found


def urls(text: str, absolute_only: bool) -> list[tuple[str, str, str]]:
    """(tag, attribute, value) of each attribute that loads or navigates somewhere:
    absolute addresses only (http:, https:, //host, javascript:...), or any address;
    inline images (data:image/) are neither."""
    return [
        (tag, name, value)
        for tag, attributes in tags(text)
        for name, value in attributes.items()
        if name in URL_ATTRIBUTES
        and not value.strip().startswith("data:image/")
        and (not absolute_only or re.match(r"\s*(?:[a-z][a-z0-9+.-]*:|//|/)", value, re.I))
    ]


def handlers(text: str) -> list[str]:
    return [name for _, attributes in tags(text) for name in attributes if name.startswith("on")]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A check (run twice into one folder) of a dataset whose names are HTML: two files
    that break training, and a class added since the suite."""
    pytest.importorskip("great_expectations")
    base = tmp_path_factory.mktemp("hostile")
    files = {
        f"{label}/{label}_{index}.jpg": jpeg(50 * number + index, 64, 48)
        for number, label in enumerate(("cat", "NA"))  # "NA": a class, not a missing value
        for index in range(5)
    }
    root = write_dataset(base / "data", files)
    suite = base / "data.suite.json"
    assert (
        cli.main(["suite", "init", str(root), "--out", str(suite), "--report", str(base / "i")])
        == 0
    )
    write_dataset(
        root,
        {
            HOSTILE_FILE: jpeg(7, 64, 48)[:300],
            PERCENT_FILE: jpeg(8, 64, 48)[:300],
            f"{HOSTILE_CLASS}/y.jpg": jpeg(9, 64, 48),
        },
    )
    out = base / "reports" / "data-check"
    arguments = ["check", str(root), "--suite", str(suite), "--out", str(out), "--jobs", "1"]
    arguments += ["--history", str(base / "reports" / "check-history.sqlite"), "--quiet"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        codes = [cli.main(arguments), cli.main(arguments)]
    assert codes == [1, 1]
    site = out / "gx-project" / "gx" / "uncommitted" / "data_docs" / "local_site"
    return base, out, site, printed.getvalue()


@pytest.mark.slow  # a check through Great Expectations
def test_names_never_reach_great_expectations_raw(hostile):
    _, out, site, _ = hostile
    written = [
        path
        for path in (out / "gx-project").rglob("*")
        if path.suffix in (".html", ".json", ".yml") and path.is_file()
    ]
    assert any(path.suffix == ".json" for path in written)
    for path in written:
        text = path.read_text(encoding="utf-8", errors="replace")
        assert not [raw for raw in RAW if raw in text], path
    # The pages still name the offending files and the new class, percent-encoded.
    pages = " ".join(
        page.read_text() for page in site.glob("validations/image_audit_files/**/*.html")
    )
    assert "cat/%3Cimg src%3Dx onerror%3Dalert%281%29%3E.jpg" in pages
    assert "cat/100%2541 é%3B%24x.jpg" in pages
    classes = " ".join(
        page.read_text() for page in site.glob("validations/image_audit_classes/**/*.html")
    )
    assert "%3Cb onclick%3Dalert%282%29%3Ex" in classes


@pytest.mark.slow  # a check through Great Expectations
def test_our_pages_show_names_decoded_and_escaped(hostile):
    _, out, _, printed = hostile
    page = (out / "check.html").read_text()
    for name in (HOSTILE_FILE, PERCENT_FILE, HOSTILE_CLASS):
        assert str(html(name)) in page
    assert "<img src=x" not in page and "<b onclick" not in page
    summary = (out / "check.md").read_text()
    for name in (HOSTILE_FILE, PERCENT_FILE, HOSTILE_CLASS):
        assert markdown(name) in summary
    assert "<img" not in summary
    results = json.loads((out / "validation_result.json").read_text())
    severity = next(
        item
        for item in results["validations"]["files"]["results"]
        if item["expectation_config"]["kwargs"].get("column") == "severity"
    )
    offending = {entry["path"] for entry in severity["result"]["unexpected_index_list"]}
    assert {HOSTILE_FILE, PERCENT_FILE} <= offending
    class_set = next(
        item
        for item in results["validations"]["classes"]["results"]
        if item["expectation_config"]["type"] == "expect_column_distinct_values_to_equal_set"
    )
    assert class_set["result"]["partial_unexpected_list"] == [HOSTILE_CLASS]
    assert class_set["result"]["partial_missing_list"] == []  # "NA" was read as missing
    assert HOSTILE_FILE in printed and HOSTILE_CLASS in printed


@pytest.mark.slow  # a check through Great Expectations
def test_pages_run_no_script_and_load_nothing_from_another_host(hostile):
    _, _, site, _ = hostile
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 7  # index, 2 suites, 2 x 2 validation pages (two runs)
    for page in pages:
        text = page.read_text()
        assert "<script" not in text.lower(), page
        assert text.count(POLICY) == 1, page
        assert text.count('id="image-audit-note"') == 1, page  # percent-encoding explained
        assert not urls(text, absolute_only=True), (page, urls(text, absolute_only=True)[:3])
        assert not re.search(r"url\(\s*['\"]?\s*(https?:)?//|@import", text), page
        assert not handlers(text), page
    index = (site / "index.html").read_text()
    validation_links = re.findall(r'href="(validations/[^"]+)"', index)
    assert len(validation_links) == 4 and all((site / link).is_file() for link in validation_links)


@pytest.mark.slow  # a check through Great Expectations
def test_the_app_embeds_pages_without_scripts_or_links(hostile, monkeypatch):
    from streamlit.testing.v1 import AppTest

    base, _, _, _ = hostile
    monkeypatch.setenv("IMAGE_AUDIT_ALLOWED_ROOTS", str(base))
    monkeypatch.delenv("IMAGE_AUDIT_WORKDIR", raising=False)
    test = AppTest.from_file(
        str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=60
    ).run()
    test.sidebar.radio(key="page").set_value("Checks").run()
    assert not test.exception
    frames = [element.proto.srcdoc for element in test.get("iframe")]
    assert len(frames) == 3  # check.html and the latest run's two validation pages
    for frame in frames:
        assert frame.count(POLICY) == 1 and "script-src 'none'" in frame
        assert "<script" not in frame.lower()
        assert not urls(frame, absolute_only=False) and not handlers(frame)
        assert {"link", "iframe", "base", "script"}.isdisjoint(tag for tag, _ in tags(frame))
        assert "<img src=x" not in frame and "<b onclick" not in frame
    assert "Home" in frames[1]  # the breadcrumb is still there, as text
    # Only the Data Docs pages say that names there are percent-encoded.
    assert ['id="image-audit-note"' in frame for frame in frames] == [False, True, True]


# ---------------------------------------------------------------- safe_page on its own


HOSTILE_PAGE = """<!doctype html><html><head>
<meta http-equiv="refresh" content="0;url=https://evil.example/">
<link rel="stylesheet" href="https://cdn.example/b.css"><link rel="icon" href="static/f.ico">
<style>@import url(https://cdn.example/x.css);
.a { background: url('https://s3.example/l.png') }</style>
<script src="https://code.example/jquery.js"></script><script>alert(1)</script>
<base href="https://evil.example/"></head>
<body onload="alert(2)"><a href="../../index.html" target="_blank">Home</a>
<a href="javascript:alert(3)">j</a><a href=" JaVa&#x09;script:alert(4)">k</a>
<a href="https://docs.example/">docs</a><img src="https://s3.example/p.png?id=1" alt="logo">
<img src="data:image/png;base64,AAAA" alt="inline"><iframe src="https://x.example/"></iframe>
<svg><script>alert(5)</script></svg><div style="background:url(//x.example/i.png)">d</div>
<p title="&quot;&gt;&lt;script&gt;">text &lt;b&gt; kept as text</p>
<!-- <script>alert(6)</script> --><p a"onmouseover=alert(7)//>q</p>
</body></html>"""


def test_safe_page_removes_scripts_and_other_hosts_and_keeps_the_text():
    page = safe_page(HOSTILE_PAGE)
    assert page.count(POLICY) == 1 and page.index(POLICY) < page.index("<style")
    assert "<script" not in page and "alert(" not in page
    assert not urls(page, absolute_only=True) and not handlers(page)
    assert "http:" not in page and "https:" not in page and "//x.example" not in page
    assert '<a href="../../index.html">Home</a>' in page  # relative links work on disk
    assert 'href="static/f.ico"' in page and 'src="data:image/png;base64,AAAA"' in page
    assert "text &lt;b&gt; kept as text" in page and 'title="&quot;&gt;&lt;script&gt;"' in page
    assert "onload" not in page and "target=" not in page and "<base" not in page
    assert "<iframe" not in page and "<svg" not in page and "refresh" not in page
    assert safe_page(page) == page  # a second pass changes nothing


def test_embedded_pages_have_inert_links_and_load_nothing():
    page = safe_page(HOSTILE_PAGE, embedded=True)
    assert page.count(POLICY) == 1
    assert "<a>Home</a>" in page
    assert not urls(page, absolute_only=False)
    assert "<link" not in page
    assert safe_page("<p>fragment <a href='#x'>x</a></p>", embedded=True).startswith(POLICY)


def test_names_are_encoded_inertly_and_decoded_exactly():
    from audit.expectations import decode_name, encode_name

    names = [
        HOSTILE_FILE,
        PERCENT_FILE,
        HOSTILE_CLASS,
        "plain/name_1.jpg",
        "猫/tab\there\nnewline.jpg",
        "bytes/\udcff\udcfe.jpg",  # a name that is not UTF-8 (surrogate escapes)
        "quote\"'`$&;.jpg",
    ]
    for name in names:
        encoded = encode_name(name)
        assert decode_name(encoded) == name
        assert not set(encoded) & set("<>&\"'`$\t\n\\")
    assert encode_name("plain/name_1.jpg") == "plain/name_1.jpg"
    assert encode_name("猫/a b.jpg") == "猫/a b.jpg"  # letters of any script stay readable
