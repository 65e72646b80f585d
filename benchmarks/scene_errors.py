"""Where a digits-scenes model goes wrong on the real test scenes: finding the ink, or naming the digit.

Usage: ``python benchmarks/scene_errors.py CHECKPOINT [CHECKPOINT ...] [--split test]``: any syn2real checkpoint
holding a plain task network (source-only, the oracle, DANN, CyCADA, SPIGAN...). Per checkpoint: mIoU (the zoo's
metric), background IoU, mean IoU of the ten digit classes, and :func:`syn2real.metrics.foreground_errors`: ink IoU
(any digit class against the real ink), ink recall, and the share of found ink pixels given the right digit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torchmetrics.classification import MulticlassJaccardIndex

from datamodules.digit_scenes import CLASSES, RealDigitScenes
from syn2real.batch import IGNORE_INDEX
from syn2real.metrics import foreground_errors
from syn2real.tasks.weights import load_task_checkpoint


def scene_errors(checkpoint: Path, *, split: str = "test") -> dict[str, float]:
    scenes = RealDigitScenes(split, channels=3, background="photo", use_labels=True)
    labels = scenes.label_maps
    network = load_task_checkpoint(checkpoint).network.eval()
    with torch.no_grad():
        pred = torch.cat([network(chunk).argmax(1) for chunk in scenes.images.split(100)])
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
    args = parser.parse_args()
    for path in args.checkpoints:
        row = scene_errors(path, split=args.split)
        sys.stdout.write(f"{path}: " + "  ".join(f"{k} {100 * v:.1f}" for k, v in row.items()) + "\n")
