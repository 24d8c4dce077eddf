"""Content hashes: sha256 of the bytes and a 64-bit perceptual hash (pHash) of the pixels.

The pHash follows the usual definition, the one imagehash uses: grayscale, resize to
32x32 with Lanczos, 2-D DCT-II, keep the 8x8 lowest frequencies, one bit per
coefficient: above the median or not. The bits, row-major with the first coefficient
most significant, make one unsigned 64-bit int; that int is what records, the scan
table and the search carry. Hex (16 lowercase characters) appears only in images.csv:
see to_hex, zoom_to_hex, from_hex.

Given the same decoded 8-bit image, phash equals imagehash.phash bit for bit (tested
on in-memory images and PNG files in RGB, L, RGBA and P, 32 to 640 px). 16-bit images
differ on purpose: grayscale() scales them to 8 bits where Pillow's convert clips.

The scan does not hash the same image as imagehash for JPEG files: audit.inspect
decodes them through Pillow's draft(), which scales down by up to 1/8 in the DCT
domain and decodes straight to grayscale, before the Lanczos resize. Measured on 200
generated photo-like JPEGs (48-640 px a side, quality 50-95, a quarter grayscale),
against imagehash.phash of the fully decoded file: 128 of 200 differ; the distance is
1.89 bits on average over all 200 (2.95 over the 128), at most 10. Distances are
even: the median split keeps 32 bits set, so bits flip in pairs. Command:
    .venv/bin/python -m pytest -q -s tests/test_hashing.py -k jpeg_draft
So a JPEG's hash matches imagehash's only within that noise. The near-duplicate
radius and bench/near_duplicates_quality.py were measured on the scan's own hashes
(files scanned, JPEGs through draft()), so the noise is inside their figures.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

HASH_SIZE = 8
_SAMPLE = HASH_SIZE * 4  # 32x32 input, as in imagehash.phash(highfreq_factor=4)

# Unnormalised DCT-II matrix (scipy.fftpack.dct's default): D @ X @ D.T is the 2-D DCT.
_n = np.arange(_SAMPLE)
_DCT = 2.0 * np.cos(np.pi * np.outer(_n, 2 * _n + 1) / (2 * _SAMPLE))
_DCT_LOW = np.ascontiguousarray(_DCT[:HASH_SIZE])  # only the 8 lowest frequencies are kept

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})


def grayscale(image: Image.Image) -> Image.Image:
    """An 8-bit grayscale view of any Pillow image (16-bit scaled, not clipped)."""
    if image.mode == "L":
        return image
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if values.max(initial=0) > 255 else 255.0
        return Image.fromarray(np.clip(values * (255.0 / peak), 0, 255).astype(np.uint8), "L")
    if image.mode in (
        "1",
        "P",
        "RGB",
        "RGBA",
        "LA",
        "CMYK",
        "YCbCr",
        "LAB",
        "HSV",
        "PA",
        "La",
        "RGBa",
    ):
        try:
            return image.convert("L")
        except ValueError:
            pass
    return image.convert("RGB").convert("L")


def phash(image: Image.Image) -> int:
    """64-bit perceptual hash of image, bit 63 the first (lowest-frequency) coefficient."""
    return phashes(np.stack([sample(image)]))[0]


def sample(image: Image.Image) -> np.ndarray:
    """The pHash's input: image in 8-bit grayscale, Lanczos-resized to 32x32 (uint8)."""
    small = grayscale(image)
    if small.size != (_SAMPLE, _SAMPLE):  # Pillow's resize to the same size is a copy
        small = small.resize((_SAMPLE, _SAMPLE), Image.Resampling.LANCZOS)
    return np.frombuffer(small.tobytes(), dtype=np.uint8).reshape(_SAMPLE, _SAMPLE)


def phashes(samples: np.ndarray) -> list[int]:
    """The pHash of each (32, 32) sample of samples (n, 32, 32), as phash gives it.

    One call for a batch of files: each file's own numpy calls cost more than their
    arithmetic at this size (the scan's workers hash a chunk of files at once). The
    products run slice by slice with the same operands as for one file, so a hash does
    not depend on the batch it was computed in (tests/test_hashing.py)."""
    low = (_DCT_LOW @ samples.astype(np.float64) @ _DCT_LOW.T).reshape(len(samples), -1)
    # The median of 64 values by sorting: np.median's overhead is 7x the work here.
    ordered = np.sort(low, axis=1)
    median = (ordered[:, 31] + ordered[:, 32]) * 0.5
    bits = np.packbits(low > median[:, None], axis=1)
    return bits.view(">u8").ravel().tolist()


