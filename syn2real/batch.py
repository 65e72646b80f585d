"""The typed batch every datamodule yields and every method reads (DESIGN.md, "Data contract").

Images are ``float32`` in [0, 1], ``C×H×W`` per sample. Optional fields are ``None`` when the dataset lacks them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

IGNORE_INDEX = 255
"""Label value that segmentation losses and metrics skip."""


@dataclass
class Sample:
    """One sample: ``image`` ``C×H×W`` in [0, 1]; ``label`` a 0-d long (classification) or ``H×W`` long map."""

    image: Tensor
    label: Tensor | None = None
    mask: Tensor | None = None
    depth: Tensor | None = None
    domain: int = 0
    id: str = ""


@dataclass
class Batch:
    """A batch of samples.

    Attributes:
        images: ``B×C×H×W`` float in [0, 1].
        labels: ``B`` long (classification) or ``B×H×W`` long (segmentation, ignore index 255), or ``None``.
        masks: ``B×1×H×W`` float in {0, 1} (renderer foreground), or ``None``.
        depth: ``B×1×H×W`` float (privileged information), or ``None``.
        domains: ``B`` long; 0 = source/synthetic, 1 = target/real, more for multi-source.
        ids: sample ids, for provenance and export.
    """

    images: Tensor
    labels: Tensor | None = None
    masks: Tensor | None = None
    depth: Tensor | None = None
    domains: Tensor | None = None
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return self.images.shape[0]


@dataclass
class DomainBatch:
    """What domain-adaptation methods get: one batch from each domain."""

    source: Batch
    target: Batch


def _stack_optional(values: Sequence[Tensor | None], what: str, *, strict: bool) -> Tensor | None:
    present = [v is not None for v in values]
    if not all(present) and not strict:
        return None
    if not any(present):
        return None
    if not all(present):
        raise ValueError(
            f"some samples in this batch have {what} and others do not; mix only datasets with the same modalities"
        )
    return torch.stack(list(values))  # type: ignore[arg-type]


def collate(samples: Sequence[Sample]) -> Batch:
    """Stack samples into a :class:`Batch` (the ``collate_fn`` of every syn2real loader).

    A batch that mixes datasets (hybrid training) keeps masks and depth only if every sample has them; labels must
    be all present or all absent.

    Examples:
        >>> s = Sample(image=torch.zeros(1, 4, 4), label=torch.tensor(3), id="a")
        >>> b = collate([s, s])
        >>> tuple(b.images.shape), b.labels.tolist(), b.domains.tolist()
        ((2, 1, 4, 4), [3, 3], [0, 0])
    """
    return Batch(
        images=torch.stack([s.image for s in samples]),
        labels=_stack_optional([s.label for s in samples], "labels", strict=True),
        masks=_stack_optional([s.mask for s in samples], "masks", strict=False),
        depth=_stack_optional([s.depth for s in samples], "depth", strict=False),
        domains=torch.tensor([s.domain for s in samples], dtype=torch.long),
        ids=[s.id for s in samples],
    )
