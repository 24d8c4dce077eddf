"""Inline SVG charts for the self-contained HTML report (no scripts, no network)."""

from __future__ import annotations

import math
from html import escape


def class_bar_chart(classes: list[dict], width: int = 640) -> str:
    """Horizontal bars of usable images per class; the unusable rest drawn faintly."""
    row, label_width, value_width = 22, 160, 90
    bar_space = width - label_width - value_width
    peak = max((entry["files"] for entry in classes), default=0) or 1
    height = row * len(classes) + 10
    parts = [
        '<svg class="chart" role="img" aria-label="usable images per class" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for index, entry in enumerate(classes):
        y = 5 + index * row
        usable_w = bar_space * entry["usable"] / peak
        files_w = bar_space * entry["files"] / peak
        name = escape(_shorten(entry["name"], 24))
        parts.append(
            f'<text x="{label_width - 6}" y="{y + 15}" text-anchor="end" class="lbl">{name}</text>'
        )
        parts.append(
            f'<rect x="{label_width}" y="{y + 3}" width="{files_w:.1f}" '
            f'height="{row - 6}" class="bar-all"/>'
        )
        parts.append(
            f'<rect x="{label_width}" y="{y + 3}" width="{usable_w:.1f}" '
            f'height="{row - 6}" class="bar"/>'
        )
        share = f" ({entry['share'] * 100:.1f}%)" if entry.get("share") is not None else ""
        parts.append(
            f'<text x="{label_width + files_w + 6:.1f}" y="{y + 15}" class="val">'
            f"{entry['usable']}{share}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def resolution_scatter(
    points: list[tuple[int, int, bool]], bounds: tuple[float, float] | None, size: int = 420
) -> str:
    """Width against height on log2 axes; outliers in red; the bounds as iso-area lines."""
    if not points:
        return '<p class="muted">No decodable image to plot.</p>'
    margin = 46
    plot = size - 2 * margin
    logs = [math.log2(max(value, 1)) for w, h, _ in points for value in (w, h)]
    if bounds:
        logs += [math.log2(max(bounds[0], 1)), math.log2(max(bounds[1], 1))]
    low, high = math.floor(min(logs)), math.ceil(max(logs))
    if high == low:
        high = low + 1
    # Pad the axes so points on the extreme ticks are not cut by the frame.
    axis_low, axis_high = low - 0.35, high + 0.35

    def position(value: float) -> float:
        return margin + plot * (math.log2(max(value, 1)) - axis_low) / (axis_high - axis_low)

    def y_position(value: float) -> float:
        return size - position(value)

    parts = [
        '<svg class="chart" role="img" aria-label="image width against height" '
        f'width="{size}" height="{size}" xmlns="http://www.w3.org/2000/svg">'
    ]
    parts.append(f'<rect x="{margin}" y="{margin}" width="{plot}" height="{plot}" class="frame"/>')
    for exponent in range(low, high + 1):
        tick = 2**exponent
        x, y = position(tick), y_position(tick)
        parts.append(
            f'<line x1="{x:.1f}" y1="{margin}" x2="{x:.1f}" y2="{size - margin}" class="grid"/>'
        )
        parts.append(
            f'<line x1="{margin}" y1="{y:.1f}" x2="{size - margin}" y2="{y:.1f}" class="grid"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{size - margin + 14}" text-anchor="middle" class="tick">'
            f"{tick}</text>"
        )
        parts.append(
            f'<text x="{margin - 4}" y="{y + 4:.1f}" text-anchor="end" class="tick">{tick}</text>'
        )
    parts.append(
        f'<clipPath id="plotarea"><rect x="{margin}" y="{margin}" '
        f'width="{plot}" height="{plot}"/></clipPath>'
    )
    parts.append('<g clip-path="url(#plotarea)">')
    if bounds:
        for side in bounds:  # w * h = side^2 is a line of slope -1 in log-log space
            start, end = 2.0**axis_low, 2.0**axis_high
            x1, y1 = position(start), y_position(side * side / start)
            x2, y2 = position(end), y_position(side * side / end)
            parts.append(
                f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" class="bound"/>'
            )
    for outlier_pass in (False, True):  # outliers drawn last, on top
        for w, h, outlier in points:
            if outlier is outlier_pass:
                css = "pt-out" if outlier else "pt"
                parts.append(
                    f'<circle cx="{position(w):.1f}" cy="{y_position(h):.1f}" '
                    f'r="{4 if outlier else 2.5}" class="{css}"/>'
                )
    parts.append("</g>")
    parts.append(
        f'<text x="{size / 2}" y="{size - 8}" text-anchor="middle" class="axis">width (px)</text>'
    )
    parts.append(
        f'<text x="12" y="{size / 2}" text-anchor="middle" '
        f'transform="rotate(-90 12 {size / 2})" class="axis">height (px)</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
