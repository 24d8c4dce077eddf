"""Where the quality thresholds come from: the measures of real photos and of edited copies.

Sources (each used when present): scikit-learn's two sample photos (always), the photos
and scans bundled in scikit-image's data folder (`pip install --target DIR scikit-image`
then `--skimage DIR`, or an importable skimage), and the wallpapers of Debian's
desktop-base package (`apt-get install desktop-base`: /usr/share/desktop-base). Each
picture is saved as JPEG q90 and decoded as the scan decodes it (audit.inspect's draft),
then measured (audit.measures). Prints one line per picture, then per edit family how
many copies each check flags; and for crops, how stable the pHash is per contrast band
(what the low_information threshold guards). Asserts nothing.

    python bench/quality_thresholds.py [--skimage /tmp/skim]
"""

from __future__ import annotations

import argparse
import glob
import io
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit import hashing, measures  # noqa: E402
from audit.checks import REGISTRY  # noqa: E402
from audit.checks.quality import judge  # noqa: E402

PHOTOS = (  # scikit-image's bundled real photographs (the rest are scans, textures, art)
    "astronaut.png chelsea.png coffee.png motorcycle_left.png rocket.jpg retina.jpg "
    "hubble_deep_field.jpg camera.png moon.png coins.png"
).split()


def originals(skimage_dir: str | None) -> dict[str, Image.Image]:
    from sklearn.datasets import load_sample_image

    found = {
        f"sklearn/{n}": Image.fromarray(load_sample_image(n)) for n in ("china.jpg", "flower.jpg")
    }
    folder = None
    if skimage_dir:
        folder = Path(skimage_dir) / "skimage" / "data"
    else:
        try:
            import skimage

            folder = Path(skimage.__file__).parent / "data"
        except ImportError:
            pass
    if folder is not None and folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.suffix in (".png", ".jpg"):
                found[f"skimage/{path.name}"] = Image.open(path)
    for path in sorted(
        glob.glob("/usr/share/desktop-base/*/plymouth/*background*.png")
        + glob.glob("/usr/share/desktop-base/*/grub/grub-16x9.png")
        + glob.glob("/usr/share/desktop-base/*/login/*.jpg")
    ):
        found[f"desktop-base/{path.split('/')[4]}/{os.path.basename(path)}"] = Image.open(path)
    return {name: image.convert("RGB") if image.mode not in ("RGB", "L") else image
            for name, image in found.items()}  # fmt: skip


def scan_decode(image: Image.Image, fmt: str = "JPEG") -> Image.Image:
    """Encode, then decode as audit.inspect does."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    decoded = Image.open(io.BytesIO(buffer.getvalue()))
    if decoded.format == "JPEG":
        decoded.draft("YCbCr" if decoded.mode == "RGB" else "L", (32, 32))
    decoded.load()
    return decoded


def edits(image: Image.Image) -> dict[str, Image.Image]:
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    short = min(image.size)
    return {
        "dark x0.25": Image.fromarray((pixels * 0.25).astype(np.uint8)),
        "washed 0.3x+180": Image.fromarray((pixels * 0.3 + 180).astype(np.uint8)),
        "blur 2%": image.filter(ImageFilter.GaussianBlur(0.02 * short)),
        "blur 3%": image.filter(ImageFilter.GaussianBlur(0.03 * short)),
        "gray copy": image.convert("L").convert("RGB"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skimage", help="a folder pip installed scikit-image into (--target)")
    args = parser.parse_args()
    thresholds = REGISTRY.thresholds()
    pictures = originals(args.skimage)
    print(f"{len(pictures)} pictures; thresholds: " + ", ".join(
        f"{k}={v}" for k, v in thresholds.as_dict().items()
        if k in ("low_information_below", "dark_below", "overexposed_above", "blurry_below",
                 "grayscale_spread")))  # fmt: skip
    for name, image in pictures.items():
        m = measures.measure(scan_decode(image))
        codes = [f.code for f in judge(m, thresholds)]
        spread = "-" if m.colour_spread is None else f"{m.colour_spread:.1f}"
        print(
            f"{name:58s} {image.size[0]:5d}x{image.size[1]:<5d} dark_level={m.dark_level:.3f} "
            f"bright_level={m.bright_level:.3f} contrast={m.contrast:6.1f} "
            f"focus={m.focus:.3f} spread={spread:>6s} {','.join(codes)}"
        )
    print("\nedited copies of the real photos (sklearn and skimage PHOTOS): flagged / copies")
    photos = {n: im for n, im in pictures.items() if n.startswith("sklearn/")
              or n.split("/")[-1] in PHOTOS}  # fmt: skip
    flagged: dict[str, dict[str, int]] = {}
    for image in photos.values():
        for edit, copy in edits(image).items():
            m = measures.measure(scan_decode(copy))
            codes = {f.code for f in judge(m, thresholds)}
            if edit == "gray copy":
                codes = {"grayscale_in_color"} if (m.colour_spread or 0) <= 3 else set()
            for code in codes | {"(copies)"}:
                flagged.setdefault(edit, {}).setdefault(code, 0)
                flagged[edit][code] += 1
    for edit, counts in flagged.items():
        total = counts.pop("(copies)")
        print(f"  {edit:18s} " + ", ".join(f"{c} {n}/{total}" for c, n in sorted(counts.items())))
    print("\npHash stability of 128/256 px crops by contrast band (low_information guards this)")
    rows = []
    for image in pictures.values():
        image = image.convert("RGB")
        side = 128 if min(image.size) < 1000 else 256
        for left in range(0, image.width - side + 1, side):
            for top in range(0, image.height - side + 1, side):
                crop = image.crop((left, top, left + side, top + side))
                reference = scan_decode(crop, "PNG")
                pixels = np.asarray(crop, dtype=np.float32)
                edited = scan_decode(
                    Image.fromarray(np.clip(pixels * 1.05 + 3, 0, 255).astype(np.uint8))
                )
                plane = edited.getchannel(0) if edited.mode == "YCbCr" else edited
                distance = hashing.hamming(hashing.phash(reference), hashing.phash(plane))
                rows.append((measures.measure(reference).contrast, distance))
    table = np.array(rows)
    print(f"  {len(table)} crops")
    for low, high in ((0, 2), (2, 4), (4, 6), (6, 8), (8, 12), (12, 20), (20, 256)):
        band = table[(table[:, 0] >= low) & (table[:, 0] < high)]
        if len(band):
            print(
                f"  contrast [{low:3d},{high:3d}) levels: {len(band):4d} crops, "
                f"pHash moved > 10 bits by a mild edit: {np.mean(band[:, 1] > 10):.0%}"
            )


if __name__ == "__main__":
    main()
