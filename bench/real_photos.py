"""Real pictures for the duplicate benchmarks, from named packages only (no download).

Sources (each listed with the files it gave in the benchmark's output):
* scikit-learn's two sample photos (sklearn/datasets/images: china.jpg, flower.jpg);
* Debian's plasma-workspace-wallpapers (photographs, /usr/share/wallpapers/*/contents/images);
* Debian's desktop-base (raster backgrounds under /usr/share/desktop-base and
  /usr/share/images/desktop-base; not the login previews, which are one screenshot
  layout over each theme's background);
* scikit-image's bundled sample images (skimage/data/*.png, *.jpg), when a copy of
  the package is found (`make bench-data` puts one in bench/.skimage without
  installing it into the project's environment).

Each source picture is cut into non-overlapping tiles; each tile is a distinct
original. Tiles without content are left out: near-constant ones (gray standard
deviation under 12 levels: blank backgrounds), which the audit never groups by hash,
and smooth gradients (mean absolute difference from a 2 px blur under 1 gray level:
sky, the flat colour fields of designed wallpapers), whose pHash says only which way
the light falls, so two different gradients collide. What is left are pictures with
content, the case the near-duplicate search is for.
`make bench-data` installs the Debian packages when they are missing.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parent
MIN_STD = 12.0
MIN_DETAIL = 1.0
MAX_SIDE = 2048


@dataclass(frozen=True)
class Source:
    package: str
    path: str


def sources() -> list[Source]:
    """Every source picture found, largest version per wallpaper, in a fixed order."""
    found: list[Source] = []
    import sklearn

    images = Path(sklearn.__file__).parent / "datasets" / "images"
    found += [Source("scikit-learn", str(path)) for path in sorted(images.glob("*.jpg"))]
    wallpapers: dict[str, str] = {}
    for path in sorted(glob.glob("/usr/share/wallpapers/*/contents/images/*.*")):
        name = path.split("/")[4]
        if path.endswith((".jpg", ".png")):
            previous = wallpapers.get(name)
            if previous is None or os.path.getsize(path) > os.path.getsize(previous):
                wallpapers[name] = path
    found += [Source("plasma-workspace-wallpapers", path) for _, path in sorted(wallpapers.items())]
    seen_sizes: set[int] = set()
    for pattern in ("/usr/share/desktop-base/**/*.png", "/usr/share/desktop-base/**/*.jpg",
                    "/usr/share/images/desktop-base/*.png"):  # fmt: skip
        for path in sorted(glob.glob(pattern, recursive=True)):
            size = os.path.getsize(path)
            # The themes share files (once each), and their login previews are one
            # screenshot layout over each theme's background: not distinct pictures.
            if size > 40_000 and size not in seen_sizes and "/login/" not in path:
                seen_sizes.add(size)
                found.append(Source("desktop-base", path))
    for folder in [ROOT / ".skimage" / "skimage" / "data"]:
        for path in sorted(folder.glob("*.png")) + sorted(folder.glob("*.jpg")):
            found.append(Source("scikit-image", str(path)))
    return found


def _has_content(tile: Image.Image, min_std: float) -> bool:
    """Not near-constant (gray std >= min_std) and not a smooth gradient: the mean
    absolute difference from a 2 px Gaussian blur is at least MIN_DETAIL gray levels."""
    gray = tile.convert("L")
    values = np.asarray(gray, dtype=np.float32)
    if values.std() < min_std:
        return False
    smooth = np.asarray(gray.filter(ImageFilter.GaussianBlur(2)), dtype=np.float32)
    return float(np.abs(values - smooth).mean()) >= MIN_DETAIL


def tiles(tile_width: int, tile_height: int, limit: int | None = None,
          max_per_source: int = 40, min_std: float = MIN_STD):  # fmt: skip
    """(source, box, RGB tile) for non-overlapping tiles of every source picture,
    at most max_per_source from one picture, round-robin over the sources so that no
    single picture dominates; near-constant tiles skipped."""
    per_source = []
    for source in sources():
        try:
            with Image.open(source.path) as opened:
                picture = opened.convert("RGB")
            # Wallpapers are up to 5120 px wide: tiles of the picture at a viewing size
            # hold objects and edges, not a patch of one smooth area.
            scale = MAX_SIDE / max(picture.size)
            if scale < 1:
                picture = picture.resize(
                    (round(picture.width * scale), round(picture.height * scale)),
                    Image.Resampling.LANCZOS,
                )
        except OSError:
            continue
        width, height = picture.size
        cut = []
        for top in range(0, height - tile_height + 1, tile_height):
            for left in range(0, width - tile_width + 1, tile_width):
                box = (left, top, left + tile_width, top + tile_height)
                tile = picture.crop(box)
                if _has_content(tile, min_std):
                    cut.append((source, box, tile))
        per_source.append(cut[:max_per_source])
    produced = 0
    for index in range(max((len(cut) for cut in per_source), default=0)):
        for cut in per_source:
            if index < len(cut):
                yield cut[index]
                produced += 1
                if limit is not None and produced >= limit:
                    return
