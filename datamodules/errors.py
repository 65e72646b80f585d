"""The error every reader raises on bad input: it names the file or row and says what to do."""

from __future__ import annotations

from pathlib import Path


class DatasetError(ValueError):
    """A dataset on disk cannot be used as it is.

    Args:
        where: the file, folder or ``file:row`` at fault.
        problem: what is wrong.
        fix: what the user should do about it.
    """

    def __init__(self, where: str | Path, problem: str, fix: str) -> None:
        self.where = str(where)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{where}: {problem}. Fix: {fix}")
