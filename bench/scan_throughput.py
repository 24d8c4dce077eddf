"""Scan throughput: the whole scan against the decode it cannot avoid, cold and warm.

Generates (once, then reuses) a folder of photo-like JPEGs of 300-500 px in ten classes,
or scans a folder you give. Prints figures; asserts nothing. Each round measures, in this
order, as a user runs them (`python -m audit scan`, a fresh process each time: start-up,
worker start-up and report writing included):

* cold: into a new report folder (no cache, no earlier reports);
* warm, unchanged: the same again into that folder (the reports are reused: audit.reuse);
* warm, 1% changed: after touching every 100th file (a new modification time: the cache
  reads those again, so the dataset checks and reports run);
* decode limit: the decode the scan makes of every file (Pillow's draft decode to YCbCr or
  L at 1/8 scale, from the bytes read in one call), alone, in --jobs processes already
  started: no scan that decodes every file can beat it on this machine.

The medians over the rounds and their ratios are printed last. Rounds alternate the
measurements, so a machine shared with other work loads them alike.

    python bench/scan_throughput.py [--images 20000] [--jobs N] [--folder DIR] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit.scan import default_jobs  # noqa: E402
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
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--jobs", type=int, default=default_jobs())
    parser.add_argument(
        "--folder", type=Path, help="scan this dataset instead of the generated one"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are printed")
    parser.add_argument(
        "--source",
        type=Path,
        help="scan with the audit package of this source tree (e.g. an earlier version, "
        "from `git archive REV | tar -x -C DIR`)",
    )
    args = parser.parse_args()
    if args.source:
        global SOURCE
        SOURCE = args.source.resolve()
        os.environ["PYTHONPATH"] = str(SOURCE)

    cache = Path(tempfile.gettempdir()) / "image-audit-bench" / f"photos-{args.images}"
    root = args.folder or generate(cache, args.images)
    paths = sorted(str(p) for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    size_mb = sum(os.path.getsize(p) for p in paths) / 1e6
    print(
        f"dataset: {root} ({len(paths)} files, {size_mb:.1f} MB), jobs={args.jobs}, "
        f"cpus={os.cpu_count()}, load average at start {os.getloadavg()[0]:.1f}"
    )
    times: dict[str, list[float]] = {"cold": [], "warm": [], "warm_1pct": [], "decode": []}
    changed = paths[::100]
    with tempfile.TemporaryDirectory() as work:
        for number in range(args.rounds):
            out = Path(work) / f"round{number}"
            times["cold"].append(cli_scan(root, out, args.jobs))
            times["warm"].append(cli_scan(root, out, args.jobs))
            cache = json.loads((out / "summary.json").read_text())["cache"]
            # Not reused when anything the reports depend on changed, the audit package's
            # code included (a shared working tree edited meanwhile): say so.
            reused = "reused" if "reused_from" in cache else "NOT reused"
            touch(changed, number)
            times["warm_1pct"].append(cli_scan(root, out, args.jobs))
            times["decode"].append(decode_limit(paths, args.jobs))
            print(
                f"round {number + 1}: "
                + ", ".join(f"{name} {values[-1]:.2f} s" for name, values in times.items())
                + f" (warm: reports {reused})"
            )
    median = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"median of {args.rounds} rounds, {len(paths):,} files, {args.jobs} processes "
        f"(load average now {os.getloadavg()[0]:.1f}):\n"
        f"  cold scan          {median['cold']:7.2f} s  {len(paths) / median['cold']:7.0f} images/s"
        f"  = {median['cold'] / median['decode']:.2f}x the decode limit\n"
        f"  decode limit       {median['decode']:7.2f} s  {len(paths) / median['decode']:7.0f} "
        "images/s\n"
        f"  warm, unchanged    {median['warm']:7.2f} s  = {median['warm'] / median['cold']:.1%} "
        "of cold\n"
        f"  warm, 1% changed   {median['warm_1pct']:7.2f} s  = "
        f"{median['warm_1pct'] / median['cold']:.1%} of cold ({len(changed)} files touched)"
    )
    print(
        json.dumps(
            {
                "images": len(paths),
                "jobs": args.jobs,
                **{f"{name}_s": round(value, 3) for name, value in median.items()},
                "cold_over_decode": round(median["cold"] / median["decode"], 3),
                "warm_over_cold": round(median["warm"] / median["cold"], 4),
                "warm_1pct_over_cold": round(median["warm_1pct"] / median["cold"], 4),
            }
        )
    )


SOURCE: Path | None = None  # --source: run from there (`-m` puts the working folder first)


def cli_scan(root: Path, out: Path, jobs: int) -> float:
    """Seconds of one `python -m audit scan` into out, a fresh process."""
    command = [sys.executable, "-m", "audit", "scan", str(root), "--out", str(out)]
    command += ["--jobs", str(jobs), "--quiet", "--fail-on", "never"]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=SOURCE)
    return time.perf_counter() - started


def touch(paths: list[str], number: int) -> None:
    """A new modification time for each path (content unchanged): the cache reads them again."""
    stamp = time.time() + number + 1
    for path in paths:
        os.utime(path, (stamp, stamp))


def _decode_all(paths: list[str]) -> int:
    """What audit.inspect decodes of each file, nothing else."""
    from PIL import Image

    for path in paths:
        with open(path, "rb") as handle:
            image = Image.open(io.BytesIO(handle.read()))
            if image.format == "JPEG":
                image.draft("YCbCr" if image.mode == "RGB" else "L", (32, 32))
            image.load()
    return len(paths)


def decode_limit(paths: list[str], jobs: int) -> float:
    """Seconds of the decode alone, split over jobs processes started beforehand."""
    from concurrent.futures import ProcessPoolExecutor

    shares = [paths[index::jobs] for index in range(jobs)]
    with ProcessPoolExecutor(jobs) as pool:
        list(pool.map(_decode_all, [share[:8] for share in shares]))  # start the workers first
        started = time.perf_counter()
        sum(pool.map(_decode_all, shares))
        return time.perf_counter() - started


if __name__ == "__main__":
    main()
