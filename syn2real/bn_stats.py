"""Re-estimating batch-norm statistics on other images (AdaBN's whole algorithm), usable on any model.

Core, not a method: ``refinement.adabn`` trains with it and ``syn2real adapt-bn`` applies it to any checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from syn2real.data_api import PairedDomains, require_datamodule


def bn_layers(model: nn.Module) -> list[_BatchNorm]:
    """Every batch-norm layer of ``model`` (BatchNorm1d/2d/3d, SyncBatchNorm, timm's BatchNormAct2d)."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm)]


BNState = list[tuple[Tensor, Tensor, Tensor]]


def bn_state(layers: list[_BatchNorm]) -> BNState:
    """A copy of each layer's running mean, running variance and batch count."""
    return [(bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()) for bn in layers]


@torch.no_grad()
def load_bn_state(layers: list[_BatchNorm], saved: BNState) -> None:
    """Put back statistics taken by :func:`bn_state` (same layers, same order)."""
    for bn, (mean, var, count) in zip(layers, saved, strict=True):
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.num_batches_tracked.copy_(count)


@contextmanager
def kept_bn_statistics(*modules: nn.Module) -> Iterator[None]:
    """Forward passes inside leave the running statistics of ``modules``' BN layers as they were.

    The layers still normalise with batch statistics in train mode; their momentum is 0 meanwhile, so the running
    estimates stay bit for bit (no tensor that autograd saved is modified afterwards: backward still works). For a
    GAN's generator step, which must not update the discriminator's or the task network's statistics.
    """
    layers = [bn for m in modules for bn in bn_layers(m)]
    momenta = [bn.momentum for bn in layers]
    counts = [bn.num_batches_tracked.clone() for bn in layers]
    for bn in layers:
        bn.momentum = 0.0
    try:
        yield
    finally:
        for bn, momentum, count in zip(layers, momenta, counts, strict=True):
            bn.momentum = momentum
            bn.num_batches_tracked.copy_(count)


@torch.no_grad()
def reestimate_bn_stats(model: nn.Module, batches: Iterable[Tensor]) -> int:
    """Replace every BN layer's running statistics with those of ``batches`` (AdaBN, Li et al. 2016).

    Follows the recipe of ``methods/adaptation.md`` §1.1: statistics reset, cumulative averaging (``momentum=None``)
    so every batch counts equally, the model in eval mode with only its BN layers in train mode (dropout stays
    off), no gradients. Learned weights are untouched. The per-channel mean is exact for equal batch sizes; the
    variance is the average of per-batch unbiased variances, as in PyTorch's own running estimate.

    Args:
        model: modified in place; its train/eval mode and BN momenta are restored afterwards.
        batches: image tensors (``B×C×H×W`` in [0, 1], on the model's device), drawn without augmentation.

    Returns:
        The number of images seen.

    Raises:
        ValueError: if the model has no BN layer, or no image was given (nothing is changed then).
    """
    layers = bn_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no BatchNorm layers: AdaBN has no statistics to re-estimate")
    was_training = model.training
    momenta = [bn.momentum for bn in layers]
    saved = bn_state(layers)
    model.eval()
    for bn in layers:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    seen = 0
    try:
        for images in batches:
            model(images)
            seen += images.shape[0]
    finally:
        for bn, momentum in zip(layers, momenta, strict=True):
            bn.momentum = momentum
        model.train(was_training)
    if seen == 0:
        load_bn_state(layers, saved)
        raise ValueError("no images to estimate statistics from (empty dataset, or fewer images than one batch)")
    return seen


def target_images(module: Any, batch_size: int) -> Iterator[Tensor]:
    """Unaugmented target images of ``module``'s datamodule (a :class:`~syn2real.data_api.PairedDomains`)."""
    datamodule = require_datamodule(module, PairedDomains, purpose="BN statistics are re-estimated on the target")
    return (b.images.to(module.device) for b in datamodule.target_loader(batch_size=batch_size))
