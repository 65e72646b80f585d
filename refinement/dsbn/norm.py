"""Domain-specific batch normalization: one BN branch (statistics and γ/β) per domain, all other weights shared."""

from __future__ import annotations

import copy

from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from syn2real.nn.domain_norm import DomainRouted, replace_modules


class DomainSpecificBatchNorm(DomainRouted):
    """Holds ``num_domains`` copies of a BN layer; the routed ``domain`` picks the branch.

    A forward pass must contain one domain only (DSBN's rule: mixing domains in one BN call defeats it).

    Args:
        bn: the layer copied into every branch (its statistics and affine parameters initialise all branches).
        num_domains: number of branches.
    """

    def __init__(self, bn: _BatchNorm, num_domains: int) -> None:
        super().__init__(num_domains)
        self.branches = nn.ModuleList(copy.deepcopy(bn) for _ in range(num_domains))

    def forward(self, x: Tensor) -> Tensor:
        return self.branches[self.domain](x)


def convert_to_dsbn(model: nn.Module, num_domains: int) -> nn.Module:
    """Replace every BN layer of ``model`` (in place) by a :class:`DomainSpecificBatchNorm`; returns ``model``.

    Raises:
        ValueError: if the model has no BN layer.
    """
    if not replace_modules(
        model, lambda m: isinstance(m, _BatchNorm), lambda m: DomainSpecificBatchNorm(m, num_domains)
    ):
        raise ValueError(f"{type(model).__name__} has no BatchNorm layers to make domain-specific")
    return model
