"""Near-duplicate quality: precision, recall and F1 of this project and of imagededup's PHash.

Generates distinct photo-like originals (256-420 px, JPEG q95) and, for each, one copy per
transform of tests/imagegen.TRANSFORMS (resized, recompressed, cropped centre and corner,
brightened, blurred, watermarked; JPEG q90), plus distractors that have no copy. Seeds
differ from the ones the thresholds were measured on. Ground truth: two files are
duplicates when they come from the same original.

Scores are over pairs of files: this project's groups count every pair inside a group;
imagededup's find_duplicates() lists pairs (no grouping). Both tools also get a recall
per transform: how often the copy is paired (directly or through its group) with its
original.

    python bench/near_duplicates_quality.py [--originals 200] [--distractors 400]
        [--imagededup-python bench/.venv-imagededup/bin/python]   # see `make bench-env`

imagededup is never a project dependency: it runs in its own environment, through a
subprocess; without it, only this project's figures are printed.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from audit.scan import scan  # noqa: E402
from tests.imagegen import TRANSFORMS, photo_like  # noqa: E402

IMAGEDEDUP_SNIPPET = """
import json, sys
from imagededup.methods import PHash
hasher = PHash(verbose=False)
encodings = hasher.encode_images(image_dir=sys.argv[1])
found = hasher.find_duplicates(encoding_map=encodings, max_distance_threshold=10)
print(json.dumps(found))
"""


def build(folder: Path, originals: int, distractors: int) -> dict[str, str]:
    """Write the images into folder/all/; returns file name -> source id."""
    target = folder / "all"
    target.mkdir(parents=True)
    rng = np.random.default_rng(77)
    source_of = {}
    for number in range(originals + distractors):
        picture = photo_like(
            int(rng.integers(256, 421)), int(rng.integers(200, 321)), seed=50_000 + number
        )
        name = f"{number:05d}_original.jpg"
        picture.save(target / name, "JPEG", quality=95)
        source_of[name] = str(number)
        if number < originals:
            for transform_name, transform in TRANSFORMS.items():
                copy_name = f"{number:05d}_{transform_name}.jpg"
                transform(picture).save(target / copy_name, "JPEG", quality=90)
                source_of[copy_name] = str(number)
    return source_of


def truth_pairs(source_of: dict[str, str]) -> set[tuple[str, str]]:
    by_source: dict[str, list[str]] = {}
    for name, source in source_of.items():
        by_source.setdefault(source, []).append(name)
    return {
        tuple(sorted(pair))
        for names in by_source.values()
        for pair in itertools.combinations(names, 2)
    }


def score(predicted: set, truth: set, source_of: dict[str, str]) -> dict:
    true_positive = len(predicted & truth)
    precision = true_positive / len(predicted) if predicted else 1.0
    recall = true_positive / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    per_transform = {}
    for transform_name in TRANSFORMS:
        copies = [name for name in source_of if name.endswith(f"_{transform_name}.jpg")]
        found = sum(
            tuple(sorted((name, name.split("_")[0] + "_original.jpg"))) in predicted
            for name in copies
        )
        per_transform[transform_name] = round(found / len(copies), 3) if copies else None
    return {
        "pairs_predicted": len(predicted),
        "true_positives": true_positive,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "recall_by_transform": per_transform,
    }


def this_project(folder: Path, out: Path) -> tuple[set, float]:
    started = time.perf_counter()
    scan(folder, out, jobs=None)
    elapsed = time.perf_counter() - started
    groups: dict[str, list[str]] = {}
    for row in csv.DictReader(open(out / "duplicates.csv", encoding="utf-8")):
        groups.setdefault(row["group"], []).append(row["path"].split("/", 1)[1])
    pairs = {
        tuple(sorted(pair))
        for names in groups.values()
        for pair in itertools.combinations(names, 2)
    }
    return pairs, elapsed


def imagededup(python: str, folder: Path) -> tuple[set, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [python, "-c", IMAGEDEDUP_SNIPPET, str(folder / "all")],
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed = time.perf_counter() - started
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        tuple(sorted((name, other))) for name, others in found.items() for other in others
    }, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--originals", type=int, default=200)
    parser.add_argument("--distractors", type=int, default=400)
    parser.add_argument(
        "--imagededup-python", help="a Python with imagededup installed (make bench-env)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "data"
        source_of = build(folder, args.originals, args.distractors)
        truth = truth_pairs(source_of)
        print(
            f"{len(source_of)} images: {args.originals} originals x {len(TRANSFORMS)} transforms + "
            f"{args.distractors} distractors; {len(truth)} true duplicate pairs"
        )
        ours, seconds = this_project(folder, Path(work) / "out")
        results = {"image-audit": {**score(ours, truth, source_of), "seconds": round(seconds, 1)}}
        if args.imagededup_python:
            theirs, seconds = imagededup(args.imagededup_python, folder)
            results["imagededup PHash t=10"] = {
                **score(theirs, truth, source_of),
                "seconds": round(seconds, 1),
            }
        else:
            print("imagededup not measured: pass --imagededup-python (see `make bench-env`)")
    for tool, figures in results.items():
        print(
            f"{tool:24s} precision {figures['precision']:.3f}  "
            f"recall {figures['recall']:.3f}  F1 {figures['f1']:.3f}  "
            f"({figures['pairs_predicted']} pairs, {figures['seconds']} s)"
        )
        print(f"{'':24s} recall by transform: {figures['recall_by_transform']}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
