"""argparse `type=` functions shared by every CLI of the project.

Values are validated at parse time, so a bad number is a usage error (exit 2) naming
the option, before any work starts. Only finite numbers pass: `nan` and `inf` are
refused (a NaN threshold would silently turn a check off and write NaN, which is not
JSON, into summary.json).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _range_text(
    minimum: float | None, maximum: float | None, above_minimum: bool, below_maximum: bool
) -> str:
    low = f"{'above' if above_minimum else 'at least'} {minimum:g}" if minimum is not None else ""
    high = f"{'below' if below_maximum else 'at most'} {maximum:g}" if maximum is not None else ""
    return " and ".join(part for part in (low, high) if part) or "any value"


def check_range(
    value: float,
    minimum: float | None = None,
    maximum: float | None = None,
    above_minimum: bool = False,
    below_maximum: bool = False,
) -> str | None:
    """Why value is out of range (or not finite), or None when it is allowed."""
    allowed = _range_text(minimum, maximum, above_minimum, below_maximum)
    if not math.isfinite(value):
        return f"must be a finite number ({allowed})"
    too_low = minimum is not None and (value <= minimum if above_minimum else value < minimum)
    too_high = maximum is not None and (value >= maximum if below_maximum else value > maximum)
    if too_low or too_high:
        return f"must be {allowed}"
    return None


def integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """A whole number within [minimum, maximum]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        problem = check_range(value, minimum, maximum)
        if problem:
            raise argparse.ArgumentTypeError(f"{text} {problem}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its messages
    return parse


def number(
    minimum: float | None = None,
    maximum: float | None = None,
    above_minimum: bool = False,
    below_maximum: bool = False,
) -> Callable[[str], float]:
    """A finite number within the range (an end is excluded with above_/below_)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        problem = check_range(value, minimum, maximum, above_minimum, below_maximum)
        if problem:
            raise argparse.ArgumentTypeError(f"{text} {problem}")
        return value

    parse.__name__ = "number"
    return parse


# The counts every CLI takes, each with a ceiling: a value past it is a typo, and would
# overflow a C integer further down (the process pool, SQLite, TensorFlow).
INT32_MAX = 2**31 - 1
jobs = integer(minimum=1, maximum=1024)
positive = integer(minimum=1, maximum=INT32_MAX)
open_fraction = number(minimum=0.0, maximum=1.0, above_minimum=True, below_maximum=True)


PATH_METAVARS = frozenset(
    {"ROOT", "VAL", "DIR", "PATH", "FILE", "REPORT_DIR", "MANIFEST", "RUN_DIR"}
)


def path(value: str) -> str:
    """A path: not empty (an empty --out would mean the working folder) and without NUL."""
    if not value.strip():
        raise argparse.ArgumentTypeError("a path must not be empty")
    if "\0" in value:
        raise argparse.ArgumentTypeError("a path cannot hold a NUL byte")
    return value


path.__name__ = "path"


def check_paths(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give every path option and argument of parser (and its sub-commands), known by its
    metavar, the `path` type."""
    for action in parser._actions:  # argparse has no public walk over its actions
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                check_paths(sub)
        elif action.metavar in PATH_METAVARS and action.type is None:
            action.type = path
    return parser


AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def age(value: str) -> float:
    """An age in seconds: `90`, `30m`, `12h`, `7d`, `2w` (s, m, h, d, w); not negative."""
    text_value = value.strip().lower()
    unit = AGE_UNITS.get(text_value[-1:]) if text_value else None
    number_part = text_value[:-1] if unit is not None else text_value
    try:
        amount = float(number_part)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an age: a number of seconds, or a number followed by "
            "s, m, h, d or w (e.g. 7d, 12h, 30m)"
        ) from None
    seconds = amount * (unit or 1)
    problem = check_range(seconds, minimum=0)
    if problem:
        raise argparse.ArgumentTypeError(f"{value} {problem}")
    return seconds
