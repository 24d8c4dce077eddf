"""One file -> one set of facts: magic bytes, structure, a full decode, size and hashes.

Runs in worker processes, a chunk of files at a time (inspect_files: each file read and
decoded alone, then the chunk's hashes and quality measures computed together), so it is
self-contained and cheap: the file is read once;
sha256 and the structural walk run over those bytes; Pillow decodes them fully
(for JPEG through `draft()`, which still entropy-decodes every block, so truncation
and corrupt data are found, but skips most of the inverse DCT and colour work).

A colour JPEG is decoded to YCbCr at that scale (draft("YCbCr")): its Y plane is byte
for byte the grayscale plane draft("L") gave before (checked on 306 JPEGs: every pixel
and every hash identical), so the hashes are unchanged, and Cb/Cr feed the colour
measures of audit.measures at almost no cost (the entropy decode, which dominates, is
paid either way). The quality measures are taken on that same decode: no second one.

The pHash of a JPEG is computed on that reduced grayscale decode, so it is not
imagehash's hash of the full decode: on 200 generated JPEGs, 128 differ, by 1.89 bits
on average and at most 10 (see audit.hashing for the measurement and its command).

Decisions (which issue codes apply) are not made here: see audit.checks.integrity.
"""

from __future__ import annotations

import hashlib
import io
import mmap
import os
import stat
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from audit import containers, formats, hashing, measures
from audit.dataset import FileEntry

# Files above this size are memory-mapped rather than read into memory.
_MMAP_ABOVE_BYTES = 64 * 1024 * 1024
# Pillow's own decompression-bomb check is replaced by audit's --max-pixels limit,
# which is applied before any decode; Pillow's would raise before we could report.
Image.MAX_IMAGE_PIXELS = None


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything observed about one file, before any judgement."""

    relpath: str
    label: str
    bytes: int = 0
    mtime_ns: int = 0
    read_error: str | None = None  # why the file could not be read at all
    container: str | None = None  # formats.Container.name from the magic bytes
    format: str = ""  # Pillow's format name, '' when Pillow could not open it
    mode: str = ""
    width: int | None = None
    height: int | None = None
    open_error: str | None = None  # Pillow could not even parse the header
    decode_error: str | None = None  # the header parsed, the pixel data did not decode
    decoded: bool = False  # pixels fully decoded
    structure: containers.Structure = containers.UNCHECKED
    orientation: int | None = None  # EXIF orientation tag, when present
    jfif_in_peek: bool = False  # b"JFIF" in what the Keras tutorial's peek(10) returns
    sha256: str = ""
    phash: int | None = None  # 64-bit pHash; None when the pixels were not decoded
    phash_zoom: tuple[int, ...] = ()  # pHashes of the centred crops (hashing.ZOOMS)
    measures: measures.Measures | None = None  # quality measures; None when not decoded

    @property
    def pixels(self) -> int | None:
        """Pixel count from the header, when known."""
        if self.width is None or self.height is None:
            return None
        return self.width * self.height


def regular_file_problem(path: str) -> str | None:
    """Why path cannot be read as a regular file (broken link, FIFO...), or None."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return "broken symlink: its target does not exist"
        return "the file vanished during the scan"
    except OSError as error:
        return f"cannot stat: {error.strerror or error}"
    if stat.S_ISREG(info.st_mode):
        return None
    if stat.S_ISFIFO(info.st_mode):
        kind = "a FIFO"
    elif stat.S_ISSOCK(info.st_mode):
        kind = "a socket"
    else:
        kind = "a device or special file"
    return f"not a regular file ({kind}); not opened"


def inspect_file(entry: FileEntry, max_pixels: int) -> Facts:
    """Observe one file; never raises for anything the file itself contains."""
    (facts,) = inspect_files([entry], max_pixels)
    if isinstance(facts, Exception):
        raise facts
    return facts