# Variant hashes carried besides the full frame's pHash, one 64-bit int each, in this
# order (records, cache, the scan table and images.csv's phash_zoom column keep them
# as one tuple sized by len(VARIANTS)):
# * zoom95, zoom90: centred crops, so a copy cropped a few percent matches one of them
#   almost exactly (measured: 5% crops 65% -> 100% found, see audit.checks.duplicates);
# * corner95_tl, _tr, _bl, _br: 95% of each side, anchored at a corner, for copies
#   cropped off two sides (up to 10% of the area);
# * cut_top, cut_bottom, cut_left, cut_right: the frame with a third cut off one side.
#   An overlay (caption bar, logo, watermark) covering up to 10% of the frame along an
#   edge or in a corner lies inside one such third (a corner box of area 10% has a side
#   of at most sqrt(0.1) = 0.32 of the frame's), so the copy's and the original's same
#   cut hashes agree although their full hashes do not;
# * mirror: the full frame flipped left to right (for --mirror).
# A variant whose view is near-constant carries no information: it is NO_HASH (0, which
# no real pHash is: the median split sets 32 bits) and never matches.
CENTRE_ZOOMS = (0.95, 0.90)
CORNER_ZOOM = 0.95
CORNERS = ("tl", "tr", "bl", "br")
CUT = 1 / 3
SIDES = ("top", "bottom", "left", "right")
VARIANTS = (
    "zoom95",
    "zoom90",
    *(f"corner95_{corner}" for corner in CORNERS),
    *(f"cut_{side}" for side in SIDES),
    "mirror",
)
ZOOMS = VARIANTS  # the name the column code sizes by: len(ZOOMS) hashes per decoded file
ZOOM_SLICE = slice(0, len(CENTRE_ZOOMS) + len(CORNERS))
CUT_SLICE = slice(ZOOM_SLICE.stop, ZOOM_SLICE.stop + len(SIDES))
MIRROR_INDEX = len(VARIANTS) - 1
NO_HASH = 0
VARIANT_MIN_STD = 6.0  # gray levels over a view; below it the view is near-constant


def variant_boxes() -> np.ndarray:
    """(left, top, right, bottom) of each view as fractions of the frame, VARIANTS order."""
    boxes = []
    for zoom in CENTRE_ZOOMS:
        margin = (1 - zoom) / 2
        boxes.append((margin, margin, 1 - margin, 1 - margin))
    for corner in CORNERS:
        left = 0 if corner[1] == "l" else 1 - CORNER_ZOOM
        top = 0 if corner[0] == "t" else 1 - CORNER_ZOOM
        boxes.append((left, top, left + CORNER_ZOOM, top + CORNER_ZOOM))
    boxes += [
        (0, CUT, 1, 1),  # top cut off
        (0, 0, 1, 1 - CUT),  # bottom cut off
        (CUT, 0, 1, 1),  # left cut off
        (0, 0, 1 - CUT, 1),  # right cut off
        (0, 0, 1, 1),  # the whole frame, mirrored
    ]
    return np.array(boxes, dtype=np.float64)


