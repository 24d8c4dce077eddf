"""Near-duplicate quality on real photos: precision, recall and F1 per edit family,
for this project and for imagededup's PHash at its default threshold.

Originals are non-overlapping tiles (320x240) of real pictures from named packages
(bench/real_photos.py lists them; the output names every source file used). Each of
the first --originals tiles gets one copy per edit family, its parameters drawn at
random within the family's range; the other tiles are distractors with no copy.
Originals are saved as JPEG q95, copies as JPEG q90. Ground truth: two files are
duplicates when they come from the same tile.

Edit families (the duplicates issue's list):
  resize       scale 0.3-0.8 of each side
  recompress   JPEG quality 25-70
  crop         up to 10% of the area removed, at the centre or a corner
  overlay      a caption bar along an edge or a logo in a corner, 3-10% of the frame
  blur         Gaussian radius 0.5-2 px
  brightness   factor 0.7-1.3
  mirror       left-right flip (found only with --mirror)

Scores are over pairs of files: this project's groups count every pair inside a group;
imagededup's find_duplicates() lists pairs. Recall per family: how often the copy is
paired (directly or through its group) with its original. Precision is over all
predicted pairs; "precision without mirror" leaves the mirror family's files out.

    python bench/near_duplicates_quality.py [--originals 250] [--distractors 230]
        [--mirror] [--imagededup-python bench/.venv-imagededup/bin/python]
    python bench/near_duplicates_quality.py --measure-cut   # distances per family

--measure-cut prints, from the scan's own hashes, the full-frame and centred-crop
distance between each copy and its original per family, and how many pairs of
distinct tiles fall within each distance: the label_conflict cut is chosen from it.
It also prints the pixel correlation (audit.checks.duplicates.pixel_similarity) of the
copies within the copy cut per family, of the mirrored copies (flipped back), and of
the distinct pairs closest in pHash (full or crop within 8 bits, mirrored within 10):
the pixel cut PIXEL_COPY_CUT is chosen from it.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from PIL import Image, ImageEnhance, ImageFilter  # noqa: E402
from real_photos import tiles  # noqa: E402

from audit.checks import REGISTRY  # noqa: E402
from audit.checks.duplicates import (  # noqa: E402
    CONFLICT_CUT,
    MIRROR_RADIUS,
    PIXEL_COPY_CUT,
    pixel_similarity,
    pixel_views,
)
from audit.hashing import CUT_SLICE, MIRROR_INDEX, NO_HASH, ZOOM_SLICE  # noqa: E402
from audit.scan import scan  # noqa: E402
from tests.imagegen import area_crop, caption_bar, corner_logo, mirrored  # noqa: E402

IMAGEDEDUP_SNIPPET = """
import json, sys
from imagededup.methods import PHash
hasher = PHash(verbose=False)
encodings = hasher.encode_images(image_dir=sys.argv[1])
found = hasher.find_duplicates(encoding_map=encodings, max_distance_threshold=10)
print(json.dumps(found))
"""

CORNERS = ("tl", "tr", "bl", "br")
EDGES = ("top", "bottom", "left", "right")


def _recompress(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _overlay(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    fraction = float(rng.uniform(0.03, 0.10))
    if rng.random() < 0.5:
        return caption_bar(image, fraction, EDGES[int(rng.integers(4))])
    return corner_logo(image, fraction, CORNERS[int(rng.integers(4))])


def _crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    anchor = ("centre", *CORNERS)[int(rng.integers(5))]
    return area_crop(image, float(rng.uniform(0.02, 0.10)), anchor)


def _resize(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    scale = float(rng.uniform(0.3, 0.8))
    size = (max(8, round(image.width * scale)), max(8, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR)


FAMILIES = {
    "resize": _resize,
    "recompress": lambda image, rng: _recompress(image, int(rng.integers(25, 71))),
    "crop": _crop,
    "overlay": _overlay,
    "blur": lambda image, rng: image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2)))),
    "brightness": lambda image, rng: ImageEnhance.Brightness(image).enhance(
        float(rng.uniform(0.7, 1.3))
    ),
    "mirror": lambda image, rng: mirrored(image),
}


def build(folder: Path, originals: int, distractors: int) -> tuple[dict[str, str], Counter]:
    """Write the images into folder/all/; returns (file name -> tile id, files per source)."""
    target = folder / "all"
    target.mkdir(parents=True)
    rng = np.random.default_rng(2027)
    source_of: dict[str, str] = {}
    used: Counter = Counter()
    for number, (source, _box, tile) in enumerate(tiles(320, 240, originals + distractors)):
        used[f"{source.package}: {source.path}"] += 1
        name = f"{number:05d}_original.jpg"
        tile.save(target / name, "JPEG", quality=95)
        source_of[name] = str(number)
        if number < originals:
            for family, edit in FAMILIES.items():
                copy_name = f"{number:05d}_{family}.jpg"
                edit(tile, rng).save(target / copy_name, "JPEG", quality=90)
                source_of[copy_name] = str(number)
    if len({v for v in source_of.values()}) < originals + distractors:
        print(f"only {len(set(source_of.values()))} tiles found: see bench/real_photos.py")
    return source_of, used


def truth_pairs(source_of: dict[str, str]) -> set[tuple[str, str]]:
    by_source: dict[str, list[str]] = {}
    for name, source in source_of.items():
        by_source.setdefault(source, []).append(name)
    return {
        (first, second)
        for names in by_source.values()
        for first, second in itertools.combinations(sorted(names), 2)
    }


def _prf(predicted: set, truth: set) -> tuple[float, float, float]:
    true_positive = len(predicted & truth)
    precision = true_positive / len(predicted) if predicted else 1.0
    recall = true_positive / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def score(predicted: set, truth: set, source_of: dict[str, str]) -> dict:
    precision, recall, f1 = _prf(predicted, truth)

    def not_mirror(pair) -> bool:
        return not any(name.endswith("_mirror.jpg") for name in pair)

    precision_nm, recall_nm, f1_nm = _prf(
        {p for p in predicted if not_mirror(p)}, {p for p in truth if not_mirror(p)}
    )
    per_family = {}
    for family in FAMILIES:
        copies = [name for name in source_of if name.endswith(f"_{family}.jpg")]
        found = sum(
            tuple(sorted((name, name.split("_")[0] + "_original.jpg"))) in predicted
            for name in copies
        )
        per_family[family] = round(found / len(copies), 3) if copies else None
    false_pairs = sorted(predicted - truth)
    return {
        "pairs_predicted": len(predicted),
        "true_positives": len(predicted & truth),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "without_mirror": {
            "precision": round(precision_nm, 4),
            "recall": round(recall_nm, 4),
            "f1": round(f1_nm, 4),
        },
        "recall_by_family": per_family,
        "false_pairs_sample": false_pairs[:8],
    }


def this_project(folder: Path, out: Path, mirror: bool) -> tuple[set, float]:
    started = time.perf_counter()
    scan(folder, out, jobs=None, thresholds=REGISTRY.thresholds(mirror=int(mirror)))
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


def measure_pixels(folder: Path, full: dict, zoom: dict, mirror: dict, evidence) -> None:
    """Pixel correlation of copies within the copy cut, per family, and of the distinct
    pairs closest in pHash: the figures PIXEL_COPY_CUT is chosen from."""
    views: dict[str, np.ndarray] = {}

    def similarity(a: str, b: str, mirrored: bool = False) -> float:
        for name in (a, b):
            if name not in views:
                with Image.open(folder / "all" / name) as image:
                    views[name] = pixel_views(image)
        return pixel_similarity(views[a], views[b], mirrored)

    def mirrored_distance(a: str, b: str) -> int:
        return min((mirror[a] ^ full[b]).bit_count(), (mirror[b] ^ full[a]).bit_count())

    print(f"pixel correlation (32x32 views; the pixel cut is {PIXEL_COPY_CUT}):")
    for family in FAMILIES:
        names = [n for n in full if n.endswith(f"_{family}.jpg")]
        is_mirror = family == "mirror"
        values = []
        for name in names:
            original = name.split("_")[0] + "_original.jpg"
            distance = mirrored_distance(name, original) if is_mirror else evidence(name, original)
            if distance <= (MIRROR_RADIUS if is_mirror else CONFLICT_CUT):
                values.append(similarity(name, original, is_mirror))
        if not values:
            continue
        found = np.array(values)
        figures = np.percentile(found, [0, 1, 5, 50]).round(3).tolist()
        print(
            f"  {family:11s} {len(found):3d} copies within "
            f"{'the mirror radius' if is_mirror else 'the copy cut'}: min/p1/p5/p50 {figures}, "
            f"{(found >= PIXEL_COPY_CUT).mean():.1%} at or above the cut"
        )
    originals = sorted(n for n in full if n.endswith("_original.jpg"))
    closest = []
    for a, b in itertools.combinations(originals, 2):
        if evidence(a, b) <= 8:
            closest.append(("full|crop", evidence(a, b), similarity(a, b), a, b))
        if mirrored_distance(a, b) <= 10:
            closest.append(("mirrored", mirrored_distance(a, b), similarity(a, b, True), a, b))
    print(f"  distinct pairs closest in pHash ({len(closest)}):")
    for how, distance, value, a, b in sorted(closest, key=lambda row: (row[0], row[1])):
        print(f"    {how:9s} distance {distance:2d}: correlation {value:.3f}  {a} {b}")


def measure_cut(out: Path, source_of: dict[str, str]) -> None:
    """Distances copy -> original per family (full frame; best of full and centred crop;
    best side cut), and distinct tiles' closest pairs, from the scan's images.csv."""
    full: dict[str, int] = {}
    zoom: dict[str, list[int]] = {}
    cut: dict[str, list[int]] = {}
    mirror: dict[str, int] = {}
    for row in csv.DictReader(open(out / "images.csv", encoding="utf-8")):
        name = row["path"].split("/", 1)[1]
        full[name] = int(row["phash"], 16)
        variants = [int(value, 16) for value in row["phash_zoom"].split(";")]
        zoom[name] = variants[ZOOM_SLICE]
        cut[name] = variants[CUT_SLICE]
        mirror[name] = variants[MIRROR_INDEX]

    def evidence(a: str, b: str) -> int:
        values = [(full[a] ^ full[b]).bit_count()]
        values += [(z ^ full[b]).bit_count() for z in zoom[a] if z != NO_HASH]
        values += [(z ^ full[a]).bit_count() for z in zoom[b] if z != NO_HASH]
        return min(values)

    def side(a: str, b: str) -> int:
        found = [(x ^ y).bit_count() for x, y in zip(cut[a], cut[b], strict=True) if x and y]
        return min(found, default=99)

    print("copy -> original distances on real photos (percentiles 50/90/99/max)")
    for family in FAMILIES:
        names = [n for n in full if n.endswith(f"_{family}.jpg")]
        for label, measure in (
            ("full", lambda a, b: (full[a] ^ full[b]).bit_count()),
            ("full|crop", evidence),
            ("side cut", side),
        ):
            values = np.array([measure(n, n.split("_")[0] + "_original.jpg") for n in names])
            figures = np.percentile(values, [50, 90, 99]).round(1).tolist()
            within = (values <= CONFLICT_CUT).mean()
            print(
                f"  {family:11s} {label:9s} {figures} max {values.max()}, "
                f"{within:.0%} within the conflict cut {CONFLICT_CUT}"
            )
    originals = sorted(n for n in full if n.endswith("_original.jpg"))
    pairs = list(itertools.combinations(originals, 2))
    distinct_full = Counter(min((full[a] ^ full[b]).bit_count(), 16) for a, b in pairs)
    distinct_evidence = Counter(min(evidence(a, b), 16) for a, b in pairs)
    distinct_side = Counter(min(side(a, b), 16) for a, b in pairs)
    print(f"distinct tiles: {len(originals)} ({len(pairs):,} pairs); pairs at distance <= d:")
    for d in range(0, 13):
        print(
            f"  d={d:2d}: full {sum(v for k, v in distinct_full.items() if k <= d):6d}"
            f"  full|crop {sum(v for k, v in distinct_evidence.items() if k <= d):6d}"
            f"  side cut {sum(v for k, v in distinct_side.items() if k <= d):6d}"
        )
    measure_pixels(out.parent / "data", full, zoom, mirror, evidence)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--originals", type=int, default=250)
    parser.add_argument("--distractors", type=int, default=230)
    parser.add_argument("--mirror", action="store_true", help="scan with --mirror")
    parser.add_argument("--measure-cut", action="store_true")
    parser.add_argument(
        "--imagededup-python", help="a Python with imagededup installed (make bench-env)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "data"
        source_of, used = build(folder, args.originals, args.distractors)
        truth = truth_pairs(source_of)
        print(
            f"{len(source_of)} images: {args.originals} originals x {len(FAMILIES)} edit families"
            f" + {args.distractors} distractors; {len(truth)} true duplicate pairs"
        )
        print(f"sources ({len(used)} pictures):")
        for package in sorted({key.split(":")[0] for key in used}):
            files = [key for key in used if key.startswith(package)]
            print(f"  {package}: {len(files)} pictures, {sum(used[f] for f in files)} tiles")
        ours, seconds = this_project(folder, Path(work) / "out", args.mirror)
        if args.measure_cut:
            measure_cut(Path(work) / "out", source_of)
        tool = "image-audit" + (" --mirror" if args.mirror else "")
        results = {tool: {**score(ours, truth, source_of), "seconds": round(seconds, 1)}}
        if args.imagededup_python:
            theirs, seconds = imagededup(args.imagededup_python, folder)
            results["imagededup PHash t=10"] = {
                **score(theirs, truth, source_of),
                "seconds": round(seconds, 1),
            }
        else:
            print("imagededup not measured: pass --imagededup-python (see `make bench-env`)")
    for tool, figures in results.items():
        nm = figures["without_mirror"]
        print(
            f"{tool:24s} precision {figures['precision']:.3f}  "
            f"recall {figures['recall']:.3f}  F1 {figures['f1']:.3f}  "
            f"({figures['pairs_predicted']} pairs, {figures['seconds']} s)"
        )
        print(
            f"{'':24s} without the mirror family: precision {nm['precision']:.3f}  "
            f"recall {nm['recall']:.3f}  F1 {nm['f1']:.3f}"
        )
        print(f"{'':24s} recall by family: {figures['recall_by_family']}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
