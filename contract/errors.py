"""The one error base of the project. A command that fails raises an `EdgeScreenError` (or a subclass);
`edgescreen.cli.main` prints it as one line on stderr (with its causes under `-v`) and exits with its
`exit_code`: 2 for bad input (a profile, an argument), 1 for a failure while doing the work."""

from __future__ import annotations


class EdgeScreenError(Exception):
    exit_code: int = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(EdgeScreenError):
    """Bad input from the person running the command: a wrong argument, profile or file."""

    exit_code = 2


def one_line(exc: BaseException) -> str:
    """The error's message on one line (multi-line messages, such as a profile's problems, joined by '; ')."""
    parts = [part.strip() for part in str(exc).splitlines() if part.strip()]
    return "; ".join(parts) or type(exc).__name__
