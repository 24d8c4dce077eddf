"""One escaping per medium: HTML, Markdown, and lines on a terminal.

File and class names come from whoever made the dataset: they may hold HTML, Markdown
syntax, newlines, terminal control sequences or bytes that are not UTF-8 (kept by
Python as surrogate escapes). Every place that shows a name uses one of these:

* html: markupsafe's escaping (what Jinja's autoescape applies to the templates);
* markdown: control characters shown as escapes, HTML as entities (safe in any
  renderer), Markdown syntax, table pipes and "$" (math in Streamlit)
  backslash-escaped: a name can neither
  start a new line or table cell nor become a link or an element;
* terminal: control characters (newline, carriage return, ESC...) shown as Python
  escapes, so a name cannot forge extra lines on stderr or move the cursor.
"""

from __future__ import annotations

import os
import re

from markupsafe import Markup, escape


def undecodable(text: str) -> bool:
    """Whether text holds bytes that are not UTF-8 (Python keeps them as surrogate escapes,
    as os.fsdecode makes names of any bytes)."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def for_report(text: str) -> str:
    """text as a report stores it: unchanged when it is UTF-8; otherwise its backslashes
    doubled and each byte that is not UTF-8 written \\xNN, so from_report gives it back."""
    # Called for every name of every row (and every value the HTML page shows): an ASCII
    # name, the usual case, returns after one C call (undecodable() would cost a second
    # Python call per value: 214,000 of them for a 20,000-file report).
    if text.isascii() or not undecodable(text):
        return text
    return os.fsencode(text).replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")


def from_report(text: str) -> str:
    """The name for_report made text from (apply it only to a name marked undecodable)."""
    raw = text.encode("utf-8", "surrogateescape")
    return os.fsdecode(
        re.sub(
            rb"\\\\|\\x([0-9a-f]{2})",
            lambda match: bytes([int(match[1], 16)]) if match[1] else b"\\",
            raw,
        )
    )


def html(text: object) -> Markup:
    """text safe inside HTML element content and quoted attributes."""
    return escape(str(text))


def _visible(char: str) -> str:
    if char.isprintable() or char == " ":
        return char
    if "\udc80" <= char <= "\udcff":  # a byte that is not UTF-8, kept by os.fsdecode
        return f"\\x{ord(char) - 0xDC00:02x}"
    escaped = repr(char)[1:-1]  # '\n', '\x1b', '\u2028', '\udcff'
    return escaped if escaped != char else f"\\x{ord(char):02x}"


def terminal(text: object) -> str:
    """text on one terminal line: every non-printable character shown as an escape."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(_visible(char) for char in text)


def markdown(text: object) -> str:
    """text safe inside Markdown, a table cell included: shown literally, on one line."""
    text = terminal(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # "$" too: Streamlit renders $...$ as KaTeX math (a backslash escape in CommonMark).
    for char in "\\`*_[]()#|!~{}$":
        text = text.replace(char, "\\" + char)
    return text
