"""Where a digits-scenes model goes wrong on the real test scenes: finding the ink, or naming the digit.

Usage: ``python benchmarks/scene_errors.py CHECKPOINT [CHECKPOINT ...] [--split test] [--on renders]``: any
syn2real checkpoint holding a plain task network (source-only, the oracle, DANN, CyCADA, SPIGAN...). Per checkpoint:
mIoU (the zoo's metric), background IoU, mean IoU of the ten digit classes, and
:func:`syn2real.metrics.foreground_errors`: ink IoU (any digit class against the real ink), ink recall, and the share
of found ink pixels given the right digit.

``--on renders`` scores the first ``--scenes`` of the benchmark's 5,000 training renders instead (the zoo's source,
seed 0), ``--on photo-renders`` the same renders difference-blended onto photo patches like the real scenes (the
``source_only_photo_renders`` control's data): with the target oracle's checkpoint, how a network that knows the
real scenes reads renders as rendered, and as composited like the real ones (the zoo's per-pixel label preservation
gives the same figures for a refiner's output).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torchmetrics.classification import MulticlassJaccardIndex

from datamodules.digit_scenes import CLASSES, RealDigitScenes, RenderedDigitScenesSource
from datamodules.simulator import DigitsSimulatorConfig
from syn2real.batch import IGNORE_INDEX
from syn2real.metrics import foreground_errors
from syn2real.tasks.weights import load_task_checkpoint


def scenes_of(on: str, *, split: str = "test", count: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and label maps: the real ``split`` scenes (``on="real"``), or the first ``count`` training renders."""
    if on == "real":
        scenes = RealDigitScenes(split, channels=3, background="photo", use_labels=True)
        return scenes.images, scenes.label_maps
    background = {"renders": "simulator", "photo-renders": "photo"}[on]
    colour = DigitsSimulatorConfig(channels=3)
    renders = RenderedDigitScenesSource(num_samples=count, config=colour, background=background).load()
    return torch.stack([renders[i].image for i in range(count)]), torch.stack([renders[i].label for i in range(count)])


def scene_errors(checkpoint: Path, *, split: str = "test", on: str = "real", count: int = 1000) -> dict[str, float]:
    images, labels = scenes_of(on, split=split, count=count)
    network = load_task_checkpoint(checkpoint).network.eval()
    with torch.no_grad():
        pred = torch.cat([network(chunk).argmax(1) for chunk in images.split(100)])
    per_class = MulticlassJaccardIndex(num_classes=len(CLASSES), average="none", ignore_index=IGNORE_INDEX)
    ious = per_class(pred, labels).tolist()  # the zoo's mIoU is their mean (syn2real.metrics.task_metric)
    return {
        "miou": sum(ious) / len(ious),
        "background_iou": ious[0],
        "digit_miou": sum(ious[1:]) / (len(ious) - 1),
        **foreground_errors(pred, labels),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--split", default="test", choices=["val", "test"])
    parser.add_argument("--on", default="real", choices=["real", "renders", "photo-renders"])
    parser.add_argument("--scenes", type=int, default=1000, help="how many training renders --on renders scores")
    args = parser.parse_args()
    for path in args.checkpoints:
        row = scene_errors(path, split=args.split, on=args.on, count=args.scenes)
        sys.stdout.write(f"{path}: " + "  ".join(f"{k} {100 * v:.1f}" for k, v in row.items()) + "\n")
