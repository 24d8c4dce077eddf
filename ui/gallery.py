"""Paged lists and image grids for the audit page, with per-file picks for quarantine.

Everything a report lists can be reached: long lists are cut into pages, never
truncated. A tile's caption is plain text (Streamlit shows image captions literally, so
Markdown escaping would show its backslashes); control characters in names are shown as
escapes (audit.escaping.terminal).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import streamlit as st

from audit.escaping import terminal

Item = TypeVar("Item")
PICKS = "quarantine_picks"  # session_state: report path -> True, the files ticked for quarantine
COLUMNS = 6


@dataclass(frozen=True)
class Tile:
    """One image of a grid: its thumbnail (None when it cannot or may not be read)."""

    report_path: str  # as images.csv writes it: the key of the pick
    uri: str | None
    caption: str
    pickable: bool = True


def page(items: Sequence[Item], per_page: int, key: str, noun: str) -> Sequence[Item]:
    """The slice of items on the page chosen with a page number field (shown only when
    there is more than one page), and a line saying which part of how many is shown."""
    pages = max(1, -(-len(items) // per_page))
    number = 1
    if pages > 1:
        widget = f"{key}_page"
        if st.session_state.get(widget, 1) > pages:  # fewer pages now (another filter)
            st.session_state[widget] = pages
        number = int(
            st.number_input(f"Page (of {pages}, {per_page} {noun} each)", 1, pages, key=widget)
        )
    start = (number - 1) * per_page
    shown = items[start : start + per_page]
    if pages > 1:
        st.caption(f"{noun.capitalize()} {start + 1}-{start + len(shown)} of {len(items)}")
    return shown


def grid(tiles: Sequence[Tile], key: str) -> None:
    """Tiles in rows of COLUMNS, each with a 'quarantine' tick box that adds the file to
    the selection of the quarantine section."""
    picks = st.session_state.setdefault(PICKS, {})
    for start in range(0, len(tiles), COLUMNS):
        columns = st.columns(COLUMNS)
        for column, tile in zip(columns, tiles[start : start + COLUMNS], strict=False):
            caption = terminal(tile.caption)
            if tile.uri:
                column.image(tile.uri, caption=caption, width=96)
            else:  # gone (quarantined), not decodable, or not to be read (outside the roots)
                column.text(f"{caption}\n(no preview)")
            if tile.pickable:
                widget = f"{key}_pick_{digest(tile.report_path)}"
                # One selection across galleries: a file ticked in one is ticked in all.
                st.session_state[widget] = tile.report_path in picks
                column.checkbox(
                    "quarantine", key=widget, on_change=_toggle, args=(tile.report_path,)
                )


def _toggle(report_path: str) -> None:
    """A click flips the box, which showed whether the file was picked: flip the pick. (Not
    read from the widget's state: a click that lands while a rerun was cut off before the
    box was drawn again finds that state gone, a KeyError seen in Chromium under load.)"""
    picks = st.session_state.setdefault(PICKS, {})
    if report_path in picks:
        del picks[report_path]
    else:
        picks[report_path] = True


def picked() -> list[str]:
    """The report paths ticked in any gallery, in the order they were ticked."""
    return list(st.session_state.get(PICKS, {}))


def clear_picks() -> None:
    """Forget every tick (after a quarantine, or when another report is opened)."""
    st.session_state[PICKS] = {}
    for name in [name for name in st.session_state if "_pick_" in str(name)]:
        del st.session_state[name]


def digest(text: str) -> str:
    """A short stable key for a name of any bytes (widget keys must be UTF-8)."""
    # Names may hold anything (and bytes that are not UTF-8): widget keys get a digest.
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]
