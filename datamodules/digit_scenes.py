"""The ``digits-scenes`` segmentation benchmark: four digits on one canvas, a class for every pixel.

A scene is a 2×2 grid of ``cell``-pixel cells (64-px canvas by default), one digit per cell. Pixel classes: 0 is
background, ``1 + d`` the ink of digit d, and 255 (ignored) a band along the stroke edges, where the rendered mask and
the real ink disagree about where a stroke ends.

- **Real scenes** (:class:`RealDigitScenes`, :class:`RealDigitScenesSource`): digits of one split of the real
  digits (:mod:`datamodules.real_digits`), so the pool, val and test scenes never share a digit; each scan is resized
  to ``digit`` pixels and placed at a random offset inside its cell. Ink above 0.5 is the digit, below 0.2
  background, in between ignored. With ``background="photo"`` the whole canvas is difference-blended onto one photo
  patch, as in ``digits-photo``.
- **Rendered scenes** (:func:`render_scenes`, :class:`RenderedDigitScenesSource`): four renders of the built-in
  simulator tiled on the same grid, its backgrounds included; labels from its foreground masks with the one-pixel
  ring just outside each stroke ignored (the renderer's anti-aliased edge); masks and depth tiled alike (privileged
  information for SPIGAN).

Every choice (which digits, where) is a pure function of the split (or simulator seed) and the scene index.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import Tensor
from torch.utils.data import Dataset

from datamodules.photo_blend import blend_on_photos
from datamodules.real_digits import Background, Split, split_indices
from datamodules.render_cache import cached_render
from datamodules.simulator import DigitsSimulator, DigitsSimulatorConfig, config_record
from datamodules.sources import SampleTensorDataset, Source
from syn2real.batch import IGNORE_INDEX, Sample

SCENE_SEED = 20170904
SCENE_COUNTS = {"pool": 1000, "val": 300, "test": 500}
SPLIT_KEYS = {"pool": 0, "val": 1, "test": 2}
INK, BACKGROUND = 0.5, 0.2
CLASSES = ["background", *(str(d) for d in range(10))]


def tile(cells: Tensor) -> Tensor:
    """``4N×C×h×w`` cells (scene-major, row-major) to ``N×C×2h×2w`` scenes.

    Examples:
        >>> tile(torch.arange(4.0).view(4, 1, 1, 1)).flatten().tolist()
        [0.0, 1.0, 2.0, 3.0]
    """
    n, c, h, w = cells.shape
    grid = cells.view(n // 4, 2, 2, c, h, w).permute(0, 3, 1, 4, 2, 5)
    return grid.reshape(n // 4, c, 2 * h, 2 * w)


def outer_ring(mask: Tensor, width: int = 1) -> Tensor:
    """Pixels outside a ``B×1×H×W`` binary mask within ``width`` of it (the dilation minus the mask).

    Examples:
        >>> m = torch.zeros(1, 1, 5, 5); m[..., 2, 2] = 1
        >>> outer_ring(m).sum().item(), outer_ring(m)[0, 0, 2, 2].item()  # the 8 neighbours, not the pixel itself
        (8.0, 0.0)
    """
    return F.max_pool2d(mask, 2 * width + 1, stride=1, padding=width) - mask


@lru_cache(maxsize=3)
def _real_scenes(split: Split, cell: int, digit: int) -> tuple[Tensor, Tensor, list[list[int]]]:
    """Grey ink canvases ``N×1×2c×2c``, their label maps and the real-digit indices of every scene."""
    pool = split_indices()[split]
    digits = load_digits()
    scans = torch.from_numpy(digits.images[pool].astype(np.float32) / 16.0).unsqueeze(1)
    ink = F.interpolate(scans, size=(digit, digit), mode="bilinear", align_corners=False).clamp_(0, 1)
    classes = torch.from_numpy(digits.target[pool].astype(np.int64))
    cells, labels, members = [], [], []
    for index in range(SCENE_COUNTS[split]):
        rng = np.random.default_rng([SCENE_SEED, SPLIT_KEYS[split], index])
        chosen = rng.choice(len(pool), size=4, replace=False)
        members.append([int(pool[i]) for i in chosen])
        for i in chosen:
            top, left = (int(v) for v in rng.integers(0, cell - digit + 1, size=2))
            canvas = torch.zeros(1, cell, cell)
            canvas[:, top : top + digit, left : left + digit] = ink[i]
            label = torch.full((1, cell, cell), IGNORE_INDEX, dtype=torch.long)
            label[canvas > INK] = 1 + int(classes[i])
            label[canvas < BACKGROUND] = 0
            cells.append(canvas)
            labels.append(label)
    return tile(torch.stack(cells)), tile(torch.stack(labels))[:, 0], members


class RealDigitScenes(Dataset[Sample]):
    """Scenes of real digits from one split (domain 1): ``pool`` (1,000, unlabeled), ``val`` (300), ``test`` (500).

    Args:
        split: which split of the real digits the scenes are made of.
        cell: side of a grid cell (the canvas is twice this).
        digit: side a digit scan is resized to (placed at a random offset inside its cell).
        channels: 1, or 3 (grey replicated; required for ``background="photo"``).
        background: ``black`` or ``photo`` (the canvas blended onto a photo patch).
        use_labels: attach label maps; defaults to ``False`` for the pool, ``True`` for val/test.
        transform: optional ``Sample -> Sample``.
    """

    def __init__(
        self,
        split: Split,
        *,
        cell: int = 32,
        digit: int = 24,
        channels: int = 1,
        background: Background = "black",
        use_labels: bool | None = None,
        transform: Any = None,
    ) -> None:
        if split not in SCENE_COUNTS:
            raise ValueError(f"unknown split {split!r}; use one of {list(SCENE_COUNTS)}")
        if not 0 < digit <= cell:
            raise ValueError(f"digit ({digit}) must fit its cell ({cell})")
        if background == "photo" and channels != 3:
            raise ValueError("background='photo' gives colour images: set channels: 3")
        ink, self.label_maps, members = _real_scenes(split, cell, digit)
        if background == "photo":
            keys = [
                1_000_000 * (1 + SPLIT_KEYS[split]) + i for i in range(len(ink))
            ]  # photos apart from digits-photo's
            self.images = blend_on_photos(ink, keys=keys)
        else:
            self.images = ink.repeat(1, channels, 1, 1) if channels == 3 else ink
        self.ids = [f"sklearn-digit-scene-{split}-{i:04d}" for i in range(len(ink))]
        self.members = members
        self.use_labels = split != "pool" if use_labels is None else use_labels
        self.transform = transform
        self.classes = CLASSES

    def labels(self) -> list[int]:
        return []  # per-pixel labels: no class per sample

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> Sample:
        sample = Sample(
            image=self.images[index],
            label=self.label_maps[index] if self.use_labels else None,
            domain=1,
            id=self.ids[index],
        )
        return self.transform(sample) if self.transform is not None else sample


def render_scenes(simulator: DigitsSimulator, scenes: range, *, band: int = 1) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Scenes ``scenes`` of renders ``4i..4i+3`` tiled 2×2: images, label maps, masks and depth."""
    out = simulator.render([4 * i + k for i in scenes for k in range(4)])
    labels = torch.where(out.masks > 0.5, 1 + out.labels.view(-1, 1, 1, 1), 0).long()
    labels[outer_ring(out.masks, band) > 0] = IGNORE_INDEX
    return tile(out.images), tile(labels)[:, 0], tile(out.masks), tile(out.depth)


