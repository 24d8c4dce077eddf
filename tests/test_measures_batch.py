"""measure_many (the batched measures) gives, bit for bit, what measuring each image alone
gives, on every kind of view: YCbCr (a JPEG's draft decode), RGB, one channel, and the
edges (1 px, sides under 3, flat pictures, saturated chroma, 16-bit, palette, alpha).

The oracle below is the per-file implementation as it was before the batch existed
(audit/measures.py at 5605d3b), kept here to pin the values: `measure` and `measure_many`
must both reproduce it exactly (== on every float, the same types)."""

from __future__ import annotations

import io
import math
import random

import numpy as np
import pytest
from PIL import Image

from audit import measures

# ---- oracle: the per-file measure of 5605d3b, unchanged apart from names -----------------

_LEVELS = np.arange(256, dtype=np.float64)
_SQUARES = _LEVELS * _LEVELS
_CHROMA_DISTANCE = np.abs(np.arange(256) - 128)
_YCC_TO_RGB = np.array([[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]])
_RGB_TO_YCC = np.linalg.inv(_YCC_TO_RGB)
_YCC_TO_RGB_ROWS = tuple(tuple(float(value) for value in row) for row in _YCC_TO_RGB)


def oracle(image: Image.Image) -> measures.Measures | None:
    if image.width < 1 or image.height < 1:
        return None
    small, colour = measures._small(image)
    height, width = small.height, small.width
    pixels = width * height
    values = np.frombuffer(small.tobytes(), dtype=np.uint8)
    spread = None
    if colour and small.mode == "YCbCr":
        planes = values.reshape(pixels, 3).T.astype(np.float64, order="C")
        luma_hist = np.bincount(values[0::3], minlength=256)
        chroma_hist = np.bincount(values, minlength=256) - luma_hist
        distances = np.bincount(_CHROMA_DISTANCE, weights=chroma_hist, minlength=129)
        luma = planes[0]
        rgb_sum, rgb_squares, luma_sum, luma_squares = _oracle_ycbcr_moments(planes, pixels)
    elif colour:
        rgb = values.reshape(pixels, 3).astype(np.float64)
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
    targets = [math.ceil(pixels * 0.05), math.ceil(pixels * 0.99)]
    if colour:
        cumulative = np.cumsum(np.concatenate((luma_hist, distances)))
        targets.append(pixels + math.ceil(2 * pixels * 0.99))
    else:
        cumulative = np.cumsum(luma_hist)
    found = np.searchsorted(cumulative, targets).tolist()
    if colour:
        spread = float(found[2] - 256)
    contrast = max(_oracle_deviation(rgb_sum[c], rgb_squares[c], pixels) for c in range(3))
    return measures.Measures(
        found[1] / 255.0,
        found[0] / 255.0,
        contrast,
        _oracle_focus(luma, width, _oracle_deviation(luma_sum, luma_squares, pixels)),
        spread,
        max(rgb_sum[0] / 255.0, 0.0),
        max(rgb_sum[1] / 255.0, 0.0),
        max(rgb_sum[2] / 255.0, 0.0),
        max(rgb_squares[0] / 65025.0, 0.0),
        max(rgb_squares[1] / 65025.0, 0.0),
        max(rgb_squares[2] / 65025.0, 0.0),
        pixels,
    )


def _oracle_ycbcr_moments(planes, pixels):
    luma, blue, red = planes
    s_y, s_b, s_r = planes.sum(axis=1).tolist()
    q_yy, q_bb, q_rr = float(luma @ luma), float(blue @ blue), float(red @ red)
    q_yb, q_yr, q_br = float(luma @ blue), float(luma @ red), float(blue @ red)
    n = float(pixels)
    b, r = s_b - 128.0 * n, s_r - 128.0 * n
    bb = q_bb - 256.0 * s_b + 16384.0 * n
    rr = q_rr - 256.0 * s_r + 16384.0 * n
    yb, yr = q_yb - 128.0 * s_y, q_yr - 128.0 * s_y
    br = q_br - 128.0 * (s_b + s_r) + 16384.0 * n
    sums, squares = [], []
    for w_y, w_b, w_r in _YCC_TO_RGB_ROWS:
        sums.append(w_y * s_y + w_b * b + w_r * r)
        squares.append(
            w_y * w_y * q_yy + w_b * w_b * bb + w_r * w_r * rr
            + 2.0 * (w_y * w_b * yb + w_y * w_r * yr + w_b * w_r * br)
        )  # fmt: skip
    return sums, squares, s_y, q_yy


