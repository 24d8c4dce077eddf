"""Small inline thumbnails for the HTML report, as the model will see the pixels.

No EXIF rotation is applied (TensorFlow applies none), and a truncated file shows the
part that decodes, which is often the quickest way to see what is wrong with it.
"""

from __future__ import annotations

import base64
import io
import warnings

from PIL import Image

from audit.dataset import file_key, resolve
from audit.inspect import c_stderr_silenced, lenient_decoding, nested_images_limited

THUMBNAIL_SIDE = 96


def thumbnail_data_uri(path: str, max_pixels: int, side: int = THUMBNAIL_SIDE) -> str | None:
    """A data: URI with a JPEG thumbnail of path, or None when nothing decodes."""
    try:
        # Show what a truncated file holds; what C decoders print goes nowhere.
        with (
            warnings.catch_warnings(),
            lenient_decoding(),
            c_stderr_silenced(),
            nested_images_limited(max_pixels),
        ):
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                if image.width * image.height > max_pixels:
                    return None  # never decode a decompression bomb, not even for a picture
                image.draft("RGB", (side, side))
                image.thumbnail((side, side))
                picture = (
                    image.convert("RGBA").convert("RGB")
                    if "A" in image.mode
                    else image.convert("RGB")
                )
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=80)
    except Exception:  # anything undecodable simply has no thumbnail
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class Thumbnailer:
    """Thumbnails of report paths, kept in the scan cache so a re-scan decodes nothing new."""

    def __init__(self, root, max_pixels: int, cache=None):
        self.root = root
        self.max_pixels = max_pixels
        self.cache = cache

    def __call__(self, relpath: str) -> str | None:
        path = resolve(self.root, relpath)
        key = file_key(path) if self.cache is not None else None
        if key is not None:
            cached = self.cache.thumbnail(path, key)
            if cached is not None:
                return cached or None
        uri = thumbnail_data_uri(path, self.max_pixels)
        if key is not None:
            self.cache.store_thumbnail(path, key, uri)
        return uri
