"""The history of scheduled checks: an embedded SQLite file, safe for concurrent checks.

Each check appends one row: when, which dataset, pass/fail, counts, and per expectation
pass/fail, plus what the next check needs to say what changed (the error files, the
classes and their counts). Writes are single transactions (BEGIN IMMEDIATE), so two
checks started at once both land, one after the other.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from audit.errors import CannotWrite

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_utc TEXT NOT NULL,
    dataset TEXT NOT NULL,
    suite TEXT NOT NULL,
    success INTEGER NOT NULL,
    files INTEGER NOT NULL,
    usable INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    expectations TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_dataset ON runs (dataset, id);
"""


@dataclass
class Run:
    id: int
    time_utc: str
    dataset: str
    suite: str
    success: bool
    files: int
    usable: int
    errors: int
    expectations: dict  # expectation key -> passed
    state: dict  # {"classes": {name: usable}, "error_files": [...]}


def _connect(path: Path) -> sqlite3.Connection:
    """The history database; CannotWrite (exit 2) when path is not one, or cannot be made."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, timeout=60, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.executescript(SCHEMA)
    except (OSError, sqlite3.Error) as error:
        raise CannotWrite(
            f"--history {path} is not a usable check history ({error}); give another path"
        ) from None
    return connection


def append(path: str | os.PathLike, run: Run) -> int:
    """Add a run; returns its id."""
    connection = _connect(Path(path))
    try:
        connection.execute("BEGIN IMMEDIATE")
        cursor = connection.execute(
            "INSERT INTO runs (time_utc, dataset, suite, success, files, usable, errors, "
            "expectations, state) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                run.time_utc,
                run.dataset,
                run.suite,
                int(run.success),
                run.files,
                run.usable,
                run.errors,
                json.dumps(run.expectations),
                json.dumps(run.state),
            ),
        )
        connection.execute("COMMIT")
        row_id = cursor.lastrowid
        if row_id is None:  # an INSERT always sets it; None would mean the row was not written
            raise RuntimeError(f"the history database {path} did not record the check")
        return row_id
    finally:
        connection.close()


def runs(
    path: str | os.PathLike, dataset: str | None = None, limit: int | None = None
) -> list[Run]:
    """Runs, oldest first (the last `limit` ones), for one dataset or all."""
    history = Path(path)
    if not history.is_file():
        return []
    connection = _connect(history)
    try:
        query = (
            "SELECT id, time_utc, dataset, suite, success, files, usable, errors, "
            "expectations, state FROM runs"
        )
        parameters: tuple = ()
        if dataset is not None:
            query += " WHERE dataset = ?"
            parameters = (dataset,)
        query += " ORDER BY id DESC" + (f" LIMIT {int(limit)}" if limit else "")
        rows = connection.execute(query, parameters).fetchall()
    finally:
        connection.close()
    return [
        Run(
            row[0],
            row[1],
            row[2],
            row[3],
            bool(row[4]),
            row[5],
            row[6],
            row[7],
            json.loads(row[8]),
            json.loads(row[9]),
        )
        for row in reversed(rows)
    ]


def changes(previous: Run | None, current: Run) -> list[str]:
    """What moved since the previous run, in sentences."""
    if previous is None:
        return ["first check of this dataset"]
    lines = []
    before, after = previous.state.get("classes", {}), current.state.get("classes", {})
    added, lost = sorted(set(after) - set(before)), sorted(set(before) - set(after))
    if added:
        lines.append(f"new class(es): {', '.join(added)}")
    if lost:
        lines.append(f"class(es) gone: {', '.join(lost)}")
    for name in sorted(set(before) & set(after)):
        if before[name] != after[name]:
            lines.append(f"{name}: {before[name]} -> {after[name]} usable images")
    new_errors = sorted(
        set(current.state.get("error_files", [])) - set(previous.state.get("error_files", []))
    )
    fixed = sorted(
        set(previous.state.get("error_files", [])) - set(current.state.get("error_files", []))
    )
    if new_errors:
        lines.append(
            f"{len(new_errors)} new file(s) with errors: {', '.join(new_errors[:10])}"
            + (" ..." if len(new_errors) > 10 else "")
        )
    if fixed:
        lines.append(f"{len(fixed)} file(s) no longer with errors")
    flipped = [
        key
        for key, passed in current.expectations.items()
        if previous.expectations.get(key, passed) != passed
    ]
    for key in flipped:
        lines.append(f"{key}: {'now passes' if current.expectations[key] else 'now fails'}")
    return lines or ["no change since the previous check"]


def trend_table(history_runs: list[Run]) -> str:
    """The text `python -m audit history ROOT` prints."""
    if not history_runs:
        return "No check recorded for this dataset yet."
    lines = [
        f"{'#':>4}  {'time (UTC)':20s}  {'result':6s}  {'files':>7s}  {'usable':>7s}  "
        f"{'errors':>6s}  failed expectations"
    ]
    for run in history_runs:
        failed = [key for key, passed in run.expectations.items() if not passed]
        lines.append(
            f"{run.id:>4}  {run.time_utc[:19]:20s}  {'PASS' if run.success else 'FAIL':6s}  "
            f"{run.files:>7d}  {run.usable:>7d}  "
            f"{run.errors:>6d}  {', '.join(failed) or '-'}"
        )
    return "\n".join(lines)
