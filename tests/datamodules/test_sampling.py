from __future__ import annotations

import pytest

from datamodules.sampling import MixtureBatchSampler, batch_counts


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.9])
def test_mixture_delivers_the_requested_fraction_per_batch(fraction: float) -> None:
    sizes = [1000, 37]  # synthetic, a small real budget
    sampler = MixtureBatchSampler(sizes, [1 - fraction, fraction], batch_size=32, num_batches=400, seed=1)
    real_per_batch = [sum(i >= sizes[0] for i in batch) for batch in sampler]
    assert all(len(b) == 32 for b in sampler)
    # every batch is within one sample of the target, and the long-run share is exact to rounding
    assert all(abs(r - fraction * 32) <= 1 for r in real_per_batch)
    assert sum(real_per_batch) / (32 * 400) == pytest.approx(fraction, abs=1 / (32 * 400))


def test_small_dataset_is_cycled_through_completely() -> None:
    sampler = MixtureBatchSampler([100, 5], [0.5, 0.5], batch_size=10, num_batches=4, seed=0)
    real = [i - 100 for b in sampler for i in b if i >= 100]
    assert len(real) == 20 and sorted(set(real)) == [0, 1, 2, 3, 4]
    assert all(real.count(k) == 4 for k in range(5))  # whole permutations, no sample favoured


def test_epochs_reshuffle_but_are_reproducible() -> None:
    a = MixtureBatchSampler([50, 50], [0.5, 0.5], batch_size=8, num_batches=3, seed=0)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    a.set_epoch(0)
    assert list(a) == first


def test_counts_sum_to_the_batch() -> None:
    assert all(sum(c) == 7 for c in batch_counts([0.2, 0.3, 0.5], 7, 50))


def test_bad_proportions_are_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        batch_counts([-1.0, 2.0], 4, 1)
    with pytest.raises(ValueError, match="empty but have a positive proportion"):
        MixtureBatchSampler([10, 0], [0.5, 0.5], batch_size=4, num_batches=1)
