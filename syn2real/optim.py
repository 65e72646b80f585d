"""One optimizer and LR-scheduler factory for every method: typed, picklable specs injected through the config.

A method takes ``optimizer: OptimizerSpec`` and ``scheduler: SchedulerSpec`` arguments (with the paper's values as
defaults) instead of re-listing ``lr``, ``weight_decay``, ``momentum``... In a config::

    model:
      init_args:
        optimizer: {name: sgd, lr: 0.01, momentum: 0.9}     # keys not given keep the method's default
        scheduler: {name: annealed, alpha: 10.0, beta: 0.75}

The specs are frozen dataclasses (safe as defaults, stored in checkpoints' hyperparameters, no closures on the
module), and ``build`` gives plain ``torch.optim`` objects.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, LRScheduler

from syn2real.progress import AnnealedLR, LinearDecay, WarmupPoly


@dataclass(frozen=True)
class OptimizerSpec:
    """Which ``torch.optim`` optimizer, with its settings.

    Args:
        name: ``adamw`` (decoupled weight decay), ``adam``, ``sgd``, or ``sgd_lr_in_momentum`` (the SGD of ASG's and
            CSG's official code, :class:`LRInMomentumSGD`: the rate is folded into the momentum buffer).
        lr: learning rate (of the param groups that set none of their own).
        weight_decay: weight decay (L2 for ``adam`` and ``sgd``, decoupled for ``adamw``).
        momentum: SGD momentum.
        nesterov: SGD Nesterov momentum.
        betas: Adam / AdamW β1, β2.

    Examples:
        >>> opt = OptimizerSpec(name="sgd", lr=0.1, momentum=0.0).build([torch.nn.Parameter(torch.zeros(2))])
        >>> type(opt).__name__, opt.defaults["lr"]
        ('SGD', 0.1)
    """

    name: Literal["adamw", "adam", "sgd", "sgd_lr_in_momentum"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)

    def build(self, params: Iterable[Any]) -> Optimizer:
        """The optimizer over ``params`` (tensors or param-group dicts)."""
        if self.name == "adamw":
            return torch.optim.AdamW(params, lr=self.lr, betas=tuple(self.betas), weight_decay=self.weight_decay)
        if self.name == "adam":
            return torch.optim.Adam(params, lr=self.lr, betas=tuple(self.betas), weight_decay=self.weight_decay)
        if self.name == "sgd":
            return torch.optim.SGD(
                params, lr=self.lr, momentum=self.momentum, nesterov=self.nesterov, weight_decay=self.weight_decay
            )
        if self.name == "sgd_lr_in_momentum":
            if self.nesterov:
                raise ValueError("sgd_lr_in_momentum has no Nesterov form; use name: sgd for nesterov: true")
            return LRInMomentumSGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        raise ValueError(f"unknown optimizer {self.name!r}; use adamw, adam, sgd or sgd_lr_in_momentum")


class LRInMomentumSGD(Optimizer):
    """SGD with the learning rate inside the momentum buffer ("Sutskever style"), as ASG's and CSG's official code.

    ``v ← m·v + lr·(g + wd·w);  w ← w − v``, where ``torch.optim.SGD`` does ``v ← m·v + g;  w ← w − lr·v``. The two
    agree while the rate is constant; when it changes (warm-up, a learning-rate policy) a new rate here scales only
    the new gradients, not the momentum already gathered.

    Examples:
        >>> w = torch.nn.Parameter(torch.tensor([1.0])); opt = LRInMomentumSGD([w], lr=0.5, momentum=0.9)
        >>> w.grad = torch.tensor([1.0]); opt.step(); w.grad = torch.tensor([1.0]); opt.param_groups[0]["lr"] = 0.1
        >>> opt.step(); round(w.item(), 4)  # v1 = 0.5; v2 = 0.9·0.5 + 0.1 = 0.55
        -0.05
    """

    def __init__(self, params: Iterable[Any], *, lr: float, momentum: float = 0.9, weight_decay: float = 0.0) -> None:
        if lr < 0 or not 0 <= momentum < 1 or weight_decay < 0:
            raise ValueError(
                f"need lr >= 0, 0 <= momentum < 1, weight_decay >= 0; got {lr}, {momentum}, {weight_decay}"
            )
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else p.grad.clone()
                update.mul_(group["lr"])
                state = self.state[p]
                if "momentum_buffer" in state:
                    update.add_(state["momentum_buffer"], alpha=group["momentum"])
                state["momentum_buffer"] = update
                p.sub_(update)
        return loss


@dataclass(frozen=True)
class SchedulerSpec:
    """An LR schedule over the run.

    Args:
        name: ``none``; ``cosine`` (per step, to zero at the last step); ``annealed`` (DANN's μ0 / (1 + α·p)^β, per
            step); ``linear_decay`` (CycleGAN's policy, per epoch: constant, then linear to zero); ``warmup_poly``
            (ASG's / CSG's quadratic warm-up and 0.9-power decay, per step: ``syn2real.progress.warmup_poly_factor``).
        alpha: α of ``annealed`` (paper: 10).
        beta: β of ``annealed`` (paper: 0.75).
        constant_epochs: epochs at the initial LR (``linear_decay``).
        decay_epochs: epochs of linear decay to zero (``linear_decay``).
        warmup_steps: quadratic warm-up steps (``warmup_poly``).
        power: decay power (``warmup_poly``).
        floor_progress: progress at which the decay stops (``warmup_poly``; 1.0 = to zero, ASG: 0.8).

    Examples:
        >>> opt = OptimizerSpec(lr=1.0).build([torch.nn.Parameter(torch.zeros(1))])
        >>> SchedulerSpec(name="cosine").build(opt, total_steps=4).get_last_lr()
        [1.0]
    """

    name: Literal["none", "cosine", "annealed", "linear_decay", "warmup_poly"] = "none"
    alpha: float = 10.0
    beta: float = 0.75
    constant_epochs: int = 100
    decay_epochs: int = 100
    warmup_steps: int = 100
    power: float = 0.9
    floor_progress: float = 1.0

    @property
    def interval(self) -> Literal["step", "epoch"]:
        """When Lightning (or a manual-optimization method) steps the scheduler."""
        return "epoch" if self.name == "linear_decay" else "step"

    def build(self, optimizer: Optimizer, *, total_steps: float | int) -> LRScheduler | None:
        """The scheduler for ``optimizer``; ``total_steps`` is the run's number of optimizer steps."""
        steps = int(total_steps) if math.isfinite(total_steps) else 0
        if self.name == "none":
            return None
        if self.name == "cosine":
            return CosineAnnealingLR(optimizer, T_max=max(1, steps))
        if self.name == "annealed":
            return LambdaLR(optimizer, AnnealedLR(steps, self.alpha, self.beta))
        if self.name == "linear_decay":
            return LambdaLR(optimizer, LinearDecay(self.constant_epochs, self.decay_epochs))
        if self.name == "warmup_poly":
            return LambdaLR(optimizer, WarmupPoly(steps, self.warmup_steps, self.power, self.floor_progress))
        raise ValueError(f"unknown scheduler {self.name!r}; use none, cosine, annealed, linear_decay or warmup_poly")


def configure_optimization(
    params: Iterable[Any], optimizer: OptimizerSpec, scheduler: SchedulerSpec, *, total_steps: float | int
) -> Any:
    """What ``configure_optimizers`` returns for one optimizer: the optimizer alone, or with its scheduler."""
    opt = optimizer.build(params)
    sched = scheduler.build(opt, total_steps=total_steps)
    if sched is None:
        return opt
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": scheduler.interval}}


def manual_optimization(
    optimizers: list[Optimizer], scheduler: SchedulerSpec, *, total_steps: float | int
) -> tuple[list[Optimizer], list[LRScheduler]]:
    """``configure_optimizers``' result for a manual-optimization method (several optimizers).

    Its optimizers and one schedule each (none for ``name: none``); the method steps them with
    :func:`step_schedulers`.
    """
    built = (scheduler.build(o, total_steps=total_steps) for o in optimizers)
    return optimizers, [s for s in built if s is not None]


def manual_update(
    module: Any,
    optimizers: Optimizer | Sequence[Optimizer],
    loss: torch.Tensor,
    *,
    name: str,
    step: int | None = None,
    clip_norm: float | None = None,
) -> None:
    """One update of a manual-optimization method, one or several optimizers on one loss.

    ``loss`` checked finite (named ``name`` at ``step``, default the module's ``global_step``), the optimizers'
    gradients zeroed, one backward, each gradient tensor clipped to ``clip_norm`` if given
    (:func:`clip_per_tensor`), then every optimizer stepped.
    """
    from syn2real.losses import check_finite

    check_finite(loss, name=name, step=module.global_step if step is None else step)
    group = [optimizers] if not isinstance(optimizers, Sequence) else list(optimizers)
    for optimizer in group:
        optimizer.zero_grad()
    module.manual_backward(loss)
    for optimizer in group:
        if clip_norm is not None:
            clip_per_tensor((p for g in optimizer.param_groups for p in g["params"]), clip_norm)
        optimizer.step()


class ManualSchedules:
    """Mixed into a manual-optimization ``LightningModule``: the hooks that step its schedulers.

    ``self.lr_schedulers()`` (built by :func:`manual_optimization`) step per batch or per epoch, as
    ``self.scheduler_spec`` says.
    """

    scheduler_spec: SchedulerSpec

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        step_schedulers(self.lr_schedulers(), self.scheduler_spec, at="step")  # type: ignore[attr-defined]

    def on_train_epoch_end(self) -> None:
        step_schedulers(self.lr_schedulers(), self.scheduler_spec, at="epoch")  # type: ignore[attr-defined]


def step_schedulers(schedulers: Any, spec: SchedulerSpec, *, at: Literal["step", "epoch"]) -> None:
    """Step a manual-optimization method's schedulers (``self.lr_schedulers()``) when ``at`` is ``spec``'s interval."""
    if spec.interval != at or schedulers is None:
        return
    for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
        scheduler.step()


def clip_per_tensor(params: Iterable[torch.Tensor], max_norm: float) -> None:
    """Clip each parameter's gradient to L2 norm ``max_norm`` on its own (slim's ``clip_gradient_norms``).

    Examples:
        >>> p = torch.nn.Parameter(torch.zeros(2)); p.grad = torch.tensor([3.0, 4.0])
        >>> clip_per_tensor([p], 1.0); [round(v, 4) for v in p.grad.tolist()]
        [0.6, 0.8]
    """
    for p in params:
        if p.grad is not None:
            torch.nn.utils.clip_grad_norm_(p, max_norm)
