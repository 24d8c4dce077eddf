"""Walk an image container's structure: where its data ends, and whether it is whole.

A full decode says whether Pillow can read a file, but TensorFlow is stricter in some
places and more lenient in others (measured on TF 2.21; each rule below names its probe):

* a JPEG without its end-of-image marker fails in TF, even when only that marker is cut;
* a PNG without IEND, or with a CRC error in a critical chunk, fails in TF (libpng)
  while Pillow decodes it; a CRC error in an ancillary chunk fails in Pillow, not in TF;
  libpng also refuses what Pillow lets pass in the critical chunks (IHDR not first or
  twice, an unknown critical chunk, a palette image without a valid PLTE before IDAT,
  a side over libpng's default limit of 1,000,000 pixels) and ignores what Pillow
  refuses in the ancillary ones (short tRNS/gAMA, a text chunk that inflates past
  Pillow's limit, APNG frame chunks out of sequence);
* a BMP must be 8, 24 or 32 bits per pixel, under 2**28 pixels, and end exactly after
  its pixel rows, otherwise TF rejects it; TF reads nothing else of the header (no
  palette, no bit masks, no header type), so a BMP that passes decodes in TF whatever
  Pillow makes of its palette or masks;
* a GIF is read by giflib, whose errors after the first frame is complete are only
  logged: a GIF without its trailer, or with broken later frames, decodes in TF; the
  first frame needs a colour table, an LZW code size of at most 8 and colour indices
  inside its table.

The walkers here reproduce those rules from the bytes alone, cheaply (a regular
expression finds the end of JPEG entropy-coded data; chunk lengths are jumped over).
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, replace

# Inside JPEG entropy-coded data 0xFF is followed by 0x00 (stuffing), a restart marker
# (0xD0-0xD7) or more 0xFF fill bytes; anything else is the next marker.
_NEXT_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_SOF = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


@dataclass(frozen=True, slots=True)
class FirstFrame:
    """What TensorFlow checks of a GIF's first frame once its pixels are decoded."""

    box: tuple[int, int, int, int]  # left, top, right, bottom on the logical screen
    colours: int  # entries in the colour table the frame uses (local, else global)
    transparent: int | None  # the transparent index of giflib's graphics control block


@dataclass(frozen=True, slots=True)
class Structure:
    """What the structural walk found.

    end: offset just past the image data's end marker, None when none was found.
    truncated: the bytes ran out inside an otherwise well-formed structure.
    defect: a structural fault that makes TensorFlow reject the file (None if none).
    unsupported: a variant of the format that TensorFlow does not decode (None if none).
    trailing: bytes after `end` that matter (zero padding and declared appendices excluded).
    palette_ignored: an 8-bit BMP whose colour palette TensorFlow will not apply.
    bitfields_ignored: a 32-bit BMP whose bit masks TensorFlow will not apply (the masks).
    skip_ranges: byte ranges (ancillary PNG chunks with a bad CRC) that TensorFlow
        ignores but that make Pillow refuse the file; the decoder should not see them.
    fallback_ranges: byte ranges (every ancillary PNG chunk) to leave out in a second
        decode when Pillow refuses the file: libpng never fails on them.
    decides: the walk alone decides whether TensorFlow decodes the file (a BMP's pixel
        rows are copied as they are), so a Pillow failure does not make it undecodable.
    size: width and height as TensorFlow reads them from the header, when the walk knows.
    first_frame: for a GIF, what to check of its first frame's decoded colour indices.
    """

    end: int | None = None
    truncated: bool = False
    defect: str | None = None
    unsupported: str | None = None
    trailing: int = 0
    palette_ignored: bool = False
    bitfields_ignored: str | None = None
    skip_ranges: tuple[tuple[int, int], ...] = ()
    fallback_ranges: tuple[tuple[int, int], ...] = ()
    decides: bool = False
    size: tuple[int, int] | None = None
    first_frame: FirstFrame | None = None


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


# libpng's default user limits (PNG_USER_WIDTH_MAX, PNG_USER_HEIGHT_MAX), which TF keeps:
# a PNG 1,000,000 pixels wide decodes in TF 2.21, one 1,000,001 wide fails (probed).
PNG_MAX_SIDE = 1_000_000
# Bit depths libpng allows per colour type (png_check_IHDR); others fail in TF and Pillow.
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


