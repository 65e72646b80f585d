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

    @property
    def sampler(self) -> MixtureBatchSampler:
        """Itself: Lightning calls ``set_epoch`` on a loader's ``batch_sampler.sampler``, not on the batch sampler."""
        return self

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


class EpochShuffleSampler(Sampler[int]):
    """A random permutation of ``range(n)`` that depends only on ``(seed, epoch, pass)``, not on any RNG state.

    Lightning calls :meth:`set_epoch` before every epoch, so a run resumed from a checkpoint sees the same order as
    the run that never stopped (a plain ``shuffle=True`` loader draws from the global RNG, which a resume does not
    restore). ``pass`` counts the iterations within an epoch (a smaller domain cycled by ``CombinedLoader``).

    Examples:
        >>> s = EpochShuffleSampler(5, seed=3)
        >>> first = list(s); s.set_epoch(1); second = list(s); s.set_epoch(0)
        >>> sorted(first) == list(range(5)) and first == list(s) and first != second
        True
    """

    def __init__(self, n: int, *, seed: int = 0) -> None:
        self.n, self.seed, self.epoch, self.passes = n, seed, 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.passes = epoch, 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 1_009 + self.passes)
        self.passes += 1
        yield from torch.randperm(self.n, generator=g).tolist()
