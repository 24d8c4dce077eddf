"""pHash: the standard definition, robust to resizing and re-encoding, correct on 16-bit.

The comparisons with imagehash (an independent implementation) run where it is
installed (the dev extra). The JPEG one prints how far the scan's hashes, decoded
through draft(), are from imagehash's of the fully decoded file: run it with -s to see.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from audit.dataset import FileEntry
from audit.hashing import from_hex, hamming, phash, to_hex, zoom_to_hex
from audit.inspect import inspect_file
from tests.imagegen import encode, photo_like


def test_matches_reference_value():
    # Computed with imagehash 4.3.2's phash() on the same generated picture (independent code).
    assert phash(photo_like(96, 80, seed=1)) == 0xE1618E8E8A55D6D6


def test_hex_only_at_the_report_edge():
    assert to_hex(0xE1618E8E8A55D6D6) == "e1618e8e8a55d6d6"
    assert to_hex(1) == "0000000000000001" and to_hex(None) == ""
    assert zoom_to_hex((1, 0xFF)) == "0000000000000001;00000000000000ff"
    assert zoom_to_hex(()) == ""
    assert from_hex("e1618e8e8a55d6d6") == 0xE1618E8E8A55D6D6 and from_hex("") is None
    with pytest.raises(ValueError):
        from_hex("e1618e")


def test_hamming_counts_differing_bits():
    assert hamming(0, 0) == 0
    assert hamming(0, 2**64 - 1) == 64
    assert hamming(0b1011, 0b0110) == 3


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


# ---------------------------------------------------------------- against imagehash


def imagehash_phash(image: Image.Image) -> int:
    imagehash = pytest.importorskip("imagehash")
    return int(str(imagehash.phash(image)), 16)


def scan_phash(path) -> int:
    """The pHash the scan records for a file (audit.inspect: JPEGs decoded through draft())."""
    facts = inspect_file(FileEntry(str(path), f"c/{path.name}", "c"), max_pixels=10**9)
    assert facts.phash is not None, facts
    return facts.phash


# Sizes and modes a dataset holds: tiny to large, colour and gray, odd sizes.
SHAPES = [(w, h) for w in (33, 64, 97, 240, 640) for h in (32, 75, 180, 480)]
MODES = ("RGB", "L", "RGBA", "P")


def test_identical_to_imagehash_on_in_memory_images():
    pytest.importorskip("imagehash")
    for index, (width, height) in enumerate(SHAPES):
        for mode in MODES:
            image = photo_like(width, height, seed=index, mode=mode)
            assert hamming(phash(image), imagehash_phash(image)) == 0, (width, height, mode)


def test_identical_to_imagehash_on_png_files(tmp_path):
    pytest.importorskip("imagehash")
    for index, (width, height) in enumerate(SHAPES):
        for mode in MODES:
            path = tmp_path / f"{index}_{mode}.png"
            path.write_bytes(encode(photo_like(width, height, seed=100 + index, mode=mode), "PNG"))
            with Image.open(path) as image:
                reference = imagehash_phash(image)
            assert hamming(scan_phash(path), reference) == 0, (width, height, mode)


JPEG_FILES = 200


def test_jpeg_draft_decode_against_imagehash_full_decode(tmp_path):
    """Measures, not asserts identity: draft() scales in the DCT domain, then Lanczos.

    The figure is quoted in audit.hashing's docstring; the bounds below only catch a
    change that would make that figure wrong by a wide margin.
    """
    pytest.importorskip("imagehash")
    rng = np.random.default_rng(0)
    distances = []
    for index in range(JPEG_FILES):
        width, height = int(rng.integers(48, 641)), int(rng.integers(48, 481))
        mode = "L" if index % 4 == 3 else "RGB"
        path = tmp_path / f"{index}.jpg"
        picture = photo_like(width, height, seed=1000 + index, mode=mode)
        path.write_bytes(encode(picture, "JPEG", quality=int(rng.integers(50, 96))))
        with Image.open(path) as image:
            reference = imagehash_phash(image)  # imagehash decodes the file fully
        distances.append(hamming(scan_phash(path), reference))
    found = np.array(distances)
    differing = found[found > 0]
    print(
        f"\nscan pHash (draft decode) vs imagehash.phash (full decode), {found.size} JPEGs: "
        f"{differing.size} differ; mean {found.mean():.2f} bits "
        f"({differing.mean() if differing.size else 0:.2f} over those that differ), "
        f"max {found.max()}"
    )
    assert found.mean() <= 4 and found.max() <= 16


def test_variant_hashes_one_per_view_and_none_for_flat_views():
    from audit.hashing import MIRROR_INDEX, NO_HASH, VARIANTS, ZOOMS, zoom_phashes

    assert ZOOMS == VARIANTS  # the name the columns are sized by
    picture = photo_like(160, 120, seed=3)
    hashes = zoom_phashes(picture)
    assert len(hashes) == len(VARIANTS) and NO_HASH not in hashes
    assert zoom_phashes(Image.new("RGB", (90, 60), (250, 250, 250))) == (NO_HASH,) * len(VARIANTS)
    # The mirror view of a picture is (close to) the full hash of its mirror image.
    flipped = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    assert hamming(hashes[MIRROR_INDEX], phash(flipped)) <= 6
    assert hamming(hashes[MIRROR_INDEX], phash(picture)) > 12


def _zoom_phashes_through_resize(image: Image.Image) -> tuple[int, ...]:
    """zoom_phashes of the grid made by Pillow's BOX resize (a 64x64 image is used as is)."""
    from audit.hashing import zoom_phashes

    return zoom_phashes(image.resize((64, 64), Image.Resampling.BOX))


@pytest.mark.parametrize("size", [(1, 1), (2, 64), (32, 32), (16, 8), (64, 64), (4, 32)])
def test_variant_hashes_of_small_sides_match_the_resized_grid(size):
    # Sides dividing 64 skip Pillow's BOX upscaling (it repeats pixels): same hashes.
    from audit.hashing import NO_HASH, zoom_phashes

    rng = np.random.default_rng(sum(size))
    pixels = rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8)
    image = Image.fromarray(pixels, "L")
    assert zoom_phashes(image) == _zoom_phashes_through_resize(image)
    if size[0] >= 16 and size[1] >= 8:  # enough texture: real hashes, not NO_HASH
        assert NO_HASH not in zoom_phashes(image)
    # A different picture of the same size gives different hashes (nothing constant).
    other = Image.fromarray(255 - pixels, "L")
    if size[0] * size[1] >= 64:
        assert zoom_phashes(other) != zoom_phashes(image)