def _area_weights(length: int, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """(views, 32, length): sample i of a view averages the grid cells that overlap
    [start + i * step, start + (i + 1) * step), step = (stop - start) / 32."""
    step = (stops - starts) / _SAMPLE
    low = starts[:, None] + step[:, None] * np.arange(_SAMPLE)
    high = low + step[:, None]
    cells = np.arange(length, dtype=np.float64)
    overlap = np.minimum(high[..., None], cells + 1) - np.maximum(low[..., None], cells)
    return np.clip(overlap, 0, None) / step[:, None, None]


# Every view is a fixed box of the frame, so once the frame is area-resampled to a
# _GRID x _GRID grid, each view's 32x32 sample (area-averaged) and its 8x8 DCT are
# fixed linear maps of the grid: precomputed here, they make all views together a few
# small matrix products (measured: 0.43 ms -> under 0.1 ms per file for 11 views).
_GRID = 64
_boxes = variant_boxes() * _GRID
_rows = _area_weights(_GRID, _boxes[:, 1], _boxes[:, 3])  # (views, 32, grid)
_columns = _area_weights(_GRID, _boxes[:, 0], _boxes[:, 2])
_columns[-1] = _columns[-1][::-1]  # the mirror: samples right to left
_LEFT = np.ascontiguousarray(_DCT_LOW @ _rows)  # (views, 8, grid)
_RIGHT = np.ascontiguousarray(_columns.transpose(0, 2, 1) @ _DCT_LOW.T)  # (views, grid, 8)
_ROW_WEIGHT = _rows.sum(axis=1) / _SAMPLE  # (views, grid): each cell's share of a view
_COLUMN_WEIGHT = _columns.sum(axis=1) / _SAMPLE


def zoom_phashes(image: Image.Image) -> tuple[int, ...]:
    """The VARIANTS hashes of image, in VARIANTS order (NO_HASH for a near-constant view).

    The views are area-averaged (a box filter, not the full hash's Lanczos) from one
    64x64 resampling of the frame; the comparisons between a view and another file's
    full hash carry that difference within their radii (measured in
    bench/near_duplicates_quality.py)."""
    return variant_hashes(np.stack([grid(image)]))[0]


def grid(image: Image.Image) -> np.ndarray:
    """The variant hashes' input: image in 8-bit grayscale, box-resampled to 64x64 (uint8)."""
    gray = grayscale(image)
    width, height = gray.size
    if width < 1 or height < 1:
        return np.zeros((_GRID, _GRID), dtype=np.uint8)  # flat: every view is NO_HASH
    if _GRID % width == 0 and _GRID % height == 0:
        # A side dividing the grid (CIFAR's 32x32, icons): Pillow's BOX upscaling by a
        # whole factor repeats each pixel, so the grid is the pixels repeated, byte for
        # byte (checked for every pair of sides 1..64 dividing 64), at a fifth of the
        # resize's cost (3 us against 18 us on a 32x32 image).
        small = np.frombuffer(gray.tobytes(), dtype=np.uint8).reshape(height, width)
        return np.repeat(np.repeat(small, _GRID // height, 0), _GRID // width, 1)
    resampled = gray.resize((_GRID, _GRID), Image.Resampling.BOX)
    return np.frombuffer(resampled.tobytes(), dtype=np.uint8).reshape(_GRID, _GRID)


def variant_hashes(grids: np.ndarray) -> list[tuple[int, ...]]:
    """The VARIANTS hashes of each (64, 64) grid of grids (n, 64, 64), as zoom_phashes
    gives them; one call for a batch of files (see phashes)."""
    pixels = grids.astype(np.float64)[:, None]  # (n, 1, grid, grid): each view's slices
    count = len(grids)
    low = (_LEFT @ pixels @ _RIGHT).reshape(count, len(VARIANTS), -1)
    ordered = np.sort(low, axis=2)
    median = (ordered[..., 31] + ordered[..., 32]) * 0.5
    bits = np.packbits(low > median[..., None], axis=2)
    # Each view's pixel standard deviation, area-weighted as its samples are.
    mean = ((_ROW_WEIGHT @ pixels) * _COLUMN_WEIGHT).sum(axis=-1).reshape(count, -1)
    square = ((_ROW_WEIGHT @ (pixels * pixels)) * _COLUMN_WEIGHT).sum(axis=-1).reshape(count, -1)
    flat = np.sqrt(np.maximum(square - mean * mean, 0)) < VARIANT_MIN_STD
    # Each view's 8 bytes read as one big-endian uint64: the int of its 64 bits.
    hashes = np.where(flat, np.uint64(NO_HASH), bits.view(">u8")[..., 0])
    return [tuple(row) for row in hashes.tolist()]


def hamming(hash_a: int, hash_b: int) -> int:
    """Number of differing bits between two 64-bit hashes."""
    return (hash_a ^ hash_b).bit_count()


# Hex appears only at the report's edge (images.csv): 16 lowercase characters per hash.


def to_hex(value: int | None) -> str:
    """The images.csv form of a hash: 16 lowercase hex characters ('' for None)."""
    return "" if value is None else f"{value:016x}"


def zoom_to_hex(values: tuple[int, ...]) -> str:
    """The images.csv form of the crop hashes: hex hashes joined by ';' ('' for none)."""
    return ";".join(f"{value:016x}" for value in values)


def from_hex(text: str) -> int | None:
    """A hash read back from images.csv (None for the empty field of an undecodable file)."""
    if not text:
        return None
    if len(text) != 2 * HASH_SIZE:
        raise ValueError(f"a pHash is {2 * HASH_SIZE} hex characters, got {text!r}")
    return int(text, 16)
