"""AutoSimulate: the bi-level objective with a local Newton-step approximation, one objective evaluation per stage.

Behl, Baydin, Gal, Torr, Vineet. "AutoSimulate: (Quickly) Learning Synthetic Data Generation." ECCV 2020.
The objective is min_ψ L_val(θ*(ψ)) with θ*(ψ) = argmin_θ L_train(θ; data from ψ). Instead of training θ to
convergence for every ψ (as REINFORCE-style methods do), θ is warm-started across stages and trained a little on
the stage's renders; θ*(ψ) is then approximated by one Newton step from it, which makes ∂L_val/∂ψ computable from
Hessian-vector products (:func:`~syn2real.simopt.gradients.newton_step_hypergradient`). Departure: the paper
estimates the mixed derivative ∂_ψ ∇_θ L_train with a score-function estimator over the simulator's sampling
distribution; the digits simulator draws its per-sample values from uniform ranges whose score function is
degenerate, so the mixed derivative is taken by central differences with common random numbers (the same sample
indices under ψ ± h), which the renderer's determinism makes cheap and low-variance.

Stage score: real validation accuracy of the warm-started θ after the stage's training (uses val labels only).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, grad, jvp

from syn2real.simopt.base import StepOutcome, Strategy, UnitAdam
from syn2real.simopt.gradients import newton_step_hypergradient
from syn2real.simopt.objectives import evaluate, fit_steps
from syn2real.simopt.space import Renderer, SearchSpace, render_many
from syn2real.tasks.networks import TaskNetworkSpec


class AutoSimulate(Strategy):
    """ψ ← ψ − lr · ∂L_val/∂ψ, the hypergradient from a Newton step at the warm-started task network.

    Args:
        space: the search space.
        renderer: the simulator.
        val_images: real validation images.
        val_labels: their labels.
        network: the task network (trained across all stages, never reset).
        train_samples: renders per stage to train θ on.
        inner_steps: AdamW steps on them per stage.
        batch_size: renders per step.
        lr: AdamW learning rate of θ.
        psi_lr: Adam step of ψ in unit-cube coordinates.
        fd_step: finite-difference step of the mixed derivative.
        hessian_samples: renders the Hessian and the mixed derivative are computed on.
        cg_iterations: conjugate-gradient iterations for H⁻¹ ∇L_val.
        damping: added to the Hessian's diagonal.
        seed: weights, data order and render seed.
    """

    name: ClassVar[str] = "autosimulate"
    score_name: ClassVar[str] = "val_acc"

    def __init__(
        self,
        *,
        space: SearchSpace,
        renderer: Renderer,
        val_images: Tensor,
        val_labels: Tensor,
        network: TaskNetworkSpec,
        train_samples: int = 2000,
        inner_steps: int = 100,
        batch_size: int = 64,
        lr: float = 2e-3,
        psi_lr: float = 0.05,
        fd_step: float = 0.05,
        hessian_samples: int = 256,
        cg_iterations: int = 10,
        damping: float = 0.01,
        seed: int = 0,
    ) -> None:
        super().__init__(space=space)
        self.renderer, self.val_images, self.val_labels = renderer, val_images, val_labels
        self.train_samples, self.inner_steps, self.batch_size = train_samples, inner_steps, batch_size
        self.fd_step, self.hessian_samples, self.cg_iterations, self.damping = (
            fd_step,
            hessian_samples,
            cg_iterations,
            damping,
        )
        self.seed = seed
        torch.manual_seed(seed)
        self.net = network.build()
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=lr, weight_decay=1e-4)
        self.adam = UnitAdam(lr=psi_lr)

    def step(self, u: Tensor, stage: int) -> StepOutcome:
        psi = self.space.to_psi(u)
        offset = stage * self.train_samples
        data = render_many(self.renderer, psi, range(offset, offset + self.train_samples), seed=self.seed + 1000)
        train_loss = fit_steps(
            self.net,
            self.optimizer,
            data.images,
            data.labels,
            steps=self.inner_steps,
            batch_size=self.batch_size,
            seed=self.seed + stage,
        )
        val_loss, val_acc = evaluate(self.net, self.val_images, self.val_labels)
        hyper = self.hypergradient(u, stage)
        return StepOutcome(
            val_acc,
            self.adam.step(u, hyper),
            {"val_loss": val_loss, "train_loss": train_loss, "hypergrad_norm": float(hyper.norm())},
        )

    def hypergradient(self, u: Tensor, stage: int) -> Tensor:
        """∂L_val/∂ψ at the current θ (network in eval mode: BN uses its running statistics, so L is a function)."""
        self.net.eval()
        names = [n for n, p in self.net.named_parameters() if p.requires_grad]
        params = {n: p.detach() for n, p in self.net.named_parameters() if p.requires_grad}
        buffers = dict(self.net.named_buffers())
        shapes = [params[n].shape for n in names]

        def flat(tree: dict[str, Tensor]) -> Tensor:
            return torch.cat([tree[n].reshape(-1) for n in names])

        def unflat(vector: Tensor) -> dict[str, Tensor]:
            parts = torch.split(vector, [s.numel() for s in shapes])
            return {n: p.view(s) for n, p, s in zip(names, parts, shapes, strict=True)}

        def loss(p: dict[str, Tensor], images: Tensor, labels: Tensor) -> Tensor:
            return F.cross_entropy(functional_call(self.net, (p, buffers), (images,)), labels)

        indices = range(10**7 + stage * self.hessian_samples, 10**7 + (stage + 1) * self.hessian_samples)
        batch = render_many(self.renderer, self.space.to_psi(u), indices, seed=self.seed + 1000)

        def hvp(vector: Tensor) -> Tensor:
            gradient = lambda p: grad(loss)(p, batch.images, batch.labels)  # noqa: E731
            return flat(jvp(gradient, (params,), (unflat(vector),))[1]).detach()

        def train_grad(w: Tensor) -> Tensor:
            rendered = render_many(self.renderer, self.space.to_psi(w), indices, seed=self.seed + 1000)
            return flat(grad(loss)(params, rendered.images, rendered.labels)).detach()

        val_grad = flat(grad(loss)(params, self.val_images, self.val_labels)).detach()
        return newton_step_hypergradient(
            train_grad,
            hvp,
            val_grad,
            u,
            step=self.fd_step,
            cg_iterations=self.cg_iterations,
            damping=self.damping,
        )

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(), "adam": self.adam.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.adam.state = state["adam"]
