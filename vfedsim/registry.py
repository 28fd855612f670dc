"""Name registries: the YAML names an extension, the registry finds it (DESIGN.md, principle 5).

A scenario file never runs code: user extensions enter only through ``load_plugins`` (the CLI's
``--plugins FILE``), whose module registers its classes with ``@REGISTRY.register("name")``.
"""
from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Generic, TypeVar

from .errors import ScenarioError, VfedsimError

__all__ = ["Registry", "load_plugins"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from names to factories of one kind of extension (``kind`` names it in errors)."""

    def __init__(self, kind: str, key_path: str) -> None:
        self.kind = kind
        self.key_path = key_path
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@SELECTORS.register("random")`` on a class or factory function."""

        def add(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise VfedsimError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return add

    def get(self, name: str, *, key_path: str | None = None) -> T:
        """The entry called ``name``; a `ScenarioError` that lists the allowed names otherwise."""
        try:
            return self._entries[name]
        except KeyError:
            raise ScenarioError(key_path or self.key_path, f"unknown {self.kind} {name!r}",
                                allowed=self.names(), value=name) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries


def load_plugins(paths: Iterable[str | Path]) -> None:
    """Import each Python file so that its ``register`` decorators run.

    A missing file or one that fails to import is a `ScenarioError` on key ``--plugins``.
    """
    for i, raw in enumerate(paths):
        path = Path(raw)
        if not path.is_file():
            raise ScenarioError("--plugins", f"no such file {str(path)!r}")
        name = f"vfedsim_plugin_{i}_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ScenarioError("--plugins", f"cannot import {str(path)!r} (not a Python file?)")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # a user's file: report, do not crash with a traceback
            raise ScenarioError("--plugins", f"importing {str(path)!r} failed: {type(exc).__name__}: {exc}") from exc
