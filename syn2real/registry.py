"""A small, strict registry of methods: it answers "which methods exist?" for the CLI, tests and benchmarks.

LightningCLI resolves classes by ``class_path``; the registry is not a second configuration system.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the registry itself stays light: `syn2real list` must not import Lightning
    import pytorch_lightning as pl

FAMILIES = ("refinement", "adaptation", "generalization")
_METHODS: dict[str, type[pl.LightningModule]] = {}


def register_method(cls: type[pl.LightningModule]) -> type[pl.LightningModule]:
    """Register a method under its package name (``refinement.cyclegan.module`` -> ``"cyclegan"``).

    Raises:
        ValueError: if the class is not in a method-family package or the name is taken.
    """
    parts = cls.__module__.split(".")
    if len(parts) < 2 or parts[0] not in FAMILIES:
        raise ValueError(f"{cls.__qualname__} must live in one of {FAMILIES}, not in {cls.__module__!r}")
    name = parts[1]
    if name in _METHODS:
        raise ValueError(f"method {name!r} is already registered by {_METHODS[name].__qualname__}")
    _METHODS[name] = cls
    return cls


def list_methods(family: str | None = None) -> list[str]:
    """Sorted method names, optionally of one family."""
    return sorted(k for k, c in _METHODS.items() if family is None or c.__module__.startswith(f"{family}."))


def get_method(name: str) -> type[pl.LightningModule]:
    """The class registered as ``name``; the error lists what exists."""
    try:
        return _METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; registered: {list_methods()}") from None


def family_of(name: str) -> str:
    """The family package of a registered method."""
    return get_method(name).__module__.split(".")[0]
