"""The one error type of the loaders: it carries the offending file."""

from __future__ import annotations

from pathlib import Path

from contract.errors import EdgeScreenError


class DatasetError(EdgeScreenError, ValueError):
    """A data file is missing, malformed or inconsistent. `path` is the file; the message starts with it."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
