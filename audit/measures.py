"""Image-quality measures of one decoded image: brightness, contrast, focus, colour, and
the per-channel sums behind the dataset's channel statistics.

Runs in the workers on the decode the scan already made (audit.inspect): no second
decode. `measure_many` measures a chunk of images at once, the scan's way (each numpy
call made for all of them, where `measure` makes ~30 for one image): the same values,
bit for bit. Every measure is taken on one small view of that decode:

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
_CHROMA_DISTANCE = np.abs(np.arange(256) - 128)  # a chroma level -> |level - 128|
_BRIGHT_SHARE = 0.05  # bright_level: the 5th percentile of luma
_DARK_SHARE = 0.99  # dark_level: the 99th
_SPREAD_SHARE = 0.99  # colour_spread: the 99th percentile of the chroma's distance
_FLAT = 1e-6 * 255.0  # a luma deviation below this is a flat picture: focus 0
# One histogram row a view: luma levels 0..255, then chroma distances |level - 128|, 0..128.
_BINS = 256 + 129
# Views measured together: bounds the work arrays (a 64x64 int16 canvas a view, 385 bins).
_CHUNK = 128
# Fewer views are measured one by one (_measure_one): the batch's own cost, ~180 us a
# chunk, made 8 views measured together cost as much as alone, 12 less (2,000 photos).
_BATCH_FROM = 12


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
    `measure_many` gives the same values, cheaper a file for many images; for one image
    this is the cheaper path (the batched arithmetic on one view: 218 us against 61).
    """
    if image.width < 1 or image.height < 1:
        return None
    return _measure_one(*_small(image))


def measure_many(images: list[Image.Image]) -> list[Measures | None]:
    """The measures of each decoded image, in order (None for one without pixels): the
    same values, bit for bit, as `measure` of each, for less CPU a file.

    A view has a few thousand pixels, where each numpy call costs more than its
    arithmetic and `measure` makes ~30 a view: here the numpy work is done for up to
    _CHUNK views at once (_measure_views); only the view (a Pillow resize), its bytes
    and, for an RGB view, its conversion to YCbCr are made view by view. Fewer than
    _BATCH_FROM views are measured one by one (`measure`'s path): the batch's own fixed
    cost (~180 us a chunk) is then the larger. An exception making a view (a mode Pillow
    cannot convert) is raised, as measuring the images one by one would raise it.
    """
    measured: list[Measures | None] = [None] * len(images)
    views = []
    for index, image in enumerate(images):
        if image.width >= 1 and image.height >= 1:
            views.append((index, *_small(image)))
    for start in range(0, len(views), _CHUNK):
        chunk = views[start : start + _CHUNK]
        if len(chunk) < _BATCH_FROM:
            values = [_measure_one(small, colour) for _, small, colour in chunk]
        else:
            values = _measure_views([(small, colour) for _, small, colour in chunk])
        for (index, _, _), value in zip(chunk, values, strict=True):
            measured[index] = value
    return measured


