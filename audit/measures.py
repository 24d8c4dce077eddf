"""Image-quality measures of one decoded image: brightness, contrast, focus, colour, and
the per-channel sums behind the dataset's channel statistics.

Runs in the workers on the decode the scan already made (audit.inspect): no second
decode. Every measure is taken on one small view of that decode:

* the decode: Pillow's full decode, except JPEG, decoded by `draft()` at the smallest
  DCT scale (1/1, 1/2, 1/4 or 1/8) that keeps both sides at least 32 px. A colour JPEG is
  decoded to YCbCr at that scale: its Y plane is byte for byte the grayscale plane the
  pHash has always been computed from (so the hashes do not change), and Cb/Cr give the
  colour at almost no extra cost (the entropy decode of every block is paid anyway);
* the view: that decode in RGB, box-filtered down so its long side is VIEW_SIDE (64) px
  when it is larger (a JPEG's 1/8 decode of a 640x480 photo is 80x60, so 64x48; a
  256x256 JPEG's is 32x32 and stays so). Alpha is dropped and a palette expanded, as
  TensorFlow's decode_image(channels=3) does.

The values (fields of `Measures`), all from the view:

* `dark_level`: the 99th percentile of luma (BT.601 Y: a JPEG's own Y plane), 0..1:
  even the brightest parts of the picture are that dim;
* `bright_level`: the 5th percentile of luma (0..1): 95% of the picture is brighter
  (washed out when high);
* `contrast`: the largest standard deviation of the R, G and B channels, in 8-bit
  levels: near 0 for blank, solid-colour and black frames, whose pHash is noise;
* `focus`: the root mean square of the 4-neighbour Laplacian of luma at the view,
  divided by the standard deviation of luma (contrast-normalised: a dim or flat-lit
  picture is not judged blurry for its low contrast); high-frequency energy against
  all energy, so it depends on how sharp the picture is at thumbnail scale, not on its
  size or exposure;
* `colour_spread`: how far the chroma lies from neutral: the 99th percentile of
  |Cb - 128| and |Cr - 128| over the view's pixels, in 8-bit levels (BT.601 YCbCr, as
  JPEG stores it); 0 for a colour file whose channels are equal (a gray picture saved in
  colour, R = G = B exactly when Cb = Cr = 128); None for a file that stores one channel
  (L, 1, I;16);
* the per-channel sum and sum of squares of the view's pixels at 0..1 and its pixel
  count, which the dataset check pools into summary.json's channel_stats.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from PIL import Image

from audit import hashing

VIEW_SIDE = 64
VIEW_DESCRIPTION = (
    "each usable image's scan decode (JPEG: DCT-scaled to the smallest of 1/1..1/8 that "
    "keeps both sides >= 32 px; others: full size) box-filtered to a long side of at most "
    "64 px, in RGB; pixel-weighted over those views"
)

# Modes whose pixels hold one value: no colour to judge.
_SINGLE_CHANNEL = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


class Measures(NamedTuple):
    """What the quality checks and channel statistics use, measured on the view. A plain
    tuple of numbers (records, the spool and the cache carry `tuple(measures)`)."""

    dark_level: float
    bright_level: float
    contrast: float
    focus: float
    colour_spread: float | None
    sum_r: float  # per-channel sums of the view's pixels at 0..1
    sum_g: float
    sum_b: float
    squares_r: float  # ... and of their squares
    squares_g: float
    squares_b: float
    pixels: int

    def as_tuple(self) -> tuple:
        """The plain values, in FIELDS order."""
        return tuple(self)

    @classmethod
    def from_tuple(cls, values) -> Measures:
        """Measures from plain values (a cache row, the spool); ValueError or TypeError for
        anything a measurement of a VIEW_SIDE view cannot give: a crafted or damaged cache
        row is a miss, never served (levels beyond 0..1 or 255, sums beyond what the view's
        pixel count allows, a pixel count beyond the view)."""
        values = tuple(values)
        if len(values) != len(FIELDS):
            raise ValueError(f"measures hold {len(FIELDS)} values, got {len(values)}")
        pixels = values[-1]
        if not (isinstance(pixels, int) and not isinstance(pixels, bool)):
            raise TypeError("pixels is an integer")
        if not 0 < pixels <= VIEW_SIDE * VIEW_SIDE:
            raise ValueError(f"pixels is between 1 and {VIEW_SIDE * VIEW_SIDE}")
        for name, value in zip(FIELDS[:-1], values[:-1], strict=True):
            if name == "colour_spread" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} is a number")
            try:
                measured = float(value)
            except OverflowError:
                raise ValueError(f"{name} is out of range") from None
            scale = pixels if name in _PER_PIXEL else 1
            low, high = _RANGES[name]
            if not (math.isfinite(measured) and low * scale <= measured <= high * scale):
                raise ValueError(f"{name} is out of range: {value!r}")
        number = [float(value) if value is not None else 0.0 for value in values[:11]]
        return cls(
            number[0], number[1], number[2], number[3],
            None if values[4] is None else number[4],
            number[5], number[6], number[7], number[8], number[9], number[10],
            pixels,
        )  # fmt: skip


FIELDS = Measures._fields
# What each measure can be (per pixel of the view for sums and squares). A JPEG's channel sums
# come from its YCbCr planes without clipping, so a saturated colour can step a little past
# 0..1 (at most -0.7..1.7 per pixel: Y 255 with Cr 255 is R 433 of 255).
_PER_PIXEL = frozenset(("sum_r", "sum_g", "sum_b", "squares_r", "squares_g", "squares_b"))
_RANGES = {
    "dark_level": (0.0, 1.0),
    "bright_level": (0.0, 1.0),
    "contrast": (0.0, 255.0),
    "focus": (0.0, 1e6),
    "colour_spread": (0.0, 255.0),
    **{f"sum_{channel}": (-1.0, 2.0) for channel in "rgb"},
    **{f"squares_{channel}": (0.0, 3.0) for channel in "rgb"},
}


def _small(image: Image.Image) -> tuple[Image.Image, bool]:
    """(the view as a Pillow image in L, RGB or YCbCr, whether the file stores colour)."""
    colour = image.mode not in _SINGLE_CHANNEL
    if not colour:
        small = hashing.grayscale(image) if image.mode != "L" else image
    elif image.mode in ("RGB", "YCbCr"):
        small = image
    else:
        small = image.convert("RGB")  # palette expanded, alpha dropped, CMYK converted
    width, height = small.size
    longest = max(width, height)
    if longest > VIEW_SIDE:
        scale = VIEW_SIDE / longest
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = small.resize(size, Image.Resampling.BOX)
    return small, colour


def view(image: Image.Image) -> tuple[np.ndarray, bool]:
    """(the view as float32 (h, w, 3) RGB in 0..255, whether the file stores colour)."""
    small, colour = _small(image)
    if small.mode == "YCbCr":
        small = small.convert("RGB")
    pixels = np.asarray(small, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    return pixels, colour


_LEVELS = np.arange(256, dtype=np.float64)
_SQUARES = _LEVELS * _LEVELS
_BRIGHT_SHARE = 0.05  # bright_level: the 5th percentile of luma
_DARK_SHARE = 0.99  # dark_level: the 99th
_SPREAD_SHARE = 0.99  # colour_spread: the 99th percentile of the chroma's distance
_CHROMA_DISTANCE = np.abs(np.arange(256) - 128)  # a chroma level -> |level - 128|


# JFIF's YCbCr -> RGB (BT.601, full range), applied to centred chroma.
_YCC_TO_RGB = np.array([[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]])
_RGB_TO_YCC = np.linalg.inv(_YCC_TO_RGB)
_YCC_TO_RGB_ROWS = tuple(tuple(float(value) for value in row) for row in _YCC_TO_RGB)


def measure(image: Image.Image) -> Measures | None:
    """The measures of a decoded image, or None when it has no pixels.

    Cheap by design: it runs on every file, next to a decode of a few hundred
    microseconds, and at this size (a few thousand pixels) each numpy call costs more
    than its arithmetic, so the calls are few and never on the decode, only on the
    view: bincounts give the luma and chroma histograms (their percentiles are found
    in one cumulative sum), six dot products of the Y, Cb, Cr planes give their second
    moments, from which the RGB sums and squares follow through the linear JFIF
    transform (exact sums of integers, no pixel converted, no clipping), and the
    Laplacian is taken on the rows of luma laid end to end (contiguous slices).
    """
    if image.width < 1 or image.height < 1:
        return None
    small, colour = _small(image)
    height, width = small.height, small.width
    pixels = width * height
    values = np.frombuffer(small.tobytes(), dtype=np.uint8)
    spread: float | None = None
    if colour and small.mode == "YCbCr":
        planes = values.reshape(pixels, 3).T.astype(np.float64, order="C")  # Y, Cb, Cr rows
        luma_hist = np.bincount(values[0::3], minlength=256)
        # |Cb - 128| and |Cr - 128| pooled: both planes' levels folded onto the distance.
        chroma_hist = np.bincount(values, minlength=256) - luma_hist
        distances = np.bincount(_CHROMA_DISTANCE, weights=chroma_hist, minlength=129)
        luma = planes[0]
        rgb_sum, rgb_squares, luma_sum, luma_squares = _ycbcr_moments(planes, pixels)
    elif colour:
        rgb = values.reshape(pixels, 3).astype(np.float64)
        # Two BLAS products (6 us) rather than a 768-bin bincount and its dot products
        # (16 us on a 32x32 view): sums of integers below 2**53, so exact in float64
        # whatever the order of addition: the same values.
        ones = np.ones(pixels)
        rgb_sum = tuple((ones @ rgb).tolist())
        rgb_squares = tuple((ones @ (rgb * rgb)).tolist())
        ycc = np.rint(rgb @ _RGB_TO_YCC.T)
        luma = np.clip(ycc[:, 0], 0, 255)
        luma_hist = np.bincount(luma.astype(np.intp), minlength=256)
        distance = np.minimum(np.abs(ycc[:, 1:]), 128).astype(np.intp).ravel()
        distances = np.bincount(distance, minlength=129)
        luma_sum, luma_squares = float(luma_hist @ _LEVELS), float(luma_hist @ _SQUARES)
    else:
        luma_hist = np.bincount(values, minlength=256)
        luma_sum, luma_squares = float(luma_hist @ _LEVELS), float(luma_hist @ _SQUARES)
        rgb_sum, rgb_squares = (luma_sum,) * 3, (luma_squares,) * 3
        luma = values
    # Percentiles: the first level whose cumulative count reaches share * total, for
    # luma and (after its 256 levels, offset by its total) the chroma distances.
    if colour:
        cumulative = np.cumsum(np.concatenate((luma_hist, distances)))
        targets = [*_count_targets(pixels), pixels + math.ceil(2 * pixels * _SPREAD_SHARE)]
    else:
        cumulative = np.cumsum(luma_hist)
        targets = _count_targets(pixels)
    found = np.searchsorted(cumulative, targets).tolist()
    if colour:
        spread = float(found[2] - 256)
    contrast = max(
        _deviation(rgb_sum[channel], rgb_squares[channel], pixels) for channel in range(3)
    )
    # Sums at 0..255 -> at 0..1.
    return Measures(
        found[1] / 255.0,
        found[0] / 255.0,
        contrast,
        _focus(luma, width, _deviation(luma_sum, luma_squares, pixels)),
        spread,
        max(rgb_sum[0] / 255.0, 0.0),
        max(rgb_sum[1] / 255.0, 0.0),
        max(rgb_sum[2] / 255.0, 0.0),
        max(rgb_squares[0] / 65025.0, 0.0),
        max(rgb_squares[1] / 65025.0, 0.0),
        max(rgb_squares[2] / 65025.0, 0.0),
        pixels,
    )


def _count_targets(pixels: int) -> list[int]:
    """The counts at which bright_level's and dark_level's luma percentiles are reached."""
    return [math.ceil(pixels * _BRIGHT_SHARE), math.ceil(pixels * _DARK_SHARE)]


def _ycbcr_moments(planes: np.ndarray, pixels: int) -> tuple:
    """(R, G, B sums, R, G, B sums of squares, luma sum, luma sum of squares) at 0..255
    of a YCbCr view's planes, without converting a pixel: the JFIF transform is linear,
    so the RGB moments follow from the first and second moments of Y, Cb and Cr (no
    clipping to 0..255)."""
    luma, blue, red = planes
    s_y, s_b, s_r = planes.sum(axis=1).tolist()
    q_yy, q_bb, q_rr = float(luma @ luma), float(blue @ blue), float(red @ red)
    q_yb, q_yr, q_br = float(luma @ blue), float(luma @ red), float(blue @ red)
    # Centred chroma b = Cb - 128, r = Cr - 128: sum((x - c)(y - d)) = sum(xy) -
    # d sum(x) - c sum(y) + n c d. All sums of integers, exact in float64.
    n = float(pixels)
    b, r = s_b - 128.0 * n, s_r - 128.0 * n
    bb = q_bb - 256.0 * s_b + 16384.0 * n
    rr = q_rr - 256.0 * s_r + 16384.0 * n
    yb, yr = q_yb - 128.0 * s_y, q_yr - 128.0 * s_y
    br = q_br - 128.0 * (s_b + s_r) + 16384.0 * n
    sums, squares = [], []
    for w_y, w_b, w_r in _YCC_TO_RGB_ROWS:  # channel = w_y Y + w_b b + w_r r
        sums.append(w_y * s_y + w_b * b + w_r * r)
        squares.append(
            w_y * w_y * q_yy + w_b * w_b * bb + w_r * w_r * rr
            + 2.0 * (w_y * w_b * yb + w_y * w_r * yr + w_b * w_r * br)
        )  # fmt: skip
    return sums, squares, s_y, q_yy


def _deviation(total: float, squares: float, pixels: int) -> float:
    """Standard deviation of values from their count, sum and sum of squares."""
    mean = total / pixels
    return math.sqrt(max(squares / pixels - mean * mean, 0.0))


def _focus(luma: np.ndarray, width: int, deviation: float) -> float:
    """RMS of the 4-neighbour Laplacian over the interior, / std of luma (0 when flat).

    luma: the view's rows, one after the other (1-D, `width` values a row)."""
    height = luma.size // width
    if height < 3 or width < 3 or deviation < 1e-6 * 255.0:
        return 0.0
    values = luma if luma.dtype == np.float64 else luma.astype(np.float64)
    # On the flat rows, contiguous slices: pixel k's neighbours are k -/+ width and
    # k -/+ 1, for every pixel of rows 1..height-2. The first and last column's values
    # mix in a neighbouring row's pixel: their energy is taken off below.
    end = values.size - width
    laplacian = values[: end - width] + values[2 * width :]
    laplacian += values[width - 1 : end - 1]
    laplacian += values[width + 1 : end + 1]
    laplacian -= 4.0 * values[width:end]
    rows = laplacian.reshape(height - 2, width)
    edges = rows[:, 0], rows[:, -1]
    energy = np.dot(laplacian, laplacian) - np.dot(edges[0], edges[0]) - np.dot(edges[1], edges[1])
    return math.sqrt(max(float(energy), 0.0) / ((height - 2) * (width - 2))) / deviation
