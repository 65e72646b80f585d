"""CSG's pieces: attentional pooling (A-pool), projection heads, the key queue, InfoNCE, and the two augmented views.

Definitions follow the official code (NVlabs/CSG ``model/csg_builder.py``, ``utils/augmentations.py``) as read in
``shared/methods/adaptation.md`` section 4.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

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
        keys = keys[-len(self.keys) :]  # more keys than the queue holds: the newest fill it
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


def _signed(make: Callable[[float], A.BasicTransform], value: float) -> A.OneOf:
    """One op at exactly ``value`` with a random sign (RandAugment's fixed magnitude)."""
    return A.OneOf([make(value), make(-value)], p=1)


class Sharpness(A.ImageOnlyTransform):
    """PIL's ``ImageEnhance.Sharpness(image).enhance(factor)`` (the official RandAugment op) on a uint8 HWC image.

    The image is blended with its PIL ``SMOOTH`` filtering (3×3 kernel of ones with 5 at the centre, over 13):
    ``smooth + factor · (image − smooth)``; ``factor`` < 1 blurs, > 1 sharpens, 1 is the identity. As in PIL, the
    outermost pixels are left unchanged.
    """

    def __init__(self, factor: float, p: float = 1.0) -> None:
        super().__init__(p=p)
        self.factor = factor

    def apply(self, img: np.ndarray, **params: object) -> np.ndarray:
        x = img.astype(np.float32)
        h, w = x.shape[:2]
        padded = np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
        smooth = (sum(padded[i : i + h, j : j + w] for i in range(3) for j in range(3)) + 4 * x) / 13
        smooth[[0, -1]], smooth[:, [0, -1]] = x[[0, -1]], x[:, [0, -1]]  # PIL leaves the outermost pixels alone
        return np.clip(np.round(smooth + self.factor * (x - smooth)), 0, 255).astype(img.dtype)


def rand_augment(magnitude: int = 6) -> A.Compose:
    """CSG's view augmentation: RandAugment with one operation (N = 1) at ``magnitude`` of 30.

    The official op set, each at exactly ``m = magnitude / 30`` of its range with a random sign where it has one:
    identity, auto-contrast and equalize (applied with probability m, as the official code), rotate (30° · m),
    posterize (8 − 4m bits), solarize (threshold 1 − m), colour (saturation), contrast, brightness and sharpness
    (factor 1 ± 0.9m; :class:`Sharpness` blurs or sharpens), shear x / y (factor 0.3m), translate x / y (100 px at
    224 px · m, i.e. 0.45m of the side, for any size). Square inputs need no per-view crop (the official Resize(224) +
    RandomCrop(224) only crops non-square images). Seed it per batch (:func:`augment_batch` does, from torch's
    generator).
    """
    m = magnitude / 30
    shear = math.degrees(math.atan(0.3 * m))  # a shear factor of 0.3·m as an angle
    tone, shift = 0.9 * m, 0.45 * m
    ops = [
        A.NoOp(p=1),
        A.AutoContrast(p=m),
        A.Equalize(p=m),
        _signed(lambda v: A.Affine(rotate=(v, v), p=1), 30 * m),
        A.Posterize(num_bits=max(1, round(8 - 4 * m)), p=1),
        A.Solarize(threshold_range=(1 - m, 1 - m), p=1),
        _signed(lambda v: A.ColorJitter(brightness=0, contrast=0, saturation=(1 + v, 1 + v), hue=0, p=1), tone),
        _signed(lambda v: A.ColorJitter(brightness=0, contrast=(1 + v, 1 + v), saturation=0, hue=0, p=1), tone),
        _signed(lambda v: A.ColorJitter(brightness=(1 + v, 1 + v), contrast=0, saturation=0, hue=0, p=1), tone),
        _signed(lambda v: Sharpness(factor=1 + v), tone),
        _signed(lambda v: A.Affine(shear={"x": (v, v), "y": (0, 0)}, p=1), shear),
        _signed(lambda v: A.Affine(shear={"x": (0, 0), "y": (v, v)}, p=1), shear),
        _signed(lambda v: A.Affine(translate_percent={"x": (v, v), "y": (0, 0)}, p=1), shift),
        _signed(lambda v: A.Affine(translate_percent={"x": (0, 0), "y": (v, v)}, p=1), shift),
    ]
    return A.Compose([A.OneOf(ops, p=1)])


def key_color_jitter() -> A.Compose:
    """Dense CSG's key view: ColorJitter 0.4 brightness, contrast, saturation and hue (no geometric change)."""
    return A.Compose([A.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.4, p=1)])


def patches(maps: Tensor, chunks: int) -> Tensor:
    """``(B, C, H, W)`` → ``(B·chunks², C, H/chunks, W/chunks)``: the grid cells of every map, image-major, row-major.

    Examples:
        >>> patches(torch.arange(16.0).view(1, 1, 4, 4), 2)[1, 0].tolist()  # the top-right cell
        [[2.0, 3.0], [6.0, 7.0]]
    """
    b, c, h, w = maps.shape
    cells = maps.view(b, c, chunks, h // chunks, chunks, w // chunks).permute(0, 2, 4, 1, 3, 5)
    return cells.reshape(b * chunks * chunks, c, h // chunks, w // chunks)


def augment_batch(images: Tensor, transform: A.Compose) -> Tensor:
    """Apply an albumentations pipeline to every image of a ``(B, C, H, W)`` batch in [0, 1] (one draw each).

    The pipeline is seeded from torch's generator first, so ``seed_everything`` and a resumed run's restored random
    state give the same views.
    """
    transform.set_random_seed(int(torch.randint(0, 2**31 - 1, ())))
    array = (images.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    grey = array.shape[-1] == 1
    out = []
    for image in array:
        rgb = np.repeat(image, 3, axis=-1) if grey else image
        result = transform(image=np.ascontiguousarray(rgb))["image"]
        out.append(result[..., :1] if grey else result)
    stacked = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)
    return stacked.to(device=images.device, dtype=images.dtype) / 255
