"""The quantities strategies optimize.

The feature MMD to unlabeled real images (Meta-Sim) and the real validation accuracy of a task network trained on
renders (Learning-to-Simulate's reward; AutoSimulate's inner problem).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from syn2real.simopt.gradients import median_bandwidths, mmd2
from syn2real.simopt.space import Renderer, render_many
from syn2real.tasks.networks import TaskNetworkSpec


class FeatureMMD:
    """MMD² between features of renders under ψ and of a fixed set of unlabeled real images (lower is closer).

    Kernel widths come from the real features once (median heuristic), so the objective does not move between
    stages. Each stage renders its own ``samples`` indices; every ψ of one stage sees the same indices.

    Args:
        renderer: the simulator.
        features: images in [0, 1] → ``N×D`` features (frozen).
        real_images: unlabeled real images.
        samples: renders per evaluation.
        seed: the render seed of the search (independent of the stage datasets' seed).
    """

    def __init__(
        self,
        *,
        renderer: Renderer,
        features: Callable[[Tensor], Tensor],
        real_images: Tensor,
        samples: int = 256,
        seed: int = 1000,
    ) -> None:
        if len(real_images) < 2:
            raise ValueError("the real image set needs at least two images")
        self.renderer, self.features, self.samples, self.seed = renderer, features, samples, seed
        self.real = _batched(features, real_images)
        self.bandwidths = median_bandwidths(self.real)

    def __call__(self, psi: Mapping[str, float], stage: int) -> float:
        indices = list(range(stage * self.samples, (stage + 1) * self.samples))
        rendered = render_many(self.renderer, psi, indices, seed=self.seed)
        return float(mmd2(_batched(self.features, rendered.images), self.real, self.bandwidths))


class PixelFeatures:
    """Images average-pooled to ``side``×``side`` and flattened: content features with no network.

    Size, position, stroke weight and background brightness are the coordinates of this space (the content of a
    small-image gap).

    Args:
        side: pooled side in pixels.
    """

    def __init__(self, side: int = 8) -> None:
        self.side = side

    def __call__(self, images: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(images.float(), self.side).flatten(1)


class TaskFeatures:
    """The pooled features of a trained syn2real task network (the layer before its classifier), frozen.

    The issue's alternative to ImageNet features: a network trained on the task's renders tells digits apart, so its
    feature MMD weighs the shape of the digits, where ImageNet features weigh texture and pooled pixels weigh
    brightness. A source-only checkpoint keeps Meta-Sim free of real labels.

    Args:
        checkpoint: a syn2real task checkpoint (e.g. ``source_only``'s ``last.ckpt``).
        channels: the renderer's channels; a network built for other images is refused.
    """

    def __init__(self, checkpoint: Path, *, channels: int) -> None:
        from syn2real.tasks.weights import load_task_checkpoint

        loaded = load_task_checkpoint(checkpoint)
        if loaded.spec.in_channels != channels:
            raise ValueError(
                f"{checkpoint}: the task network takes {loaded.spec.in_channels}-channel images, the simulator "
                f"renders {channels}: give a checkpoint trained on this benchmark's renders"
            )
        self.network = loaded.network.eval().requires_grad_(False)

    def __call__(self, images: Tensor) -> Tensor:
        features = self.network.forward_features(images.float())
        return features.mean(dim=(2, 3)) if features.ndim == 4 else features.flatten(1)


class TrainAndValidate:
    """Train a fresh task network on renders under ψ, return its accuracy on real validation images (LtS reward).

    Every call starts from the same initial weights and renders the same indices, so two ψ are compared paired.

    Args:
        renderer: the simulator.
        val_images: real validation images.
        val_labels: their labels.
        network: the task network.
        train_samples: renders per evaluation.
        steps: optimizer steps (AdamW).
        batch_size: renders per step.
        lr: AdamW learning rate.
        seed: initial weights, data order and render seed.
    """

    def __init__(
        self,
        *,
        renderer: Renderer,
        val_images: Tensor,
        val_labels: Tensor,
        network: TaskNetworkSpec,
        train_samples: int = 2000,
        steps: int = 150,
        batch_size: int = 64,
        lr: float = 2e-3,
        seed: int = 0,
    ) -> None:
        self.renderer, self.val_images, self.val_labels, self.network = renderer, val_images, val_labels, network
        self.train_samples, self.steps, self.batch_size, self.lr, self.seed = train_samples, steps, batch_size, lr, seed

    def __call__(self, psi: Mapping[str, float]) -> float:
        torch.manual_seed(self.seed)
        net = self.network.build()
        data = render_many(self.renderer, psi, range(self.train_samples), seed=self.seed + 1000)
        optimizer = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=1e-4)
        fit_steps(
            net, optimizer, data.images, data.labels, steps=self.steps, batch_size=self.batch_size, seed=self.seed
        )
        return evaluate(net, self.val_images, self.val_labels)[1]


def fit_steps(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    labels: Tensor,
    *,
    steps: int,
    batch_size: int,
    seed: int,
) -> float:
    """``steps`` minibatch steps of cross-entropy on ``images`` (seeded order); returns the mean training loss."""
    net.train()
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(steps):
        idx = torch.randint(len(images), (batch_size,), generator=generator)
        loss = F.cross_entropy(net(images[idx]), labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach())
    return total / max(steps, 1)


@torch.no_grad()
def evaluate(net: nn.Module, images: Tensor, labels: Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``net`` in eval mode."""
    net.eval()
    logits = torch.cat([net(images[i : i + 512]) for i in range(0, len(images), 512)])
    return float(F.cross_entropy(logits, labels)), float((logits.argmax(1) == labels).float().mean())


@torch.no_grad()
def _batched(features: Callable[[Tensor], Tensor], images: Tensor, chunk: int = 256) -> Tensor:
    return torch.cat([features(images[i : i + chunk]) for i in range(0, len(images), chunk)]).double()
