"""Incremental re-scan and memory at scale: many small files, cold, warm, and peak RSS.

* cold/warm (--images, default off: bench/scan_throughput.py measures 20,000 photos):
  `python -m audit scan` on a generated folder of photo-like JPEGs (cache empty), then
  again on the unchanged folder;
* at scale (--rss-images, default 100,000; `make bench-large` runs 1,000,000): small
  generated PNGs, scanned cold into a new folder, then warm (unchanged: the reports are
  reused), and the decode limit (every file decoded, nothing else, in --jobs processes
  already started). For each scan, the peak resident memory summed over the main process
  and its workers (sampled from /proc every 50 ms), and that of the largest process.

    python bench/cache_and_memory.py [--images 0] [--rss-images 100000] [--jobs N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from audit.scan import default_jobs  # noqa: E402
from bench.scan_throughput import decode_limit  # noqa: E402
from tests.imagegen import photo_like  # noqa: E402

CACHE = Path(tempfile.gettempdir()) / "image-audit-bench"


def photos(count: int) -> Path:
    folder = CACHE / f"photos-cache-{count}"
    if not (folder / ".complete").exists():
        rng = np.random.default_rng(11)
        for index in range(count):
            target = folder / f"class_{index % 10}" / f"img_{index:06d}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            photo_like(int(rng.integers(160, 321)), int(rng.integers(120, 241)), seed=index).save(
                target, "JPEG", quality=88
            )
        (folder / ".complete").write_text("")
    return folder


def small_images(count: int) -> Path:
    folder = CACHE / f"small-{count}"
    if not (folder / ".complete").exists():
        rng = np.random.default_rng(12)
        for index in range(count):
            target = folder / f"class_{index % 20}" / f"{index:07d}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                target, compress_level=1
            )
        (folder / ".complete").write_text("")
    return folder


def _tree_rss_kib(pid: int) -> tuple[int, int]:
    """(sum, max) of VmRSS over pid and all its descendants, in KiB."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    total = largest = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        stack.extend(children.get(current, []))
        try:
            with open(f"/proc/{current}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1])
                        total += rss
                        largest = max(largest, rss)
        except OSError:
            continue
    return total, largest


def run_scan(root: Path, out: Path, jobs: int, extra: list[str] | None = None) -> dict:
    command = [
        sys.executable,
        "-m",
        "audit",
        "scan",
        str(root),
        "--out",
        str(out),
        "--jobs",
        str(jobs),
        "--quiet",
        "--fail-on",
        "never",
        *(extra or []),
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    peak_total = peak_single = 0
    while process.poll() is None:
        total, largest = _tree_rss_kib(process.pid)
        peak_total, peak_single = max(peak_total, total), max(peak_single, largest)
        time.sleep(0.05)
    if process.returncode != 0:
        raise SystemExit(f"scan failed with exit code {process.returncode}")
    return {
        "seconds": time.perf_counter() - started,
        "peak_rss_total_mb": peak_total / 1024,
        "peak_rss_largest_mb": peak_single / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=0)
    parser.add_argument("--rss-images", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=default_jobs())
    args = parser.parse_args()
    figures = {}
    with tempfile.TemporaryDirectory() as work:
        if args.images:
            root = photos(args.images)
            cold = run_scan(root, Path(work) / "cold", args.jobs)
            warm = run_scan(root, Path(work) / "cold", args.jobs)
            ratio = warm["seconds"] / cold["seconds"]
            print(
                f"{args.images:,} photo-like JPEGs: cold {cold['seconds']:.1f} s, "
                f"warm {warm['seconds']:.2f} s "
                f"= {ratio:.1%} of cold (peak RSS cold {cold['peak_rss_total_mb']:.0f} MB)"
            )
            figures["cold_s"], figures["warm_s"], figures["warm_over_cold"] = (
                round(cold["seconds"], 2),
                round(warm["seconds"], 2),
                round(ratio, 4),
            )
        if args.rss_images:
            root = small_images(args.rss_images)
            print(f"load average at start {os.getloadavg()[0]:.1f}")
            for name in ("cold", "warm"):
                memory = run_scan(root, Path(work) / "rss", args.jobs)
                print(
                    f"{args.rss_images:,} small PNGs, {name}: {memory['seconds']:.1f} s, "
                    f"peak RSS {memory['peak_rss_total_mb']:.0f} MB "
                    f"(all processes), {memory['peak_rss_largest_mb']:.0f} MB (largest process)"
                )
                figures.update(
                    {f"rss_{name}_{key}": round(value, 2) for key, value in memory.items()}
                )
            paths = sorted(str(path) for path in root.glob("*/*.png"))
            figures["rss_decode_s"] = round(decode_limit(paths, args.jobs), 2)
            cold, warm = figures["rss_cold_seconds"], figures["rss_warm_seconds"]
            print(
                f"decode limit {figures['rss_decode_s']:.1f} s: cold = "
                f"{cold / figures['rss_decode_s']:.2f}x the decode limit, warm = "
                f"{warm / cold:.1%} of cold (load average now {os.getloadavg()[0]:.1f})"
            )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