def _measure_one(small: Image.Image, colour: bool) -> Measures:
    """The measures of one view (from _small)."""
    height, width = small.height, small.width
    pixels = width * height
    values = np.frombuffer(small.tobytes(), dtype=np.uint8)
    spread: float | None = None
    luma: np.ndarray  # the view's luma, row after row
    if colour and small.mode == "YCbCr":
        planes = values.reshape(pixels, 3).T.astype(np.float64, order="C")  # Y, Cb, Cr rows
        luma_hist = np.bincount(values[0::3], minlength=256)
        # |Cb - 128| and |Cr - 128| pooled: both planes' levels folded onto the distance.
        chroma_hist = np.bincount(values, minlength=256) - luma_hist
        distances = np.bincount(_CHROMA_DISTANCE, weights=chroma_hist, minlength=129)
        luma, blue, red = planes
        s_y, s_b, s_r = planes.sum(axis=1).tolist()
        q_yy, q_bb, q_rr = float(luma @ luma), float(blue @ blue), float(red @ red)
        q_yb, q_yr, q_br = float(luma @ blue), float(luma @ red), float(blue @ red)
        rgb_sum, rgb_squares = _ycbcr_moments(
            (s_y, s_b, s_r), (q_yy, q_bb, q_rr), (q_yb, q_yr, q_br), float(pixels)
        )
        luma_sum, luma_squares = s_y, q_yy
    elif colour:
        rgb = values.reshape(pixels, 3).astype(np.float64)
        # Two BLAS products (6 us) rather than a 768-bin bincount and its dot products
        # (16 us on a 32x32 view): sums of integers below 2**53, so exact in float64
        # whatever the order of addition: the same values.
        ones = np.ones(pixels)
        rgb_sum = (ones @ rgb).tolist()
        rgb_squares = (ones @ (rgb * rgb)).tolist()
        ycc = _to_ycbcr(rgb)
        luma = np.clip(ycc[:, 0], 0, 255)
        luma_hist = np.bincount(luma.astype(np.intp), minlength=256)
        distance = np.minimum(np.abs(ycc[:, 1:]), 128).astype(np.intp).ravel()
        distances = np.bincount(distance, minlength=129)
        luma_sum, luma_squares = float(luma_hist @ _LEVELS), float(luma_hist @ _SQUARES)
    else:
        luma_hist = np.bincount(values, minlength=256)
        luma_sum, luma_squares = float(luma_hist @ _LEVELS), float(luma_hist @ _SQUARES)
        rgb_sum, rgb_squares = [luma_sum] * 3, [luma_squares] * 3
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


def _to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """An RGB view's pixels (pixels, 3) as float64 -> its rounded BT.601 YCbCr, chroma
    centred. Always one view's pixels in one product: BLAS may round a product differently
    with the matrix's shape, which would move a pixel whose level lies at .5."""
    return np.rint(rgb @ _RGB_TO_YCC.T)


def _count_targets(pixels: int) -> list[int]:
    """The counts at which bright_level's and dark_level's luma percentiles are reached."""
    return [math.ceil(pixels * _BRIGHT_SHARE), math.ceil(pixels * _DARK_SHARE)]


def _deviation(total: float, squares: float, pixels: int) -> float:
    """Standard deviation of values from their count, sum and sum of squares."""
    mean = total / pixels
    return math.sqrt(max(squares / pixels - mean * mean, 0.0))


def _focus(luma: np.ndarray, width: int, deviation: float) -> float:
    """RMS of the 4-neighbour Laplacian over the interior, / std of luma (0 when flat).

    luma: the view's rows, one after the other (1-D, `width` values a row)."""
    height = luma.size // width
    if height < 3 or width < 3 or deviation < _FLAT:
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


