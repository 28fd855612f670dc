"""Errors that vfedsim raises on purpose.

`ScenarioError` is bad input: the CLI prints its one-line message and exits with status 2.
Anything else derived from `VfedsimError` is a runtime failure (exit status 1).
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["VfedsimError", "ScenarioError", "did_you_mean"]


class VfedsimError(Exception):
    """Base class of every error vfedsim raises on purpose."""


def did_you_mean(word: str, allowed: Iterable[str]) -> str | None:
    """The closest allowed spelling of ``word``, or None when nothing is close."""
    matches = difflib.get_close_matches(str(word), [str(a) for a in allowed], n=1, cutoff=0.6)
    return matches[0] if matches else None


class ScenarioError(VfedsimError):
    """Invalid user input, pinned to the key path that holds it.

    ``key_path`` is dotted (``strategy.selection.name``); ``allowed`` lists the accepted values where
    they are a closed set. The message is always one line.
    """

    def __init__(self, key_path: str, problem: str, *, allowed: Iterable[str] | None = None,
                 value: object | None = None) -> None:
        self.key_path = key_path
        self.problem = problem
        self.allowed = tuple(str(a) for a in allowed) if allowed is not None else None
        message = f"{key_path}: {problem}" if key_path else problem
        if self.allowed is not None:
            hint = did_you_mean(str(value), self.allowed) if value is not None else None
            if hint is not None:
                message += f"; did you mean {hint!r}?"
            message += ("" if hint else ";") + " allowed: " + (", ".join(self.allowed) or "(none)")
        super().__init__(message)

    def __str__(self) -> str:  # always one line
        return " ".join(super().__str__().split())
