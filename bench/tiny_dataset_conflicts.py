"""Error-severity duplicate findings on a real tiny-image dataset: are they copies?

Two real tiny-image datasets that ship inside packages (no download), neither used
to choose any threshold here:
* scikit-learn's digits (sklearn.datasets.load_digits: 1,797 handwritten digits,
  8x8, ten classes), upscaled to 28x28 (bilinear), as a 28 px grayscale set;
* scikit-image's LFW subset (skimage/data/lfw_subset.npy: 100 faces and 100
  non-face patches, 25x25), upscaled to 28x28, two classes (when scikit-image's
  data is found: `make bench-data`).

The scan runs with default thresholds. A third run plants 20 real cross-label copies
into the digits (10 byte-identical, 10 re-encoded as JPEG) to show the findings a
true copy gets. Every pair of files in one duplicate group is written to
bench/results/tiny_conflicts.csv with its pHash distance, its pixel difference
(mean and largest absolute difference, 0-255) and SSIM (7x7 windows, on the 28 px
pixels), and a verdict: "identical pixels", "copy" (SSIM >= 0.95 and mean
difference <= 4) or "different pictures". Goal: no error on different pictures.
The warnings (possible_label_conflict) are counted too, and listed in the CSV.

    python bench/tiny_dataset_conflicts.py [--csv bench/results/tiny_conflicts.csv]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from audit.scan import scan  # noqa: E402

HERE = Path(__file__).resolve().parent
LFW = HERE / ".skimage" / "skimage" / "data" / "lfw_subset.npy"
SIZE = 28


def write_digits(root: Path) -> int:
    from sklearn.datasets import load_digits

    digits = load_digits()
    for index, (pixels, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        image = Image.fromarray((pixels * (255 / 16)).round().astype(np.uint8), "L")
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        image.resize((SIZE, SIZE), Image.Resampling.BILINEAR).save(folder / f"{index:04d}.png")
    return len(digits.images)


def plant_copies(root: Path, count: int = 10) -> int:
    """Copy count files into the next class folder byte for byte, and count more as a
    JPEG (quality 90) re-encode: real cross-label copies the benchmark must flag
    (identical ones as errors; re-encoded tiny ones as warnings: at 28 px only
    identical pixels make an error)."""
    classes = sorted(path for path in root.iterdir() if path.is_dir())
    planted = 0
    for index in range(2 * count):
        source_class = classes[index % len(classes)]
        target = classes[(index + 1) % len(classes)]
        source = sorted(source_class.glob("*.png"))[index]
        if index < count:
            (target / f"planted_{source_class.name}_{source.name}").write_bytes(source.read_bytes())
        else:
            Image.open(source).save(
                target / f"planted_{source_class.name}_{source.stem}.jpg", "JPEG", quality=90
            )
        planted += 1
    return planted


def write_lfw(root: Path) -> int:
    faces = np.load(LFW)
    for index, pixels in enumerate(faces):
        label = "face" if index < 100 else "not_face"  # the file's documented order
        image = Image.fromarray((pixels * 255).round().astype(np.uint8), "L")
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        image.resize((SIZE, SIZE), Image.Resampling.BILINEAR).save(folder / f"{index:03d}.png")
    return len(faces)


def ssim(a: np.ndarray, b: np.ndarray, window: int = 7) -> float:
    """Mean structural similarity over window x window patches (uniform window)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    a, b = a.astype(np.float64), b.astype(np.float64)
    patches_a = np.lib.stride_tricks.sliding_window_view(a, (window, window))
    patches_b = np.lib.stride_tricks.sliding_window_view(b, (window, window))
    mean_a, mean_b = patches_a.mean(axis=(-1, -2)), patches_b.mean(axis=(-1, -2))
    var_a, var_b = patches_a.var(axis=(-1, -2)), patches_b.var(axis=(-1, -2))
    cov = (patches_a * patches_b).mean(axis=(-1, -2)) - mean_a * mean_b
    value = ((2 * mean_a * mean_b + c1) * (2 * cov + c2)) / (
        (mean_a**2 + mean_b**2 + c1) * (var_a + var_b + c2)
    )
    return float(value.mean())