def _measure_views(views: list[tuple[Image.Image, bool]]) -> list[Measures]:
    """The measures of views (from _small), in order: what _measure_one gives each.

    Identity holds because every sum taken is a sum of integers below 2**53 in float64,
    exact in any order or grouping (histogram counts, levels and their squares, products
    of two planes, squared Laplacians), and every step after the sums is the same IEEE
    operation as _measure_one's, elementwise (max() and its ties kept: _at_least_zero,
    the contrast's where()). Views are grouped by kind (YCbCr, RGB, one channel): one
    bincount gives every view's histograms (values offset by each view's bins), one
    searchsorted every percentile, one canvas every Laplacian.
    """
    kinds: tuple[list[int], list[int], list[int]] = ([], [], [])  # YCbCr, RGB, one channel
    for position, (small, colour) in enumerate(views):
        kinds[0 if small.mode == "YCbCr" else 1 if colour else 2].append(position)
    order = [*kinds[0], *kinds[1], *kinds[2]]  # views by kind: one slice of the arrays each
    smalls = [views[position][0] for position in order]
    count, ycc, coloured = len(smalls), len(kinds[0]), len(kinds[0]) + len(kinds[1])
    widths = np.array([small.width for small in smalls], dtype=np.int64)
    heights = np.array([small.height for small in smalls], dtype=np.int64)
    pixels = widths * heights
    # Per kind: (luma, luma histograms, chroma distance histograms, RGB sums, squares).
    parts = []
    if ycc:
        parts.append(_ycbcr_part(smalls[:ycc], pixels[:ycc]))
    if coloured > ycc:
        parts.append(_rgb_part(smalls[ycc:coloured], pixels[ycc:coloured]))
    if count > coloured:
        luma = _pixels(smalls[coloured:])
        histograms = _histograms(luma[None, :], pixels[coloured:])[:, 0]
        totals, squares = np.repeat(np.stack(_moments(histograms))[:, :, None], 3, axis=2)
        no_chroma = np.zeros((count - coloured, 129), dtype=histograms.dtype)
        parts.append((luma, histograms, no_chroma, totals, squares))
    lumas, luma_histograms, distance_histograms, rgb_sums, rgb_squares = zip(*parts, strict=True)
    luma = np.concatenate(lumas) if len(lumas) > 1 else lumas[0]
    histogram = np.concatenate(
        (np.concatenate(luma_histograms), np.concatenate(distance_histograms)), axis=1
    )
    rgb_sum, rgb_square = np.concatenate(rgb_sums), np.concatenate(rgb_squares)

    # Percentiles: the first bin whose cumulative count reaches share * total, for luma and
    # (after its 256 levels) the chroma distances: np.searchsorted (left) on every view's
    # cumulative counts at once, each view's raised above the previous one's.
    targets = np.stack(
        (
            np.ceil(pixels * _BRIGHT_SHARE),
            np.ceil(pixels * _DARK_SHARE),
            pixels + np.ceil(2 * pixels * _SPREAD_SHARE),
        ),
        axis=1,
    )
    targets[coloured:, 2] = 1  # no chroma: a target within the view's own bins
    cumulative = np.cumsum(histogram, axis=1)
    raise_by = np.arange(count)[:, None] * (4 * VIEW_SIDE * VIEW_SIDE)  # above any count
    found = np.searchsorted((cumulative + raise_by).ravel(), targets + raise_by)
    found -= np.arange(count)[:, None] * _BINS

    luma_sum, luma_squares = _moments(histogram[:, :256])
    deviations = _deviations(rgb_sum, rgb_square, pixels[:, None])
    contrast = deviations[:, 0]
    for channel in (1, 2):  # max() of the three: the first of equals, as Python's
        contrast = np.where(deviations[:, channel] > contrast, deviations[:, channel], contrast)
    ends = np.cumsum(pixels)
    focus = _focuses(
        _laplacian_energy(luma, widths, heights, (ends - pixels).tolist()),
        widths,
        heights,
        _deviations(luma_sum, luma_squares, pixels),
    )
    spread: list[float | None] = [*(found[:coloured, 2] - 256).astype(np.float64).tolist()]
    spread += [None] * (count - coloured)
    sums = _at_least_zero(rgb_sum / 255.0)  # sums at 0..255 -> at 0..1
    squares = _at_least_zero(rgb_square / 65025.0)
    rows = zip(
        (found[:, 1] / 255.0).tolist(),
        (found[:, 0] / 255.0).tolist(),
        contrast.tolist(),
        focus.tolist(),
        spread,
        *sums.T.tolist(),
        *squares.T.tolist(),
        pixels.tolist(),
        strict=True,
    )
    measured: list[Measures] = [None] * count  # type: ignore[list-item]
    for position, row in zip(order, rows, strict=True):
        measured[position] = Measures._make(row)
    return measured


def _ycbcr_part(smalls: list[Image.Image], pixels: np.ndarray) -> tuple:
    """(luma, luma histograms, chroma distance histograms, RGB sums, RGB sums of squares)
    of YCbCr views: the RGB moments without converting a pixel (_ycbcr_moments)."""
    # Y, Cb, Cr planes, each contiguous: numpy's loops are slow on every third byte.
    planes = np.ascontiguousarray(_pixels(smalls).reshape(-1, 3).T)
    histograms = _histograms(planes, pixels)
    totals, squares = _moments(histograms)
    values = planes.astype(np.float64)
    starts = np.cumsum(pixels) - pixels
    cross = [  # sums of products of two planes: Y Cb, Y Cr, Cb Cr (integers: exact)
        np.add.reduceat(values[first] * values[second], starts)
        for first, second in ((0, 1), (0, 2), (1, 2))
    ]
    distances = _folded(histograms[:, 1]) + _folded(histograms[:, 2])
    moments = _ycbcr_moments(totals.T, squares.T, cross, pixels.astype(np.float64))
    return planes[0], histograms[:, 0], distances, *(np.stack(m, axis=1) for m in moments)


