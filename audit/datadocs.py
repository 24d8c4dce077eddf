"""Great Expectations' Data Docs pages, made safe to open offline and to embed.

Data Docs pages as Great Expectations writes them load jQuery, Bootstrap, Vega and
fonts from seven third-party hosts (and a logo that carries the project's id), run
inline scripts, and link to each other with relative paths. `safe_page` rewrites one
page so that:

* it holds no script: no <script>, <iframe>, <object>, <embed>, <base>, no event-handler
  attribute, no `javascript:` or other scheme in any URL attribute;
* it loads nothing from another host: <link>, <img> and CSS `url()`/`@import` that
  point to http(s) (or any absolute URL) are removed;
* it carries a Content-Security-Policy that says the same (`script-src 'none'`), so a
  browser enforces it even on what this rewrite would have missed;
* `embedded=True` (the app shows pages in Streamlit's component iframe, which always
  allows scripts): every link is inert (no href) and nothing relative is loaded either,
  so a click cannot load the app, or anything else, inside the frame.

Names from the dataset never reach these pages raw (audit.expectations hands them to
Great Expectations percent-encoded); this rewrite is the second wall, not the first.
`make_site_safe` applies it to every page of a site after Great Expectations wrote it,
adds a note on how names are shown, and gives the index (drawn by JavaScript) a static
list of the pages.
"""

from __future__ import annotations

import html
import os
import re
from html.parser import HTMLParser
from pathlib import Path

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline' 'self'; img-src 'self' data:; "
    "font-src 'self'; script-src 'none'; base-uri 'none'; form-action 'none'"
)
# Elements dropped with everything inside them; void elements dropped on their own.
_DROPPED_WITH_CONTENT = {
    "script",
    "iframe",
    "frame",
    "frameset",
    "object",
    "applet",
    "noscript",
    "template",
    "svg",
    "math",
}
_DROPPED_VOID = {"embed", "base", "param", "source", "track", "portal"}
_URL_ATTRIBUTES = {
    "href",
    "src",
    "srcset",
    "action",
    "formaction",
    "poster",
    "background",
    "data",
    "xlink:href",
    "cite",
    "longdesc",
    "ping",
    "lowsrc",
    "dynsrc",
    "manifest",
    "codebase",
    "usemap",
}
_OURS = "image-audit-"  # ids of what this module adds: replaced, never doubled, on a rerun
_STYLE = f"""<style id="{_OURS}style">
body {{ font: 14px/1.45 system-ui, sans-serif; color: #1d1d1d; margin: 0 16px; }}
table {{ border-collapse: collapse; margin: 6px 0 14px; }}
th, td {{ border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }}
ul, ol {{ padding-left: 20px; }}
/* what only worked with the removed scripts: modals, filter buttons, the newsletter */
.modal, .btn-group, .invisible, button, footer, #ge-cta-footer {{ display: none; }}
.{_OURS}note {{ background: #f4f4f4; padding: 6px 10px; font-size: 13px; }}
</style>"""
_NOTE = (
    f'<p id="{_OURS}note" class="{_OURS}note">Offline copy: scripts and third-party styles '
    "removed; in file and class names, characters other than letters, digits, space and _ - . ~ / "
    "are shown percent-encoded (%3C is &lt;, %25 is %).</p>"
)
_REGENERATED = {f"{_OURS}style", f"{_OURS}pages"}  # ids safe_page / the index add anew
_CSS_URL = re.compile(r"url\s*\(\s*(['\"]?)(.*?)\1\s*\)", re.IGNORECASE | re.DOTALL)
_CSS_IMPORT = re.compile(r"@import[^;]*;?", re.IGNORECASE)
_INVISIBLE = re.compile(r"[\x00-\x20\x7f]+")
_ATTRIBUTE_NAME = re.compile(r"[a-z_][a-z0-9_.:-]*")


def _has_scheme(url: str) -> bool:
    """True for absolute URLs (`https:`, `//host`, `javascript:`...), false for relative ones."""
    compact = _INVISIBLE.sub("", html.unescape(url))
    if compact.startswith(("/", "\\")):
        return True
    head = re.split(r"[/?#]", compact, maxsplit=1)[0]
    return ":" in head


def _safe_css(css: str, embedded: bool) -> str:
    css = _CSS_IMPORT.sub("", css)

    def replace(match: re.Match) -> str:
        url = match.group(2).strip()
        keep = url.lower().startswith("data:image/") or (not embedded and not _has_scheme(url))
        return match.group(0) if keep else "none"

    return _CSS_URL.sub(replace, css)


