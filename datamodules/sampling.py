"""Batch sampling that mixes several datasets with given proportions in every batch (hybrid schedules)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


def batch_counts(proportions: Sequence[float], batch_size: int, num_batches: int) -> list[list[int]]:
    """How many samples each dataset contributes to each batch.

    Cumulative largest-remainder rounding: every batch sums to ``batch_size`` and, over any run of batches, each
    dataset's share stays within one sample of ``proportion · samples drawn``.

    Examples:
        >>> batch_counts([0.75, 0.25], 4, 2)
        [[3, 1], [3, 1]]
        >>> [sum(c[1] for c in batch_counts([0.9, 0.1], 5, 10))]
        [5]
    """
    total = sum(proportions)
    if total <= 0 or any(p < 0 for p in proportions):
        raise ValueError(f"proportions must be non-negative with a positive sum, got {list(proportions)}")
    share = [p / total for p in proportions]
    taken = [0] * len(share)
    out = []
    for b in range(1, num_batches + 1):
        want = [s * batch_size * b for s in share]
        counts = [math.floor(w) - t for w, t in zip(want, taken, strict=True)]
        short = batch_size - sum(counts)
        order = sorted(range(len(share)), key=lambda i: want[i] - math.floor(want[i]), reverse=True)
        for i in order[:short]:
            counts[i] += 1
        taken = [t + c for t, c in zip(taken, counts, strict=True)]
        out.append(counts)
    return out


class MixtureBatchSampler(Sampler[list[int]]):
    """Batches over a ``ConcatDataset`` drawing a fixed share from each part (reshuffled, cycling).

    Args:
        sizes: length of each concatenated dataset.
        proportions: share of each dataset per batch (normalized).
        batch_size: samples per batch.
        num_batches: batches per epoch.
        seed: base seed; epoch ``e`` shuffles with ``seed + e`` (set by Lightning through ``set_epoch``).
    """

    def __init__(
        self, sizes: Sequence[int], proportions: Sequence[float], *, batch_size: int, num_batches: int, seed: int = 0
    ) -> None:
        if len(sizes) != len(proportions):
            raise ValueError(f"{len(sizes)} datasets but {len(proportions)} proportions")
        empty = [i for i, (n, p) in enumerate(zip(sizes, proportions, strict=True)) if n == 0 and p > 0]
        if empty:
            raise ValueError(f"dataset(s) {empty} are empty but have a positive proportion")
        self.sizes, self.proportions = list(sizes), list(proportions)
        self.batch_size, self.num_batches, self.seed, self.epoch = batch_size, num_batches, seed, 0
        self.offsets = [sum(self.sizes[:i]) for i in range(len(self.sizes))]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        streams = [self._stream(n, g) for n in self.sizes]
        for counts in batch_counts(self.proportions, self.batch_size, self.num_batches):
            batch = [self.offsets[i] + next(streams[i]) for i, c in enumerate(counts) for _ in range(c)]
            yield [batch[j] for j in torch.randperm(len(batch), generator=g).tolist()]

    @staticmethod
    def _stream(n: int, g: torch.Generator) -> Iterator[int]:
        while n > 0:
            yield from torch.randperm(n, generator=g).tolist()