def _rgb_part(smalls: list[Image.Image], pixels: np.ndarray) -> tuple:
    """(luma, luma histograms, chroma distance histograms, RGB sums, RGB sums of squares)
    of RGB views: luma and chroma are each pixel's rounded BT.601 YCbCr."""
    data = [small.tobytes() for small in smalls]
    converted = np.concatenate(
        [_to_ycbcr(np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.float64)) for raw in data]
    ).T
    planes = np.empty((6, len(converted[0])), dtype=np.uint8)  # R, G, B, luma, |Cb|, |Cr|
    planes[:3] = np.frombuffer(b"".join(data), np.uint8).reshape(-1, 3).T
    planes[3] = np.clip(converted[0], 0, 255)
    planes[4:] = np.minimum(np.abs(converted[1:]), 128)
    histograms = _histograms(planes, pixels)
    totals, squares = _moments(histograms[:, :3])
    distances = histograms[:, 4, :129] + histograms[:, 5, :129]
    return planes[3], histograms[:, 3], distances, totals, squares


def _pixels(smalls: list[Image.Image]) -> np.ndarray:
    """The bytes of views, one after the other, as uint8."""
    return np.frombuffer(b"".join([small.tobytes() for small in smalls]), np.uint8)


def _histograms(planes: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """(views, planes, 256) counts of the levels of each plane of each view: planes are
    (planes, all views' pixels) of levels 0..255, pixels each view's count. One bincount
    for all: each value offset by its plane's and view's first bin."""
    rows = len(planes)
    keys = (
        np.repeat(np.arange(len(pixels)) * (rows * 256), pixels) + (np.arange(rows) * 256)[:, None]
    )
    keys += planes
    counts = np.bincount(keys.ravel(), minlength=len(pixels) * rows * 256)
    return counts.reshape(len(pixels), rows, 256)


def _moments(histograms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sums, sums of squares) of the levels counted by histograms (last axis: 256 levels):
    sums of integers, exact (einsum: no BLAS, whose threads would only wait here)."""
    return (
        np.einsum("...j,j->...", histograms, _LEVELS),
        np.einsum("...j,j->...", histograms, _LEVELS * _LEVELS),
    )


def _folded(histograms: np.ndarray) -> np.ndarray:
    """Histograms of chroma levels (last axis: 256) -> of their distance |level - 128| (129)."""
    distances = np.empty((len(histograms), 129), dtype=histograms.dtype)
    distances[:, 0] = histograms[:, 128]
    distances[:, 1:128] = histograms[:, 129:] + histograms[:, 127:0:-1]
    distances[:, 128] = histograms[:, 0]
    return distances


def _ycbcr_moments(totals, squares, cross, n) -> tuple[list, list]:
    """([R, G, B sums], [R, G, B sums of squares]) at 0..255 of a YCbCr view from the sums
    (Y, Cb, Cr), sums of squares (Y, Cb, Cr) and sums of products (Y Cb, Y Cr, Cb Cr) of
    its planes and its pixel count n, as floats (one view) or float64 arrays (one value a
    view: the same IEEE operations, elementwise), without converting a pixel: the JFIF
    transform is linear, so the RGB moments follow from the first and second moments of
    Y, Cb and Cr (no clipping to 0..255)."""
    s_y, s_b, s_r = totals
    q_yy, q_bb, q_rr = squares
    q_yb, q_yr, q_br = cross
    # Centred chroma b = Cb - 128, r = Cr - 128: sum((x - c)(y - d)) = sum(xy) -
    # d sum(x) - c sum(y) + n c d. All sums of integers, exact in float64.
    b, r = s_b - 128.0 * n, s_r - 128.0 * n
    bb = q_bb - 256.0 * s_b + 16384.0 * n
    rr = q_rr - 256.0 * s_r + 16384.0 * n
    yb, yr = q_yb - 128.0 * s_y, q_yr - 128.0 * s_y
    br = q_br - 128.0 * (s_b + s_r) + 16384.0 * n
    sums, sums_of_squares = [], []
    for w_y, w_b, w_r in _YCC_TO_RGB_ROWS:  # channel = w_y Y + w_b b + w_r r
        sums.append(w_y * s_y + w_b * b + w_r * r)
        sums_of_squares.append(
            w_y * w_y * q_yy + w_b * w_b * bb + w_r * w_r * rr
            + 2.0 * (w_y * w_b * yb + w_y * w_r * yr + w_b * w_r * br)
        )  # fmt: skip
    return sums, sums_of_squares


def _at_least_zero(values: np.ndarray) -> np.ndarray:
    """max(value, 0.0) elementwise, as Python's max gives it (the value unless 0.0 is
    greater)."""
    return np.where(0.0 > values, 0.0, values)


def _deviations(totals: np.ndarray, squares: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Standard deviations of values from their counts, sums and sums of squares."""
    mean = totals / pixels
    return np.sqrt(_at_least_zero(squares / pixels - mean * mean))


