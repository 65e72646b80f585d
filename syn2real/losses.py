"""Losses shared by two or more methods, and the non-finite-loss guard every training step uses."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from syn2real.batch import IGNORE_INDEX


class NonFiniteLossError(FloatingPointError):
    """A training loss became NaN or infinite; training stops so no bad checkpoint is written."""


def check_finite(loss: Tensor, *, name: str, step: int) -> Tensor:
    """Return ``loss`` unchanged, or raise :class:`NonFiniteLossError` naming the loss and step."""
    if not torch.isfinite(loss).all():
        raise NonFiniteLossError(
            f"{name} is {loss.detach().float().cpu().tolist()} at step {step}. Training stopped; earlier checkpoints "
            "are intact. Lower the learning rate, enable gradient clipping (trainer.gradient_clip_val), or check "
            "the data for NaNs."
        )
    return loss


def domain_adversarial_loss(source_logits: Tensor, target_logits: Tensor) -> tuple[Tensor, Tensor]:
    """A domain classifier's BCE (source = 1, target = 0) over all samples / positions, and its accuracy.

    DANN's domain loss, and the adversarial term of DSBN's alignment stage (through a gradient reversal layer).

    Examples:
        >>> loss, acc = domain_adversarial_loss(torch.tensor([20.0]), torch.tensor([-20.0]))
        >>> round(float(loss), 6), float(acc)
        (0.0, 1.0)
    """
    logits = torch.cat([source_logits.flatten(), target_logits.flatten()])
    labels = torch.cat([torch.ones(source_logits.numel()), torch.zeros(target_logits.numel())]).to(logits)
    loss = F.binary_cross_entropy_with_logits(logits, labels)
    return loss, ((logits > 0).float() == labels).float().mean()


def task_loss(logits: Tensor, labels: Tensor, *, label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy for classification (``B×K`` vs ``B``) or segmentation (``B×K×H×W`` vs ``B×H×W``, 255 ignored)."""
    return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing)


AdversarialMode = Literal["vanilla", "lsgan", "hinge"]


def discriminator_loss(
    real: Tensor, fake: Tensor, *, mode: AdversarialMode = "lsgan", real_target: float = 1.0
) -> Tensor:
    """Discriminator loss on raw scores (any shape), averaged over batch and positions.

    ``vanilla``: BCE-with-logits, real → ``real_target``, fake → 0. ``lsgan``: ½[(D(real) − real_target)² + D(fake)²]
    (CycleGAN's "divide D's objective by 2"). ``hinge``: E[relu(1 − D(real))] + E[relu(1 + D(fake))].
    ``real_target < 1`` is one-sided label smoothing.
    """
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(
            real, torch.full_like(real, real_target)
        ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
    if mode == "lsgan":
        return 0.5 * ((real - real_target).pow(2).mean() + fake.pow(2).mean())
    if mode == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    raise ValueError(f"unknown adversarial mode {mode!r}; use vanilla, lsgan or hinge")


def generator_loss(fake: Tensor, *, mode: AdversarialMode = "lsgan", target: float = 1.0) -> Tensor:
    """Generator loss on the discriminator's scores of generated images.

    ``vanilla``: non-saturating BCE towards ``target``; ``lsgan``: (D(G(x)) − target)² (``target = 0.9`` is
    GazeGAN-style smoothing); ``hinge``: −E[D(G(x))].
    """
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(fake, torch.full_like(fake, target))
    if mode == "lsgan":
        return (fake - target).pow(2).mean()
    if mode == "hinge":
        return -fake.mean()
    raise ValueError(f"unknown adversarial mode {mode!r}; use vanilla, lsgan or hinge")


def l1_generator_units(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean L1 distance of two [0, 1] images measured on the generators' [-1, 1] scale (``x ↦ 2x − 1``).

    The zoo's images are in [0, 1] (DESIGN.md "Data contract"); CycleGAN's reference code and SimGAN's
    re-implementations compute their L1 terms on [-1, 1] images, where the same difference is twice as large. Their
    published λ weights are in these units, so the cycle, identity and self-regularization terms use this distance.

    Examples:
        >>> l1_generator_units(torch.tensor([0.0, 1.0]), torch.tensor([0.5, 0.5]))
        tensor(1.)
    """
    return 2.0 * F.l1_loss(prediction, target)  # |(2a − 1) − (2b − 1)| = 2|a − b|: no rescaled image copies
