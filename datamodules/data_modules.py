"""LightningDataModules: supervised (``TaskDataModule``, with mixing) and domain pairs (``DomainPairDataModule``).

Both take :mod:`datamodules.sources` specs, open them in ``setup`` (which validates every dataset before training),
and yield :class:`~syn2real.batch.Batch` for evaluation. Training batches are a ``Batch`` (task) or a
:class:`~syn2real.batch.DomainBatch` (pairs).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.combined_loader import CombinedLoader
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from datamodules.sampling import EpochShuffleSampler, MixtureBatchSampler
from datamodules.sources import RandomSource, Source
from datamodules.transforms import Augment, SampleTransform
from syn2real.batch import DomainBatch, Sample, collate


def _describe(source: Source | None) -> str:
    return type(source).__name__ if source is not None else "None"


def check_compatible(named: dict[str, Dataset[Sample]]) -> tuple[int, tuple[int, int], list[str] | None]:
    """All datasets share image channels and size and (where known) class lists; returns them.

    Raises:
        ValueError: naming the two datasets that disagree and how.
    """
    ref_name, ref = next(iter(named.items()))
    ref_shape = tuple(ref[0].image.shape)
    ref_classes = getattr(ref, "classes", None)
    for name, ds in named.items():
        shape = tuple(ds[0].image.shape)
        if shape[0] != ref_shape[0]:
            raise ValueError(
                f"{name} has {shape[0]}-channel images but {ref_name} has {ref_shape[0]}: set "
                f"`channels: {ref_shape[0]}` on {name} (or convert the data) so every network input "
                "agrees"
            )
        if shape[1:] != ref_shape[1:]:
            raise ValueError(
                f"{name} images are {shape[1]}×{shape[2]} but {ref_name} images are "
                f"{ref_shape[1]}×{ref_shape[2]}: set a common `size` on the sources"
            )
        classes = getattr(ds, "classes", None)
        if classes is not None and ref_classes is not None and list(classes) != list(ref_classes):
            raise ValueError(
                f"{name} classes {list(classes)} differ from {ref_name} classes {list(ref_classes)}: "
                "pass `classes` in the same order to the folder source"
            )
    return ref_shape[0], ref_shape[1:], ref_classes  # type: ignore[return-value]


def _domain_ids(dataset: Dataset[Sample]) -> set[int]:
    """Domain ids of a training dataset: of its first sample, or of each part of a concatenation (stages)."""
    parts = getattr(dataset, "datasets", None)
    if parts:
        return set().union(*(_domain_ids(p) for p in parts))
    return {dataset[0].domain} if len(dataset) else set()  # type: ignore[arg-type]


class _EvalMixin(pl.LightningDataModule):
    """Validation / test / predict loaders shared by both datamodules (real labeled splits)."""

    val: Source | None
    test: Source | None
    predict: Source | None
    batch_size: int
    eval_batch_size: int | None
    num_workers: int

    def _open_eval(self, stage: str | None) -> dict[str, Dataset[Sample]]:
        wanted = {"fit": ("val",), "validate": ("val",), "test": ("test",), "predict": ("predict",)}
        names = wanted.get(stage or "", ("val", "test", "predict"))
        self.eval_sets = {n: getattr(self, n).load() for n in names if getattr(self, n) is not None}
        return {f"{n} ({_describe(getattr(self, n))})": d for n, d in self.eval_sets.items()}

    def _eval_loader(self, name: str) -> DataLoader[Any]:
        if name not in getattr(self, "eval_sets", {}):
            raise ValueError(f"no `{name}` dataset configured: set data.init_args.{name} in the config")
        return DataLoader(
            self.eval_sets[name],
            batch_size=self.eval_batch_size or self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=collate,
        )

    def val_dataloader(self) -> DataLoader[Any]:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader[Any]:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader[Any]:
        return self._eval_loader("predict")


class TaskDataModule(_EvalMixin):
    """Supervised data: one or several training datasets, mixed with given proportions per batch.

    Args:
        train: training sources (synthetic, refined, real budgets...).
        proportions: share of each training source in every batch; ``None`` with one source shuffles it plainly,
            with several it concatenates them (proportional to their sizes).
        val: validation source (the real val split).
        test: test source (the real test split).
        predict: source for ``syn2real predict``.
        batch_size: training batch size.
        eval_batch_size: evaluation batch size (defaults to ``batch_size``).
        num_workers: DataLoader workers.
        augment: training augmentation preset.
        epoch_size: samples per epoch; set, or a dataset smaller than one batch, switches to the mixing sampler,
            which cycles through reshuffled data (default: all training samples once).
        seed: sampling and augmentation seed.
    """

    def __init__(
        self,
        *,
        train: list[Source] | None = None,
        proportions: list[float] | None = None,
        val: Source | None = None,
        test: Source | None = None,
        predict: Source | None = None,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        augment: Augment = "none",
        epoch_size: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.train, self.proportions = list(train or []), proportions
        if proportions is not None and len(proportions) != len(self.train):
            raise ValueError(f"{len(self.train)} training sources but {len(proportions)} proportions")
        self.val, self.test, self.predict = val, test, predict
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.augment, self.epoch_size, self.seed = augment, epoch_size, seed
        self.train_sets: list[Dataset[Sample]] = []

    def setup(self, stage: str | None = None) -> None:
        named = self._open_eval(stage)
        if stage in ("fit", None):
            if not self.train:
                raise ValueError("no training data: set data.init_args.train to a list of sources")
            transform = SampleTransform(self.augment, seed=self.seed) if self.augment != "none" else None
            self.train_sets = [s.load(transform) for s in self.train]
            named = {
                f"train[{i}] ({_describe(s)})": d
                for i, (s, d) in enumerate(zip(self.train, self.train_sets, strict=True))
            } | named
        if named:
            self.channels, self.size, self.classes = check_compatible(named)

    def training_domain_ids(self) -> list[int]:
        """Sorted domain ids of the training sources, after ``setup("fit")`` (``syn2real.data_api.TrainingDomains``)."""
        return sorted(set().union(*(_domain_ids(d) for d in self.train_sets)))

    def train_dataloader(self) -> DataLoader[Any]:
        plain = len(self.train_sets) == 1 and self.proportions is None and self.epoch_size is None
        if plain and len(self.train_sets[0]) >= self.batch_size:
            return DataLoader(
                self.train_sets[0],
                batch_size=self.batch_size,
                sampler=EpochShuffleSampler(len(self.train_sets[0]), seed=self.seed),
                drop_last=True,
                num_workers=self.num_workers,
                collate_fn=collate,
            )
        sizes = [len(d) for d in self.train_sets]
        proportions = self.proportions or [float(n) for n in sizes]
        sampler = MixtureBatchSampler(
            sizes,
            proportions,
            batch_size=self.batch_size,
            seed=self.seed,
            num_batches=max(1, (self.epoch_size or sum(sizes)) // self.batch_size),
        )
        return DataLoader(
            ConcatDataset(self.train_sets), batch_sampler=sampler, num_workers=self.num_workers, collate_fn=collate
        )


class DomainPairDataModule(_EvalMixin):
    """Source + target domains for adaptation: training yields :class:`~syn2real.batch.DomainBatch`.

    The two training loaders are zipped with ``CombinedLoader(mode="max_size_cycle")``: an epoch covers the larger
    domain once, cycling the smaller. The target is normally unlabeled (its labels are never read in training).

    Args:
        source: the source (synthetic) training domain.
        target: the target (real, unlabeled) training domain.
        val: validation source (the real val split).
        test: test source.
        predict: source for ``syn2real predict``.
        batch_size: per-domain training batch size.
        eval_batch_size: evaluation batch size (defaults to ``batch_size``).
        num_workers: DataLoader workers per loader.
        augment: augmentation preset applied to both training domains.
        seed: augmentation seed.
        shuffle: reshuffle the training domains every epoch (turn off for exactly repeatable batches).
    """

    def __init__(
        self,
        *,
        source: Source,
        target: Source,
        val: Source | None = None,
        test: Source | None = None,
        predict: Source | None = None,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        augment: Augment = "none",
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        super().__init__()
        self.source, self.target, self.shuffle = source, target, shuffle
        self.val, self.test, self.predict = val, test, predict
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.augment, self.seed = augment, seed

    def setup(self, stage: str | None = None) -> None:
        named = self._open_eval(stage)
        if stage in ("fit", None):
            transform = SampleTransform(self.augment, seed=self.seed) if self.augment != "none" else None
            self.source_set = self.source.load(transform)
            self.target_set = self.target.load(transform)
            named = {
                f"source ({_describe(self.source)})": self.source_set,
                f"target ({_describe(self.target)})": self.target_set,
            } | named
        if named:
            self.channels, self.size, self.classes = check_compatible(named)

    def plain_loader(self, which: str, *, batch_size: int) -> DataLoader[Any]:
        """The ``source`` or ``target`` training images without augmentation, shuffled with a fixed seed.

        Full batches only (when there are enough images). For statistics and distances (AdaBN, refiner
        validation). Opens the data when ``setup`` did not (e.g. in ``syn2real test``).
        """
        cache = f"_{which}_plain"
        if getattr(self, cache, None) is None:
            setattr(self, cache, getattr(self, which).load())
        data = getattr(self, cache)
        return DataLoader(
            data,
            batch_size=batch_size,
            shuffle=True,
            drop_last=len(data) >= batch_size,
            generator=torch.Generator().manual_seed(self.seed),
            num_workers=self.num_workers,
            collate_fn=collate,
        )

    def target_loader(self, *, batch_size: int) -> DataLoader[Any]:
        """Unaugmented target images (see :meth:`plain_loader`); :class:`syn2real.data_api.PairedDomains`."""
        return self.plain_loader("target", batch_size=batch_size)

    def source_loader(self, *, batch_size: int) -> DataLoader[Any]:
        """Unaugmented source images (see :meth:`plain_loader`)."""
        return self.plain_loader("source", batch_size=batch_size)

    def train_dataloader(self) -> CombinedLoader:
        def loader(dataset: Dataset[Sample], seed: int) -> DataLoader[Any]:
            return DataLoader(
                dataset,
                batch_size=self.batch_size,
                sampler=EpochShuffleSampler(len(dataset), seed=seed) if self.shuffle else None,
                drop_last=True,
                num_workers=self.num_workers,
                collate_fn=collate,
            )

        return CombinedLoader(
            {"source": loader(self.source_set, self.seed), "target": loader(self.target_set, self.seed + 1)},
            mode="max_size_cycle",
        )

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, dict) and set(batch) == {"source", "target"}:
            return DomainBatch(source=batch["source"], target=batch["target"])
        return batch


class RandomDataModule(TaskDataModule):
    """Random tensors through the real ``TaskDataModule`` (smoke tests): no files, seconds on CPU."""

    def __init__(
        self,
        *,
        num_classes: int = 10,
        size: int = 32,
        channels: int = 1,
        num_samples: int = 16,
        task: str = "classification",
        batch_size: int = 4,
    ) -> None:
        make = partial(
            RandomSource, num_samples=num_samples, num_classes=num_classes, size=size, channels=channels, task=task
        )

        super().__init__(
            train=[make(seed=0, domain=0)],
            val=make(seed=1, domain=1),
            test=make(seed=2, domain=1),
            predict=make(seed=2, domain=1),
            batch_size=batch_size,
        )


class RandomDomainPairDataModule(DomainPairDataModule):
    """Random source + unlabeled random target through the real ``DomainPairDataModule`` (smoke tests)."""

    def __init__(
        self,
        *,
        num_classes: int = 10,
        size: int = 32,
        channels: int = 1,
        num_samples: int = 16,
        task: str = "classification",
        batch_size: int = 4,
    ) -> None:
        make = partial(
            RandomSource, num_samples=num_samples, num_classes=num_classes, size=size, channels=channels, task=task
        )

        super().__init__(
            source=make(seed=0, domain=0, use_labels=True),
            target=make(seed=1, domain=1, use_labels=False),
            val=make(seed=2, domain=1, use_labels=True),
            test=make(seed=3, domain=1, use_labels=True),
            predict=make(seed=3, domain=1, use_labels=True),
            batch_size=batch_size,
        )