def _oracle_deviation(total, squares, pixels):
    mean = total / pixels
    return math.sqrt(max(squares / pixels - mean * mean, 0.0))


def _oracle_focus(luma, width, deviation):
    height = luma.size // width
    if height < 3 or width < 3 or deviation < 1e-6 * 255.0:
        return 0.0
    values = luma if luma.dtype == np.float64 else luma.astype(np.float64)
    end = values.size - width
    laplacian = values[: end - width] + values[2 * width :]
    laplacian += values[width - 1 : end - 1]
    laplacian += values[width + 1 : end + 1]
    laplacian -= 4.0 * values[width:end]
    rows = laplacian.reshape(height - 2, width)
    edges = rows[:, 0], rows[:, -1]
    energy = np.dot(laplacian, laplacian) - np.dot(edges[0], edges[0]) - np.dot(edges[1], edges[1])
    return math.sqrt(max(float(energy), 0.0) / ((height - 2) * (width - 2))) / deviation


# ---- the images ---------------------------------------------------------------------------


def _pixels(rng: np.random.Generator, height: int, width: int, channels: int) -> np.ndarray:
    """Photo-like or noisy uint8 pixels (height, width, channels): a smooth gradient, noise,
    or both, so that percentiles, contrast and focus all vary."""
    rows = np.linspace(0, 1, height)[:, None, None]
    columns = np.linspace(0, 1, width)[None, :, None]
    base = rng.uniform(0, 255, channels) * rows + rng.uniform(0, 255, channels) * columns
    noise = rng.normal(0, rng.choice([0.0, 3.0, 40.0]), (height, width, channels))
    return np.clip(base / 2 + noise + rng.uniform(0, 128), 0, 255).astype(np.uint8)


