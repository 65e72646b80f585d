"""The built-in visible benchmarks, by name: what ``--benchmark`` accepts in ``syn2real bench zoo|schedules``.

- ``digits``: grey rendered digits → scikit-learn's handwritten digits (a shape gap: real digits fill the frame,
  thick, blocky, on black).
- ``digits-photo``: colour rendered digits → the same real digits difference-blended onto photo patches (RGB, the way
  MNIST-M was built): the shape gap plus an appearance gap (texture, colour, clutter).
- ``digits-scenes``: segmentation. Colour rendered scenes of four digits → scenes of four real digits on photo
  patches, a class per pixel (background + 10 digits), scored by mIoU (:mod:`datamodules.digit_scenes`).

All share the fixed real pool / val / test split (:mod:`datamodules.real_digits`) and the simulator's seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Benchmark:
    """One visible benchmark: its name (the ``__<name>.yaml`` suffix of its experiment configs) and real data."""

    name: str
    channels: int
    background: str
    task: Literal["classification", "segmentation"] = "classification"

    @property
    def metric(self) -> str:
        """The leaderboard's metric: real-test accuracy, or mIoU for segmentation."""
        return "test/target_miou" if self.task == "segmentation" else "test/target_acc"


BENCHMARKS = {
    b.name: b
    for b in (
        Benchmark("digits", channels=1, background="black"),
        Benchmark("digits-photo", channels=3, background="photo"),
        Benchmark("digits-scenes", channels=3, background="photo", task="segmentation"),
    )
}


def get_benchmark(name: str, *, task: str | None = "classification") -> Benchmark:
    """The benchmark called ``name``; an unknown name, or one of another ``task`` (``None``: any), is refused."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; use one of: {', '.join(BENCHMARKS)}")
    bench = BENCHMARKS[name]
    if task is not None and bench.task != task:
        fitting = [b.name for b in BENCHMARKS.values() if b.task == task]
        raise ValueError(f"benchmark {name!r} is {bench.task}; this command takes {task}: {', '.join(fitting)}")
    return bench
