"""Typed config objects (frozen dataclasses) as method arguments, and plain dicts in checkpoints.

A method takes ``network: TaskNetworkSpec``, ``optimizer: OptimizerSpec``... LightningCLI builds them from YAML;
checkpoints keep them as plain dicts (readable in ``hparams.yaml``, loadable with ``weights_only=True``), and
:func:`as_spec` turns either form back into the typed object.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def as_spec(cls: type[T], value: T | Mapping[str, Any] | None) -> T:
    """``value`` as a ``cls`` instance: itself, built from a mapping of its fields, or the defaults for ``None``.

    Raises:
        TypeError: for any other value, or a mapping with unknown keys (named).

    Examples:
        >>> from syn2real.optim import OptimizerSpec
        >>> as_spec(OptimizerSpec, {"name": "sgd", "lr": 0.1}).lr
        0.1
    """
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(value) - known)
        if unknown:
            raise TypeError(f"{cls.__name__} has no key(s) {unknown}; its keys are {sorted(known)}")
        return cls(**value)
    raise TypeError(f"expected a {cls.__name__} or a mapping of its keys, got {type(value).__name__}")


def plain_hparams(module: Any) -> None:
    """Replace dataclass values in ``module.hparams`` by dicts (call right after ``save_hyperparameters``)."""
    for key, value in list(module.hparams.items()):
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            module.hparams[key] = dataclasses.asdict(value)
