"""One escaping per medium: names from a dataset cannot forge lines, cells or elements."""

from __future__ import annotations

import re

from audit import cli
from audit.escaping import html, markdown, terminal
from tests.conftest import jpeg, write_dataset

FORGED = "evil\nerror: forged.jpg"
UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def test_terminal_shows_control_characters_as_escapes():
    assert terminal("plain name.jpg") == "plain name.jpg"
    assert terminal("a\nb\r\x1b[31mc\x00") == "a\\nb\\r\\x1b[31mc\\x00"
    assert terminal("line\u2028sep") == "line\\u2028sep"
    assert terminal("bad\udcffbyte") == "bad\\xffbyte"  # a byte that is not UTF-8, as \\xNN


def test_markdown_keeps_a_name_on_one_line_in_one_cell():
    shown = markdown("a|b\n# c <img src=x onerror=alert(1)> [l](u) *x*")
    assert "\n" not in shown and "<" not in shown and ">" not in shown
    assert not UNESCAPED_PIPE.search(shown)
    assert "\\#" in shown and "\\[l\\]\\(u\\)" in shown and "\\*x\\*" in shown


def test_html_escapes_markup():
    assert str(html('<img src="x" onerror=alert(1)>')) == (
        "&lt;img src=&#34;x&#34; onerror=alert(1)&gt;"
    )


def test_a_name_with_a_newline_forges_no_error_line_and_no_table_row(tmp_path, capsys):
    root = write_dataset(
        tmp_path / "data",
        {
            "cat/ok.jpg": jpeg(1),
            f"cat/{FORGED}": b"",  # empty: an error, printed on stderr
            "dog/a|b.jpg": b"",
            "dog/ok.jpg": jpeg(2),
        },
    )
    assert cli.main(["scan", str(root), "--out", str(tmp_path / "out"), "--jobs", "1"]) == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2
    assert not any(line.startswith("error: forged") for line in captured.err.splitlines())
    assert "cat/evil\\nerror: forged.jpg: empty_file" in captured.err

    report_md = (tmp_path / "out" / "report.md").read_text()
    assert not any(line.startswith("error: forged") for line in report_md.splitlines())
    for block in re.findall(r"(?:^\|.*\n)+", report_md, flags=re.MULTILINE):
        cells = {len(UNESCAPED_PIPE.findall(line)) for line in block.splitlines()}
        assert len(cells) == 1, block  # every row of a table has the header's cell count
