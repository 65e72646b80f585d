"""The real target of the digits benchmark: scikit-learn's handwritten digits (UCI optdigits test set).

1,797 images, 8×8, 17 grey levels (0–16, ink bright on dark), resized bilinearly to the benchmark size. A fixed,
class-stratified split (seed ``SPLIT_SEED``, independent of any training seed) gives an unlabeled adaptation
**pool** (also the source of real-label budgets), a **val** split and a **test** split. Only val/test and explicit
label budgets read the labels.

With ``background="photo"`` every digit is difference-blended onto a colour-photo patch (RGB, the way MNIST-M was
built; :mod:`datamodules.photo_blend`): the real target of the ``digits-photo`` benchmark, which adds an appearance
gap (texture, colour, clutter) to the shape gap between rendered and handwritten digits.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset

from datamodules.photo_blend import blend_on_photos
from syn2real.batch import Sample

SPLIT_SEED = 20160315
SPLIT_SIZES = {"pool": 1000, "val": 297, "test": 500}
Split = Literal["pool", "val", "test"]
Background = Literal["black", "photo"]


@lru_cache(maxsize=1)
def split_indices() -> dict[str, np.ndarray]:
    """Indices into ``load_digits()`` of each split: fixed, disjoint, stratified by class."""
    labels = load_digits().target
    all_idx = np.arange(len(labels))
    pool, rest = train_test_split(all_idx, train_size=SPLIT_SIZES["pool"], stratify=labels, random_state=SPLIT_SEED)
    val, test = train_test_split(rest, train_size=SPLIT_SIZES["val"], stratify=labels[rest], random_state=SPLIT_SEED)
    return {"pool": np.sort(pool), "val": np.sort(val), "test": np.sort(test)}


class RealDigits(Dataset[Sample]):
    """One split of the real digits as a dataset of :class:`~syn2real.batch.Sample` (domain 1).

    Args:
        split: ``pool`` (unlabeled adaptation pool / label budgets), ``val`` or ``test``.
        size: output side in pixels.
        channels: 1, or 3 (grey replicated).
        background: ``black`` (the scans as they are) or ``photo`` (blended onto photo patches; needs ``channels=3``).
        use_labels: attach labels; defaults to ``False`` for the pool (methods must not read its labels; label
            budgets ask for them explicitly), ``True`` for val/test, as :class:`~datamodules.sources.RealDigitsSource`.
        transform: optional ``Sample -> Sample``.
    """

    def __init__(
        self,
        split: Split,
        *,
        size: int = 32,
        channels: int = 1,
        background: Background = "black",
        use_labels: bool | None = None,
        transform: object = None,
    ) -> None:
        if split not in SPLIT_SIZES:
            raise ValueError(f"unknown split {split!r}; use one of {list(SPLIT_SIZES)}")
        if background not in ("black", "photo"):
            raise ValueError(f"unknown background {background!r}; use 'black' or 'photo'")
        if background == "photo" and channels != 3:
            raise ValueError("background='photo' gives colour images: set channels: 3")
        digits = load_digits()
        idx = split_indices()[split]
        raw = torch.from_numpy(digits.images[idx].astype(np.float32) / 16.0).unsqueeze(1)
        images = F.interpolate(raw, size=(size, size), mode="bilinear", align_corners=False).clamp_(0, 1)
        if background == "photo":
            self.images = blend_on_photos(images, keys=idx.tolist())
        else:
            self.images = images.repeat(1, channels, 1, 1) if channels == 3 else images
        self.label_tensor = torch.from_numpy(digits.target[idx].astype(np.int64))
        self.ids = [f"sklearn-digits-{i:04d}" for i in idx]
        self.use_labels = split != "pool" if use_labels is None else use_labels
        self.transform = transform
        self.classes = [str(d) for d in range(10)]

    def labels(self) -> list[int]:
        """Class per sample, or ``[]`` when labels are not to be used (the unlabeled pool)."""
        return self.label_tensor.tolist() if self.use_labels else []

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> Sample:
        sample = Sample(
            image=self.images[index],
            label=self.label_tensor[index] if self.use_labels else None,
            domain=1,
            id=self.ids[index],
        )
        return self.transform(sample) if self.transform is not None else sample  # type: ignore[operator]
