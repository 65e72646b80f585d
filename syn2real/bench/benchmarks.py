"""The built-in visible benchmarks, by name: what ``--benchmark`` accepts in ``syn2real bench zoo|schedules``.

- ``digits``: grey rendered digits → scikit-learn's handwritten digits (a shape gap: real digits fill the frame,
  thick, blocky, on black).
- ``digits-photo``: colour rendered digits → the same real digits difference-blended onto photo patches (RGB, the way
  MNIST-M was built): the shape gap plus an appearance gap (texture, colour, clutter).

Both share the fixed real pool / val / test split (:mod:`datamodules.real_digits`) and the simulator's seed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Benchmark:
    """One visible benchmark: its name (the ``__<name>.yaml`` suffix of its experiment configs) and real data."""

    name: str
    channels: int
    background: str


BENCHMARKS = {
    b.name: b
    for b in (
        Benchmark("digits", channels=1, background="black"),
        Benchmark("digits-photo", channels=3, background="photo"),
    )
}


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called ``name``; an unknown name is refused with the known ones."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; use one of: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]
