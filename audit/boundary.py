"""The one error boundary every CLI of this project runs through (DESIGN.md exit codes).

0 and 1 come from the command itself; 2 is "could not run": a usage error found by
argparse (the shared argument types of audit.argtypes validate values at parse time),
or a UserError (audit.errors) raised where the problem was found, printed as one line;
3 is any unexpected exception (the trace is printed); 130 is Ctrl-C. No command maps
exceptions to exit codes by hand.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from audit.errors import EXIT_CANNOT_RUN, UserError
from audit.escaping import terminal

EXIT_UNEXPECTED, EXIT_INTERRUPTED = 3, 130


class _StdoutThatMayClose:
    """sys.stdout that goes quiet when its reader leaves (`... | head -1`): the command
    still finishes and exits with its own code, with no BrokenPipeError trace."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._silence()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._silence()
            self._stream.flush()  # into /dev/null now: the final flush at exit succeeds

    def _silence(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None, program: str) -> int:
    """Parse argv, call the chosen subcommand's handler(args).

    Every outcome is mapped to an exit code.
    """
    if not isinstance(sys.stdout, _StdoutThatMayClose) and _is_pipe_or_file(sys.stdout):
        sys.stdout = _StdoutThatMayClose(sys.stdout)  # a proxy with the same methods
    try:
        return _run(parser, argv, program)
    finally:
        sys.stdout.flush()


def _is_pipe_or_file(stream) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False  # captured by a test harness or a host: left alone
    return True


def _run(parser: argparse.ArgumentParser, argv: list[str] | None, program: str) -> int:
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # argparse: --help (0) or a usage error (2)
        return int(exit_request.code or 0)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_CANNOT_RUN
    try:
        return args.handler(args)
    except UserError as error:
        print(f"{program}: error: {terminal(str(error))}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt as interruption:
        detail = f": {terminal(str(interruption))}" if str(interruption) else ""
        print(f"{program}: interrupted{detail}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:  # the one boundary: anything unexpected is exit 3, with the trace
        traceback.print_exc()
        print(
            f"{program}: unexpected failure (exit 3); please report it with the trace above",
            file=sys.stderr,
        )
        return EXIT_UNEXPECTED