def _jpeg_draft(rgb: np.ndarray, mode: str = "YCbCr", quality: int = 85) -> Image.Image:
    """A JPEG of rgb, decoded as the scan decodes it (draft at the smallest scale >= 32)."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    image = Image.open(io.BytesIO(buffer.getvalue()))
    image.draft(mode, (32, 32))
    image.load()
    return image


def _varied(seed: int = 7) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    sizes = [(1, 1), (1, 2), (2, 1), (2, 2), (3, 3), (1, 9), (9, 1), (2, 40), (40, 2), (3, 64)]
    sizes += [(int(rng.integers(3, 201)), int(rng.integers(3, 301))) for _ in range(14)]
    sizes += [(64, 64), (65, 64), (200, 300), (48, 64), (33, 47)]
    images: list[Image.Image] = []
    for height, width in sizes:
        rgb = _pixels(rng, height, width, 3)
        gray = rgb[:, :, 0]
        images += [
            Image.fromarray(rgb, "RGB"),
            Image.fromarray(gray, "L"),
            Image.fromarray(rgb, "RGB").convert("YCbCr"),
            Image.fromarray(rgb, "RGB").convert("P"),
            Image.fromarray(np.dstack((rgb, gray)), "RGBA"),
            Image.fromarray(np.dstack((gray, rgb[:, :, 1])), "LA"),
            Image.fromarray(rgb, "RGB").convert("CMYK"),
            Image.fromarray(gray, "L").convert("1"),
            Image.fromarray(gray.astype(np.uint16) * 257),  # I;16, 16-bit range
            Image.fromarray(gray.astype(np.uint16)),  # I;16, 8-bit values
            Image.fromarray(gray.astype(np.int32) * 3, "I"),
            Image.fromarray(gray.astype(np.float32) / 2, "F"),
        ]
        if height >= 8 and width >= 8:
            images += [_jpeg_draft(rgb), _jpeg_draft(rgb, "L"), _jpeg_draft(rgb, "RGB", 40)]
    # Flat pictures (focus 0, contrast 0), saturated chroma (distance 128, sums below 0
    # when decoded from YCbCr without clipping), an all-black and an all-white frame.
    for colour in ((0, 0, 0), (255, 255, 255), (128, 128, 128), (255, 0, 0), (0, 0, 255)):
        images.append(Image.new("RGB", (37, 29), colour))
        images.append(Image.new("RGB", (37, 29), colour).convert("YCbCr"))
    images.append(Image.new("YCbCr", (20, 10), (0, 0, 0)))  # R, G, B below 0: clipped sums
    images.append(Image.new("YCbCr", (20, 10), (255, 255, 255)))
    images.append(Image.new("L", (50, 50), 17))
    images.append(Image.merge("YCbCr", [Image.new("L", (30, 30), v) for v in (0, 255, 0)]))
    return images


@pytest.fixture(scope="module")
def varied() -> list[Image.Image]:
    return _varied()


def _assert_identical(got, expected) -> None:
    assert len(got) == len(expected)
    for index, (value, reference) in enumerate(zip(got, expected, strict=True)):
        if reference is None:
            assert value is None, index
            continue
        assert isinstance(value, measures.Measures), index
        assert tuple(value) == tuple(reference), (index, value, reference)
        assert [type(field) for field in value] == [type(field) for field in reference], index


def test_the_oracle_separates_the_images(varied):
    # A comparison that passes on everything would prove nothing: the measures differ
    # between these images, and a changed field is seen.
    expected = [oracle(image) for image in varied]
    assert len({tuple(value) for value in expected if value is not None}) > len(varied) // 2
    modes = {image.mode for image in varied}
    assert {"L", "RGB", "YCbCr", "P", "RGBA", "LA", "CMYK", "1", "I;16", "I", "F"} <= modes
    first = expected[0]
    assert first is not None
    with pytest.raises(AssertionError):
        _assert_identical([first._replace(focus=first.focus + 1e-12)], [first])
    as_float = first._replace(pixels=float(first.pixels))  # type: ignore[arg-type]
    with pytest.raises(AssertionError):  # the same value as another type
        _assert_identical([as_float], [first])


def test_batch_equals_each_alone_in_one_mixed_batch(varied):
    expected = [oracle(image) for image in varied]
    shuffled = list(range(len(varied)))
    random.Random(3).shuffle(shuffled)  # kinds interleaved: the batch regroups and restores
    got = measures.measure_many([varied[index] for index in shuffled])
    _assert_identical(got, [expected[index] for index in shuffled])
    assert len(varied) > measures._CHUNK  # more than one chunk


def test_batch_equals_each_alone_in_small_batches(varied):
    expected = [oracle(image) for image in varied]
    for size in (1, 2, measures._BATCH_FROM - 1, measures._BATCH_FROM, 13, 64):
        got = [
            value
            for start in range(0, len(varied), size)
            for value in measures.measure_many(varied[start : start + size])
        ]
        _assert_identical(got, expected)
    _assert_identical([measures.measure(image) for image in varied], expected)


def test_the_batched_arithmetic_alone_on_every_view(varied):
    # measure_many measures fewer than _BATCH_FROM views one by one: the batched path is
    # pinned here on each view alone too (every edge case as its own batch of one) and
    # on views of one kind only.
    views = [measures._small(image) for image in varied if image.width and image.height]
    expected = [oracle(image) for image in varied if image.width and image.height]
    _assert_identical([measures._measure_views([view])[0] for view in views], expected)
    for mode in ("YCbCr", "RGB", "L"):
        chosen = [index for index, (small, _) in enumerate(views) if small.mode == mode]
        assert chosen, mode
        got = measures._measure_views([views[index] for index in chosen])
        _assert_identical(got, [expected[index] for index in chosen])


def test_no_pixels_is_none_and_keeps_its_place():
    rng = np.random.default_rng(1)
    photo = Image.fromarray(_pixels(rng, 30, 40, 3), "RGB")
    empty = [Image.new("RGB", (0, 5)), Image.new("L", (5, 0)), Image.new("RGB", (0, 0))]
    batch = [empty[0], photo, empty[1], *[photo] * 9, empty[2]]
    got = measures.measure_many(batch)
    assert got[0] is None and got[2] is None and got[-1] is None
    _assert_identical(got, [oracle(image) for image in batch])
    assert got[1] is not None and got[1].colour_spread is not None
    assert measures.measure_many([]) == []


def test_an_image_that_cannot_be_viewed_raises_as_alone():
    # As [measure(image) for image in images] would: the scan then measures one by one.
    good = Image.new("RGB", (10, 10), (10, 200, 30))
    broken = Image.new("La", (4, 4))  # Pillow converts La to neither L nor RGB
    with pytest.raises(ValueError):
        measures.measure(broken)
    with pytest.raises(ValueError):
        measures.measure_many([good] * 10 + [broken])
    assert measures.measure_many([good] * 10)[0] == oracle(good)


def test_a_real_photo_batch_is_identical(varied):
    # Photo-sized JPEGs as a scan sees them: 640x480-like decodes at 1/8, in one batch.
    rng = np.random.default_rng(11)
    photos = [
        _jpeg_draft(_pixels(rng, int(rng.integers(300, 520)), int(rng.integers(300, 520)), 3))
        for _ in range(40)
    ]
    _assert_identical(measures.measure_many(photos), [oracle(photo) for photo in photos])
