"""Input scaling measured: per-channel standardisation with the training images' statistics
(channel, the default) against x / 255 (rescale, 0.1.0's), at equal steps.

Trains the baseline CNN and the small Xception of --preset cpu-small on the demo digits
(--no-flip: a mirrored digit is another digit) with each scaling, from the same seed, and
prints each run's best validation loss and accuracy and its time. Asserts nothing.

    python bench/normalization.py [--steps 240] [--seeds 1337]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit.demo import build_demo  # noqa: E402
from audit.scan import scan  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--steps", type=int, default=240)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1337])
    args = parser.parse_args()

    from train.ablation import Ablation
    from train.config import PRESETS, TrainConfig
    from train.data import load_examples, split_examples
    from train.stages import Context

    work = Path(tempfile.gettempdir()) / "image-audit-bench" / "demo"
    root, report = work / "dataset", work / "report"
    if not root.exists():
        build_demo(root)
    if not (report / "summary.json").exists():
        scan(root, report, fail_on="never")
    print(f"{'seed':>6s} {'scaling':8s} {'run':9s} {'best val loss':>13s} {'acc':>6s} {'s':>6s}")
    for seed in args.seeds:
        split = split_examples(load_examples(report), 0.2, seed)
        base = TrainConfig(**{**PRESETS["cpu-small"], "steps": args.steps}, seed=seed, flip=False)
        for scaling in ("rescale", "channel"):
            context = Context(split, replace(base, normalization=scaling), log=lambda line: None)
            if scaling == "channel":
                mean, std = context.channel_statistics(base.image_size)
                print(
                    f"{'':6s} channel mean {[round(v, 3) for v in mean]} std "
                    f"{[round(v, 3) for v in std]}"
                )
            ablation = Ablation(context)
            for stage in ("baseline", "xception"):
                started = time.perf_counter()
                run = ablation.run(stage)
                best = min(
                    range(len(run.history["val_loss"])), key=run.history["val_loss"].__getitem__
                )
                print(
                    f"{seed:6d} {scaling:8s} {stage:9s} {run.history['val_loss'][best]:13.4f} "
                    f"{run.history['val_accuracy'][best]:6.3f} {time.perf_counter() - started:6.1f}"
                )


if __name__ == "__main__":
    main()
