"""Scan throughput: images/s for the whole scan (walk, integrity, sha256, pHash, size, reports).

Generates (once, then reuses) a folder of photo-like JPEGs of 300-500 px in ten classes,
or scans a folder you give. Prints figures; asserts nothing. Three figures:

* cli: `python -m audit scan` as a user runs it, a fresh process each time (cold start,
  worker start-up and report writing included): the headline figure;
* in-process: scan() called repeatedly in one process (worker start-up amortised);
* decode ceiling: Pillow's draft JPEG decode alone, one process per core: no scan that
  fully decodes every file can beat it on this machine.

    python bench/scan_throughput.py [--images 2000] [--jobs N] [--folder DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit.scan import default_jobs, scan  # noqa: E402
from tests.imagegen import photo_like  # noqa: E402


def generate(folder: Path, count: int) -> Path:
    """count photo-like JPEGs, 300-500 px a side, quality 85-95, in 10 classes."""
    marker = folder / f".complete-{count}"
    if marker.exists():
        return folder
    import numpy as np

    rng = np.random.default_rng(2026)
    for index in range(count):
        width, height = (int(v) for v in rng.integers(300, 501, 2))
        image = photo_like(width, height, seed=index)
        target = folder / f"class_{index % 10}" / f"img_{index:06d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target, "JPEG", quality=int(rng.integers(85, 96)))
    marker.write_text("")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=default_jobs())
    parser.add_argument(
        "--folder", type=Path, help="scan this dataset instead of the generated one"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs; the best and the median are printed"
    )
    args = parser.parse_args()

    cache = Path(tempfile.gettempdir()) / "image-audit-bench" / f"photos-{args.images}"
    root = args.folder or generate(cache, args.images)
    files = sum(1 for _ in root.rglob("*") if _.is_file() and not _.name.startswith("."))
    size_mb = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6
    print(
        f"dataset: {root} ({files} files, {size_mb:.1f} MB), "
        f"jobs={args.jobs}, cpus={os.cpu_count()}"
    )
    cli, in_process = [], []
    with tempfile.TemporaryDirectory() as out:
        for run in range(args.repeat):
            command = [
                sys.executable,
                "-m",
                "audit",
                "scan",
                str(root),
                "--out",
                f"{out}/cli{run}",
                "--jobs",
                str(args.jobs),
                "--quiet",
                "--fail-on",
                "never",
            ]
            started = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            cli.append(files / (time.perf_counter() - started))
            print(f"cli run {run + 1}: {cli[-1]:,.0f} images/s")
        for run in range(args.repeat):
            started = time.perf_counter()
            result = scan(root, Path(out) / f"run{run}", jobs=args.jobs)
            in_process.append(result.summary["files"] / (time.perf_counter() - started))
            print(f"in-process run {run + 1}: {in_process[-1]:,.0f} images/s")
    ceiling = decode_ceiling(root, args.jobs)
    print(
        f"decode ceiling (Pillow draft decode only, {args.jobs} processes): {ceiling:,.0f} images/s"
    )
    print(
        json.dumps(
            {
                "images": files,
                "jobs": args.jobs,
                "cli_median_images_per_s": round(median(cli)),
                "in_process_median_images_per_s": round(median(in_process)),
                "decode_ceiling_images_per_s": round(ceiling),
            }
        )
    )


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _decode_all(paths: list[str]) -> int:
    from PIL import Image

    for path in paths:
        with open(path, "rb") as handle:
            image = Image.open(io.BytesIO(handle.read()))
            image.draft("L", (32, 32))
            image.load()
    return len(paths)


def decode_ceiling(root: Path, jobs: int) -> float:
    """Images/s of the JPEG decode alone, split over jobs processes."""
    from concurrent.futures import ProcessPoolExecutor

    paths = sorted(str(p) for p in root.rglob("*.jpg"))
    shares = [paths[index::jobs] for index in range(jobs)]
    with ProcessPoolExecutor(jobs) as pool:
        list(pool.map(_decode_all, [share[:8] for share in shares]))  # start the workers first
        started = time.perf_counter()
        done = sum(pool.map(_decode_all, shares))
    return done / (time.perf_counter() - started)


if __name__ == "__main__":
    main()
