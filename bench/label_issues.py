"""Label issues on the demo digits: known flips found, and how many clean labels get flagged.

For each seed, the demo's digit scans (not the injected trouble files) are copied with a
seeded 5% of them filed under another class, scanned, and run through
`train.label_issues.label_issues` (K-fold out-of-fold predictions, cleanlab) with the command's
defaults except the input size (16 px: the digits are 8x8 scans, 16 px keeps every detail and
costs a quarter of 32 px). Prints, per seed, precision@k and recall@k of the ranked label
issues with k = the number of flips (goal: both >= 0.6), the out-of-fold accuracy, how many
were flagged, and the wall time on this machine's CPU. Then the same on the clean copy (no
flip): the share of images flagged (goal: at most 1%). Asserts nothing.

    python bench/label_issues.py [--seeds 1,2,3] [--folds 5] [--steps 600] [--image-size 16]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit.demo import build_demo  # noqa: E402
from audit.scan import scan  # noqa: E402
from train import label_issues as li  # noqa: E402


def run_one(demo: Path, work: Path, fraction: float, seed: int, args) -> dict:
    root, report = work / f"data-{seed}-{fraction}", work / f"report-{seed}-{fraction}"
    flipped = li.copy_with_flipped_labels(demo, root, fraction, seed, pattern="digit_*.jpg")
    scan(root, report, progress=None)
    config = li.label_issues_config(
        model_name=args.model, image_size=args.image_size, steps=args.steps, seed=seed
    )
    started = time.monotonic()
    document = li.label_issues(root, report, config, args.folds, args.model, log=lambda line: None)
    seconds = time.monotonic() - started
    ranked = [issue.path for issue in document["issues"]]
    result = {
        "seed": seed,
        "images": document["images"],
        "flips": len(flipped),
        "flagged": len(ranked),
        "accuracy": document["out_of_fold_accuracy"],
        "seconds": seconds,
    }
    if flipped:
        result["precision"], result["recall"] = li.precision_recall_at_k(ranked, flipped)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--folds", type=int, default=li.DEFAULT_FOLDS)
    parser.add_argument("--steps", type=int, default=li.DEFAULT_STEPS)
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--model", default=li.DEFAULT_MODEL)
    parser.add_argument("--fraction", type=float, default=0.05)
    parser.add_argument("--no-clean", action="store_true", help="skip the clean run")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    print(
        f"{args.model}, {args.folds} folds, {args.steps} steps, {args.image_size} px, "
        f"{os.cpu_count()} CPU(s)"
    )
    with tempfile.TemporaryDirectory(prefix="bench-label-issues-") as folder:
        work = Path(folder)
        demo = build_demo(work / "demo")
        print("seed  images  flips  flagged  oof-acc  precision@k  recall@k  seconds")
        for seed in seeds:
            r = run_one(demo, work, args.fraction, seed, args)
            print(
                f"{r['seed']:>4}  {r['images']:>6}  {r['flips']:>5}  {r['flagged']:>7}  "
                f"{r['accuracy']:.3f}  {r['precision']:>11.3f}  {r['recall']:>8.3f}  "
                f"{r['seconds']:>7.0f}"
            )
        if not args.no_clean:
            r = run_one(demo, work, 0.0, seeds[0], args)
            print(
                f"clean (seed {seeds[0]}): {r['flagged']} of {r['images']} flagged "
                f"({r['flagged'] / r['images']:.2%}), out-of-fold accuracy {r['accuracy']:.3f}, "
                f"{r['seconds']:.0f} s"
            )


if __name__ == "__main__":
    main()
