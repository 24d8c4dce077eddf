"""pHash: the standard definition, robust to resizing and re-encoding, correct on 16-bit."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from audit.hashing import hamming, phash
from tests.imagegen import encode, photo_like


def test_matches_reference_value():
    # Computed with imagehash 4.3.2's phash() on the same generated picture (independent code).
    assert phash(photo_like(96, 80, seed=1)) == "e1618e8e8a55d6d6"


def test_stable_under_resize_and_recompression():
    original = photo_like(320, 240, seed=7)
    resized = original.resize((160, 120), Image.Resampling.BILINEAR)
    recompressed = Image.open(io.BytesIO(encode(original, "JPEG", quality=40)))
    assert hamming(phash(original), phash(resized)) <= 4
    assert hamming(phash(original), phash(recompressed)) <= 4


def test_distinct_pictures_are_far_apart():
    hashes = [phash(photo_like(128, 96, seed=seed)) for seed in range(12)]
    distances = [hamming(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :]]
    assert min(distances) > 10


def test_sixteen_bit_grayscale_hashes_like_its_8_bit_version():
    gray8 = np.asarray(photo_like(96, 80, seed=2).convert("L"))
    gray16 = Image.fromarray(gray8.astype(np.uint16) * 257)
    assert hamming(phash(Image.fromarray(gray8)), phash(gray16)) <= 2