def judged_pairs(root: Path, out: Path, dataset: str) -> list[dict]:
    """Each cross-label pair of a group whose members carry a conflict finding."""
    issues = {}
    for row in csv.DictReader(open(out / "images.csv", encoding="utf-8")):
        issues[row["path"]] = set(filter(None, row["issues"].split(";")))
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in csv.DictReader(open(out / "duplicates.csv", encoding="utf-8")):
        groups[row["group"]].append(row)
    pairs = []
    for members in groups.values():
        for i, first in enumerate(members):
            for second in members[i + 1 :]:
                codes = issues[first["path"]] | issues[second["path"]]
                code = "same label: " + "/".join(
                    sorted(codes & {"near_duplicate", "exact_duplicate"})
                )
                if first["label"] != second["label"]:
                    both = issues[first["path"]] & issues[second["path"]]
                    code = next(
                        (c for c in ("label_conflict", "possible_label_conflict") if c in both),
                        "different labels, no conflict finding",
                    )
                a = np.asarray(Image.open(root / first["path"]).convert("L"))
                b = np.asarray(Image.open(root / second["path"]).convert("L"))
                difference = np.abs(a.astype(np.int16) - b.astype(np.int16))
                similarity = ssim(a, b)
                if not difference.any():
                    verdict = "identical pixels"
                elif similarity >= 0.95 and difference.mean() <= 4:
                    verdict = "copy"
                else:
                    verdict = "different pictures"
                pairs.append(
                    {
                        "dataset": dataset,
                        "code": code,
                        "path_a": first["path"],
                        "label_a": first["label"],
                        "path_b": second["path"],
                        "label_b": second["label"],
                        "distance_to_keeper_a": first["distance"],
                        "distance_to_keeper_b": second["distance"],
                        "mean_abs_difference": round(float(difference.mean()), 2),
                        "max_abs_difference": int(difference.max()),
                        "ssim": round(similarity, 3),
                        "verdict": verdict,
                    }
                )
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", default=str(HERE / "results" / "tiny_conflicts.csv"))
    args = parser.parse_args()

    def digits_planted(root: Path) -> int:
        count = write_digits(root)
        return count + plant_copies(root)

    builders = [
        ("sklearn digits, 28 px, 10 classes", write_digits),
        ("sklearn digits with 20 planted cross-label copies", digits_planted),
    ]
    if LFW.exists():
        builders.append(("skimage LFW subset, 28 px, face / not_face", write_lfw))
    else:
        print(f"scikit-image's LFW subset not found at {LFW}: run `make bench-data`")
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as work:
        for name, build in builders:
            root = Path(work) / f"set{len(rows)}_{builders.index((name, build))}"
            count = build(root)
            out = Path(work) / (root.name + "_out")
            result = scan(root, out, jobs=None, cache=False)
            section = result.summary["checks"]["duplicates"]
            pairs = judged_pairs(root, out, name)
            rows += pairs
            counts = result.summary.get("issue_counts") or result.summary.get("counts") or {}
            errors = [p for p in pairs if p["code"] == "label_conflict"]
            wrong = [p for p in errors if p["verdict"] == "different pictures"]
            tiny = section["near"]["size_buckets"].get("tiny", {})
            print(f"{name}: {count} files")
            print(
                f"  radius used {tiny.get('radius_used')} ({tiny.get('how')}); "
                f"groups {section['groups']}, files in groups {section['files_in_groups']}"
            )
            print(
                f"  label_conflict (error) pairs: {len(errors)}, of them on different pictures: "
                f"{len(wrong)}; verdicts {dict(Counter(p['verdict'] for p in errors))}"
            )
            warnings = [p for p in pairs if p["code"] == "possible_label_conflict"]
            same = [p for p in pairs if p["code"].startswith("same label")]
            print(
                f"  same-label pairs in groups: {len(same)}; verdicts "
                f"{dict(Counter(p['verdict'] for p in same))}"
            )
            print(
                f"  possible_label_conflict (warning) pairs: {len(warnings)}; verdicts "
                f"{dict(Counter(p['verdict'] for p in warnings))}"
            )
            if counts:
                shown = {
                    code: counts[code]
                    for code in counts
                    if "duplicate" in code or "conflict" in code
                }
                print(f"  issue counts: {shown}")
    Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
    with open(args.csv, "w", newline="", encoding="utf-8") as handle:
        fields = list(rows[0]) if rows else ["dataset", "code", "verdict"]
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} judged pairs written to {args.csv}")


if __name__ == "__main__":
    main()
