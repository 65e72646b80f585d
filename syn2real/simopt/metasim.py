"""Meta-Sim: distribution matching of renders to unlabeled real images, no real labels.

Kar, Prakash, Liu, Cameracci, Yuan, Rusiniak, Acuna, Torralba, Fidler. "Meta-Sim: Learning to Generate Synthetic
Datasets." ICCV 2019. Meta-Sim moves the scene parameters so that features of the rendered images match features of
real images under MMD (sec. 3.2, eq. 2), differentiating through the non-differentiable renderer by finite
differences. Features there are from an ImageNet Inception network; here from the offline EfficientNet-Lite0 (or any
frozen feature function). Meta-Sim learns a network that modifies each scene graph; the digits simulator's ψ is a
set of global distribution parameters, so ψ itself is optimized (with Adam), which is Meta-Sim's distribution
matching without its per-scene graph network.

With ``optimizer: tpe | cmaes`` the same MMD is minimized by optuna's gradient-free samplers instead, a stage
being ``trials_per_stage`` trials and its ψ the best trial so far.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from syn2real.simopt.base import StepOutcome, Strategy, UnitAdam
from syn2real.simopt.gradients import finite_difference_gradient
from syn2real.simopt.space import SearchSpace

Optimizer = Literal["fd", "tpe", "cmaes"]


class MetaSim(Strategy):
    """Minimize the feature MMD between renders and unlabeled real images.

    Args:
        space: the search space.
        distance: ``(ψ, stage) -> MMD²`` (:class:`~syn2real.simopt.objectives.FeatureMMD`); within a stage every
            call must see the same renders' indices.
        optimizer: ``fd`` (finite differences + Adam, as Meta-Sim), ``tpe`` or ``cmaes`` (optuna samplers).
        lr: Adam step in unit-cube coordinates (``fd``).
        fd_step: finite-difference step in unit-cube coordinates (``fd``).
        trials_per_stage: MMD evaluations per stage (``tpe``/``cmaes``).
        seed: the optuna sampler's seed.
    """

    name: ClassVar[str] = "meta-sim"
    score_name: ClassVar[str] = "-mmd2"

    def __init__(
        self,
        *,
        space: SearchSpace,
        distance: Callable[[Mapping[str, float], int], float],
        optimizer: Optimizer = "fd",
        lr: float = 0.05,
        fd_step: float = 0.05,
        trials_per_stage: int = 8,
        seed: int = 0,
    ) -> None:
        super().__init__(space=space)
        if optimizer not in ("fd", "tpe", "cmaes"):
            raise ValueError(f"unknown meta-sim optimizer {optimizer!r}; use fd, tpe or cmaes")
        self.distance, self.optimizer, self.fd_step = distance, optimizer, fd_step
        self.trials_per_stage, self.seed = trials_per_stage, seed
        self.adam = UnitAdam(lr=lr)
        self.trials: list[tuple[list[float], float]] = []  # (u, MMD²) of every optuna trial, for resume

    def step(self, u: Tensor, stage: int) -> StepOutcome:
        if self.optimizer == "fd":
            f = lambda w: self.distance(self.space.to_psi(w), stage)  # noqa: E731
            value = f(u)
            grad = finite_difference_gradient(f, u, self.fd_step, value=value)
            return StepOutcome(-value, self.adam.step(u, grad), {"mmd2": value, "grad_norm": float(grad.norm())})
        return self._search(u, stage)

    def _search(self, u: Tensor, stage: int) -> StepOutcome:
        """Score the stage's ψ, then let optuna's sampler try ``trials_per_stage`` more; the next ψ is the best seen."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        dists = {k: optuna.distributions.FloatDistribution(0.0, 1.0) for k in self.space.knobs}
        sampler = (
            optuna.samplers.TPESampler(seed=self.seed + stage)
            if self.optimizer == "tpe"
            else optuna.samplers.CmaEsSampler(
                seed=self.seed + stage, x0=dict(zip(self.space.knobs, u.tolist(), strict=True))
            )
        )
        study = optuna.create_study(direction="minimize", sampler=sampler)
        value = self.distance(self.space.to_psi(u), stage)
        self.trials.append((u.tolist(), value))
        for point, seen in self.trials:
            study.add_trial(
                optuna.trial.create_trial(
                    params=dict(zip(self.space.knobs, point, strict=True)), distributions=dists, value=seen
                )
            )
        for _ in range(self.trials_per_stage):
            trial = study.ask(dists)
            point = [trial.params[k] for k in self.space.knobs]
            seen = self.distance(self.space.to_psi(torch.tensor(point)), stage)
            study.tell(trial, seen)
            self.trials.append((point, seen))
        best_point, best_value = min(self.trials, key=lambda t: t[1])
        best = torch.tensor(best_point, dtype=torch.float64)
        return StepOutcome(-value, best, {"mmd2": value, "best_trial_mmd2": best_value, "trials": len(self.trials)})

    def state_dict(self) -> dict[str, Any]:
        return {"adam": self.adam.state, "trials": self.trials}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.adam.state = state.get("adam", {})
        self.trials = [(list(p), float(v)) for p, v in state.get("trials", [])]
