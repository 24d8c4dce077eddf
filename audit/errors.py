"""The "could not run" family: errors whose cause is the input, not a bug (exit 2).

Raised where the problem is found, with a message that names the path or value at
fault and says what is allowed; caught once, by the error boundary both CLIs share
(audit.boundary), which prints the message on one line and exits with `exit_code`.
Anything else that escapes a command is a bug: exit 3 with the trace.
"""

from __future__ import annotations

EXIT_CANNOT_RUN = 2


class UserError(Exception):
    """The command cannot run as asked; the message says why and what is expected."""

    exit_code = EXIT_CANNOT_RUN


class MissingDependency(UserError, ImportError):
    """An optional extra is not installed; the message carries the install command."""


class AlreadyExists(UserError, FileExistsError):
    """A file or folder the command would create is already there (never overwritten)."""


class CannotWrite(UserError):
    """A path the command must create or write cannot be (a file where a folder is
    needed, no permission, a read-only or virtual filesystem)."""


class InvalidArgument(UserError, ValueError):
    """A value passed to a library function or an option is not allowed; the message
    says what is."""


class UnusableCache(UserError):
    """--cache names something that is not this tool's cache (another database, a text
    file, a folder) or a place that cannot be written; it is left exactly as it was."""
