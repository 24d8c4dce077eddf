"""The one error boundary every CLI of this project runs through (DESIGN.md exit codes).

0 and 1 come from the command itself; 2 is "could not run" (bad arguments, or a
CannotRun raised by the command with a message saying why); 3 is any unexpected
exception (the trace is printed); 130 is Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import traceback

EXIT_CANNOT_RUN, EXIT_UNEXPECTED, EXIT_INTERRUPTED = 2, 3, 130


class CannotRun(Exception):
    """The command cannot run as asked (exit 2); the message says why and what is expected."""


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None, program: str) -> int:
    """Parse argv, call the chosen subcommand's handler(args) and map every outcome to an exit code."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # argparse: --help (0) or a usage error (2)
        return int(exit_request.code or 0)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_CANNOT_RUN
    try:
        return args.handler(args)
    except CannotRun as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    except KeyboardInterrupt:
        print(f"{program}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:  # the one boundary: anything unexpected is exit 3, with the trace
        traceback.print_exc()
        print(
            f"{program}: unexpected failure (exit 3); please report it with the trace above",
            file=sys.stderr,
        )
        return EXIT_UNEXPECTED