def _laplacian_energy(
    luma: np.ndarray, widths: np.ndarray, heights: np.ndarray, starts: list[int]
) -> np.ndarray:
    """Per view, the sum of squares of the 4-neighbour Laplacian of luma over its interior
    (rows 1..height-2, columns 1..width-2); 0 for a view narrower or lower than 3.

    luma: every view's rows, one after the other (starts: where each view's begin)."""
    height, width = int(heights.max()), int(widths.max())
    if height < 3 or width < 3:
        return np.zeros(len(starts))
    # Each view at the top left of its own canvas: a pixel of its interior has only its
    # own pixels as neighbours, whatever lies beyond (zeros, masked out below).
    canvas = np.zeros((len(starts), height, width), dtype=np.int16)  # |Laplacian| <= 1020
    sizes = zip(starts, heights.tolist(), widths.tolist(), strict=True)
    for view, (start, rows, columns) in enumerate(sizes):
        canvas[view, :rows, :columns] = luma[start : start + rows * columns].reshape(rows, columns)
    laplacian = canvas[:, :-2, 1:-1] + canvas[:, 2:, 1:-1]
    laplacian += canvas[:, 1:-1, :-2]
    laplacian += canvas[:, 1:-1, 2:]
    laplacian -= 4 * canvas[:, 1:-1, 1:-1]
    squares = laplacian.astype(np.float64)
    np.multiply(squares, squares, out=squares)
    inside_columns = (np.arange(width - 2) < widths[:, None] - 2).astype(np.float64)
    inside_rows = (np.arange(height - 2) < heights[:, None] - 2).astype(np.float64)
    per_row = np.matmul(squares, inside_columns[:, :, None])[:, :, 0]  # small gemv a view
    return np.einsum("ij,ij->i", per_row, inside_rows)


def _focuses(
    energy: np.ndarray, widths: np.ndarray, heights: np.ndarray, deviation: np.ndarray
) -> np.ndarray:
    """RMS of the 4-neighbour Laplacian over the interior, / std of luma (0 when flat or
    narrower or lower than 3)."""
    flat = (heights < 3) | (widths < 3) | (deviation < _FLAT)
    interior = np.where(flat, 1, (heights - 2) * (widths - 2))
    value = np.sqrt(_at_least_zero(energy) / interior) / np.where(flat, 1.0, deviation)
    return np.where(flat, 0.0, value)


def view_image(image: Image.Image) -> Image.Image:
    """The view the measures are taken on (at most VIEW_SIDE px a side): measuring it
    gives the image's measures."""
    return _small(image)[0]
