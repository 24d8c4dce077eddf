"""Integrity: will this file decode in training, exactly as TensorFlow and Keras read it?

The decision combines three observations (audit.inspect): the magic bytes (never the
extension), the container's structure (audit.containers) and a full Pillow decode.
The ground truth it mirrors is `tf.io.decode_image` plus Keras's extension allow-list;
the test suite checks every decision against TensorFlow on generated fixtures.
"""

from __future__ import annotations

from audit import formats
from audit.checks.base import Check, Threshold
from audit.inspect import Facts
from audit.records import Finding

# Pillow's own default warning threshold (Image.MAX_IMAGE_PIXELS), about 89.5 megapixels.
DEFAULT_MAX_PIXELS = 89_478_485

_ORIENTATIONS = {
    2: "mirrored",
    3: "rotated 180°",
    4: "flipped vertically",
    5: "mirrored and rotated 90°",
    6: "rotated 90° clockwise",
    7: "mirrored and rotated 270°",
    8: "rotated 90° counter-clockwise",
}

_MODE_NOTES = {
    "L": "grayscale; Keras's loader repeats it into 3 channels",
    "LA": "grayscale with alpha; the alpha channel is dropped and hidden colours show",
    "RGBA": "has an alpha channel; it is dropped and transparent pixels show their hidden colour",
    "P": "palette image; expanded to RGB on decode",
    "PA": "palette with alpha; the alpha channel is dropped",
    "1": "1-bit black and white",
    "CMYK": "CMYK JPEG; colours are converted to RGB on decode",
    "I;16": "16-bit; scaled down to 8 bits on decode",
    "I": "16/32-bit integer; scaled down to 8 bits on decode",
}


def check_file(facts: Facts, max_pixels: int) -> list[Finding]:
    """Integrity findings for one file."""
    if facts.read_error is not None:
        return [Finding("unreadable", facts.read_error)]
    findings: list[Finding] = []
    if not facts.jfif_in_peek:
        findings.append(
            Finding("missing_jfif_marker", "no b'JFIF' in the first buffer of the file")
        )
    if facts.bytes == 0:
        return [Finding("empty_file", "0 bytes")] + findings

    sniffed = formats.container(facts.container or "unknown")
    # A known non-image (HTML, PDF, text...) stays one even if a lenient Pillow plugin opens it.
    if not sniffed.is_image and (not facts.format or sniffed.name != "unknown"):
        return [Finding("not_an_image", f"the content is {sniffed.label}")] + findings
    label = sniffed.label if sniffed.is_image else f"{facts.format} (as read by Pillow)"
    findings += _format_support(facts, sniffed, label)
    if facts.format or sniffed.name in formats.TF_DECODABLE:
        # Otherwise Pillow has no decoder for it (HEIF, JPEG XL...): unsupported, not corrupt.
        findings += _decodability(facts, label, max_pixels)
    findings += _extension(facts, sniffed, label)
    findings += _presentation(facts)
    return findings


def _format_support(facts: Facts, sniffed: formats.Container, label: str) -> list[Finding]:
    reasons = []
    if sniffed.name not in formats.TF_DECODABLE:
        reasons.append(
            f"{label}: TensorFlow's decode_image reads only JPEG, PNG, GIF, BMP and WebP"
        )
    elif facts.structure.unsupported:
        reasons.append(f"{facts.structure.unsupported}")
    if sniffed.name in formats.TF_DECODABLE and not formats.keras_keeps(facts.relpath):
        extension = formats.extension_of(facts.relpath) or "extension-less"
        reasons.append(
            f"Keras's image_dataset_from_directory skips '{extension}' files; "
            f"the content is {label}"
        )
    return [Finding("unsupported_format", "; ".join(reasons))] if reasons else []