def walk_png(data) -> Structure:
    """Walk PNG chunks to IEND, checking CRCs and the critical chunks as libpng does.

    Probed on TF 2.21, each a failure in TF that Pillow decodes: a first chunk other
    than IHDR, a second IHDR, an IHDR not 13 bytes long, a compression method other
    than 0, an unknown critical chunk (CgBI included), a palette image whose PLTE is
    missing, empty, not a multiple of 3, over 256 entries, given twice or after IDAT.
    A PLTE problem in a non-palette image, and everything in ancillary chunks, is only
    a warning to libpng (TF decodes).
    """
    size = len(data)
    view = memoryview(data)
    pos = 8
    skip: list[tuple[int, int]] = []
    ancillary: list[tuple[int, int]] = []
    colour_type: int | None = None
    palettes = 0
    idat_seen = False
    unsupported: str | None = None

    def ran_out() -> Structure:
        return Structure(truncated=True, skip_ranges=tuple(skip), fallback_ranges=tuple(ancillary))

    while True:
        if pos + 8 > size:
            return ran_out()
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunk_type = bytes(data[pos + 4 : pos + 8])
        if not chunk_type.isalpha() or length > 0x7FFFFFFF:
            return Structure(defect=f"malformed PNG chunk header at byte {pos}")
        chunk_end = pos + 12 + length
        if chunk_end > size:
            return ran_out()
        name = chunk_type.decode("ascii")
        critical = chunk_type[0:1].isupper()
        stored_crc = int.from_bytes(data[chunk_end - 4 : chunk_end], "big")
        if zlib.crc32(view[pos + 4 : chunk_end - 4]) != stored_crc:
            if critical:  # libpng stops
                return Structure(defect=f"CRC error in the critical {name} chunk at byte {pos}")
            skip.append((pos, chunk_end))  # ancillary: libpng warns and skips it
        if pos == 8 and chunk_type != b"IHDR":
            return Structure(defect=f"the first PNG chunk is {name}, not IHDR")
        if chunk_type == b"IHDR":
            if pos != 8:
                return Structure(defect=f"a second IHDR chunk at byte {pos}")
            if length != 13:
                return Structure(defect=f"the IHDR chunk is {length} bytes long, not 13")
            width, height, depth, colour_type, compression, filtering, interlace = (
                struct.unpack_from(">IIBBBBB", data, pos + 8)
            )
            problem = _png_header_problem(
                width, height, depth, colour_type, compression, filtering, interlace
            )
            if problem:
                return Structure(defect=problem)
            if width > PNG_MAX_SIDE or height > PNG_MAX_SIDE:
                unsupported = (
                    f"a {width:,}x{height:,} PNG; TensorFlow's PNG decoder (libpng) refuses "
                    f"a side over {PNG_MAX_SIDE:,} pixels"
                )
        elif chunk_type == b"PLTE":
            if colour_type == 3:
                if palettes or idat_seen:
                    where = "after the image data" if idat_seen else "twice"
                    return Structure(defect=f"the PLTE chunk of a palette PNG comes {where}")
                if length == 0 or length % 3 or length > 768:
                    return Structure(
                        defect=f"the PLTE chunk of a palette PNG is {length} bytes long "
                        "(3 bytes an entry, 1 to 256 entries)"
                    )
            palettes += 1
        elif chunk_type == b"IDAT":
            if colour_type == 3 and not palettes:
                return Structure(defect="a palette PNG without a PLTE chunk before its data")
            idat_seen = True
        elif chunk_type == b"IEND":
            if not idat_seen:
                return Structure(defect="the PNG has no IDAT chunk (no image data)")
            return Structure(
                end=chunk_end,
                trailing=_meaningful_trailing(data, chunk_end),
                unsupported=unsupported,
                skip_ranges=tuple(skip),
                fallback_ranges=tuple(ancillary),
            )
        elif critical:
            return Structure(
                defect=f"unknown critical PNG chunk {name} at byte {pos}; libpng stops there"
            )
        else:
            ancillary.append((pos, chunk_end))
        pos = chunk_end


def _png_header_problem(
    width: int,
    height: int,
    depth: int,
    colour_type: int,
    compression: int,
    filtering: int,
    interlace: int,
) -> str | None:
    """What png_check_IHDR refuses in the header, or None."""
    if not (0 < width <= 0x7FFFFFFF and 0 < height <= 0x7FFFFFFF):
        return f"the PNG header gives an impossible size {width}x{height}"
    if depth not in _PNG_DEPTHS.get(colour_type, ()):
        return f"the PNG header gives an invalid colour type {colour_type} with depth {depth}"
    if compression != 0 or filtering != 0 or interlace not in (0, 1):
        return (
            f"the PNG header gives an unknown compression ({compression}), filter "
            f"({filtering}) or interlace ({interlace}) method"
        )
    return None


