"""CSG's pieces: attentional pooling (A-pool), projection heads, the key queue, InfoNCE, and the two augmented views.

Definitions follow the official code (NVlabs/CSG ``model/csg_builder.py``, ``utils/augmentations.py``) as read in
``shared/methods/adaptation.md`` section 4.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # offline: no update check at import
import albumentations as A


def a_pool(features: Tensor, attention_from: Tensor | None = None, eps: float = 1e-6) -> Tensor:
    """Attentional pooling of non-negative maps ``(B, C, H, W)`` to ``(B, C)``.

    ``a_ij = ⟨v_ij, v̄⟩ / Σ ⟨v_i'j', v̄⟩`` with ``v̄`` the spatial mean of ``attention_from`` (default: ``features``
    themselves), then ``Σ a_ij v_ij``. CSG takes the key's attention from the trainable encoder's features of the key
    image and applies it to the frozen encoder's.

    Examples:
        >>> v = torch.zeros(1, 1, 1, 2); v[0, 0, 0, 1] = 2.0  # one active position gets all the attention
        >>> a_pool(v).item()
        2.0
    """
    source = features if attention_from is None else attention_from
    mean = source.mean(dim=(2, 3))  # v̄: (B, C)
    scores = torch.einsum("bchw,bc->bhw", source, mean).flatten(1)  # ⟨v_ij, v̄⟩
    attention = scores / scores.sum(1, keepdim=True).clamp_min(eps)
    return torch.einsum("bcn,bn->bc", features.flatten(2), attention)


class ProjectionHead(nn.Sequential):
    """CSG's per-stage projection: Linear(C, C) → ReLU → Linear(C, dim)."""

    def __init__(self, *, channels: int, dim: int = 128) -> None:
        super().__init__(nn.Linear(channels, channels), nn.ReLU(), nn.Linear(channels, dim))


class KeyQueue(nn.Module):
    """A FIFO of ``size`` unit-length keys of ``dim`` (MoCo's negatives), started with random unit vectors."""

    def __init__(self, *, size: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def push(self, keys: Tensor) -> None:
        """Replace the oldest entries with ``keys`` (wrapping around)."""
        size, n = len(self.keys), len(keys)
        index = (int(self.pointer) + torch.arange(n, device=keys.device)) % size
        self.keys[index] = keys.detach().to(self.keys.dtype)
        self.pointer.fill_((int(self.pointer) + n) % size)


def info_nce(query: Tensor, key: Tensor, negatives: Tensor, temperature: float) -> Tensor:
    """``−log exp(q·k/τ) / (exp(q·k/τ) + Σ_j exp(q·n_j/τ))``, averaged over the batch (unit-length inputs).

    The (1 + K)-way cross-entropy with the positive at index 0, as the official code.
    """
    positive = (query * key).sum(1, keepdim=True)
    logits = torch.cat([positive, query @ negatives.t()], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(query), dtype=torch.long, device=query.device))


@torch.no_grad()
def momentum_update(target: nn.Module, source: nn.Module, momentum: float) -> None:
    """``θ_target ← m·θ_target + (1 − m)·θ_source`` (CSG's key projection heads, m = 0.999)."""
    for t, s in zip(target.parameters(), source.parameters(), strict=True):
        t.mul_(momentum).add_(s.detach(), alpha=1 - momentum)


def rand_augment(magnitude: int = 6) -> A.Compose:
    """CSG's view augmentation: RandAugment with one operation (N = 1) at ``magnitude`` of 30.

    The official op set, each at ``magnitude / 30`` of its range and a random sign where it has one: identity,
    auto-contrast, equalize, rotate (≤ 30°), posterize, solarize, colour (saturation), contrast, brightness, sharpness,
    shear x / y (≤ 0.3), translate x / y (≤ 100 px at 224 px, so ≤ 45% of the side here, for any image size).
    """
    m = magnitude / 30
    rot, shift, tone = 30 * m, 0.45 * m, 0.9 * m
    shear = math.degrees(math.atan(0.3 * m))  # a shear factor of 0.3·m as an angle
    ops = [
        A.NoOp(p=1),
        A.AutoContrast(p=1),
        A.Equalize(p=1),
        A.Affine(rotate=(-rot, rot), p=1),
        A.Posterize(num_bits=max(1, round(8 - 4 * m)), p=1),
        A.Solarize(threshold_range=(1 - m, 1 - m), p=1),
        A.ColorJitter(brightness=0, contrast=0, saturation=(1 - tone, 1 + tone), hue=0, p=1),
        A.ColorJitter(brightness=0, contrast=(1 - tone, 1 + tone), saturation=0, hue=0, p=1),
        A.ColorJitter(brightness=(1 - tone, 1 + tone), contrast=0, saturation=0, hue=0, p=1),
        A.Sharpen(alpha=(m, m), p=1),
        A.Affine(shear={"x": (-shear, shear), "y": (0, 0)}, p=1),
        A.Affine(shear={"x": (0, 0), "y": (-shear, shear)}, p=1),
        A.Affine(translate_percent={"x": (-shift, shift), "y": (0, 0)}, p=1),
        A.Affine(translate_percent={"x": (0, 0), "y": (-shift, shift)}, p=1),
    ]
    return A.Compose([A.OneOf(ops, p=1)])


def augment_batch(images: Tensor, transform: A.Compose) -> Tensor:
    """Apply an albumentations pipeline to every image of a ``(B, C, H, W)`` batch in [0, 1] (one draw each)."""
    array = (images.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    grey = array.shape[-1] == 1
    out = []
    for image in array:
        rgb = np.repeat(image, 3, axis=-1) if grey else image
        result = transform(image=np.ascontiguousarray(rgb))["image"]
        out.append(result[..., :1] if grey else result)
    stacked = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)
    return stacked.to(device=images.device, dtype=images.dtype) / 255
