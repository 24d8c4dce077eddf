"""The format knowledge audit hard-codes still matches the installed Keras and TensorFlow."""

from __future__ import annotations

import os

import pytest

from audit import formats
from tests.imagegen import FIXTURES

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def test_keras_allow_list_is_current():
    image_dataset_utils = pytest.importorskip("keras.src.utils.image_dataset_utils")
    assert formats.KERAS_ALLOWED_EXTENSIONS == image_dataset_utils.ALLOWLIST_FORMATS


def test_tf_decodable_set_is_current():
    """Every container audit calls TF-decodable decodes; the others do not."""
    tf = pytest.importorskip("tensorflow")
    samples = {
        "jpeg": "jpeg_jfif",
        "png": "png_rgb",
        "gif": "gif",
        "bmp": "bmp_24bit",
        "webp": "webp",
        "tiff": "tiff",
        "pnm": "pgm",
        "qoi": "qoi",
        "ico": "ico",
    }
    for container, kind in samples.items():
        data = FIXTURES[kind][1]
        sniffed = formats.sniff(data[:64])
        assert sniffed is not None and sniffed.name == container
        try:
            tf.io.decode_image(data, channels=3, expand_animations=False)
            decodes = True
        except tf.errors.InvalidArgumentError:
            decodes = False
        assert decodes == (container in formats.TF_DECODABLE), container


@pytest.mark.parametrize(
    "head, name",
    [
        (b"<!DOCTYPE html><html>", "html"),
        (b"  <html lang=en>", "html"),
        (b"<?xml version='1.0'?><svg xmlns=", "svg"),
        (b"%PDF-1.7", "pdf"),
        (b"PK\x03\x04zipdata", "zip"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00", "heif"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00", "avif"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00", "video"),
        (b"\xff\x0a\xfa\x7f", "jxl"),
        (b"hello world, these are notes\n", "text"),
        (b'{"a": 1}', "json"),
        (bytes(range(200, 256)), "unknown"),
    ],
)
def test_sniff(head, name):
    sniffed = formats.sniff(head)
    assert sniffed is not None and sniffed.name == name


def test_sniff_empty_is_none():
    assert formats.sniff(b"") is None


def test_keras_keeps_is_case_insensitive():
    assert formats.keras_keeps("x/IMG_1.JPG") and formats.keras_keeps("a.jpeg")
    assert not formats.keras_keeps("a.webp") and not formats.keras_keeps("a.jpg.bak")
