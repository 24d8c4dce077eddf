"""What a file is, judged by its first bytes, and who can read it.

This module owns two pieces of outside knowledge the integrity check relies on:

* which containers TensorFlow's ``tf.io.decode_image`` sniffs and decodes (it looks at
  magic bytes, never at the extension): JPEG, PNG, GIF, BMP and WebP;
* which extensions Keras's ``image_dataset_from_directory`` keeps
  (``ALLOWLIST_FORMATS``): every other file is silently left out of training.

Both are checked against the installed TensorFlow and Keras by the test suite, so a
drift in either library shows up as a failing test rather than a wrong verdict.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# keras.src.utils.image_dataset_utils.ALLOWLIST_FORMATS (compared with .lower()).
KERAS_ALLOWED_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")

# Containers tf.io.decode_image recognises by magic bytes (TF 2.21).
TF_DECODABLE = frozenset({"jpeg", "png", "gif", "bmp", "webp"})


@dataclass(frozen=True)
class Container:
    """A file kind recognised from its leading bytes."""

    name: str  # short key: "jpeg", "png", "html", ...
    label: str  # what a person calls it
    is_image: bool  # an image format (whether or not TensorFlow reads it)
    extensions: tuple[str, ...] = ()


_CONTAINERS = {
    c.name: c
    for c in (
        Container("jpeg", "JPEG", True, (".jpg", ".jpeg", ".jpe", ".jfif", ".pjpeg", ".pjp")),
        Container("png", "PNG", True, (".png", ".apng")),
        Container("gif", "GIF", True, (".gif",)),
        Container("bmp", "BMP", True, (".bmp", ".dib")),
        Container("webp", "WebP", True, (".webp",)),
        Container("tiff", "TIFF", True, (".tif", ".tiff")),
        Container("avif", "AVIF", True, (".avif",)),
        Container("heif", "HEIF/HEIC", True, (".heic", ".heif", ".hif")),
        Container("jxl", "JPEG XL", True, (".jxl",)),
        Container("jp2", "JPEG 2000", True, (".jp2", ".j2k", ".jpf", ".jpx", ".j2c")),
        Container("qoi", "QOI", True, (".qoi",)),
        Container("pnm", "PNM/PGM/PPM", True, (".pbm", ".pgm", ".ppm", ".pnm", ".pam")),
        Container("ico", "ICO", True, (".ico", ".cur")),
        Container("psd", "Photoshop PSD", True, (".psd",)),
        Container("dds", "DDS", True, (".dds",)),
        Container("svg", "SVG (vector, not a raster image)", False, (".svg",)),
        Container("html", "HTML page (often a scraper's error page)", False, (".html", ".htm")),
        Container("xml", "XML document", False, (".xml",)),
        Container("pdf", "PDF document", False, (".pdf",)),
        Container("zip", "ZIP archive", False, (".zip",)),
        Container("gzip", "gzip archive", False, (".gz",)),
        Container("video", "MP4/QuickTime video", False, (".mp4", ".mov", ".m4v")),
        Container("json", "JSON text", False, (".json",)),
        Container("text", "plain text", False, (".txt",)),
        Container("unknown", "unrecognised bytes", False),
    )
}

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}


def container(name: str) -> Container:
    """The Container registered under name."""
    return _CONTAINERS[name]


def sniff(head: bytes) -> Container | None:
    """Identify a file from its first bytes (at least 64 are best); None when empty.

    The order of the first five tests is TensorFlow's own (ClassifyFileFormat), so a
    file TensorFlow would route to its JPEG decoder is called JPEG here too.
    """
    if not head:
        return None
    if head.startswith(b"\xff\xd8\xff"):
        return _CONTAINERS["jpeg"]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _CONTAINERS["png"]
    if head.startswith(b"GIF8"):
        return _CONTAINERS["gif"]
    if head.startswith(b"BM"):
        return _CONTAINERS["bmp"]
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return _CONTAINERS["webp"]
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _CONTAINERS["tiff"]
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _AVIF_BRANDS:
            return _CONTAINERS["avif"]
        if brand in _HEIF_BRANDS:
            return _CONTAINERS["heif"]
        return _CONTAINERS["video"]
    if head.startswith(b"\xff\x0a") or head.startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n"):
        return _CONTAINERS["jxl"]
    if head.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n") or head.startswith(b"\xff\x4f\xff\x51"):
        return _CONTAINERS["jp2"]
    if head.startswith(b"qoif"):
        return _CONTAINERS["qoi"]
    if len(head) >= 3 and head[0:1] == b"P" and head[1:2] in b"1234567" and head[2:3].isspace():
        return _CONTAINERS["pnm"]
    if (
        head[:4] in (b"\x00\x00\x01\x00", b"\x00\x00\x02\x00")
        and len(head) >= 6
        and head[4:6] != b"\x00\x00"
    ):
        return _CONTAINERS["ico"]
    if head.startswith(b"8BPS"):
        return _CONTAINERS["psd"]
    if head.startswith(b"DDS "):
        return _CONTAINERS["dds"]
    if head.startswith(b"%PDF"):
        return _CONTAINERS["pdf"]
    if head.startswith(b"PK\x03\x04"):
        return _CONTAINERS["zip"]
    if head.startswith(b"\x1f\x8b"):
        return _CONTAINERS["gzip"]
    return _sniff_text(head)


def _sniff_text(head: bytes) -> Container:
    text = head.lstrip(b"\xef\xbb\xbf").lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return _CONTAINERS["html"]
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return _CONTAINERS["svg"]
    if text.startswith(b"<?xml"):
        return _CONTAINERS["xml"]
    if text.startswith((b"{", b"[")):
        return _CONTAINERS["json"]
    # Text: valid UTF-8 (a character cut at the end of head is tolerated), mostly printable.
    decoded = head.decode("utf-8", errors="replace")
    printable = sum(ch.isprintable() or ch.isspace() for ch in decoded)
    if decoded.count("\ufffd") <= 1 and printable >= 0.95 * len(decoded):
        return _CONTAINERS["text"]
    return _CONTAINERS["unknown"]


def extension_of(path: str) -> str:
    """Lower-case extension with its dot ('' when none), as Keras compares it."""
    return os.path.splitext(path)[1].lower()


def container_for_extension(extension: str) -> Container | None:
    """The image container an extension names, or None when it names none."""
    for candidate in _CONTAINERS.values():
        if extension in candidate.extensions:
            return candidate
    return None


def keras_keeps(path: str) -> bool:
    """Whether Keras's image_dataset_from_directory would pick this file up."""
    return path.lower().endswith(KERAS_ALLOWED_EXTENSIONS)