# giflib's largest LZW minimum code size: 9 to 12 fail in TF ("Failed to read from
# given file") while Pillow decodes them (probed on TF 2.21 with literal-code streams).
GIF_MAX_CODE_SIZE = 8


def walk_gif(data) -> Structure:
    """Walk GIF blocks as giflib's DGifSlurp reads them for TensorFlow.

    TensorFlow keeps only the first frame (expand_animations=False) and only logs an
    error that giflib meets after that frame is complete: the trailer, later frames and
    junk after the first frame do not matter (probed on TF 2.21). Up to the end of the
    first frame everything must be well formed, including its last, empty sub-block.
    """
    size = len(data)
    if size < 13:
        return Structure(truncated=True)
    flags = data[10]
    global_colours = 2 << (flags & 7) if flags & 0x80 else 0
    pos = 13 + 3 * global_colours
    transparent: int | None = None
    control_seen = False
    quirk_at: int | None = None  # an extension whose first sub-block is empty

    def broken(reason: str | None) -> Structure:
        if quirk_at is not None:
            reason = (
                f"the extension at byte {quirk_at} has an empty first sub-block; giflib "
                "(TensorFlow) then reads the bytes after it as more extension data"
            )
        return Structure(truncated=True) if reason is None else Structure(defect=reason)

    while pos < size:
        block = data[pos]
        if block == 0x21:  # extension: label byte, then sub-blocks
            if pos + 2 >= size:
                return broken(None)
            label, first = data[pos + 1], data[pos + 2]
            if label == 0xF9 and first and not control_seen:
                # giflib takes the first graphics control block; a transparent index only
                # from one of exactly 4 bytes with the transparency flag set.
                control_seen = True
                if first == 4 and pos + 7 <= size and data[pos + 3] & 1:
                    transparent = data[pos + 6]
            pos = _skip_gif_sub_blocks(data, pos + 2)
            if first == 0 and pos <= size:
                # DGifSlurp asks for the next sub-block even when the first one ended the
                # extension: the bytes after it are read as sub-blocks too. TF fails on
                # `21 FE 00` before the image, decodes `21 FE 00 00` (probed).
                extension_at, pos = pos - 3, _skip_gif_sub_blocks(data, pos)
                if pos - extension_at > 4 and quirk_at is None:
                    quirk_at = extension_at
            if pos > size:
                return broken(None)
        elif block == 0x2C:  # image descriptor, optional local colour table, LZW data
            if pos + 10 > size:
                return broken(None)
            left, top, width, height = struct.unpack_from("<HHHH", data, pos + 1)
            local = data[pos + 9]
            colours = 2 << (local & 7) if local & 0x80 else global_colours
            pos += 10 + (3 * (2 << (local & 7)) if local & 0x80 else 0)
            if pos >= size:
                return broken(None)
            code_size = data[pos]
            pos = _skip_gif_sub_blocks(data, pos + 1)
            if width == 0 or height == 0:
                return broken(f"the first GIF frame has an impossible size {width}x{height}")
            if colours == 0:  # TF: "missing color map for frame 0"
                return broken("the first GIF frame has no colour table (local or global)")
            if code_size > GIF_MAX_CODE_SIZE:
                return broken(
                    f"the first GIF frame's LZW code size is {code_size}; giflib "
                    f"(TensorFlow) reads at most {GIF_MAX_CODE_SIZE}"
                )
            if pos > size:
                return broken(None)
            frame = FirstFrame((left, top, left + width, top + height), colours, transparent)
            return _gif_after_first_frame(data, pos, frame)
        elif block == 0x3B:  # TF: "gif file does not contain any image"
            return broken(f"the GIF ends (trailer at byte {pos}) before any image")
        else:  # giflib: "Wrong record type detected"
            return broken(f"unknown GIF block 0x{block:02X} at byte {pos}")
    return broken(None)


