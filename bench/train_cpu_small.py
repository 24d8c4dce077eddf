"""The whole training recipe with --preset cpu-small: wall time, verdicts and ablation table.

--dataset demo (default): the demo digits (built from scikit-learn's digits, run with
--no-flip: a mirrored digit is another digit). --dataset faces: an imbalanced two-class set
nobody tuned the recipe on, scikit-image's LFW subset (100 faces and 100 other 25x25
crops, grayscale) cut to 100 faces and 40 others (2.5:1) and saved as PNG; it needs
scikit-image's data, which `make bench-data` unpacks into bench/.skimage.

Builds the dataset and its audit report (cached in the temp folder), then runs
`python -m train run ROOT --preset cpu-small` as a user would, and prints the wall time
(target: under 15 minutes on 2 cores), the verdict table and the ablation table. Asserts
nothing.

    python bench/train_cpu_small.py [--dataset demo|faces] [--runs-dir DIR]
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

SKIMAGE_LFW = Path(__file__).resolve().parent / ".skimage" / "skimage" / "data" / "lfw_subset.npy"


def build_faces(root: Path, faces: int = 100, others: int = 40) -> Path:
    """faces/ and other/ from scikit-image's LFW subset (its first 100 images are faces),
    upscaled to 32 px PNG; the first `others` non-faces only, for a 2.5:1 imbalance."""
    import numpy as np
    from PIL import Image

    if not SKIMAGE_LFW.is_file():
        raise SystemExit(f"{SKIMAGE_LFW} is missing: run `make bench-data` first")
    images = np.load(SKIMAGE_LFW)
    for name, chosen in (("faces", images[:faces]), ("other", images[100 : 100 + others])):
        (root / name).mkdir(parents=True)
        for index, picture in enumerate(chosen):
            pixels = np.clip(np.asarray(picture, dtype=np.float64) * 255.0, 0, 255)
            image = Image.fromarray(pixels.astype(np.uint8), "L")
            image.resize((32, 32), Image.Resampling.BICUBIC).save(root / name / f"{index:03d}.png")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument(
        "--runs-dir", type=Path, default=Path(tempfile.gettempdir()) / "image-audit-bench" / "runs"
    )
    parser.add_argument("--dataset", choices=("demo", "faces"), default="demo")
    args = parser.parse_args()
    work = Path(tempfile.gettempdir()) / "image-audit-bench" / args.dataset
    root, report = work / "dataset", work / "report"
    if not root.exists():
        build_demo(root) if args.dataset == "demo" else build_faces(root)
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
        *(["--no-flip"] if args.dataset == "demo" else []),
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
