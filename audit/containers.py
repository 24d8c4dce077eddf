"""Walk an image container's structure: where its data ends, and whether it is whole.

A full decode says whether Pillow can read a file, but TensorFlow is stricter in some
places and more lenient in others (measured on TF 2.21):

* a JPEG without its end-of-image marker fails in TF, even when only that marker is cut;
* a PNG without IEND, or with a CRC error in a critical chunk, fails in TF (libpng)
  while Pillow decodes it; a CRC error in an ancillary chunk fails in Pillow, not in TF;
* a BMP must be 8, 24 or 32 bits per pixel and end exactly after its pixel rows,
  otherwise TF rejects it; TF also ignores the palette of an 8-bit BMP;
* a GIF without its trailer byte decodes in TF.

The walkers here reproduce those rules from the bytes alone, cheaply (a regular
expression finds the end of JPEG entropy-coded data; chunk lengths are jumped over).
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

# Inside JPEG entropy-coded data 0xFF is followed by 0x00 (stuffing), a restart marker
# (0xD0-0xD7) or more 0xFF fill bytes; anything else is the next marker.
_NEXT_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_SOF = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


@dataclass(frozen=True, slots=True)
class Structure:
    """What the structural walk found.

    end: offset just past the image data's end marker, None when none was found.
    truncated: the bytes ran out inside an otherwise well-formed structure.
    defect: a structural fault that makes TensorFlow reject the file (None if none).
    unsupported: a variant of the format that TensorFlow does not decode (None if none).
    trailing: bytes after `end` that matter (zero padding and declared appendices excluded).
    palette_ignored: an 8-bit BMP whose colour palette TensorFlow will not apply.
    skip_ranges: byte ranges (ancillary PNG chunks with a bad CRC) that TensorFlow
        ignores but that make Pillow refuse the file; the decoder should not see them.
    """

    end: int | None = None
    truncated: bool = False
    defect: str | None = None
    unsupported: str | None = None
    trailing: int = 0
    palette_ignored: bool = False
    skip_ranges: tuple[tuple[int, int], ...] = ()


UNCHECKED = Structure()


def walk(container: str | None, data) -> Structure:
    """Walk data (bytes or mmap) as the given container; formats without a walker pass."""
    walker = _WALKERS.get(container or "")
    return walker(data) if walker else UNCHECKED


def _meaningful_trailing(data, end: int) -> int:
    """Count of bytes after end, or 0 when they are only zero padding."""
    rest = len(data) - end
    if rest <= 0:
        return 0
    tail = data[end:]
    return rest if tail.strip(b"\x00") else 0


def walk_jpeg(data) -> Structure:
    """Follow JPEG markers as libjpeg reads them, to the end-of-image marker."""
    size = len(data)
    pos = 2
    sof_seen = 0
    has_mpf = False
    while True:
        if pos >= size:
            return Structure(truncated=True)
        if data[pos] != 0xFF:
            # libjpeg skips "extraneous bytes before marker" with a warning; so do we.
            pos = data.find(b"\xff", pos)
            if pos < 0:
                return Structure(truncated=True)
        while pos < size and data[pos] == 0xFF:
            pos += 1
        if pos >= size:
            return Structure(truncated=True)
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            trailing = _meaningful_trailing(data, pos)
            # Multi-Picture Format (phones, gain maps, 3D cameras) appends whole JPEGs
            # after the primary image by design: that is not stray data.
            if trailing and has_mpf and data[pos : pos + 3] == b"\xff\xd8\xff":
                trailing = 0
            return Structure(end=pos, trailing=trailing)
        if marker == 0xD8:
            return Structure(defect=f"a second start-of-image marker at byte {pos - 2}")
        if marker in _JPEG_STANDALONE or marker == 0x00:
            continue
        if 0x02 <= marker <= 0xBF:
            return Structure(defect=f"invalid JPEG marker 0xFF{marker:02X} at byte {pos - 2}")
        if pos + 2 > size:
            return Structure(truncated=True)
        length = (data[pos] << 8) | data[pos + 1]
        if length < 2:
            return Structure(
                defect=f"JPEG segment 0xFF{marker:02X} has an impossible length {length}"
            )
        segment_end = pos + length
        if segment_end > size:
            return Structure(truncated=True)
        if marker in _JPEG_SOF:
            sof_seen += 1
            if sof_seen > 1:
                return Structure(defect="two start-of-frame markers")
        elif marker == 0xE2 and data[pos + 2 : pos + 6] == b"MPF\x00":
            has_mpf = True
        pos = segment_end
        if marker == 0xDA:
            match = _NEXT_JPEG_MARKER.search(data, pos)
            if match is None:
                return Structure(truncated=True)
            pos = match.start()


def walk_png(data) -> Structure:
    """Walk PNG chunks to IEND, checking CRCs as libpng does."""
    size = len(data)
    view = memoryview(data)
    pos = 8
    skip: list[tuple[int, int]] = []
    while True:
        if pos + 8 > size:
            return Structure(truncated=True, skip_ranges=tuple(skip))
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunk_type = bytes(data[pos + 4 : pos + 8])
        if not chunk_type.isalpha() or length > 0x7FFFFFFF:
            return Structure(defect=f"malformed PNG chunk header at byte {pos}")
        chunk_end = pos + 12 + length
        if chunk_end > size:
            return Structure(truncated=True, skip_ranges=tuple(skip))
        stored_crc = int.from_bytes(data[chunk_end - 4 : chunk_end], "big")
        if zlib.crc32(view[pos + 4 : chunk_end - 4]) != stored_crc:
            name = chunk_type.decode("ascii")
            if chunk_type[0:1].isupper():  # critical chunk: libpng stops
                return Structure(defect=f"CRC error in the critical {name} chunk at byte {pos}")
            skip.append((pos, chunk_end))  # ancillary: libpng warns and skips it
        if chunk_type == b"IEND":
            return Structure(
                end=chunk_end,
                trailing=_meaningful_trailing(data, chunk_end),
                skip_ranges=tuple(skip),
            )
        pos = chunk_end


def walk_gif(data) -> Structure:
    """Walk GIF blocks to the trailer.

    TensorFlow decodes a GIF whose trailer, or whose later frames, are cut off; only a
    first image cut short is truncation.
    """
    size = len(data)
    if size < 13:
        return Structure(truncated=True)
    flags = data[10]
    pos = 13 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0)
    images = 0
    while pos < size:
        block = data[pos]
        if block == 0x3B:
            return Structure(end=pos + 1, trailing=_meaningful_trailing(data, pos + 1))
        if block == 0x21:  # extension: label byte, then sub-blocks
            pos = _skip_gif_sub_blocks(data, pos + 2)
        elif block == 0x2C:  # image descriptor, optional local colour table, LZW data
            if pos + 10 > size:
                break
            local = data[pos + 9]
            pos += 10 + (3 * (2 << (local & 7)) if local & 0x80 else 0)
            pos = _skip_gif_sub_blocks(data, pos + 1)
            if pos <= size:
                images += 1
        elif images:
            break  # junk after a complete first image: decoders stop there
        else:
            return Structure(defect=f"unknown GIF block 0x{block:02X} at byte {pos}")
    return Structure(truncated=images == 0)


def _skip_gif_sub_blocks(data, pos: int) -> int:
    size = len(data)
    while pos < size:
        length = data[pos]
        pos += 1
        if length == 0:
            return pos
        pos += length
    return size + 1  # ran out: the caller sees pos >= size


def walk_bmp(data) -> Structure:
    """Apply TensorFlow's BMP rules (decode_image_op.cc) to the header."""
    size = len(data)
    if size < 34:
        return Structure(truncated=True)
    pixel_offset, dib_size = struct.unpack_from("<II", data, 10)
    width, height = struct.unpack_from("<ii", data, 18)
    bits, compression = struct.unpack_from("<HI", data, 28)
    if dib_size == 12:
        return Structure(unsupported="an OS/2 BMP (12-byte header), which TensorFlow misreads")
    channels = bits // 8
    if channels not in (1, 3, 4):
        return Structure(
            unsupported=f"a {bits}-bit BMP; TensorFlow reads only 8, 24 and 32-bit BMPs"
        )
    if compression in (1, 2, 4, 5):
        kind = {1: "RLE8", 2: "RLE4", 4: "JPEG", 5: "PNG"}[compression]
        return Structure(
            unsupported=f"a {kind}-compressed BMP; TensorFlow reads only uncompressed BMPs"
        )
    if width <= 0 or height == 0:
        return Structure(defect=f"BMP header gives an impossible size {width}x{height}")
    row_bytes = (channels * width + 3) // 4 * 4
    expected = pixel_offset + row_bytes * abs(height)
    if size < expected:
        return Structure(truncated=True)
    palette_ignored = channels == 1 and not _bmp_palette_is_identity_gray(
        data, 14 + dib_size, pixel_offset
    )
    if size > expected:
        return Structure(
            end=expected,
            trailing=size - expected,
            unsupported=(
                f"{size - expected:,} bytes follow the BMP pixel rows; TensorFlow's BMP "
                "decoder requires the file to end exactly after them"
            ),
            palette_ignored=palette_ignored,
        )
    return Structure(end=expected, palette_ignored=palette_ignored)


def _bmp_palette_is_identity_gray(data, start: int, stop: int) -> bool:
    """True when palette entry i is gray level i, so ignoring the palette changes nothing."""
    palette = bytes(data[start:stop])
    for index in range(len(palette) // 4):
        blue, green, red = palette[4 * index : 4 * index + 3]
        if not blue == green == red == index:
            return False
    return True


def walk_webp(data) -> Structure:
    """Check the RIFF length of a WebP file against its size."""
    size = len(data)
    if size < 12:
        return Structure(truncated=True)
    riff_length = int.from_bytes(data[4:8], "little")
    end = 8 + riff_length + (riff_length & 1)
    if size < end:
        return Structure(truncated=True)
    return Structure(end=end, trailing=_meaningful_trailing(data, end))


_WALKERS = {
    "jpeg": walk_jpeg,
    "png": walk_png,
    "gif": walk_gif,
    "bmp": walk_bmp,
    "webp": walk_webp,
}
