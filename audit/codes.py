"""The fixed vocabulary of issue codes (DESIGN.md): codes are added, never renamed.

Each code has one severity. `error` means the file must not reach training;
`warning` means a person should look; `info` is context worth knowing.
"""

from __future__ import annotations

SEVERITIES = ("ok", "info", "warning", "error")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}

# code -> (severity, one-line meaning shown in reports)
CODES: dict[str, tuple[str, str]] = {
    # error: the file must not reach training
    "empty_file": ("error", "the file has zero bytes"),
    "not_an_image": ("error", "the bytes are not an image format at all"),
    "truncated": ("error", "the image data ends before the image does"),
    "corrupt_data": ("error", "the header looks like an image but the data does not decode"),
    "unsupported_format": (
        "error",
        "TensorFlow's decode_image or Keras's directory loader will not read this file",
    ),
    "decompression_bomb": ("error", "the pixel count is over the limit; not decoded"),
    "unreadable": ("error", "the file could not be read (permissions, I/O, not a regular file)"),
    "label_conflict": ("error", "the same or a near-same image is filed under two labels"),
    # warning: look at it
    "exact_duplicate": ("warning", "an exact copy of another file"),
    "near_duplicate": ("warning", "a perceptual near-copy of another file"),
    "possible_label_conflict": (
        "warning",
        "near another file under another label, but not close enough to call it a copy",
    ),
    "split_leak": ("warning", "the same image is on both sides of the train/validation split"),
    "resolution_outlier": ("warning", "its size is far from the rest of the dataset"),
    "tiny_image": ("warning", "a side is below the minimum"),
    "odd_aspect_ratio": ("warning", "much wider than tall, or the reverse"),
    "extension_mismatch": ("warning", "the file extension does not match the content"),
    "trailing_data": ("warning", "bytes follow the end of the image data"),
    "bmp_palette_ignored": (
        "warning",
        "8-bit BMP with a colour palette: TensorFlow reads the indices as gray levels",
    ),
    "bmp_bitfields_ignored": (
        "warning",
        "32-bit BMP with non-standard bit masks: TensorFlow ignores them, colours come out wrong",
    ),
    "undecodable_name": (
        "warning",
        "the file or folder name is not valid UTF-8: tools that take text paths (Keras's "
        "loader among them) fail on it",
    ),
    "low_information": (
        "warning",
        "near-constant pixels (blank, solid colour, black frame): nothing to learn, and its "
        "pHash is noise",
    ),
    "dark": ("warning", "even the brightest parts of the picture are dim (underexposed)"),
    "overexposed": ("warning", "even the darkest parts of the picture are bright (washed out)"),
    "blurry": ("warning", "little fine detail for its contrast: out of focus or smoothed"),
    "changed_in_place": (
        "warning",
        "the checksum changed under unchanged size, modification time and inode "
        "(bit rot, or a tool that kept the timestamps); found by --rehash",
    ),
    # info: context
    "missing_jfif_marker": (
        "info",
        "no b'JFIF' where the Keras tutorial's filter looks (fobj.peek(10)): "
        "it would delete the file",
    ),
    "exif_rotated": ("info", "EXIF orientation is not 1; TensorFlow ignores it, viewers do not"),
    "grayscale_in_color": (
        "info",
        "a colour file whose channels are equal (a gray picture) in a mostly colour dataset",
    ),
    "non_rgb_mode": ("info", "not 8-bit RGB (grayscale, palette, alpha, CMYK or 16-bit)"),
    "suspected_label_issue": (
        "info",
        "a model's out-of-fold predictions doubt the label (label_issues.csv, from "
        "`python -m train label-issues`)",
    ),
}

# Dataset-level findings (not tied to one file); they live in summary.json.
DATASET_CODES: dict[str, tuple[str, str]] = {
    "class_imbalance": ("warning", "largest/smallest usable class count is over the limit"),
    "empty_class": ("warning", "a class folder has no usable image"),
    "stray_files": ("info", "files directly under ROOT belong to no class and are not scanned"),
    "linked_folder": (
        "warning",
        "a folder symlink to a place already inside the dataset: not entered twice",
    ),
    "linked_file": (
        "warning",
        "a file symlink to a file the audit reads at its own place: not a second row",
    ),
    "unlistable_folder": (
        "error",
        "a folder under a class cannot be read: the files below it are not audited",
    ),
}


def severity_of(code: str) -> str:
    """Severity of a per-file or dataset-level code; ValueError for an unknown one."""
    if code in CODES:
        return CODES[code][0]
    if code in DATASET_CODES:
        return DATASET_CODES[code][0]
    raise ValueError(f"unknown issue code {code!r}; known: {', '.join(sorted(CODES))}")


def worst_severity(codes) -> str:
    """The highest severity among codes, or 'ok' when there are none."""
    worst = "ok"
    for code in codes:
        severity = severity_of(code)
        if SEVERITY_RANK[severity] > SEVERITY_RANK[worst]:
            worst = severity
    return worst


def worst_of(severities) -> str:
    """The highest of some severities ('ok', 'info', 'warning', 'error'), 'ok' for none."""
    return max(severities, key=SEVERITY_RANK.__getitem__, default="ok")


def at_or_above(severity: str, threshold: str) -> bool:
    """True when severity reaches threshold ('never' is never reached)."""
    if threshold == "never":
        return False
    return severity != "ok" and SEVERITY_RANK[severity] >= SEVERITY_RANK[threshold]
