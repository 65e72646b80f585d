"""Label preservation of a refiner: does a refined image still show its source label?

A *judge* (a frozen classifier trained on real labels, e.g. the target oracle) classifies every raw render and its
refined version; the label-preservation rate is the fraction it assigns the source label. The raw renders' rate is
the reference: a refiner that keeps labels and moves images towards the real domain raises it (the judge knows real
images better), one that changes content (a 3 refined into an 8) lowers it. Used by ``syn2real refine --judge`` and
by the refiners' rows of ``syn2real bench zoo`` (judge: the target oracle of the same seed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import Subset

from datamodules.sources import Source
from syn2real.tasks.weights import load_task_checkpoint


def load_judge(path: Path, *, channels: int | None = None, num_classes: int | None = None) -> nn.Module:
    """The frozen classifier of a syn2real task checkpoint, in eval mode.

    With ``channels`` / ``num_classes`` (the data's), a judge built for other data is refused.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a task classifier checkpoint, or one for other data.
    """
    loaded = load_task_checkpoint(path)
    spec = loaded.spec
    if spec.task != "classification":
        raise ValueError(f"{path} is a {spec.task} network; a label-preservation judge must be a classifier")
    for what, theirs, ours in (("channels", spec.in_channels, channels), ("classes", spec.num_classes, num_classes)):
        if ours is not None and theirs != ours:
            raise ValueError(
                f"{path}: the judge takes {theirs} {what}, the data has {ours}: judge with a classifier trained on "
                "real data of this kind (e.g. the target oracle of the same benchmark)"
            )
    judge = loaded.network.eval()
    judge.requires_grad_(False)
    return judge


@dataclass
class LabelPreservation:
    """Counts of raw and refined images that the judge assigns their source label.

    ``update`` takes raw images, their refined versions (both ``B×C×H×W`` in [0, 1]) and the source labels;
    ``rates`` returns ``{"raw": ..., "refined": ..., "images": n}``.
    """

    judge: nn.Module
    raw_hits: int = 0
    refined_hits: int = 0
    images: int = 0

    @torch.no_grad()
    def update(self, raw: Tensor, refined: Tensor, labels: Tensor) -> None:
        if labels.ndim != 1:
            raise ValueError("label preservation is defined for classification labels (one label per image)")
        device = next(self.judge.parameters()).device
        labels = labels.to(device)
        self.raw_hits += int((self.judge(raw.to(device)).argmax(1) == labels).sum())
        self.refined_hits += int((self.judge(refined.to(device)).argmax(1) == labels).sum())
        self.images += len(labels)

    def rates(self) -> dict[str, float]:
        if self.images == 0:
            raise ValueError("label preservation: no labeled images were judged")
        return {"raw": self.raw_hits / self.images, "refined": self.refined_hits / self.images, "images": self.images}


def measure_label_preservation(
    refiner_checkpoint: Path, judge_checkpoint: Path, source: Source, *, batch_size: int = 256, limit: int | None = None
) -> dict[str, float]:
    """Label-preservation rates of ``source``'s labeled images, raw and through the refiner of a checkpoint.

    ``limit`` judges only the first ``limit`` images.
    """
    from syn2real.refined_source import refined_batches

    dataset = source.load()
    if limit is not None and limit < len(dataset):
        dataset = Subset(dataset, range(limit))
    meter: LabelPreservation | None = None
    for batch, refined in refined_batches(dataset, refiner_checkpoint, source, batch_size=batch_size):
        if batch.labels is None:
            raise ValueError(f"{type(source).__name__} has no labels: label preservation needs the source labels")
        if meter is None:
            meter = LabelPreservation(load_judge(judge_checkpoint, channels=batch.images.shape[1]))
        meter.update(batch.images, refined, batch.labels)
    if meter is None:
        raise ValueError(f"{type(source).__name__} is empty: no images to judge")
    return meter.rates()
