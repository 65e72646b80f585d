"""The zoo's task metrics: accuracy (classification) and mIoU (segmentation) on the real splits.

Logged under the same names across the zoo: ``val/target_acc``, ``test/target_acc``, ``val/target_miou``...
"""

from __future__ import annotations

from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from syn2real.batch import IGNORE_INDEX


def task_metric(task: str, num_classes: int) -> tuple[str, Metric]:
    """``(metric name, metric)``: overall accuracy or mean IoU (ignore index 255)."""
    if task == "classification":
        return "target_acc", MulticlassAccuracy(num_classes=num_classes, average="micro")
    if task == "segmentation":
        return "target_miou", MulticlassJaccardIndex(
            num_classes=num_classes, average="macro", ignore_index=IGNORE_INDEX
        )
    raise ValueError(f"unknown task {task!r}")
