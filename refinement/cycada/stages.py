"""CyCADA's stages in one run: which stages a variant trains, where each begins and ends, and its LR factor.

The released procedure is three separate jobs (source model; pixel adaptation; feature adaptation of a model trained
on the translated source). Here one ``fit`` runs them in order, each over its share of the run's batches, so
``trainer.max_epochs`` (or the zoo's ``--quick`` half epoch) sets the length and every stage keeps its proportion:

    source   the source task model f_S: cross-entropy on renders (skipped when a checkpoint is given);
    pixel    CycleGAN with the semantic-consistency loss through the frozen f_S;
    task     the task network on renders translated by the pixel stage's generator, from f_S's weights;
    feature  adversarial alignment of the task network's logits (score maps) between source and target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Variant = Literal["pixel", "feature", "pixel+feature"]
STAGES = ("source", "pixel", "task", "feature")
VARIANT_STAGES: dict[str, tuple[str, ...]] = {
    "pixel": ("pixel", "task"),
    "feature": ("feature",),
    "pixel+feature": ("pixel", "task", "feature"),
}


@dataclass(frozen=True)
class StageShares:
    """Relative lengths of the stages (shares of the run's batches; a variant's unused stages are ignored).

    Args:
        source: training f_S on renders (when no ``source_checkpoint`` is given).
        pixel: CycleGAN + semantic consistency.
        task: the task network on translated renders.
        feature: logit-level adversarial alignment.
    """

    source: float = 1.0
    pixel: float = 2.0
    task: float = 1.0
    feature: float = 0.5


@dataclass(frozen=True)
class Stage:
    """One stage of a run: ``name`` trains batches ``start`` (inclusive) to ``end`` (exclusive)."""

    name: str
    start: int
    end: int

    def progress(self, batch: int) -> float:
        """Progress in [0, 1) of ``batch`` through this stage."""
        return (batch - self.start) / max(1, self.end - self.start)


def stage_names(variant: str, shares: StageShares, *, train_source: bool) -> tuple[str, ...]:
    """The stages a run trains, in order; an unknown variant or a share that is not positive is refused."""
    if variant not in VARIANT_STAGES:
        raise ValueError(f"unknown CyCADA variant {variant!r}; use one of {', '.join(VARIANT_STAGES)}")
    names = (("source",) if train_source else ()) + VARIANT_STAGES[variant]
    bad = [name for name in names if not getattr(shares, name) > 0]
    if bad:
        raise ValueError(f"CyCADA stage share(s) {bad} must be > 0 for variant {variant!r} (stages: {list(names)})")
    return names


def plan_stages(variant: str, shares: StageShares, *, train_source: bool, total_batches: int) -> list[Stage]:
    """The stages of a run of ``total_batches`` batches, in order, each over its share (rounded to batches).

    Examples:
        >>> [(s.name, s.start, s.end) for s in plan_stages("pixel", StageShares(), train_source=True, total_batches=8)]
        [('source', 0, 2), ('pixel', 2, 6), ('task', 6, 8)]
    """
    names = stage_names(variant, shares, train_source=train_source)
    weights = [getattr(shares, name) for name in names]
    if total_batches < len(names):
        raise ValueError(
            f"a CyCADA {variant!r} run has {len(names)} stages ({', '.join(names)}) but only {total_batches} training "
            "batches: train longer (trainer.max_epochs / limit_train_batches)"
        )
    stages, start, done = [], 0, 0.0
    for name, weight in zip(names, weights, strict=True):
        done += weight
        end = max(start + 1, round(total_batches * done / sum(weights)))
        end = min(end, total_batches - (len(names) - len(stages) - 1))  # every later stage keeps a batch
        stages.append(Stage(name, start, end))
        start = end
    return stages


def stage_lr_factor(stage: str, progress: float) -> float:
    """The LR multiplier within a stage.

    Source and task: cosine to zero over the stage (the zoo's task recipe); pixel: CycleGAN's policy, constant for
    the first half and linear to zero over the second (the release's 100 + 100 epochs); feature: constant (release).

    Examples:
        >>> stage_lr_factor("pixel", 0.25), stage_lr_factor("pixel", 0.75), stage_lr_factor("task", 0.5)
        (1.0, 0.5, 0.5)
    """
    p = min(max(progress, 0.0), 1.0)
    if stage in ("source", "task"):
        return 0.5 * (1.0 + math.cos(math.pi * p))
    if stage == "pixel":
        return min(1.0, 2.0 * (1.0 - p))
    return 1.0
