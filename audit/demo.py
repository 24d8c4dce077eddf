"""The demo dataset: real images shipped inside scikit-learn, with known problems injected.

Classes are scikit-learn's handwritten digits (1,797 real 8x8 scans, upsampled to
32x32 RGB JPEGs), one class per digit, with one class kept small so the balance check
has something to say. Then a few files of each kind of trouble are added, so the
report shows every check firing. `INJECTED` lists them with the codes they must raise;
the test suite scans the demo and checks each one.

Nothing is downloaded: the digits and the two sample photos (china.jpg, flower.jpg)
are inside the scikit-learn wheel.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from audit.errors import AlreadyExists, CannotWrite, MissingDependency

CLASS_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SIDE = 32
SMALL_CLASS, SMALL_CLASS_SIZE = "nine", 40  # makes the imbalance ratio about 4.5

# relative path -> issue codes it must raise (a subset: other info codes may appear too)
INJECTED: dict[str, tuple[str, ...]] = {
    "three/truncated_download.jpg": ("truncated",),
    "four/really_a_png.jpg": ("extension_mismatch",),
    "eight/copied_from_three.jpg": ("label_conflict",),
    "seven/flower_photo.jpg": ("resolution_outlier",),
    "five/empty.jpg": ("empty_file",),
    "six/error_page.jpg": ("not_an_image",),
    "two/scanner_output.tif": ("unsupported_format",),
    "one/camera_rotated.jpg": ("exif_rotated", "missing_jfif_marker"),
    "zero/banner_strip.jpg": ("odd_aspect_ratio",),
    "zero/icon_8px.png": ("tiny_image",),
    "one/huge_header.png": ("decompression_bomb",),
    "two/print_ready_cmyk.jpg": ("non_rgb_mode",),
    "six/with_appended_zip.jpg": ("trailing_data",),
    "five/garbled.jpg": ("corrupt_data",),
    "four/legacy_1bit.bmp": ("unsupported_format",),
}


def _load_sklearn():
    try:
        from sklearn.datasets import load_digits, load_sample_image
    except ImportError as error:  # the demo extra is missing
        raise MissingDependency(
            "the demo needs scikit-learn (its bundled digits and photos): "
            "pip install 'image-audit[demo]'"
        ) from error
    return load_digits, load_sample_image


def build_demo(dest: Path) -> Path:
    """Write the demo dataset under dest/ and return dest (absolute)."""
    load_digits, load_sample_image = _load_sklearn()
    dest = dest.absolute()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        what = "is not empty" if dest.is_dir() else "is a file"
        raise AlreadyExists(f"{dest} exists and {what}; remove it or choose another folder")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CannotWrite(f"cannot create {dest}: {error.strerror or error}") from None

    digits = load_digits()
    counts: dict[str, int] = {}
    # The first few digits of each class are held back: each injected problem is made from
    # one of them, so injected files are not copies of each other (only the deliberate
    # cross-class copy is).
    held_back: dict[str, list[Image.Image]] = {}
    for index, (pixels, target) in enumerate(zip(digits.images, digits.target, strict=True)):
        name = CLASS_NAMES[target]
        if len(held_back.setdefault(name, [])) < 3:
            held_back[name].append(_digit_image(pixels))
            continue
        if name == SMALL_CLASS and counts.get(name, 0) >= SMALL_CLASS_SIZE:
            continue
        counts[name] = counts.get(name, 0) + 1
        folder = dest / name
        folder.mkdir(exist_ok=True)
        _digit_image(pixels).save(folder / f"digit_{index:04d}.jpg", "JPEG", quality=92)

    flower = Image.fromarray(load_sample_image("flower.jpg"))
    _inject(dest, flower, held_back)
    # Clutter and layout problems the walk must report, not scan.
    (dest / "three" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(64))
    (dest / "README.txt").write_text("Stray file at the root: it belongs to no class.\n")
    (dest / "unlabeled").mkdir()
    return dest


def _digit_image(pixels: np.ndarray) -> Image.Image:
    """An 8x8 digit scan (0..16, ink high) as a 32x32 RGB image, white ink on black."""
    gray = Image.fromarray((pixels * (255.0 / 16.0)).astype(np.uint8), "L")
    return gray.resize((SIDE, SIDE), Image.Resampling.BICUBIC).convert("RGB")


def _jpeg_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, **options)
    return buffer.getvalue()


def _inject(dest: Path, flower: Image.Image, held_back: dict[str, list[Image.Image]]) -> None:
    def write(relpath: str, data: bytes) -> None:
        (dest / relpath).write_bytes(data)

    def fresh(relpath: str) -> Image.Image:
        """An unused digit of the class the file goes into."""
        return held_back[relpath.split("/")[0]].pop()

    def encoded(image: Image.Image, fmt: str, **options) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, fmt, **options)
        return buffer.getvalue()

    photo_jpeg = _jpeg_bytes(flower)
    write("three/truncated_download.jpg", photo_jpeg[: len(photo_jpeg) * 3 // 5])
    write("four/really_a_png.jpg", encoded(fresh("four/"), "PNG"))
    write("eight/copied_from_three.jpg", min((dest / "three").glob("digit_*.jpg")).read_bytes())
    write("seven/flower_photo.jpg", photo_jpeg)
    write("five/empty.jpg", b"")
    write(
        "six/error_page.jpg",
        b"<!DOCTYPE html><html><head><title>403 Forbidden</title></head>"
        b"<body>Forbidden</body></html>\n",
    )
    write("two/scanner_output.tif", encoded(fresh("two/"), "TIFF"))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    rotated = _jpeg_bytes(fresh("one/"), exif=exif.tobytes())
    write(
        "one/camera_rotated.jpg", _strip_jfif_segment(rotated)
    )  # a typical camera JPEG: Exif, no JFIF
    write("zero/banner_strip.jpg", _jpeg_bytes(fresh("zero/").resize((SIDE * 4, SIDE))))
    write("zero/icon_8px.png", encoded(fresh("zero/").resize((8, 8)), "PNG"))
    write("one/huge_header.png", _png_header_only(30_000, 30_000))
    write("two/print_ready_cmyk.jpg", _jpeg_bytes(fresh("two/").convert("CMYK")))
    write(
        "six/with_appended_zip.jpg",
        _jpeg_bytes(fresh("six/")) + b"PK\x03\x04" + bytes(range(256)) * 4,
    )
    write(
        "five/garbled.jpg",
        photo_jpeg[:20] + np.random.default_rng(7).integers(0, 256, 4000, dtype=np.uint8).tobytes(),
    )
    write("four/legacy_1bit.bmp", encoded(fresh("four/").convert("1"), "BMP"))


def _strip_jfif_segment(jpeg: bytes) -> bytes:
    """Remove the APP0/JFIF segment that Pillow writes, as many cameras never write one."""
    if jpeg[2:4] != b"\xff\xe0":
        return jpeg
    length = int.from_bytes(jpeg[4:6], "big")
    return jpeg[:2] + jpeg[4 + length :]


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but carries one tiny IDAT: a bomb by its header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(1024)))
        + chunk(b"IEND", b"")
    )
