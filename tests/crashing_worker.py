"""A per-file worker that kills its own process on files named *crash*: for the crash test.

It lives in a module of its own so the pool's worker processes can import it.
"""

import os

from audit import engines


def crash_on_marked_files(entry):
    if "crash" in entry.relpath:
        os._exit(3)  # what a decoder segfault looks like to the pool
    return engines.inspect_in_worker(entry)
