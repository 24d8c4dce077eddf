"""Per-file cost of the image-quality measures in the scan's inspect (issue 19: under 10%).

Times, in one process, the scan's inspect of each file (audit.inspect._inspect_bytes on
the file's bytes, already in memory: sha256, structure walk, decode; then its hashes and
measures, audit.inspect._hash_and_measure, in a batch of one file) twice per round:

* A, "quality": the inspect as the scan runs it (colour JPEG draft, the measures);
* B, "without": the same inspect with its Pillow step replaced by the one before the
  quality checks: draft("L", (32, 32)) for JPEG, full decode otherwise, then the pHash
  and its variant hashes; no measures. Everything else (sha256, walk, Facts) is shared.

A and B alternate (their order flips each round) over the same files, so a busy
neighbour on a shared CPU slows both alike. Per file, the median over rounds; then, per
format, the median per-file cost and the overhead (A - B) / B of the summed medians.

Files: photo-like JPEGs of 300-500 px (tests.imagegen.photo_like, quality 85-95, as
bench/scan_throughput.py builds them) and PNGs of the same kind (a quarter grayscale,
a quarter with alpha). Prints figures; asserts nothing.

    python bench/quality_cost.py [--jpegs 500] [--pngs 100] [--rounds 7]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from audit import containers, hashing, inspect  # noqa: E402
from audit.dataset import FileEntry  # noqa: E402
from tests.imagegen import photo_like  # noqa: E402

MAX_PIXELS = 10**9


def files(jpegs: int, pngs: int) -> list[tuple[str, bytes]]:
    """(format, encoded bytes), generated from fixed seeds."""
    rng = np.random.default_rng(2026)
    made = []
    for index in range(jpegs + pngs):
        width, height = (int(v) for v in rng.integers(300, 501, 2))
        image = photo_like(width, height, seed=index)
        buffer = io.BytesIO()
        if index < jpegs:
            image.save(buffer, "JPEG", quality=int(rng.integers(85, 96)))
            made.append(("JPEG", buffer.getvalue()))
            continue
        kind = index % 4
        if kind == 0:
            image = image.convert("L")
        elif kind == 1:
            image = image.convert("RGBA")
        image.save(buffer, "PNG")
        made.append(("PNG", buffer.getvalue()))
    return made


def _without_quality(data, structure: containers.Structure, max_pixels: int) -> dict[str, Any]:
    """The Pillow step of inspect before the quality measures (grayscale JPEG draft)."""
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    observed: dict[str, Any] = {}
    image = Image.open(stream)
    with image:
        observed.update(
            format=image.format or "", mode=image.mode, width=image.width, height=image.height
        )
        observed["orientation"] = inspect._orientation(image)
        if image.format == "JPEG":
            image.draft("L", (32, 32))
        with inspect.strict_decoding(), inspect.nested_images_limited(max_pixels):
            image.load()
        if structure.first_frame is not None:
            containers.check_first_frame(structure, image)
        plane = hashing.grayscale(image)  # as inspect does: one plane for both hashes
        observed["phash"] = hashing.phash(plane)
        observed["phash_zoom"] = hashing.zoom_phashes(plane)
        observed["decoded"] = True
    return observed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jpegs", type=int, default=500)
    parser.add_argument("--pngs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    made = files(args.jpegs, args.pngs)
    info = os.stat(__file__)
    entry = FileEntry(path="bench", relpath="class/x.jpg", label="class")
    quality_step = inspect._decode_with_pillow

    def run(data: bytes, with_quality: bool) -> float:
        inspect._decode_with_pillow = quality_step if with_quality else _without_quality
        started = time.perf_counter()
        fields = inspect._inspect_bytes(entry, data, info, MAX_PIXELS)
        inspect._hash_and_measure([fields])
        return time.perf_counter() - started

    for _, data in made[:20]:  # warm up both paths
        run(data, True)
        run(data, False)
    times = np.zeros((2, len(made), args.rounds))
    for round_ in range(args.rounds):
        first = round_ % 2 == 0
        for index, (_, data) in enumerate(made):
            for with_quality in (first, not first):
                times[0 if with_quality else 1, index, round_] = run(data, with_quality)
    inspect._decode_with_pillow = quality_step

    per_file = np.median(times, axis=2)  # (A/B, files)
    formats = np.array([fmt for fmt, _ in made])
    figures = {}
    print(f"{len(made)} files, {args.rounds} rounds, A/B alternating, cpus={os.cpu_count()}")
    for fmt in ("JPEG", "PNG"):
        rows = formats == fmt
        if not rows.any():
            continue
        quality, without = per_file[0, rows], per_file[1, rows]
        overhead = quality.sum() / without.sum() - 1
        ratio = statistics.median((quality / without).tolist()) - 1
        figures[fmt] = {
            "files": int(rows.sum()),
            "median_ms_with_quality": round(float(np.median(quality)) * 1e3, 4),
            "median_ms_without": round(float(np.median(without)) * 1e3, 4),
            "overhead_of_sums": round(float(overhead), 4),
            "median_per_file_overhead": round(ratio, 4),
        }
        print(
            f"{fmt}: {rows.sum()} files, median per file {np.median(quality) * 1e3:.3f} ms with "
            f"quality, {np.median(without) * 1e3:.3f} ms without; overhead {overhead:+.1%} "
            f"(summed medians), {ratio:+.1%} (median of per-file ratios)"
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