def _decodability(facts: Facts, label: str, max_pixels: int) -> list[Finding]:
    pixels = facts.pixels
    if pixels is not None and pixels > max_pixels:
        return [
            Finding(
                "decompression_bomb",
                f"{facts.width}x{facts.height} = {pixels:,} pixels is over the limit of "
                f"{max_pixels:,}; not decoded",
            )
        ]
    structure = facts.structure
    failure = facts.open_error or facts.decode_error
    if structure.decides:
        failure = None  # TensorFlow reads nothing the walk did not check (a BMP's rows)
    if failure is None and structure.defect is None and not structure.truncated:
        return []
    if structure.defect is not None:
        detail = f"; decoder: {failure}" if failure else ""
        return [Finding("corrupt_data", f"{label} structure is broken: {structure.defect}{detail}")]
    if structure.truncated:
        detail = f"; decoder: {failure}" if failure else ""
        return [
            Finding(
                "truncated",
                f"{label} data ends before the image does ({facts.bytes:,} bytes){detail}",
            )
        ]
    if facts.open_error is not None:
        return [
            Finding("corrupt_data", f"looks like {label} but its header does not parse: {failure}")
        ]
    return [Finding("corrupt_data", f"{label} pixel data does not decode: {failure}")]


def _extension(facts: Facts, sniffed: formats.Container, label: str) -> list[Finding]:
    findings = []
    extension = formats.extension_of(facts.relpath)
    named = formats.container_for_extension(extension)
    if sniffed.is_image and named is not sniffed:
        if named is not None:
            reason = f"named '{extension}' ({named.label}) but the content is {label}"
        elif extension:
            reason = f"'{extension}' names no image format; the content is {label}"
        else:
            reason = f"no extension; the content is {label}"
        findings.append(Finding("extension_mismatch", reason))
    trailing = facts.structure.trailing
    if trailing and not facts.structure.unsupported:
        findings.append(
            Finding("trailing_data", f"{trailing:,} bytes follow the end of the {label} data")
        )
    return findings


def _presentation(facts: Facts) -> list[Finding]:
    """Facts about how the decoded pixels will look to the model (info and warnings)."""
    findings = []
    if facts.orientation in _ORIENTATIONS:
        findings.append(
            Finding(
                "exif_rotated",
                f"EXIF orientation {facts.orientation} ({_ORIENTATIONS[facts.orientation]}): "
                "viewers apply it, TensorFlow does not",
            )
        )
    if facts.mode and facts.mode != "RGB":
        note = _MODE_NOTES.get(facts.mode, "not 8-bit RGB")
        findings.append(Finding("non_rgb_mode", f"mode {facts.mode}: {note}"))
    if facts.structure.bitfields_ignored:
        findings.append(
            Finding(
                "bmp_bitfields_ignored",
                f"32-bit BMP with bit masks ({facts.structure.bitfields_ignored}): TensorFlow "
                "ignores them and reads each pixel's bytes as blue, green, red",
            )
        )
    if facts.structure.palette_ignored:
        findings.append(
            Finding(
                "bmp_palette_ignored",
                "8-bit BMP with a colour palette: TensorFlow ignores the palette and "
                "reads the colour indices as gray levels",
            )
        )
    return findings


class IntegrityCheck(Check):
    """Will the file decode in training, as TensorFlow and Keras read it (per file)."""

    name = "integrity"
    # 2: TF's BMP, GIF and PNG rules measured on real test images (bench/tf_fidelity.py),
    # sides past int32 are corrupt_data, bmp_bitfields_ignored.
    version = 2
    codes = (
        "empty_file",
        "not_an_image",
        "truncated",
        "corrupt_data",
        "unsupported_format",
        "decompression_bomb",
        "unreadable",
        "extension_mismatch",
        "trailing_data",
        "bmp_palette_ignored",
        "bmp_bitfields_ignored",
        "missing_jfif_marker",
        "exif_rotated",
        "non_rgb_mode",
    )
    thresholds = (
        Threshold(
            "max_pixels",
            DEFAULT_MAX_PIXELS,
            "decompression-bomb limit: larger images are never decoded (default: {default})",
            minimum=1,
            maximum=2**40,  # a trillion pixels; past it the product overflows int64 widths
            per_file=True,
        ),
    )

    def check_file(self, facts, found, thresholds):
        return check_file(facts, thresholds.max_pixels)