class _Rewriter(HTMLParser):
    def __init__(self, embedded: bool, extra_body: str) -> None:
        super().__init__(convert_charrefs=True)
        self.embedded = embedded
        self.extra_body = extra_body
        self.out: list[str] = []
        self.skipping: list[str] = []  # the dropped element being skipped, nested same-name
        self.in_style = False
        self.head_done = False

    # -- helpers
    def _head(self) -> str:
        self.head_done = True
        return (
            f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
            '<meta name="referrer" content="no-referrer">' + _STYLE
        )

    def _attributes(self, tag: str, attributes: list[tuple[str, str | None]]) -> str | None:
        kept = []
        for name, value in attributes:
            name = name.lower()
            value = value or ""
            if (
                not _ATTRIBUTE_NAME.fullmatch(name)  # no quote or bracket to break out with
                or name.startswith("on")
                or name in ("target", "integrity", "crossorigin")
            ):
                continue
            if name == "id" and value in _REGENERATED:
                return None  # what an earlier pass added: dropped, added again below
            if name in _URL_ATTRIBUTES:
                url = value.strip()
                if tag == "img" and name == "src" and url.lower().startswith("data:image/"):
                    pass
                elif self.embedded or _has_scheme(url) or name == "srcset":
                    continue
            if name == "style":
                value = _safe_css(value, self.embedded)
            kept.append(f' {name}="{html.escape(value, quote=True)}"' if value else f" {name}")
        return "".join(kept)

    # -- parser callbacks
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, closed=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, closed=True)

    def _start(self, tag: str, attrs: list[tuple[str, str | None]], closed: bool) -> None:
        if self.skipping:
            if tag == self.skipping[0] and not closed:
                self.skipping.append(tag)
            return
        attributes = self._attributes(tag, attrs)
        if tag in _DROPPED_WITH_CONTENT or (attributes is None and not closed):
            if not closed:
                self.skipping.append(tag)
            return
        if attributes is None or tag in _DROPPED_VOID or tag == "form":
            return
        if tag == "link" and (self.embedded or " href=" not in attributes):
            return  # a stylesheet or icon from another host (embedded: from anywhere)
        if tag == "meta" and any(
            name.lower() == "http-equiv" or (value or "").lower() == "referrer"
            for name, value in attrs
        ):
            return  # refresh, or a policy: ours is added after <head>
        self.out.append(f"<{tag}{attributes}{' /' if closed else ''}>")
        if tag == "head" and not self.head_done:
            self.out.append(self._head())
        elif tag == "body":
            if not self.head_done:
                self.out.append(self._head())
            self.out.append(self.extra_body)
        self.in_style = tag == "style" and not closed

    def handle_endtag(self, tag: str) -> None:
        if self.skipping:
            if tag == self.skipping[0]:
                self.skipping.pop()
            return
        if tag in _DROPPED_WITH_CONTENT or tag in _DROPPED_VOID or tag == "form":
            return
        if tag == "style":
            self.in_style = False
        self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        if self.in_style:
            self.out.append(_safe_css(data, self.embedded).replace("<", "\\3c "))
        else:
            self.out.append(html.escape(data, quote=False))

    def handle_decl(self, decl: str) -> None:
        if decl.lower().startswith("doctype"):
            self.out.append("<!DOCTYPE html>")

    # Comments, processing instructions and CDATA sections are left out.
    def handle_comment(self, data: str) -> None:
        return None

    def handle_pi(self, data: str) -> None:
        return None

    def unknown_decl(self, data: str) -> None:
        return None


def safe_page(page: str, embedded: bool = False, extra_body: str = "") -> str:
    """One Data Docs page (or any HTML page) without scripts or third-party requests.

    embedded=True: also no link that can navigate and nothing loaded from a relative
    path (for an iframe whose document has no address of its own). extra_body: trusted
    HTML placed at the top of the body. A second pass changes nothing."""
    rewriter = _Rewriter(embedded, extra_body)
    rewriter.feed(page)
    rewriter.close()
    text = "".join(rewriter.out)
    if not rewriter.head_done:  # a fragment: the policy still comes first
        text = rewriter._head() + text
    return text


def _index_list(site: Path) -> str:
    """A static list of the site's pages (the index draws its tables with JavaScript)."""

    def items(pages: list[Path]) -> str:
        return "".join(
            f'<li><a href="{html.escape(page.relative_to(site).as_posix())}">'
            f"{html.escape(' / '.join(page.relative_to(site).parts[1:]))}</a></li>"
            for page in pages
        )

    validations = sorted(
        site.glob("validations/**/*.html"), key=lambda page: page.as_posix(), reverse=True
    )
    suites = sorted(site.glob("expectations/**/*.html"))
    return (
        f'<section id="{_OURS}pages"><h2>Validation results (newest first)</h2>'
        f"<ul>{items(validations) or '<li>none</li>'}</ul>"
        f"<h2>Expectation suites</h2><ul>{items(suites) or '<li>none</li>'}</ul></section>"
    )


def make_site_safe(site: str | os.PathLike) -> list[Path]:
    """Rewrite every HTML page of a Data Docs site in place with `safe_page`; returns them."""
    root = Path(site)
    pages = sorted(root.rglob("*.html"))
    for page in pages:
        text = page.read_text(encoding="utf-8", errors="replace")
        is_index = page == root / "index.html"
        # A page an earlier check rewrote (GE never writes that id) is left as it is: a
        # year of nightly checks is hundreds of pages, not worth parsing again each night.
        if not is_index and f'<style id="{_OURS}style">' in text[:2000]:
            continue
        extra = "" if f'id="{_OURS}note"' in text else _NOTE
        safe = safe_page(text, extra_body=extra + (_index_list(root) if is_index else ""))
        if safe != text:
            page.write_text(safe, encoding="utf-8")
    return pages
