"""Generated image files of every kind the audit must judge (tests and benchmarks share it).

`photo_like()` draws a smooth, textured picture (gradients, shapes, noise) that
compresses like a photo; `FIXTURES` maps a fixture name to (file name, bytes, the
codes the audit must report). Nothing here reads from disk or the network.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont


def photo_like(width: int = 64, height: int = 48, seed: int = 0, mode: str = "RGB") -> Image.Image:
    """A deterministic picture with photo-like statistics."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 200, 3)
    gradient = rng.uniform(-1.2, 1.2, (2, 3)) * 100
    pixels = base + (x[..., None] / width) * gradient[0] + (y[..., None] / height) * gradient[1]
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        x1, y1 = (
            x0 + rng.integers(width // 8, width // 2 + 1),
            y0 + rng.integers(height // 8, height // 2 + 1),
        )
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    noisy = np.asarray(image, dtype=np.int16) + rng.normal(0, 6, (height, width, 3)).astype(
        np.int16
    )
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")
    return image.convert(mode) if mode != "RGB" else image


def _jpeg_again(image: Image.Image, quality: int) -> Image.Image:
    return Image.open(io.BytesIO(encode(image, "JPEG", quality=quality))).convert("RGB")


def _centre_crop(image: Image.Image, fraction: float) -> Image.Image:
    width, height = image.size
    dx, dy = round(width * fraction), round(height * fraction)
    return image.crop((dx, dy, width - dx, height - dy))


def _corner_crop(image: Image.Image, fraction: float) -> Image.Image:
    width, height = image.size
    return image.crop((round(width * fraction), round(height * fraction), width, height))


def _text_watermark(image: Image.Image) -> Image.Image:
    """Semi-transparent text in the lower right corner, as stock sites stamp photos."""
    base = image.convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    font = ImageFont.load_default(size=max(10, base.height // 12))
    ImageDraw.Draw(layer).text(
        (base.width * 0.55, base.height * 0.85),
        "(c) stock 2026",
        fill=(255, 255, 255, 128),
        font=font,
    )
    return Image.alpha_composite(base, layer).convert("RGB")


# The near-duplicate transforms of the duplicates issue: each output is "the same picture".
TRANSFORMS = {
    "resized_50": lambda image: image.resize(
        (image.width // 2, image.height // 2), Image.Resampling.BILINEAR
    ),
    "jpeg_q30": lambda image: _jpeg_again(image, 30),
    "crop_4pct_centre": lambda image: _centre_crop(image, 0.04),
    "crop_3pct_corner": lambda image: _corner_crop(image, 0.03),
    "brightened_20": lambda image: ImageEnhance.Brightness(image).enhance(1.2),
    "blurred_1": lambda image: image.filter(ImageFilter.GaussianBlur(1.0)),
    "watermarked": _text_watermark,
}


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def strip_jfif(jpeg: bytes) -> bytes:
    """Drop the APP0/JFIF segment, as cameras writing only Exif do."""
    assert jpeg[2:4] == b"\xff\xe0"
    return jpeg[:2] + jpeg[4 + int.from_bytes(jpeg[4:6], "big") :]


def png_chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + data) if crc is None else crc
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_bomb(width: int, height: int) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(bytes(64)))
        + png_chunk(b"IEND", b"")
    )


def _png_chunks(png: bytes) -> list[tuple[bytes, int, int]]:
    position, chunks = 8, []
    while position < len(png):
        length = struct.unpack(">I", png[position : position + 4])[0]
        chunks.append((png[position + 4 : position + 8], position, length))
        position += 12 + length
    return chunks


def _flip_byte(data: bytes, index: int) -> bytes:
    mutable = bytearray(data)
    mutable[index] ^= 0xFF
    return bytes(mutable)


def _build_fixtures() -> dict[str, tuple[str, bytes, set[str]]]:
    photo = photo_like(96, 80, seed=1)
    jpeg = encode(photo, "JPEG", quality=90)
    png = encode(photo, "PNG")
    gif = encode(photo.convert("P"), "GIF")
    bmp = encode(photo, "BMP")
    exif = Image.Exif()
    exif[0x0112] = 6
    rng = np.random.default_rng(3)
    idat = next(chunk for chunk in _png_chunks(png) if chunk[0] == b"IDAT")
    ihdr_end = 8 + 12 + 13
    fixtures = {
        # name: (file name, bytes, codes that must be reported)
        "jpeg_jfif": ("a.jpg", jpeg, set()),
        "jpeg_progressive": ("a.jpg", encode(photo, "JPEG", progressive=True), set()),
        "jpeg_grayscale": ("a.jpg", encode(photo.convert("L"), "JPEG"), {"non_rgb_mode"}),
        "jpeg_cmyk": (
            "a.jpg",
            encode(photo.convert("CMYK"), "JPEG"),
            {"non_rgb_mode", "missing_jfif_marker"},
        ),
        "jpeg_exif_no_jfif": (
            "a.jpeg",
            strip_jfif(encode(photo, "JPEG", exif=exif.tobytes())),
            {"missing_jfif_marker", "exif_rotated"},
        ),
        "jpeg_uppercase_ext": ("A.JPG", jpeg, set()),
        "jpeg_truncated_60": ("a.jpg", jpeg[: len(jpeg) * 6 // 10], {"truncated"}),
        "jpeg_truncated_98": ("a.jpg", jpeg[: len(jpeg) * 98 // 100], {"truncated"}),
        "jpeg_missing_eoi": ("a.jpg", jpeg[:-2], {"truncated"}),
        "jpeg_header_then_garbage": (
            "a.jpg",
            jpeg[:20] + rng.integers(0, 256, 3000, dtype=np.uint8).tobytes(),
            {"corrupt_data"},
        ),
        "jpeg_two_sof": (
            "a.jpg",
            jpeg[:600] + np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes(),
            {"corrupt_data"},
        ),
        "jpeg_trailing_bytes": ("a.jpg", jpeg + b"appended garbage" * 20, {"trailing_data"}),
        "jpeg_zero_padding": ("a.jpg", jpeg + bytes(100), set()),
        "jpeg_named_png": ("a.png", jpeg, {"extension_mismatch"}),
        "jpeg_named_txt": ("a.txt", jpeg, {"extension_mismatch", "unsupported_format"}),
        "png_rgb": ("a.png", png, {"missing_jfif_marker"}),
        "png_16bit": (
            "a.png",
            encode(Image.fromarray(np.asarray(photo.convert("L")).astype(np.uint16) * 257), "PNG"),
            {"non_rgb_mode"},
        ),
        "png_palette": ("a.png", encode(photo.convert("P"), "PNG"), {"non_rgb_mode"}),
        "png_rgba": ("a.png", encode(photo.convert("RGBA"), "PNG"), {"non_rgb_mode"}),
        "png_named_jpg": ("a.jpg", png, {"extension_mismatch"}),
        "png_truncated": ("a.png", png[: len(png) // 2], {"truncated"}),
        "png_missing_iend": ("a.png", png[:-12], {"truncated"}),
        "png_bad_idat_crc": ("a.png", _flip_byte(png, idat[1] + 8 + idat[2]), {"corrupt_data"}),
        "png_bad_ancillary_crc": (
            "a.png",
            png[:ihdr_end] + png_chunk(b"tEXt", b"key\x00value", crc=1) + png[ihdr_end:],
            set(),
        ),
        "png_trailing_bytes": ("a.png", png + b"x" * 40, {"trailing_data"}),
        "gif": ("a.gif", gif, {"non_rgb_mode"}),
        "gif_no_trailer": ("a.gif", gif[:-1], set()),
        "gif_truncated": ("a.gif", gif[: len(gif) // 2], {"truncated"}),
        "bmp_24bit": ("a.bmp", bmp, set()),
        "bmp_8bit_gray": ("a.bmp", encode(photo.convert("L"), "BMP"), {"non_rgb_mode"}),
        "bmp_8bit_palette": ("a.bmp", encode(photo.convert("P"), "BMP"), {"bmp_palette_ignored"}),
        "bmp_1bit": ("a.bmp", encode(photo.convert("1"), "BMP"), {"unsupported_format"}),
        "bmp_trailing_bytes": ("a.bmp", bmp + b"\x00\x00", {"unsupported_format"}),
        "bmp_truncated": ("a.bmp", bmp[: len(bmp) // 2], {"truncated"}),
        "webp": ("a.webp", encode(photo, "WEBP"), {"unsupported_format"}),
        "webp_named_jpg": ("a.jpg", encode(photo, "WEBP"), {"extension_mismatch"}),
        "tiff": ("a.tif", encode(photo, "TIFF"), {"unsupported_format"}),
        "pgm": ("a.pgm", encode(photo.convert("L"), "PPM"), {"unsupported_format"}),
        "qoi": ("a.qoi", encode(photo, "QOI"), {"unsupported_format"}),
        "ico": ("a.ico", encode(photo, "ICO"), {"unsupported_format"}),
        "tiff_named_jpg": (
            "a.jpg",
            encode(photo, "TIFF"),
            {"unsupported_format", "extension_mismatch"},
        ),
        "empty": ("a.jpg", b"", {"empty_file"}),
        "html_named_jpg": (
            "a.jpg",
            b"<!DOCTYPE html><html><body>404 Not Found</body></html>",
            {"not_an_image"},
        ),
        "text_named_png": ("a.png", b"just some notes, not a picture\n" * 3, {"not_an_image"}),
        "random_bytes": (
            "a.jpg",
            np.random.default_rng(5).integers(0, 256, 2048, dtype=np.uint8).tobytes(),
            {"not_an_image"},
        ),
        "pdf_named_jpg": (
            "a.jpg",
            b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
            {"not_an_image"},
        ),
    }
    try:
        fixtures["avif"] = ("a.avif", encode(photo, "AVIF"), {"unsupported_format"})
    except (KeyError, OSError):  # a Pillow built without AVIF: the fixture is simply absent
        pass
    return fixtures


FIXTURES = _build_fixtures()


def colour_dataset(
    root, counts: dict[str, int], mode: str = "separable", seed: int = 0, side: int = 32
):
    """Small training sets: each class a coloured shape (disc, square, bar...) on a dark background.

    mode "separable": shape and colour are the class; "shuffled": drawn at random, so
    labels carry no visual signal; "noise": no shape at all, only per-image noise.
    """
    from pathlib import Path

    colours = [(210, 40, 40), (40, 70, 210), (40, 180, 60), (220, 200, 40)]
    rng = np.random.default_rng(seed)
    root = Path(root)
    for class_index, (name, count) in enumerate(counts.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for number in range(count):
            image = Image.new("RGB", (side, side), tuple(int(v) for v in rng.integers(0, 70, 3)))
            if mode == "noise":
                image = Image.fromarray(rng.integers(0, 70, (side, side, 3), dtype=np.uint8), "RGB")
            else:
                kind = class_index if mode == "separable" else int(rng.integers(len(counts)))
                jitter = rng.integers(-25, 26, 3)
                fill = tuple(
                    int(np.clip(c + j, 0, 255))
                    for c, j in zip(colours[kind % len(colours)], jitter, strict=True)
                )
                x, y = (int(v) for v in rng.integers(1, side // 2, 2))
                box = (x, y, x + side // 2, y + side // 2)
                draw = ImageDraw.Draw(image)
                if kind % 3 == 0:
                    draw.ellipse(box, fill=fill)
                elif kind % 3 == 1:
                    draw.rectangle(box, fill=fill)
                else:
                    draw.rectangle((x, y, x + side // 2, y + side // 8), fill=fill)
            image.save(root / name / f"{number:03d}.png")
    return root
