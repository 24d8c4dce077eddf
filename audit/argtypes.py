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


# The counts every CLI takes.
jobs = integer(minimum=1)
positive = integer(minimum=1)
non_negative = integer(minimum=0)
open_fraction = number(minimum=0.0, maximum=1.0, above_minimum=True, below_maximum=True)


def text(value: str) -> str:
    """A non-empty string (a path or a name); an empty one is a usage error."""
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value
