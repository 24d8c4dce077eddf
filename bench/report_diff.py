"""Compare two audit reports of the same dataset: what a refactor must leave unchanged.

    python bench/report_diff.py OLD_REPORT_DIR NEW_REPORT_DIR

images.csv, findings.csv and duplicates.csv are compared byte for byte; summary.json
as parsed JSON without the fields that differ from run to run (timing, cache, paths).
Prints every difference and exits 1 when there is one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BYTE_FOR_BYTE = ("images.csv", "findings.csv", "duplicates.csv")
# Fields of summary.json that change from run to run by design.
VOLATILE = {"created_utc", "duration_s", "cache", "out", "jobs"}
VOLATILE_NESTED = {("checks", "duplicates", "seconds")}


def _strip(summary: dict) -> dict:
    summary = {key: value for key, value in summary.items() if key not in VOLATILE}
    for path in VOLATILE_NESTED:
        node = summary
        for key in path[:-1]:
            node = node.get(key, {})
        node.pop(path[-1], None)
    return summary


def _differences(old: object, new: object, where: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        lines = []
        for key in sorted(set(old) | set(new), key=str):
            if key not in new:
                lines.append(f"summary.json{where}.{key}: removed")
            elif key not in old:
                lines.append(f"summary.json{where}.{key}: added ({json.dumps(new[key])[:80]})")
            else:
                lines += _differences(old[key], new[key], f"{where}.{key}")
        return lines
    if old != new:
        return [f"summary.json{where}: {json.dumps(old)[:120]} -> {json.dumps(new)[:120]}"]
    return []


def compare(old_dir: Path, new_dir: Path) -> list[str]:
    """Every difference between the two reports, one line each."""
    lines = []
    for name in BYTE_FOR_BYTE:
        old, new = (old_dir / name).read_bytes(), (new_dir / name).read_bytes()
        if old != new:
            old_lines, new_lines = old.splitlines(), new.splitlines()
            changed = [
                n for n, (a, b) in enumerate(zip(old_lines, new_lines, strict=False), 1) if a != b
            ]
            lines.append(
                f"{name}: differs ({len(old_lines)} -> {len(new_lines)} lines; "
                f"first changed lines {changed[:5]})"
            )
    old_summary = _strip(json.loads((old_dir / "summary.json").read_text()))
    new_summary = _strip(json.loads((new_dir / "summary.json").read_text()))
    return lines + _differences(old_summary, new_summary)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    args = parser.parse_args()
    lines = compare(args.old, args.new)
    for line in lines:
        print(line)
    print("identical" if not lines else f"{len(lines)} difference(s)")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
