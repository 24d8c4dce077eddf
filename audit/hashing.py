"""Content hashes: sha256 of the bytes and a 64-bit perceptual hash (pHash) of the pixels.

The pHash follows the usual definition (the one imagehash uses, so figures can be
compared): grayscale, resize to 32x32 with Lanczos, 2-D DCT-II, keep the 8x8
lowest frequencies, one bit per coefficient: above the median or not. Bits are
written row-major, most significant first, as 16 hex characters.
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


def phash(image: Image.Image) -> str:
    """64-bit perceptual hash of image as 16 hex characters."""
    small = grayscale(image).resize((_SAMPLE, _SAMPLE), Image.Resampling.LANCZOS)
    pixels = np.frombuffer(small.tobytes(), dtype=np.uint8).reshape(_SAMPLE, _SAMPLE)
    low = (_DCT_LOW @ pixels @ _DCT_LOW.T).ravel()
    # The median of 64 values by sorting: np.median's overhead is 7x the work here.
    ordered = np.sort(low)
    median = (ordered[31] + ordered[32]) * 0.5
    return np.packbits(low > median).tobytes().hex()


# Centred crops hashed besides the full frame, so a copy cropped a few percent matches
# one of them almost exactly (measured: 5% crops 65% -> 100% found, see duplicates).
ZOOMS = (0.95, 0.90)


def zoom_phashes(image: Image.Image) -> str:
    """pHashes of the centred ZOOMS crops of image, ';'-separated."""
    width, height = image.size
    hashes = []
    for zoom in ZOOMS:
        margin_x, margin_y = round(width * (1 - zoom) / 2), round(height * (1 - zoom) / 2)
        hashes.append(phash(image.crop((margin_x, margin_y, width - margin_x, height - margin_y))))
    return ";".join(hashes)


def hamming(hash_a: str, hash_b: str) -> int:
    """Number of differing bits between two hex hashes of equal length."""
    return (int(hash_a, 16) ^ int(hash_b, 16)).bit_count()
