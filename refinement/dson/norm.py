"""DSON's normalization layer: per-domain mixture of batch and instance statistics with per-domain γ/β."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from syn2real.nn.domain_norm import DomainRouted, replace_modules


class DomainSpecificOptimizedNorm2d(DomainRouted):
    """DSON normalization of the routed domain d.

    For input x (``N×C×H×W``)::

        μ̂ = w_d^μ[0]·μ_bn + w_d^μ[1]·μ_in        σ̂² = w_d^σ[0]·σ²_bn + w_d^σ[1]·σ²_in
        y  = γ_d · (x − μ̂) / sqrt(σ̂² + ε) + β_d

    μ_in, σ²_in are per-sample, per-channel spatial statistics; μ_bn, σ²_bn are the domain's batch statistics in
    training and its running statistics in evaluation. The mixture weights are a softmax over two learned logits
    (so they sum to one and receive gradients), separate for mean and variance, initialised to 0.5/0.5 — the
    parametrisation of the only public re-implementation (the paper says the weights lie in [0, 1]).

    Args:
        bn: a ``BatchNorm2d`` whose affine parameters and statistics initialise every domain.
        num_domains: number of source domains.
    """

    def __init__(self, bn: nn.BatchNorm2d, num_domains: int) -> None:
        super().__init__(num_domains)
        c = bn.num_features
        self.eps, self.momentum = bn.eps, 0.1 if bn.momentum is None else bn.momentum
        weight = bn.weight.detach() if bn.weight is not None else torch.ones(c)
        bias = bn.bias.detach() if bn.bias is not None else torch.zeros(c)
        self.weight = nn.Parameter(weight.clone().repeat(num_domains, 1))
        self.bias = nn.Parameter(bias.clone().repeat(num_domains, 1))
        self.mix_mean = nn.Parameter(torch.zeros(num_domains, 2))
        self.mix_var = nn.Parameter(torch.zeros(num_domains, 2))
        mean = bn.running_mean.clone() if bn.running_mean is not None else torch.zeros(c)
        var = bn.running_var.clone() if bn.running_var is not None else torch.ones(c)
        self.register_buffer("running_mean", mean.repeat(num_domains, 1))
        self.register_buffer("running_var", var.repeat(num_domains, 1))

    def mixture(self, domain: int) -> tuple[Tensor, Tensor]:
        """Softmax weights ``(w^μ, w^σ)`` of domain ``domain``: each ``[w_bn, w_in]``, summing to one."""
        return self.mix_mean[domain].softmax(0), self.mix_var[domain].softmax(0)

    def forward(self, x: Tensor) -> Tensor:
        d = self.domain
        in_mean = x.mean(dim=(2, 3), keepdim=True)
        in_var = x.var(dim=(2, 3), keepdim=True, unbiased=False)
        if self.training:
            bn_mean = x.mean(dim=(0, 2, 3))
            bn_var = x.var(dim=(0, 2, 3), unbiased=False)
            with torch.no_grad():
                n = x.numel() / x.shape[1]
                self.running_mean[d].lerp_(bn_mean.detach(), self.momentum)
                self.running_var[d].lerp_(bn_var.detach() * n / max(n - 1, 1), self.momentum)
        else:
            bn_mean, bn_var = self.running_mean[d], self.running_var[d]
        w_mean, w_var = self.mixture(d)
        mean = w_mean[0] * bn_mean.view(1, -1, 1, 1) + w_mean[1] * in_mean
        var = w_var[0] * bn_var.view(1, -1, 1, 1) + w_var[1] * in_var
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        return x_hat * self.weight[d].view(1, -1, 1, 1) + self.bias[d].view(1, -1, 1, 1)


def _dson_layer(bn: nn.Module, num_domains: int) -> nn.Module:
    layer = DomainSpecificOptimizedNorm2d(bn, num_domains)  # type: ignore[arg-type]
    extra = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None)) if m is not None]
    return nn.Sequential(layer, *extra) if extra else layer  # timm's BatchNormAct2d: keep its activation


def convert_to_dson(model: nn.Module, num_domains: int) -> nn.Module:
    """Replace every ``BatchNorm2d`` of ``model`` (in place) by a DSON layer; returns ``model``.

    Raises:
        ValueError: if the model has no ``BatchNorm2d``.
    """
    if not replace_modules(model, lambda m: isinstance(m, nn.BatchNorm2d), lambda m: _dson_layer(m, num_domains)):
        raise ValueError(f"{type(model).__name__} has no BatchNorm2d layers for DSON to replace")
    return model
