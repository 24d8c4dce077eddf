"""The whole training recipe with --preset cpu-small on the demo dataset: wall time and
ablation table.

Builds the demo dataset and its audit report (cached in the temp folder), then runs
`python -m train run DEMO --preset cpu-small` as a user would, and prints the wall time
(target: under 15 minutes on 2 cores) and the ablation table. Asserts nothing.

    python bench/train_cpu_small.py [--runs-dir DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit.demo import build_demo  # noqa: E402
from audit.scan import scan  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument(
        "--runs-dir", type=Path, default=Path(tempfile.gettempdir()) / "image-audit-bench" / "runs"
    )
    args = parser.parse_args()
    work = Path(tempfile.gettempdir()) / "image-audit-bench" / "demo"
    root, report = work / "dataset", work / "report"
    if not (root / "zero").exists():
        build_demo(root)
    if not (report / "summary.json").exists():
        scan(root, report, fail_on="never")
    run_id = time.strftime("cpu-small-%Y%m%d-%H%M%S")
    command = [
        sys.executable,
        "-m",
        "train",
        "run",
        str(root),
        "--report",
        str(report),
        "--preset",
        "cpu-small",
        "--runs-dir",
        str(args.runs_dir),
        "--run-id",
        run_id,
    ]
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    elapsed = time.perf_counter() - started
    print(done.stdout)
    print(
        f"exit code {done.returncode}; wall time {elapsed / 60:.1f} min ({elapsed:.0f} s); "
        f"run folder {args.runs_dir / run_id}"
    )


if __name__ == "__main__":
    main()
