"""Histories of generated images for discriminator updates: CycleGAN's image pool and SimGAN's history buffer.

The stored images, the fill count and the pool's own random generator are module state (``get_extra_state``), so a
run resumed from a checkpoint draws exactly what the uninterrupted run would have drawn.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn


class ImagePool(nn.Module):
    """A fixed-capacity history of detached images.

    Modes:
        ``cyclegan`` (Zhu et al. 2017): per incoming image, while fewer than ``capacity`` are stored, store it and
        return it; afterwards, with probability 0.5 return a random stored image and put the new one in its slot,
        otherwise return the new image.
        ``history`` (Shrivastava et al. 2017): return half the batch from the buffer (once it holds that many) and
        half current; then overwrite ``batch/2`` random slots with current images.

    Args:
        capacity: images kept (CycleGAN: 50; SimGAN: 50 × batch size is our default).
        mode: ``cyclegan`` or ``history``.
        seed: seed of the pool's own generator.
    """

    def __init__(self, *, capacity: int = 50, mode: Literal["cyclegan", "history"] = "cyclegan", seed: int = 0) -> None:
        super().__init__()
        if mode not in ("cyclegan", "history"):
            raise ValueError(f"unknown pool mode {mode!r}; use cyclegan or history")
        self.capacity, self.mode = capacity, mode
        self.generator = torch.Generator().manual_seed(seed)
        self.images: Tensor | None = None
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def forward(self, images: Tensor) -> Tensor:
        """The batch to show the discriminator (same shape as ``images``), updating the history."""
        images = images.detach()
        if self.capacity == 0:
            return images
        if self.images is None:
            self.images = torch.zeros(self.capacity, *images.shape[1:], dtype=images.dtype, device="cpu")
        return self._cyclegan(images) if self.mode == "cyclegan" else self._history(images)

    def _cyclegan(self, images: Tensor) -> Tensor:
        out = []
        for image in images:
            if self.count < self.capacity:
                self.images[self.count] = image.cpu()
                self.count += 1
                out.append(image)
            elif torch.rand(1, generator=self.generator).item() < 0.5:
                slot = int(torch.randint(self.capacity, (1,), generator=self.generator))
                out.append(self.images[slot].clone().to(images.device))
                self.images[slot] = image.cpu()
            else:
                out.append(image)
        return torch.stack(out)

    def _history(self, images: Tensor) -> Tensor:
        half = images.shape[0] // 2
        out = images
        if self.count >= half > 0:
            picks = torch.randperm(self.count, generator=self.generator)[:half]
            out = torch.cat([images[: images.shape[0] - half], self.images[picks].to(images.device)])
        new = images[torch.randperm(images.shape[0], generator=self.generator)[: max(half, 1)]].cpu()
        for image in new:
            if self.count < self.capacity:
                self.images[self.count] = image
                self.count += 1
            else:
                self.images[int(torch.randint(self.capacity, (1,), generator=self.generator))] = image
        return out

    def get_extra_state(self) -> dict[str, Any]:
        return {
            "images": None if self.images is None else self.images[: self.count].clone(),
            "count": self.count,
            "generator": self.generator.get_state(),
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.count = int(state["count"])
        self.generator.set_state(state["generator"])
        stored = state["images"]
        if stored is None:
            self.images = None
        else:
            self.images = torch.zeros(self.capacity, *stored.shape[1:], dtype=stored.dtype)
            self.images[: self.count] = stored
