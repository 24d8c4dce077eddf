"""Resuming an interrupted run (`python -m train run ... --resume RUN`).

A run writes RUN/run.json when it starts: its configuration (as asked for, before
`--learning-rate auto` replaced a rate), its stages, and a fingerprint of its split. `--resume`
refuses (exit 2, naming the fields) a run made with anything else.

Resuming: stages whose folder holds a metrics.json are read back (not run again; their folders
are left as they are), and the first unfinished stage continues from its training runs' last
checkpoints (train.checkpoints). Stages whose runs later stages take from memory (the ablation
chain, tuning: what they trained feeds the stages built on them and the ensemble's members) are
called again with every run served whole from its final checkpoint: no step is trained again,
only their evaluation passes repeat. Everything else comes from the folder.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from audit.errors import InvalidArgument
from audit.reportio import atomic_text
from train.config import ABLATION, LR_RANGE, TrainConfig
from train.data import SplitExamples
from train.runs import RUN_FILE, StageResult, Verdict, stage_status

# Stages re-run on resume, their training served by final checkpoints (see the docstring).
REPLAYED = frozenset((*ABLATION, "tuning"))


def split_fingerprint(split: SplitExamples) -> str:
    """A hash of which file is in which part with which label and which content (the
    report's sha256: changed pixels under the same names are another split)."""
    digest = hashlib.sha256()
    for part, paths, labels in (
        ("train", split.train_paths, split.train_labels),
        ("val", split.val_paths, split.val_labels),
        ("test", split.test_paths, split.test_labels),
    ):
        digest.update(part.encode())
        for path, label in zip(paths, labels, strict=True):
            digest.update(
                path.encode("utf-8", "surrogateescape")
                + b"\0"
                + str(int(label)).encode()
                + b"\0"
                + split.sha256.get(path, "").encode()
            )
    return digest.hexdigest()


def describe(config: TrainConfig, stage_names: list[str], split: SplitExamples) -> dict:
    """What run.json holds (JSON values: tuples become lists)."""
    return json.loads(
        json.dumps(
            {
                "config": asdict(config),
                "stages": list(stage_names),
                "split": split_fingerprint(split),
            },
            default=str,
        )
    )


def write(run_path: Path, description: dict) -> None:
    """RUN/run.json, whole or absent."""
    with atomic_text(Path(run_path) / RUN_FILE) as handle:
        handle.write(json.dumps(description, indent=2) + "\n")


def check(run_path: Path, description: dict) -> None:
    """Refuse (InvalidArgument, exit 2) to resume a run made with another configuration,
    another list of stages or another split; the message names every difference."""
    path = Path(run_path) / RUN_FILE
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InvalidArgument(f"cannot read {path}: {error}") from None
    # A hand-edited file of the wrong shape is refused with the reason, not a crash.
    if not isinstance(stored, dict):
        raise InvalidArgument(f"cannot read {path}: not a JSON object")
    for key, kind, name in (("config", dict, "an object"), ("stages", list, "a list")):
        if key in stored and not isinstance(stored[key], kind):
            raise InvalidArgument(f"cannot read {path}: {key!r} is not {name}")
    if not all(isinstance(stage, str) for stage in stored.get("stages", [])):
        raise InvalidArgument(f"cannot read {path}: 'stages' holds a value that is no name")
    differences = []
    old_config, new_config = stored.get("config", {}), description["config"]
    for key in sorted(set(old_config) | set(new_config)):
        if old_config.get(key) != new_config.get(key):
            differences.append(
                f"{key} (run: {old_config.get(key)!r}, now: {new_config.get(key)!r})"
            )
    if stored.get("stages") != description["stages"]:
        differences.append(
            f"stages (run: {','.join(stored.get('stages') or [])}, "
            f"now: {','.join(description['stages'])})"
        )
    if stored.get("split") != description["split"]:
        differences.append(
            "split (another report, seed, validation or test fraction, or changed dataset content)"
        )
    if differences:
        raise InvalidArgument(
            f"cannot resume {run_path}: it was made with another configuration: "
            + "; ".join(differences)
        )


def with_lr_range(stage_names: list[str], config: TrainConfig) -> list[str]:
    """The stages to run: under --learning-rate auto, lr_range first (it finds the rates the
    other stages train with), whether listed or not."""
    if not config.auto_learning_rate:
        return list(stage_names)
    return [LR_RANGE, *(name for name in stage_names if name != LR_RANGE)]


def read_back(metrics: dict) -> StageResult:
    """A finished stage's result from its metrics.json (for the verdict table and for
    --learning-rate auto's proposals); no model, history or extras."""
    verdicts = [
        Verdict(
            name=str(verdict.get("name", "")),
            value=float(verdict.get("value", "nan")),
            threshold=float(verdict.get("threshold", "nan")),
            passed=bool(verdict.get("passed")),
            rule=str(verdict.get("rule", "")),
            meaning=str(verdict.get("meaning", "")),
            applicable=verdict.get("status") != "not_applicable",
        )
        for verdict in metrics.get("verdicts") or []
    ]
    status = stage_status(metrics)
    return StageResult(
        name=str(metrics["stage"]),
        hypothesis=str(metrics.get("hypothesis", "")),
        verdicts=verdicts,
        seconds=float(metrics.get("seconds") or 0.0),
        skipped=metrics.get("skipped") if status == "skipped" else None,
        summary=metrics.get("summary") or {},
        judged=None if status == "skipped" else status,
        note=str(metrics.get("note") or ""),
    )
