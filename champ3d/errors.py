"""Errors a user can act on.

Every failure caused by the user's input (a file, a config value, a job entry) raises
:class:`Champ3dInputError`, which names *what* was wrong and *where* (a file path, a job
case and field). The command line turns it into a one-line message and exit code 2.
"""
from __future__ import annotations

import os
from typing import Optional


class Champ3dInputError(ValueError):
    """Bad user input. ``where`` is a path or a ``case.field`` locator; ``problem`` says what is wrong."""

    def __init__(self, where: Optional[os.PathLike | str], problem: str):
        self.where = None if where is None else str(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}" if self.where else problem)
