"""What methods need from a datamodule beyond Lightning's loaders: declared as Protocols, checked in ``setup``.

A method that reads more than ``train/val/test_dataloader`` (AdaBN's target pass, a refiner's validation on
source images, DSON's domain ids) calls :func:`require_datamodule` in its ``setup`` hook, so a wrong datamodule
fails before the first step with a message naming the datamodule class and what it lacks.
``datamodules.DomainPairDataModule`` implements :class:`PairedDomains`, ``datamodules.TaskDataModule``
implements :class:`TrainingDomains`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, TypeVar, runtime_checkable

from syn2real.batch import Batch


@runtime_checkable
class PairedDomains(Protocol):
    """Unaugmented images of the source and target training domains (fixed shuffling seed, full batches)."""

    def source_loader(self, *, batch_size: int) -> Iterable[Batch]:
        """Source-domain batches."""
        ...

    def target_loader(self, *, batch_size: int) -> Iterable[Batch]:
        """Target-domain batches."""
        ...


@runtime_checkable
class TrainingDomains(Protocol):
    """The domain ids present in the training data (after ``setup("fit")``)."""

    def training_domain_ids(self) -> list[int]:
        """Sorted distinct domain ids of the training sources."""
        ...


P = TypeVar("P")


def require_datamodule(module: Any, protocol: type[P], *, purpose: str) -> P:
    """The attached datamodule, checked against ``protocol``.

    Args:
        module: a LightningModule attached to a trainer.
        protocol: the Protocol the datamodule must implement.
        purpose: what the method needs it for (goes into the error).

    Raises:
        TypeError: naming the datamodule class (or its absence) and the missing methods.
    """
    trainer = getattr(module, "_trainer", None)
    datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
    method = type(module).__name__
    wanted = sorted(n for n in vars(protocol) if not n.startswith("_") and callable(getattr(protocol, n)))
    if datamodule is None:
        raise TypeError(
            f"{method} needs a datamodule providing {wanted} ({purpose}); it was given dataloaders "
            f"without a datamodule. Pass a datamodule implementing {protocol.__name__}, e.g. "
            "datamodules.DomainPairDataModule"
        )
    missing = [n for n in wanted if not callable(getattr(datamodule, n, None))]
    if missing:
        raise TypeError(
            f"{method} needs {missing} on its datamodule ({purpose}), but "
            f"{type(datamodule).__module__}.{type(datamodule).__qualname__} has no {', '.join(missing)}. "
            f"Use a datamodule implementing syn2real.data_api.{protocol.__name__}"
        )
    return datamodule  # type: ignore[return-value]
