"""Training-progress schedules: pure functions of progress ``p ∈ [0, 1]`` (global step / total steps)."""

from __future__ import annotations

import math


def dann_lambda(progress: float, gamma: float = 10.0) -> float:
    """DANN's adaptation factor ``2 / (1 + exp(-γ·p)) - 1`` (Ganin et al. 2016): 0 at the start, → 1.

    Examples:
        >>> dann_lambda(0.0), round(dann_lambda(1.0), 4)
        (0.0, 0.9999)
    """
    p = min(max(progress, 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


def annealed_lr_factor(progress: float, alpha: float = 10.0, beta: float = 0.75) -> float:
    """DANN's learning-rate annealing ``1 / (1 + α·p)^β`` (multiply the base rate μ0 by it)."""
    p = min(max(progress, 0.0), 1.0)
    return 1.0 / (1.0 + alpha * p) ** beta


class AnnealedLR:
    """Picklable ``LambdaLR`` factor: ``annealed_lr_factor(step / total_steps)``."""

    def __init__(self, total_steps: int, alpha: float = 10.0, beta: float = 0.75) -> None:
        self.total_steps, self.alpha, self.beta = max(1, total_steps), alpha, beta

    def __call__(self, step: int) -> float:
        return annealed_lr_factor(step / self.total_steps, self.alpha, self.beta)


def progress(global_step: int, total_steps: float | int) -> float:
    """Training progress in [0, 1] from the trainer's step counters."""
    if not math.isfinite(total_steps) or total_steps <= 0:
        return 0.0
    return min(1.0, global_step / float(total_steps))


class LinearDecay:
    """CycleGAN's ``linear`` policy as a picklable ``LambdaLR`` factor over epochs.

    Constant for ``constant_epochs`` epochs, then linear decay towards 0 over ``decay_epochs``:
    ``1 - max(0, epoch + 1 - constant_epochs) / (decay_epochs + 1)`` (upstream, with ``epoch_count = 1``).

    Examples:
        >>> f = LinearDecay(100, 100)
        >>> f(0), f(99), round(f(100), 4), round(f(199), 4)
        (1.0, 1.0, 0.9901, 0.0099)
    """

    def __init__(self, constant_epochs: int, decay_epochs: int) -> None:
        self.constant_epochs, self.decay_epochs = constant_epochs, decay_epochs

    def __call__(self, epoch: int) -> float:
        return 1.0 - max(0, epoch + 1 - self.constant_epochs) / float(self.decay_epochs + 1)


def warmup_poly_factor(
    step: int, total_steps: int, *, warmup_steps: int = 100, power: float = 0.9, floor_progress: float = 1.0
) -> float:
    """ASG's / CSG's learning-rate factor: quadratic warm-up times polynomial decay (official ``lr_poly``).

    ``min(0.01 + 0.99·(step / warmup)², 1) · (1 − min(step / total, floor_progress))^power``. ASG stops the decay at
    ``floor_progress = 0.8`` (the rate never drops under 0.2^0.9 ≈ 0.235 of its base); CSG decays to zero (1.0).

    Examples:
        >>> warmup_poly_factor(0, 1000), warmup_poly_factor(100, 1000, floor_progress=0.8) == 0.9 ** 0.9
        (0.01, True)
        >>> round(warmup_poly_factor(1000, 1000, floor_progress=0.8), 4)
        0.2349
    """
    warm = min(0.01 + 0.99 * (step / warmup_steps) ** 2, 1.0) if warmup_steps > 0 else 1.0
    decay = (1.0 - min(step / max(1, total_steps), floor_progress)) ** power
    return warm * decay


class WarmupPoly:
    """Picklable ``LambdaLR`` factor: :func:`warmup_poly_factor` of the step."""

    def __init__(
        self, total_steps: int, warmup_steps: int = 100, power: float = 0.9, floor_progress: float = 1.0
    ) -> None:
        self.total_steps, self.warmup_steps, self.power, self.floor_progress = (
            max(1, total_steps),
            warmup_steps,
            power,
            floor_progress,
        )

    def __call__(self, step: int) -> float:
        return warmup_poly_factor(
            step, self.total_steps, warmup_steps=self.warmup_steps, power=self.power, floor_progress=self.floor_progress
        )
