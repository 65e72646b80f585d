"""Per-domain normalization plumbing shared by DSBN and DSON: layer replacement and domain routing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch import nn


class DomainRouted(nn.Module):
    """Base of layers with one branch per domain; :func:`use_domain` sets ``domain`` for a forward pass."""

    def __init__(self, num_domains: int) -> None:
        super().__init__()
        if num_domains < 1:
            raise ValueError(f"num_domains must be at least 1, got {num_domains}")
        self.num_domains = num_domains
        self.domain = 0


def replace_modules(
    model: nn.Module, match: Callable[[nn.Module], bool], make: Callable[[nn.Module], nn.Module]
) -> int:
    """Replace (in place, recursively) every submodule for which ``match`` holds by ``make(submodule)``.

    Returns:
        The number of modules replaced.
    """
    count = 0
    for name, child in list(model.named_children()):
        if match(child):
            setattr(model, name, make(child))
            count += 1
        else:
            count += replace_modules(child, match, make)
    return count


@contextmanager
def use_domain(model: nn.Module, domain: int) -> Iterator[nn.Module]:
    """Route every :class:`DomainRouted` layer of ``model`` to branch ``domain`` inside the block.

    Raises:
        ValueError: if ``domain`` has no branch.
    """
    layers = [m for m in model.modules() if isinstance(m, DomainRouted)]
    if layers and not 0 <= domain < layers[0].num_domains:
        raise ValueError(f"domain {domain} has no branch; this model has branches 0..{layers[0].num_domains - 1}")
    previous = [m.domain for m in layers]
    for m in layers:
        m.domain = domain
    try:
        yield model
    finally:
        for m, d in zip(layers, previous, strict=True):
            m.domain = d
