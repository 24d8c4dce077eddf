"""Before/after scan throughput: the same folder scanned by two source trees, alternately.

A change's cost in images/s, measured so that the machine's load falls on both sides alike:
each round scans the folder once with each tree (the order alternating), each scan in a
fresh process (`scan()` from that tree, cache off, the same --jobs), and reports the median
images/s per tree and the relative cost. Get the tree before a change with
`git archive REV | tar -x -C DIR`. Asserts nothing.

    python bench/scan_ab.py --before DIR [--after .] [--folder DIR | --images 2000]
        [--rounds 5] [--jobs N]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.scan_throughput import generate  # noqa: E402

ONE_SCAN = """
import json, sys, time
from audit.scan import scan
folder, out, jobs = sys.argv[1], sys.argv[2], int(sys.argv[3])
started = time.perf_counter()
result = scan(folder, out, jobs=jobs, cache=False, fail_on="never")
print(json.dumps({"files": result.summary["files"], "seconds": time.perf_counter() - started}))
"""


def one_scan(tree: Path, folder: Path, jobs: int) -> tuple[int, float, float]:
    """(files, seconds, CPU seconds) of one scan of folder by the source tree at `tree`.

    The CPU seconds (user + system of the scan and every process it waited for: its
    workers, through the forkserver) hardly move with the machine's load, where the
    wall-clock seconds do: on this shared 2-core machine, the same tree's rate varied
    from 484 to 859 images/s over five rounds."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run(
            [sys.executable, "-c", ONE_SCAN, str(folder), out, str(jobs)],
            env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
            # `-c` puts the working folder first on sys.path: run from the tree itself, or
            # the audit package of wherever this was started from is the one measured.
            cwd=tree,
            capture_output=True,
            text=True,
            check=True,
        )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return figures["files"], figures["seconds"], cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    folder = args.folder or generate(
        Path(tempfile.gettempdir()) / "image-audit-bench" / f"photos-{args.images}", args.images
    )
    rates: dict[str, list[float]] = {"before": [], "after": []}
    cpu_ms: dict[str, list[float]] = {"before": [], "after": []}  # CPU ms per file
    for round_number in range(args.rounds):
        order = ("before", "after") if round_number % 2 == 0 else ("after", "before")
        for side in order:
            files, seconds, cpu = one_scan(getattr(args, side), folder, args.jobs)
            rates[side].append(files / seconds)
            cpu_ms[side].append(1000 * cpu / max(files, 1))
        print(
            f"round {round_number + 1}: before {rates['before'][-1]:.0f} images/s "
            f"({cpu_ms['before'][-1]:.3f} CPU ms/file), after {rates['after'][-1]:.0f} "
            f"images/s ({cpu_ms['after'][-1]:.3f} CPU ms/file)"
        )
    before, after = (statistics.median(rates[side]) for side in ("before", "after"))
    cpu_before, cpu_after = (statistics.median(cpu_ms[side]) for side in ("before", "after"))
    print(
        f"median over {args.rounds} rounds, {files} files, jobs {args.jobs}: before {before:.0f} "
        f"images/s, after {after:.0f} images/s: the change costs {100 * (1 - after / before):+.1f}%"
        f"; CPU (all processes) before {cpu_before:.3f} ms/file, after {cpu_after:.3f} ms/file: "
        f"{100 * (cpu_after / cpu_before - 1):+.1f}%"
    )


if __name__ == "__main__":
    main()
