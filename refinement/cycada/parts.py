"""CyCADA's own parts: the semantic-consistency loss and the discriminator on the task network's outputs."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from syn2real.losses import task_loss


def semantic_consistency_loss(
    source_model: nn.Module,
    translated_source: Tensor,
    translated_target: Tensor,
    source_labels: Tensor,
    target_images: Tensor,
    source_images: Tensor | None = None,
) -> Tensor:
    """L_sem = CE(f_S(G_S→T(x_s)), y_s) + CE(f_S(G_T→S(x_t)), argmax f_S(x_t)), f_S frozen.

    The translated images carry their content's labels through the translation: the source label (as released and
    in TLlib; give ``source_images`` for the paper's ``argmax f_S(x_s)`` instead) and f_S's own decision on the real
    target image. Gradients reach the generators through f_S; f_S itself is not trained here (its parameters should
    not require gradients, and it should be in ``eval()`` so its BN statistics stay those of the renders).
    Works per image (``B×K`` logits) and per pixel (``B×K×H×W``).
    """
    with torch.no_grad():
        target_pseudo = source_model(target_images).argmax(1)
        if source_images is not None:
            source_labels = source_model(source_images).argmax(1)
    return task_loss(source_model(translated_source), source_labels) + task_loss(
        source_model(translated_target), target_pseudo
    )


class OutputDiscriminator(nn.Module):
    """The feature-level discriminator on the task network's outputs (one domain logit per image or pixel).

    Classification (release ``adda_net``): Linear K→h → ReLU → Linear h→h → ReLU → Linear h→1 on the K logits.
    Segmentation (release ``fcn8s.Discriminator`` on the score map): 1×1 convs K→h → Dropout2d 0.5 → ReLU → h→h/2 →
    Dropout2d 0.5 → ReLU → 1. The release's 2-way softmax is a single logit with BCE here (the same loss).

    Shape:
        ``B×K -> B`` or ``B×K×H×W -> B×H×W``
    """

    def __init__(
        self, *, num_classes: int, hidden: int = 500, task: Literal["classification", "segmentation"] = "classification"
    ) -> None:
        super().__init__()
        if task == "classification":
            self.net = nn.Sequential(
                nn.Linear(num_classes, hidden),
                nn.ReLU(inplace=True),
                nn.Linear(hidden, hidden),
                nn.ReLU(inplace=True),
                nn.Linear(hidden, 1),
            )
        else:
            self.net = nn.Sequential(
                nn.Conv2d(num_classes, hidden, 1),
                nn.Dropout2d(0.5),
                nn.ReLU(inplace=True),
                nn.Conv2d(hidden, hidden // 2, 1),
                nn.Dropout2d(0.5),
                nn.ReLU(inplace=True),
                nn.Conv2d(hidden // 2, 1, 1),
            )

    def forward(self, outputs: Tensor) -> Tensor:
        return self.net(outputs).squeeze(1)