def _gif_after_first_frame(data, pos: int, frame: FirstFrame) -> Structure:
    """Find the trailer after a whole first frame; nothing here fails in TensorFlow."""
    size = len(data)
    while pos < size:
        block = data[pos]
        if block == 0x3B:
            return Structure(
                end=pos + 1, trailing=_meaningful_trailing(data, pos + 1), first_frame=frame
            )
        if block == 0x21:
            pos = _skip_gif_sub_blocks(data, pos + 2)
        elif block == 0x2C and pos + 10 <= size:
            local = data[pos + 9]
            pos += 10 + (3 * (2 << (local & 7)) if local & 0x80 else 0)
            pos = _skip_gif_sub_blocks(data, pos + 1)
        else:
            break  # junk after a complete first image: decoders stop there
    return Structure(first_frame=frame)


def check_first_frame(structure: Structure, image) -> Structure:
    """Apply TF's colour-index rule to a GIF's decoded first frame (a Pillow image).

    TF 2.21 fails with "found color index N outside of color map range M" when a pixel
    of the first frame indexes past its colour table, unless that index is the
    transparent one (probed: index 4 of 4 colours fails, passes when 4 is transparent).
    Pillow keeps the raw indices of the first frame (mode P, or L for a gray palette).
    """
    frame = structure.first_frame
    if frame is None or frame.colours >= 256 or image.mode not in ("P", "L"):
        return structure
    left, top, right, bottom = frame.box
    box = (
        min(left, image.width),
        min(top, image.height),
        min(right, image.width),
        min(bottom, image.height),
    )
    histogram = image.crop(box).histogram()
    outside = [
        index
        for index in range(frame.colours, 256)
        if histogram[index] and index != frame.transparent
    ]
    if not outside:
        return structure
    return replace(
        structure,
        defect=f"the first GIF frame uses colour index {max(outside)} but its colour table "
        f"has {frame.colours} entries",
    )


def _skip_gif_sub_blocks(data, pos: int) -> int:
    size = len(data)
    while pos < size:
        length = data[pos]
        pos += 1
        if length == 0:
            return pos
        pos += length
    return size + 1  # ran out: the caller sees pos >= size


# TF's BMP decoder requires width * |height| < int32 max / 8 ("Total possible pixel bytes
# must be less than 2^30"): 268,435,455 pixels fail, 268,435,454 pass (probed on TF 2.21).
BMP_MAX_PIXELS = 0x7FFFFFFF // 8 - 1
# The masks under which TF's reading of 32-bit rows (bytes B, G, R, A) gives true colours.
_BMP_STANDARD_MASKS = (0x00FF0000, 0x0000FF00, 0x000000FF)


def walk_bmp(data) -> Structure:
    """Apply TensorFlow's BMP rules (DecodeBmpV2 in decode_image_op.cc) to the header.

    TF reads four fields (pixel-data offset, width, height, bits per pixel), checks them
    and the file size, then copies the pixel rows as they are. It ignores the header
    type and size, the compression field, the palette and the bit masks: 32-bit
    BI_BITFIELDS and BI_ALPHABITFIELDS files, 8-bit files with no, short, oversized or
    absurdly declared palettes, and OS/2 2.x 16-byte headers all decode in TF 2.21 while
    Pillow refuses them (probed). So when these rules pass, the file decodes in TF.
    """
    size = len(data)
    if size < 34:
        return Structure(truncated=True)
    pixel_offset, dib_size = struct.unpack_from("<iI", data, 10)
    width, height = struct.unpack_from("<ii", data, 18)
    bits, compression = struct.unpack_from("<hI", data, 28)
    if dib_size == 12:
        # The OS/2 1.x header holds 16-bit sizes: TF reads width and height across them.
        return Structure(unsupported="an OS/2 BMP (12-byte header), which TensorFlow misreads")
    channels = int(bits / 8)  # C's division, as TF computes it
    if channels not in (1, 3, 4):
        return Structure(
            unsupported=f"a {bits}-bit BMP; TensorFlow reads only 8, 24 and 32-bit BMPs"
        )
    if compression in (1, 2, 4, 5):
        # TF ignores the field and reads the compressed bytes as rows: it fails on the
        # size, or (when the sizes happen to match) decodes noise. Never the picture.
        kind = {1: "RLE8", 2: "RLE4", 4: "JPEG", 5: "PNG"}[compression]
        return Structure(
            unsupported=f"a {kind}-compressed BMP; TensorFlow reads only uncompressed BMPs"
        )
    if width <= 0 or height == 0:
        return Structure(defect=f"BMP header gives an impossible size {width}x{height}")
    if pixel_offset < 0:
        return Structure(defect=f"BMP header gives a negative pixel-data offset {pixel_offset}")
    if width * abs(height) > BMP_MAX_PIXELS:
        return Structure(
            unsupported=f"a {width:,}x{abs(height):,} BMP; TensorFlow's BMP decoder refuses "
            f"more than {BMP_MAX_PIXELS:,} pixels"
        )
    row_bytes = (channels * width + 3) // 4 * 4
    expected = pixel_offset + row_bytes * abs(height)
    if size < expected:
        return Structure(truncated=True)
    palette_ignored = channels == 1 and not _bmp_palette_is_identity_gray(
        data, 14 + dib_size, pixel_offset
    )
    bitfields = _bmp_masks_ignored(data, compression) if channels == 4 else None
    if size > expected:
        return Structure(
            end=expected,
            trailing=size - expected,
            unsupported=(
                f"{size - expected:,} bytes follow the BMP pixel rows; TensorFlow's BMP "
                "decoder requires the file to end exactly after them"
            ),
            palette_ignored=palette_ignored,
            bitfields_ignored=bitfields,
        )
    return Structure(
        end=expected,
        palette_ignored=palette_ignored,
        bitfields_ignored=bitfields,
        decides=True,
        size=(width, abs(height)),
    )


