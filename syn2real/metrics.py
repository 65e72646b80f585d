"""The zoo's task metrics: accuracy (classification) and mIoU (segmentation) on the real splits.

Logged under the same names across the zoo: ``val/target_acc``, ``test/target_acc``, ``val/target_miou``...
:func:`foreground_errors` splits a segmentation's errors into finding the foreground and naming it (used by
``benchmarks/scene_errors.py``).
"""

from __future__ import annotations

from torch import Tensor
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


def foreground_errors(pred: Tensor, labels: Tensor, *, background: int = 0) -> dict[str, float]:
    """Split a segmentation's errors into finding the foreground and naming it (class ``background`` is the rest).

    ``pred`` and ``labels`` are ``…×H×W`` class maps; pixels labelled ``IGNORE_INDEX`` are left out. Returns
    ``foreground_iou`` (IoU of "any foreground class" against the labels'), ``foreground_recall`` (share of labelled
    foreground pixels predicted as some foreground class) and ``naming_accuracy`` (share of those found pixels given
    their own class). NaN where a share has no pixels.

    Examples:
        >>> import torch
        >>> labels = torch.tensor([[0, 1, 1, 2]])
        >>> pred = torch.tensor([[1, 1, 2, 0]])  # one false alarm, two found (one named right), one missed
        >>> {k: round(v, 3) for k, v in foreground_errors(pred, labels).items()}
        {'foreground_iou': 0.5, 'foreground_recall': 0.667, 'naming_accuracy': 0.5}
    """
    valid = labels != IGNORE_INDEX
    truth, said = (labels != background) & valid, (pred != background) & valid
    found = truth & said
    union = (truth | said).sum().item()
    return {
        "foreground_iou": found.sum().item() / union if union else float("nan"),
        "foreground_recall": found.sum().item() / truth.sum().item() if truth.any() else float("nan"),
        "naming_accuracy": (pred[found] == labels[found]).float().mean().item() if found.any() else float("nan"),
    }
