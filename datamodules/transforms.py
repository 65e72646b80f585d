"""Training-time augmentation with albumentations, applied to a :class:`~syn2real.batch.Sample`.

Geometric transforms move the image, the foreground mask, the depth map and a segmentation label map together;
photometric ones touch the image only. Presets: ``none``, ``light``, ``strong``.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Literal

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # offline: no update check over the network at import

import albumentations as A
import numpy as np
import torch

from syn2real.batch import IGNORE_INDEX, Sample

Augment = Literal["none", "light", "strong"]


def build_pipeline(preset: Augment, *, seed: int | None = None) -> A.Compose | None:
    """The albumentations pipeline of a preset (``None`` for ``"none"``)."""
    if preset == "none":
        return None
    geometric = A.Affine(
        scale=(0.9, 1.1), translate_percent=(-0.06, 0.06), rotate=(-10, 10), shear=(-8, 8), fill=0, fill_mask=0, p=0.8
    )
    photometric: list[A.BasicTransform] = [A.RandomBrightnessContrast(0.2, 0.2, p=0.5)]
    if preset == "strong":
        photometric += [A.GaussianBlur(sigma_limit=(0.1, 1.0), p=0.3), A.GaussNoise(std_range=(0.01, 0.06), p=0.3)]
    elif preset != "light":
        raise ValueError(f"unknown augmentation preset {preset!r}; use none, light or strong")
    return A.Compose([geometric, *photometric], additional_targets={"fg": "mask", "depth": "mask"}, seed=seed)


class SampleTransform:
    """Apply an albumentations pipeline to every field of a sample that it should move.

    Args:
        preset: augmentation preset.
        seed: seed of the pipeline's random generator.
    """

    def __init__(self, preset: Augment = "light", *, seed: int | None = None) -> None:
        self.preset = preset
        self.pipeline = build_pipeline(preset, seed=seed)

    def __call__(self, sample: Sample) -> Sample:
        if self.pipeline is None:
            return sample
        image = sample.image.permute(1, 2, 0).numpy().astype(np.float32)
        seg = sample.label is not None and sample.label.ndim == 2
        h, w = image.shape[:2]
        targets = {
            "image": image,
            # labels shifted by one so the zero fill of pixels moved in from outside the frame reads "ignore"
            "mask": sample.label.numpy().astype(np.float32) + 1 if seg else np.zeros((h, w), np.float32),
            "fg": sample.mask[0].numpy() if sample.mask is not None else np.zeros((h, w), np.float32),
            "depth": sample.depth[0].numpy() if sample.depth is not None else np.zeros((h, w), np.float32),
        }
        out = self.pipeline(**targets)
        img = torch.from_numpy(np.ascontiguousarray(out["image"])).reshape(h, w, -1).permute(2, 0, 1).clamp(0, 1)
        return replace(
            sample,
            image=img.float(),
            label=_unshift(out["mask"]) if seg else sample.label,
            mask=torch.from_numpy(out["fg"]).unsqueeze(0).float() if sample.mask is not None else None,
            depth=torch.from_numpy(out["depth"]).unsqueeze(0).float() if sample.depth is not None else None,
        )


def _unshift(shifted: np.ndarray) -> torch.Tensor:
    labels = torch.from_numpy(np.rint(shifted).astype(np.int64)) - 1
    labels[labels < 0] = IGNORE_INDEX
    return labels
