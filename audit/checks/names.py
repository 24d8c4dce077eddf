"""Names: a path that is not valid UTF-8 (a per-file check).

POSIX file names are bytes; Python keeps the bytes that are not UTF-8 as surrogate
escapes (os.fsdecode). Keras's directory loader hands paths to TensorFlow as text, which
cannot encode them, so the file never loads; most tools that print or store the name as
text fail the same way. The audit keeps the bytes (the report shows them as \\xNN, see
audit.reportio) and says so.
"""

from __future__ import annotations

import os

from audit.checks.base import Check
from audit.escaping import undecodable
from audit.records import Finding


class NamesCheck(Check):
    """undecodable_name for a path that is not valid UTF-8."""

    name = "names"
    codes = ("undecodable_name",)

    def check_file(self, facts, found, thresholds):
        if not undecodable(facts.relpath):
            return []
        shown = os.fsencode(facts.relpath).decode("utf-8", "backslashreplace")
        return [
            Finding(
                "undecodable_name",
                f"{shown}: the name is not valid UTF-8 (bytes shown as \\xNN); Keras's "
                "directory loader cannot open it",
            )
        ]