def inspect_files(entries: list[FileEntry], max_pixels: int) -> list[Facts | Exception]:
    """Observe a chunk of files, in order: each file is read and decoded on its own, then
    the hashes and quality measures of all decoded files are computed together.

    Together, because at the scan's decode size (a JPEG's 1/8 scale, ~60x45 px) each
    file's numpy calls cost as much as their arithmetic: one call per chunk instead.
    A file's values do not depend on the chunk it is in (audit.hashing, audit.measures).
    In place of a file's Facts: the Exception that a bug of ours raised while observing
    it (never one for what the file contains); the other files are unaffected.
    """
    observed: list[dict[str, Any] | Exception] = []
    # One redirection of fd 2 for the chunk (7 us a file when made for each).
    with c_stderr_silenced():
        for entry in entries:
            try:
                observed.append(_observe(entry, max_pixels))
            except Exception as error:
                observed.append(error)
    _hash_and_measure([fields for fields in observed if isinstance(fields, dict)])
    return [fields if isinstance(fields, Exception) else Facts(**fields) for fields in observed]


def _observe(entry: FileEntry, max_pixels: int) -> dict[str, Any]:
    """The Facts fields of one file, with its pixels for _hash_and_measure."""
    problem = regular_file_problem(entry.path)
    if problem is not None:
        return {"relpath": entry.relpath, "label": entry.label, "read_error": problem}
    try:
        with open(entry.path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if info.st_size > _MMAP_ABOVE_BYTES:
                with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                    return _inspect_bytes(entry, data, info, max_pixels)
            return _inspect_bytes(entry, handle.read(), info, max_pixels)
    except OSError as error:
        return {
            "relpath": entry.relpath,
            "label": entry.label,
            "read_error": f"cannot read: {error.strerror or error}",
        }


def _hash_and_measure(observed: list[dict[str, Any]]) -> None:
    """Replace the pixels _decode_once kept of each decoded file by its pHash, variant
    hashes and quality measures, computed for all files at once."""
    decoded = [fields for fields in observed if "_pixels" in fields]
    if decoded:
        samples, grids = zip(*(fields.pop("_pixels") for fields in decoded), strict=True)
        for fields, full, variants in zip(
            decoded,
            hashing.phashes(np.stack(samples)),
            hashing.variant_hashes(np.stack(grids)),
            strict=True,
        ):
            fields["phash"], fields["phash_zoom"] = full, variants
    viewed = [fields for fields in observed if fields.get("_view") is not None]
    views = [fields.pop("_view") for fields in viewed]
    for fields, value in zip(viewed, _measures_of(views), strict=True):
        fields["measures"] = value
    for fields in observed:
        fields.pop("_view", None)


def _inspect_bytes(entry: FileEntry, data, info: os.stat_result, max_pixels: int) -> dict[str, Any]:
    size = len(data)
    common: dict[str, Any] = {
        "relpath": entry.relpath,
        "label": entry.label,
        "bytes": size,
        "mtime_ns": info.st_mtime_ns,
        "sha256": hashlib.sha256(data).hexdigest(),
        # The Keras tutorial tests b"JFIF" in fobj.peek(10); peek returns the whole
        # first buffer (st_blksize bytes), so that is what is searched here too.
        "jfif_in_peek": b"JFIF" in data[: info.st_blksize if info.st_blksize > 1 else 8192],
    }
    container = formats.sniff(bytes(data[:64]))
    if container is None:  # sniff knows every non-empty head; None means no bytes at all
        return common
    structure = containers.walk(container.name, data)
    decode = _decode(data, structure, max_pixels)  # fd 2 silenced by inspect_files
    structure = decode.pop("structure", structure)
    return {**common, "container": container.name, "structure": structure, **decode}


# The scan table stores sizes as int32; no decoder TensorFlow uses reads a larger side
# (JPEG and GIF sides are 16-bit, PNG's at most 2**31 - 1, BMP's a signed int32).
_MAX_SIDE = 2**31 - 1


def _decode(data, structure: containers.Structure, max_pixels: int) -> dict[str, Any]:
    """Open and fully decode with Pillow; returns the Facts fields it observed
    (and "structure" when the decoded pixels add a finding to the walk's)."""
    source = _without_ranges(data, structure.skip_ranges) if structure.skip_ranges else data
    observed = _decode_with_pillow(source, structure, max_pixels)
    failed = "open_error" in observed or "decode_error" in observed
    if failed and structure.fallback_ranges:
        # libpng only warns about what it cannot use in ancillary chunks, and TF decodes
        # (probed on TF 2.21: a short tRNS or gAMA, a zTXt inflating past Pillow's
        # MAX_TEXT_CHUNK, APNG frames out of sequence). Judge the pixels without them.
        retry = _decode_with_pillow(
            _without_ranges(data, structure.fallback_ranges), structure, max_pixels
        )
        if retry.get("decoded"):
            observed = retry
    if "width" not in observed and structure.size is not None:
        observed["width"], observed["height"] = structure.size  # as TensorFlow reads them
    return observed


def _decode_with_pillow(data, structure: containers.Structure, max_pixels: int) -> dict[str, Any]:
    observed = _decode_once(data, structure, max_pixels, colour=True)
    if observed.get("_colour_refused"):
        # libjpeg refuses YCbCr output for a JPEG stored in RGB (Adobe transform 0): decode
        # it in RGB, once, for the measures; its grayscale is libjpeg's draft("L") plane.
        observed = _decode_once(data, structure, max_pixels, colour=False)
    observed.pop("_colour_refused", None)
    return observed


def _decode_once(
    data, structure: containers.Structure, max_pixels: int, colour: bool
) -> dict[str, Any]:
    if isinstance(data, bytes):
        stream = io.BytesIO(data)
    else:  # an mmap: read from its start (a retry reads it again)
        data.seek(0)
        stream = data
    observed: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's EXIF/palette chatter is not a finding
        try:
            image = Image.open(stream)
        except UnidentifiedImageError:
            return {"open_error": "Pillow does not recognise the data"}
        except Exception as error:  # any parser error on hostile bytes is a finding
            return {"open_error": _describe(error)}
        with image:
            if not (0 <= image.width <= _MAX_SIDE and 0 <= image.height <= _MAX_SIDE):
                # Never a value for the table: a side past int32 is a broken header.
                return {
                    "format": image.format or "",
                    "mode": image.mode,
                    "open_error": f"the header declares {image.width:,}x{image.height:,} "
                    "pixels, a side beyond what any decoder TensorFlow uses can hold",
                }
            observed.update(
                format=image.format or "", mode=image.mode, width=image.width, height=image.height
            )
            observed["orientation"] = _orientation(image)
            if image.width * image.height > max_pixels:
                return observed  # a decompression bomb is never decoded
            ycbcr = False
            try:
                if image.format == "JPEG":
                    # Smallest JPEG scale that still gives >= 32 px for the 32x32 pHash
                    # (the hash then differs from a full decode's: see audit.hashing).
                    # YCbCr only changes the output of a colour JPEG (mode RGB): its Y
                    # plane is what "L" gave; other JPEGs decode as with "L". A JPEG
                    # stored in RGB (colour=False, after libjpeg refused YCbCr) decodes
                    # in RGB: Pillow's RGB -> L is libjpeg's RGB -> gray (the same
                    # fixed-point weights and rounding; byte for byte on 42 such files,
                    # tests/test_quality.py), so its hashes are those of draft("L").
                    ycbcr = colour and image.mode == "RGB"
                    stored_rgb = not colour and image.mode == "RGB"
                    image.draft("YCbCr" if ycbcr else "RGB" if stored_rgb else "L", (32, 32))
                try:
                    with strict_decoding(), nested_images_limited(max_pixels):
                        image.load()
                except Exception:
                    if ycbcr:
                        return {"_colour_refused": True}
                    raise
                if structure.first_frame is not None:
                    checked = containers.check_first_frame(structure, image)
                    if checked is not structure:
                        observed["structure"] = checked
                # One grayscale plane for both hashes (each would convert otherwise).
                if image.mode == "YCbCr":
                    plane = image.getchannel(0)
                else:
                    plane = hashing.grayscale(image)
                # What the hashes need, small: computed with the chunk's (inspect_files).
                observed["_pixels"] = (hashing.sample(plane), hashing.grid(plane))
                observed["decoded"] = True
            except Exception as error:
                observed["decode_error"] = _describe(error)
                return observed
            observed["_view"] = _view_of(image)
    return observed


def _view_of(image: Image.Image) -> Image.Image | None:
    """The small view the quality measures are taken on (at most 64 px a side: held for
    the chunk), or None if making it fails (never a finding: the decode succeeded)."""
    try:
        view = measures.view_image(image)
    except Exception:
        return None
    return view.copy() if view is image else view  # the image is closed after this


def _measures_of(views: list[Image.Image]) -> list[measures.Measures | None]:
    """The quality measures of each view; None for one whose measuring fails."""
    try:
        return measures.measure_many(views)
    except Exception:  # find the one that fails: the others keep their values
        values: list[measures.Measures | None] = []
        for view in views:
            try:
                values.append(measures.measure(view))
            except Exception:
                values.append(None)
        return values


# Pillow decodes a truncated file without complaint while the process-wide
# ImageFile.LOAD_TRUNCATED_IMAGES is set. Thumbnails set it (to show what decodes); a scan
# in the same process (the app, one job) must never see it set: both switch it under
# this lock. Seen: a truncated JPEG judged decodable while another thread drew thumbnails.
TRUNCATION_SWITCH = threading.Lock()


@contextmanager
def strict_decoding() -> Iterator[None]:
    """Decode with truncation as an error, whatever other threads want."""
    with TRUNCATION_SWITCH:
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


@contextmanager
def lenient_decoding() -> Iterator[None]:
    """Decode what a truncated file holds (for a picture of it, never for a judgement)."""
    with TRUNCATION_SWITCH:
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


@contextmanager
def nested_images_limited(max_pixels: int) -> Iterator[None]:
    """Pillow's own bomb check, at the scan's limit, for images nested in the file.

    The file's own size is checked before any decode (MAX_IMAGE_PIXELS is None for that),
    but an ICNS or ICO opens its members while it loads: Pillow's oom-8ed3316a...icns
    declares 256x256 and holds a member of 259,634,678,784 pixels, which took 8.2 GB and
    12 s to refuse, and once got a scan OOM-killed. Pillow raises past twice the value.
    Runs inside strict_decoding(), whose lock every decode in this process holds.
    """
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max(1, max_pixels // 2)
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


# C libraries write warnings straight to file descriptor 2, past Python (libtiff:
# "tempfile.tif: WEBP compression support is not configured."; a scan of Pillow's test
# TIFFs printed them among its own lines). While Pillow reads a file, fd 2 is /dev/null:
# the file's problems reach the report through its record, never through the terminal.
# Process-wide, so counted: the first decoding thread redirects, the last one restores;
# Python's own stderr (the progress bar, drawn between files) is untouched outside.
_STDERR_SWITCH = threading.Lock()
_stderr_users = 0
_saved_stderr: int | None = None


@contextmanager
def c_stderr_silenced() -> Iterator[None]:
    """Send what is written to file descriptor 2 to /dev/null for the duration."""
    global _stderr_users, _saved_stderr
    with _STDERR_SWITCH:
        if _stderr_users == 0:
            _saved_stderr = _redirect_fd2()
        _stderr_users += 1
    try:
        yield
    finally:
        with _STDERR_SWITCH:
            _stderr_users -= 1
            if _stderr_users == 0 and _saved_stderr is not None:
                _flush_python_stderr()  # what Python wrote meanwhile goes to /dev/null too
                os.dup2(_saved_stderr, 2)
                os.close(_saved_stderr)
                _saved_stderr = None


def _redirect_fd2() -> int | None:
    """Point fd 2 at /dev/null; the saved descriptor, or None when there is no fd 2."""
    _flush_python_stderr()
    try:
        saved = os.dup(2)
    except OSError:  # fd 2 closed: nothing reaches a terminal anyway
        return None
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        os.close(saved)
        return None
    os.dup2(devnull, 2)
    os.close(devnull)
    return saved


def _flush_python_stderr() -> None:
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):  # None, closed or detached
        pass


def _orientation(image: Image.Image) -> int | None:
    if "exif" not in image.info and image.format not in ("TIFF", "MPO"):
        return None
    try:
        value = image.getexif().get(0x0112)
    except Exception:  # corrupt EXIF is ignored here as it is by TensorFlow
        return None
    return int(value) if isinstance(value, int) else None


def _without_ranges(data, ranges: tuple[tuple[int, int], ...]) -> bytes:
    parts, start = [], 0
    for begin, end in ranges:
        parts.append(data[start:begin])
        start = end
    parts.append(data[start:])
    return b"".join(parts)


def _describe(error: BaseException) -> str:
    message = str(error).strip() or type(error).__name__
    return message.splitlines()[0][:200]
