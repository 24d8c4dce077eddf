"""Workers that kill their own process on files named *crash*: for the crash tests.

It lives in a module of its own so the pool's worker processes can import it.
"""

import os

from audit import engines, inspect


def crash_on_marked_files(entry):
    if "crash" in entry.relpath:
        os._exit(3)  # what a decoder segfault looks like to the pool
    return engines.inspect_in_worker(entry)


def crash_in_chunk(entries):
    """The pool's own chunk task, with a decoder that kills the process on *crash* files
    (patched in the worker process only, for this task)."""
    observe = inspect._observe

    def crashing_observe(entry, max_pixels):
        if "crash" in entry.relpath:
            os._exit(3)
        return observe(entry, max_pixels)

    inspect._observe = crashing_observe
    try:
        return engines.inspect_chunk_in_worker(entries)
    finally:
        inspect._observe = observe
