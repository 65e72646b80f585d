"""Label preservation of a refiner: does a refined image still show its source label?

A *judge* (a frozen task network trained on real labels, e.g. the target oracle) reads every raw render and its
refined version. For classification the label-preservation rate is the fraction of images it assigns the source
label; for segmentation it is the judge's mIoU against the renders' label maps (the leaderboard's metric, ignore
index 255), with the share of labelled foreground pixels it finds and, of those, names right. The raw renders' rate
is the reference: a refiner that keeps labels and moves images towards the real domain raises it (the judge knows
real images better), one that changes content (a 3 refined into an 8, a stroke painted over) lowers it. Used by
``syn2real refine --judge`` (classification datasets) and by the refiners' rows of ``syn2real bench zoo`` (judge:
the target oracle of the same seed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import Subset
from torchmetrics import Metric
from torchmetrics.classification import MulticlassConfusionMatrix

from datamodules.sources import Source
from syn2real.batch import IGNORE_INDEX
from syn2real.metrics import task_metric
from syn2real.tasks.weights import load_task_checkpoint


def load_judge(
    path: Path, *, task: str = "classification", channels: int | None = None, num_classes: int | None = None
) -> nn.Module:
    """The frozen network of a syn2real task checkpoint, in eval mode: a ``task`` network (classifier by default).

    With ``channels`` / ``num_classes`` (the data's), a judge built for other data is refused.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a task checkpoint of that task, or one for other data.
    """
    loaded = load_task_checkpoint(path)
    spec = loaded.spec
    if spec.task != task:
        article = "an" if task[0] in "aeiou" else "a"
        raise ValueError(
            f"{path} is a {spec.task} network; the renders have {task} labels, so the label-preservation judge must "
            f"be {article} {task} network trained on real labels (e.g. the target oracle of the same benchmark)"
        )
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


class SegmentationPreservation:
    """Per-pixel label preservation: how well the judge segments raw and refined renders against their label maps.

    ``update`` takes raw images, their refined versions (``B×C×H×W`` in [0, 1]) and the label maps (``B×H×W``,
    255 = ignore); ``rates`` returns ``{"raw": mIoU, "refined": mIoU, "images": n}`` and, per kind, the share of
    labelled foreground pixels (every class but ``background``) the judge calls foreground (``foreground_recall_*``)
    and the share of those it gives their own class (``naming_*``): :func:`syn2real.metrics.foreground_errors`'s
    split, summed over every pixel judged. The classes are the judge's logit channels.
    """

    def __init__(self, judge: nn.Module, *, background: int = 0) -> None:
        self.judge, self.background, self.images = judge, background, 0
        self.miou: dict[str, Metric] = {}
        self.confusion: dict[str, Metric] = {}

    @torch.no_grad()
    def update(self, raw: Tensor, refined: Tensor, labels: Tensor) -> None:
        if labels.ndim != 3:
            raise ValueError("per-pixel label preservation needs a label map per image (B×H×W)")
        device = next(self.judge.parameters()).device
        labels = labels.to(device)
        for kind, images in (("raw", raw), ("refined", refined)):
            logits = self.judge(images.to(device))
            if kind not in self.miou:  # the judge's classes: known at its first output
                self.miou[kind] = task_metric("segmentation", logits.shape[1])[1].to(device)
                self.confusion[kind] = MulticlassConfusionMatrix(logits.shape[1], ignore_index=IGNORE_INDEX).to(device)
            pred = logits.argmax(1)
            self.miou[kind].update(pred, labels)
            self.confusion[kind].update(pred, labels)
        self.images += len(labels)

    def rates(self) -> dict[str, float]:
        if self.images == 0:
            raise ValueError("label preservation: no labeled images were judged")
        out: dict[str, float] = {"images": self.images}
        for kind in ("raw", "refined"):
            out[kind] = float(self.miou[kind].compute())
            counts = self.confusion[kind].compute().double()  # rows: label, columns: prediction
            fg = [c for c in range(counts.shape[0]) if c != self.background]
            found = counts[fg][:, fg]
            out[f"foreground_recall_{kind}"] = float(found.sum() / counts[fg].sum().clamp_min(1))
            out[f"naming_{kind}"] = float(found.diagonal().sum() / found.sum().clamp_min(1))
        return out


def measure_label_preservation(
    refiner_checkpoint: Path, judge_checkpoint: Path, source: Source, *, batch_size: int = 256, limit: int | None = None
) -> dict[str, float]:
    """Label-preservation rates of ``source``'s labeled images, raw and through the refiner of a checkpoint.

    Class labels are judged per image (:class:`LabelPreservation`), label maps per pixel
    (:class:`SegmentationPreservation`). ``limit`` judges only the first ``limit`` images.
    """
    from syn2real.refined_source import refined_batches

    dataset = source.load()
    if limit is not None and limit < len(dataset):
        dataset = Subset(dataset, range(limit))
    meter: LabelPreservation | SegmentationPreservation | None = None
    for batch, refined in refined_batches(dataset, refiner_checkpoint, source, batch_size=batch_size):
        if batch.labels is None:
            raise ValueError(f"{type(source).__name__} has no labels: label preservation needs the source labels")
        if meter is None:
            per_pixel = batch.labels.ndim == 3
            task = "segmentation" if per_pixel else "classification"
            judge = load_judge(judge_checkpoint, task=task, channels=batch.images.shape[1])
            meter = SegmentationPreservation(judge) if per_pixel else LabelPreservation(judge)
        meter.update(batch.images, refined, batch.labels)
    if meter is None:
        raise ValueError(f"{type(source).__name__} is empty: no images to judge")
    return meter.rates()
