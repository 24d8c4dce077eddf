"""Stands in for `python -m train run` in the app's tests: writes events.jsonl as the recipe
does (two runs inside one stage, a finished stage folder) and waits to be stopped, or refuses
like the CLI does (TensorFlow's log lines first, then the one-line refusal, exit 2).

    python tests/fake_trainer.py RUN_DIR run|refuse
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> int:
    run, mode = Path(sys.argv[1]), sys.argv[2]
    # What TensorFlow prints on import, before the CLI says anything.
    print(
        "I0000 00:00:1795819359.103179   17726 port.cc:153] oneDNN custom operations are on.",
        flush=True,
    )
    print(
        "I0000 00:00:1795819359.103927   17726 cudart_stub.cc:31] Could not find cuda drivers",
        flush=True,
    )
    if mode == "refuse":
        print(
            "train: error: the audit report in reports/x is stale: 1 changed; "
            "re-run `python -m audit scan`",
            file=sys.stderr,
            flush=True,
        )
        return 2

    def record(event: dict) -> None:
        with open(run / "events.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"time": time.time(), **event}) + "\n")

    try:
        record({"event": "start", "stages": ["shuffled_labels", "baseline"], "split": "seeded"})
        record({"event": "stage_start", "stage": "shuffled_labels"})
        # Two models in one stage, each from its own initial weights: the second starts high.
        for label, start in (("baseline", 0.7), ("shuffled labels", 0.69)):
            for epoch in (1, 2, 3):
                loss = start - (0.1 if label == "baseline" else 0.001) * epoch
                record(
                    {
                        "event": "epoch",
                        "run": label,
                        "epoch": epoch,
                        "epochs": 3,
                        "step": 10 * epoch,
                        "steps": 30,
                        "metrics": {"loss": loss, "val_loss": loss + 0.05, "val_accuracy": 0.5},
                    }
                )
        folder = run / "01-shuffled_labels"
        folder.mkdir()
        metrics = {
            "stage": "shuffled_labels",
            "hypothesis": "real labels fit better",
            "passed": True,
            "status": "pass",
            "note": "",
            "skipped": None,
            "seconds": 1.0,
            "verdicts": [],
            "summary": {},
        }
        (folder / "metrics.json").write_text(json.dumps(metrics))
        record({"event": "stage_end", "stage": "shuffled_labels", "status": "pass"})
        record({"event": "stage_start", "stage": "baseline"})
        while True:
            time.sleep(0.05)
    except KeyboardInterrupt:
        print("train: interrupted", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
