"""Near-duplicate search time: all pairs of 64-bit hashes within radius 10, exactly.

Two kinds of input:
* random hashes with 1% planted near copies (0-12 bits away) and 0.5% exact repeats,
  at 10k, 100k and 1M;
* pHashes of real photos: random crops (15-100% of each side), flips and sizes of
  scikit-learn's two bundled photos and its 1,797 digit scans. They are strongly
  clustered, the hard case for any bucketing scheme (cached under the temp folder).

    python bench/search_speed.py [--sizes 10000 100000 1000000] [--real 100000]
        [--brute-up-to 100000]

Prints seconds per search for multi-index hashing (numba) and, up to --brute-up-to,
for numpy brute force; asserts that both return the same pairs where both run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from audit.neighbors import pairs_within  # noqa: E402

RADIUS = 10


def random_planted(count: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64, count, dtype=np.uint64, endpoint=False)
    planted = count // 100
    sources, targets = rng.integers(0, count, planted), rng.integers(0, count, planted)
    flips = rng.integers(0, RADIUS + 3, planted)
    for source, target, flip in zip(sources, targets, flips, strict=True):
        value = hashes[source]
        for bit in rng.choice(64, flip, replace=False):
            value ^= np.uint64(1) << np.uint64(bit)
        hashes[target] = value
    repeats = count // 200
    hashes[rng.integers(0, count, repeats)] = hashes[rng.integers(0, count, repeats)]
    return hashes


def real_photo_hashes(count: int) -> np.ndarray:
    cache = Path(tempfile.gettempdir()) / "image-audit-bench" / f"real-phash-{count}.npy"
    if cache.exists():
        return np.load(cache)
    from PIL import Image
    from sklearn.datasets import load_digits, load_sample_image

    from audit.hashing import phash

    photos = [Image.fromarray(load_sample_image(name)) for name in ("china.jpg", "flower.jpg")]
    digits = [
        Image.fromarray((pixels * 255 / 16).astype(np.uint8)).resize((32, 32))
        for pixels in load_digits().images
    ]
    rng = np.random.default_rng(5)
    hashes = np.empty(count, dtype=np.uint64)
    for index in range(count):
        source = photos[index % 2] if index % 4 else digits[int(rng.integers(len(digits)))]
        width, height = source.size
        crop_w, crop_h = int(width * rng.uniform(0.15, 1.0)), int(height * rng.uniform(0.15, 1.0))
        left, top = (
            int(rng.integers(0, width - crop_w + 1)),
            int(rng.integers(0, height - crop_h + 1)),
        )
        picture = source.crop((left, top, left + crop_w, top + crop_h))
        if rng.random() < 0.5:
            picture = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        side = int(rng.integers(32, 160))
        hashes[index] = phash(picture.resize((side, side)))
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, hashes)
    return hashes


def timed(hashes: np.ndarray, method: str) -> tuple[float, set]:
    started = time.perf_counter()
    pairs = pairs_within(hashes, RADIUS, method=method)
    elapsed = time.perf_counter() - started
    return elapsed, set(zip(pairs.first.tolist(), pairs.second.tolist(), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--real", type=int, default=100_000, help="real-photo hashes (0 to skip)")
    parser.add_argument("--brute-up-to", type=int, default=100_000)
    args = parser.parse_args()
    pairs_within(random_planted(10_000), RADIUS, method="mih")  # compile (or load the cache) first
    print(f"radius {RADIUS}, {os.cpu_count()} cpus")
    inputs = [(f"random+planted {size:,}", random_planted(size)) for size in args.sizes]
    if args.real:
        inputs.append((f"real-photo pHashes {args.real:,}", real_photo_hashes(args.real)))
    figures = {}
    for name, hashes in inputs:
        seconds, found = timed(hashes, "mih")
        line = f"{name:32s} mih {seconds:8.2f} s  {len(found):,} pairs"
        figures[name] = {"mih_s": round(seconds, 2), "pairs": len(found)}
        if hashes.size <= args.brute_up_to:
            brute_seconds, reference = timed(hashes, "brute")
            if reference != found:
                raise SystemExit(f"{name}: mih and brute force disagree")
            line += f" | brute {brute_seconds:8.2f} s (same pairs)"
            figures[name]["brute_s"] = round(brute_seconds, 2)
        print(line, flush=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