def _bmp_masks_ignored(data, compression: int) -> str | None:
    """The red, green and blue masks of a 32-bit bit-field BMP when TF's byte order
    does not match them (its colours come out wrong), else None."""
    if compression not in (3, 6) or len(data) < 66:
        return None
    masks = struct.unpack_from("<III", data, 54)
    if masks == _BMP_STANDARD_MASKS:
        return None
    return "red, green, blue masks " + ", ".join(f"0x{mask:08X}" for mask in masks)


def _bmp_palette_is_identity_gray(data, start: int, stop: int) -> bool:
    """True when palette entry i is gray level i, so ignoring the palette changes nothing."""
    palette = bytes(data[start:stop])
    for index in range(len(palette) // 4):
        blue, green, red = palette[4 * index : 4 * index + 3]
        if not blue == green == red == index:
            return False
    return True


def walk_webp(data) -> Structure:
    """Check the RIFF length of a WebP file against its size, and what TF refuses in it.

    TF's WebP decoder requires the channels asked for to match the file's: Keras's
    loader asks for 3 (color_mode "rgb"), so a WebP with alpha (the VP8X alpha flag, an
    ALPH chunk, or VP8L's alpha bit) fails ("Number of channels requested does not match
    input"), and so does an animated one ("WebP Animation must be 4 channel RGBA");
    Pillow decodes both. Probed on TF 2.21, Pillow's own test WebPs among them.
    """
    size = len(data)
    if size < 12:
        return Structure(truncated=True)
    riff_length = int.from_bytes(data[4:8], "little")
    end = 8 + riff_length + (riff_length & 1)
    if size < end:
        return Structure(truncated=True)
    alpha, animated = _webp_alpha_and_animation(data, end)
    unsupported = None
    if animated:
        unsupported = (
            "an animated WebP; TensorFlow decodes those only as 4-channel RGBA, and "
            "Keras's loader asks for 3 channels"
        )
    elif alpha:
        unsupported = (
            "a WebP with an alpha channel; TensorFlow's WebP decoder refuses the 3 "
            "channels Keras's loader asks for"
        )
    return Structure(end=end, trailing=_meaningful_trailing(data, end), unsupported=unsupported)


def _webp_alpha_and_animation(data, end: int) -> tuple[bool, bool]:
    """(has alpha, is animated) as libwebp's WebPGetFeatures reports them."""
    first = bytes(data[12:16])
    if first == b"VP8L" and end >= 25:
        return bool(int.from_bytes(data[21:25], "little") >> 28 & 1), False
    if first != b"VP8X" or end < 21:
        return False, False
    flags = data[20]
    alpha, animated = bool(flags & 0x10), bool(flags & 0x02)
    pos = 12
    while not alpha and pos + 8 <= end:  # an ALPH chunk gives alpha whatever the flags say
        if data[pos : pos + 4] == b"ALPH":
            alpha = True
        length = int.from_bytes(data[pos + 4 : pos + 8], "little")
        pos += 8 + length + (length & 1)
    return alpha, animated


_WALKERS = {
    "jpeg": walk_jpeg,
    "png": walk_png,
    "gif": walk_gif,
    "bmp": walk_bmp,
    "webp": walk_webp,
}