def rendered_scene_tensors(
    num_scenes: int, seed: int, config: DigitsSimulatorConfig
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``num_scenes`` rendered scenes (in chunks of 128): images, label maps, masks, depth."""
    sim = DigitsSimulator(config, seed=seed)
    parts = [render_scenes(sim, range(i, min(i + 128, num_scenes))) for i in range(0, num_scenes, 128)]
    return tuple(torch.cat([p[k] for p in parts]) for k in range(4))  # type: ignore[return-value]


class RealDigitScenesSource(Source):
    """Scenes of real digits, one split (see :class:`RealDigitScenes`): the real side of ``digits-scenes``.

    Args:
        split: ``pool`` (unlabeled adaptation), ``val`` or ``test``.
        channels: 1, or 3.
        background: ``black`` or ``photo``.
        use_labels: attach label maps; defaults to ``False`` for the pool.
    """

    def __init__(
        self,
        *,
        split: Split = "test",
        channels: int = 1,
        background: Background = "black",
        use_labels: bool | None = None,
    ) -> None:
        self.split, self.channels, self.background, self.use_labels = split, channels, background, use_labels

    def load(self, transform: Any = None) -> RealDigitScenes:
        return RealDigitScenes(
            self.split,
            channels=self.channels,
            background=self.background,
            use_labels=self.use_labels,
            transform=transform,
        )


RENDER_PHOTO_KEYS = 10**9
"""Photo-patch keys of blended renders start here: far from the real scenes' (``10**6 · (1 + split)`` + index)."""


class RenderedDigitScenesSource(Source):
    """Scenes of the built-in simulator's digits in memory, with label maps, masks and depth (domain 0 by default).

    Args:
        num_samples: how many scenes (each four renders: ``4i..4i+3`` of the simulator seed).
        seed: the simulator seed.
        config: simulator parameters ψ (its ``size`` is the cell side; scenes are twice that).
        use_labels: attach label maps.
        domain: domain id.
        background: ``simulator`` (the renders as rendered) or ``photo``: a control, not a simulator setting. The
            rendered ink (the grey render inside its foreground mask) is difference-blended onto photo patches the
            way the real ``digits-scenes`` are made (other crops of the same two photos), so the renders keep their
            glyph shapes and take the real scenes' compositing: how far a perfect appearance translation could go.
            Needs ``config.channels: 3``.
    """

    def __init__(
        self,
        *,
        num_samples: int = 5000,
        seed: int = 0,
        config: DigitsSimulatorConfig | None = None,
        use_labels: bool = True,
        domain: int = 0,
        background: Literal["simulator", "photo"] = "simulator",
    ) -> None:
        self.num_samples, self.seed, self.use_labels, self.domain = num_samples, seed, use_labels, domain
        self.config = config or DigitsSimulatorConfig()
        if background not in ("simulator", "photo"):
            raise ValueError(f"background must be 'simulator' or 'photo', got {background!r}")
        if background == "photo" and self.config.channels != 3:
            raise ValueError("background='photo' gives colour images: set config.channels: 3")
        self.background = background

    def load(self, transform: Any = None) -> SampleTensorDataset:
        arguments = {"num_scenes": self.num_samples, "seed": self.seed, "config": config_record(self.config)}

        def render() -> dict[str, Tensor | None]:
            tensors = rendered_scene_tensors(self.num_samples, self.seed, self.config)
            return dict(zip(("images", "labels", "masks", "depth"), tensors, strict=True))

        out = cached_render("digit-scenes", arguments, render)
        images, labels, masks, depth = out["images"], out["labels"], out["masks"], out["depth"]
        if self.background == "photo":
            keys = [RENDER_PHOTO_KEYS + self.seed * 10**7 + i for i in range(len(images))]
            images = blend_on_photos(images.mean(1, keepdim=True) * masks, keys=keys)
        return SampleTensorDataset(
            images,
            labels=labels if self.use_labels else None,
            masks=masks,
            depth=depth,
            domain=self.domain,
            prefix=f"scene{self.seed}-",
            transform=transform,
        )
