"""Digits on photographs, the way MNIST-M was made: a digit difference-blended onto a random colour-photo patch.

Ganin & Lempitsky (2015) built MNIST-M by blending MNIST digits over patches of BSDS500 photos,
``out = |patch − digit|``. Offline, the photos here are the two that ship with scikit-learn
(``load_sample_images``: ``china.jpg``, ``flower.jpg``, 427×640 RGB). Each image's patch (which photo, the crop side
in [size, 3·size] photo pixels, its position) is drawn from ``numpy.random.default_rng([PHOTO_SEED, key])``, so an
image's background depends only on its key (the real digit's index), never on the split or the other images.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_sample_images
from torch import Tensor

PHOTO_SEED = 20150526


@lru_cache(maxsize=1)
def sample_photos() -> tuple[Tensor, ...]:
    """scikit-learn's sample photographs as ``3×H×W`` float tensors in [0, 1]."""
    images = load_sample_images().images
    return tuple(torch.from_numpy(np.array(img)).permute(2, 0, 1).float().div_(255) for img in images)


def photo_patches(keys: Sequence[int], size: int) -> Tensor:
    """One ``3×size×size`` photo patch per key (deterministic per key), ``N×3×size×size`` in [0, 1]."""
    photos = sample_photos()
    patches = []
    for key in keys:
        rng = np.random.default_rng([PHOTO_SEED, int(key)])
        photo = photos[int(rng.integers(len(photos)))]
        side = int(rng.integers(size, 3 * size + 1))
        top = int(rng.integers(0, photo.shape[1] - side + 1))
        left = int(rng.integers(0, photo.shape[2] - side + 1))
        crop = photo[:, top : top + side, left : left + side].unsqueeze(0)
        patches.append(F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False))
    return torch.cat(patches).clamp_(0, 1)


def blend_on_photos(digits: Tensor, keys: Sequence[int]) -> Tensor:
    """MNIST-M's difference blend ``|patch − digit|`` of grey ``N×1×H×W`` digits (ink bright) onto photo patches.

    Examples:
        >>> out = blend_on_photos(torch.zeros(2, 1, 16, 16), keys=[0, 1])
        >>> tuple(out.shape), bool(out.min() >= 0), bool(out.max() <= 1)
        ((2, 3, 16, 16), True, True)
    """
    if digits.ndim != 4 or digits.shape[1] != 1:
        raise ValueError(f"expected grey digits N×1×H×W, got {tuple(digits.shape)}")
    if len(keys) != len(digits):
        raise ValueError(f"{len(keys)} keys for {len(digits)} digits")
    patches = photo_patches(keys, digits.shape[-1])
    return (patches - digits).abs()
