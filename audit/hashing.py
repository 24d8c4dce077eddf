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
    small = grayscale(image).resize((_SAMPLE, _SAMPLE), Image.Resampling.LANCZOS)
    pixels = np.frombuffer(small.tobytes(), dtype=np.uint8).reshape(_SAMPLE, _SAMPLE)
    low = (_DCT_LOW @ pixels @ _DCT_LOW.T).ravel()
    # The median of 64 values by sorting: np.median's overhead is 7x the work here.
    ordered = np.sort(low)
    median = (ordered[31] + ordered[32]) * 0.5
    return int.from_bytes(np.packbits(low > median).tobytes(), "big")


# Centred crops hashed besides the full frame, so a copy cropped a few percent matches
# one of them almost exactly (measured: 5% crops 65% -> 100% found, see duplicates).
ZOOMS = (0.95, 0.90)


def zoom_phashes(image: Image.Image) -> tuple[int, ...]:
    """pHashes of the centred ZOOMS crops of image, in ZOOMS order."""
    width, height = image.size
    hashes = []
    for zoom in ZOOMS:
        margin_x, margin_y = round(width * (1 - zoom) / 2), round(height * (1 - zoom) / 2)
        hashes.append(phash(image.crop((margin_x, margin_y, width - margin_x, height - margin_y))))
    return tuple(hashes)


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
