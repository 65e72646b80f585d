"""Dataset sources: what a config names as a dataset.

A source only stores its arguments; ``load()`` opens and validates the data (Lightning's rule that a datamodule
touches files in ``setup``), so configs can be parsed and checked without any data on disk.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import ConcatDataset, Dataset, Subset

from datamodules.errors import DatasetError
from datamodules.folders import ImageFolderDataset, SegmentationFolderDataset, UnlabeledFolderDataset
from datamodules.format import Syn2RealDataset
from datamodules.real_digits import Background, RealDigits, Split
from datamodules.render_cache import cached_render
from datamodules.simulator import DigitsSimulator, DigitsSimulatorConfig, config_record
from datamodules.stages import FirstSamples, select_stages
from syn2real.batch import IGNORE_INDEX, Sample


class Source(ABC):
    """A dataset spec. Subclasses are typed, keyword-only, and cheap to construct."""

    @abstractmethod
    def load(self, transform: Any = None) -> Dataset[Sample]:
        """Open (and validate) the data; ``transform`` maps ``Sample -> Sample``."""


class SampleTensorDataset(Dataset[Sample]):
    """Samples held in memory as stacked tensors (rendered, refined or random data).

    Ids are ``ids[i]`` when given, else ``f"{prefix}{i:07d}"``.
    """

    def __init__(
        self,
        images: torch.Tensor,
        *,
        labels: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
        depth: torch.Tensor | None = None,
        domain: int = 0,
        prefix: str = "",
        ids: list[str] | None = None,
        transform: Any = None,
    ) -> None:
        if ids is not None and len(ids) != images.shape[0]:
            raise ValueError(f"{len(ids)} ids for {images.shape[0]} images")
        self.images, self.label_tensor, self.masks, self.depth = images, labels, masks, depth
        self.domain, self.prefix, self.ids, self.transform = domain, prefix, ids, transform

    def labels(self) -> list[int]:
        return self.label_tensor.tolist() if self.label_tensor is not None and self.label_tensor.ndim == 1 else []

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> Sample:
        pick = lambda t: None if t is None else t[i]  # noqa: E731
        s = Sample(
            image=self.images[i],
            label=pick(self.label_tensor),
            mask=pick(self.masks),
            depth=pick(self.depth),
            domain=self.domain,
            id=self.ids[i] if self.ids is not None else f"{self.prefix}{i:07d}",
        )
        return self.transform(s) if self.transform is not None else s


class StageConcat(ConcatDataset[Sample]):
    """Several stage datasets (syn2real or simulator output) read as one (their class lists were checked to agree)."""

    def __init__(self, parts: list[Syn2RealDataset]) -> None:
        super().__init__(parts)
        self.classes = parts[0].classes

    def labels(self) -> list[int]:
        return [y for part in self.datasets for y in part.labels()]  # type: ignore[attr-defined]


class DigitsSimulatorSource(Source):
    """Digits rendered in memory by the built-in simulator (no files; ~2,000 images/s on one core).

    Args:
        num_samples: how many to render (indices ``0..num_samples-1``).
        seed: the simulator seed.
        config: simulator parameters ψ.
        use_labels: attach labels (drop them to use the renders as an unlabeled domain).
        domain: domain id (0 = source).
    """

    def __init__(
        self,
        *,
        num_samples: int = 20000,
        seed: int = 0,
        config: DigitsSimulatorConfig | None = None,
        use_labels: bool = True,
        domain: int = 0,
    ) -> None:
        self.num_samples, self.seed, self.use_labels, self.domain = num_samples, seed, use_labels, domain
        self.config = config or DigitsSimulatorConfig()

    def render(self) -> dict[str, torch.Tensor | None]:
        """Images, labels, masks and depth of indices ``0..num_samples-1`` (in chunks of 512)."""
        sim = DigitsSimulator(self.config, seed=self.seed)
        chunks = [sim.render(range(i, min(i + 512, self.num_samples))) for i in range(0, self.num_samples, 512)]
        return {key: torch.cat([getattr(c, key) for c in chunks]) for key in ("images", "labels", "masks", "depth")}

    def load(self, transform: Any = None) -> SampleTensorDataset:
        arguments = {"num_samples": self.num_samples, "seed": self.seed, "config": config_record(self.config)}
        out = cached_render("digits", arguments, self.render)  # the same renders as self.render(), from disk
        return SampleTensorDataset(
            out["images"],
            labels=out["labels"] if self.use_labels else None,
            masks=out["masks"],
            depth=out["depth"],
            domain=self.domain,
            prefix=f"sim{self.seed}-",
            transform=transform,
        )


class Syn2RealSource(Source):
    """A syn2real dataset folder, or one or more stages of a simulator-optimization run.

    Args:
        root: a dataset folder or a folder of stage datasets.
        stage: ``latest`` | ``best`` | ``all`` | a stage index.
        use_labels: attach labels.
        domain: domain id of every sample (0 = source).
        domain_per_stage: with ``stage: all``, give stage k the domain ``domain + k`` (multi-source methods).
        num_samples: read only the first ``num_samples`` samples (all when ``None``); a stage renders the simulator's
            indices 0, 1, ... so this is the stage's version of ``DigitsSimulatorSource(num_samples=...)``.
    """

    def __init__(
        self,
        *,
        root: str,
        stage: str = "latest",
        use_labels: bool = True,
        domain: int = 0,
        domain_per_stage: bool = False,
        num_samples: int | None = None,
    ) -> None:
        if num_samples is not None and num_samples < 1:
            raise ValueError(f"Syn2RealSource(root={root}): num_samples must be at least 1, got {num_samples}")
        self.root, self.stage, self.use_labels = root, stage, use_labels
        self.domain, self.domain_per_stage, self.num_samples = domain, domain_per_stage, num_samples

    def load(self, transform: Any = None) -> Dataset[Sample]:
        folders = select_stages(Path(self.root), self.stage)
        if self.num_samples is not None and len(folders) > 1:
            raise DatasetError(
                self.root,
                f"num_samples with stage {self.stage!r} would read the first stage only ({len(folders)} selected)",
                "pick one stage (best, latest or an index) or leave num_samples out",
            )
        parts = [
            Syn2RealDataset(
                f,
                domain=self.domain + (k if self.domain_per_stage else 0),
                use_labels=self.use_labels,
                transform=transform,
            )
            for k, f in enumerate(folders)
        ]
        data = parts[0] if len(parts) == 1 else StageConcat(parts)
        if self.num_samples is None:
            return data
        if self.num_samples > len(data):
            raise DatasetError(
                self.root,
                f"stage {self.stage!r} holds {len(data)} samples, num_samples asks for {self.num_samples}",
                "lower num_samples, or render larger stages (optimize-sim's stage_samples)",
            )
        return FirstSamples(data, self.num_samples)


class RealDigitsSource(Source):
    """A split of the real digits (scikit-learn): ``pool`` (unlabeled adaptation), ``val``, ``test``.

    Args:
        split: which split.
        size: side in pixels (the benchmark's 32).
        channels: 1, or 3 (grey replicated).
        background: ``black`` (``digits``) or ``photo`` (``digits-photo``: blended onto photo patches, RGB).
        use_labels: attach labels; defaults to ``False`` for the pool, which methods must not read labels from.
    """

    def __init__(
        self,
        *,
        split: Split = "test",
        size: int = 32,
        channels: int = 1,
        background: Background = "black",
        use_labels: bool | None = None,
    ) -> None:
        self.split, self.size, self.channels, self.background = split, size, channels, background
        self.use_labels = use_labels  # None: RealDigits' default (labels for val/test, none for the pool)

    def load(self, transform: Any = None) -> RealDigits:
        return RealDigits(
            self.split,
            size=self.size,
            channels=self.channels,
            background=self.background,
            use_labels=self.use_labels,
            transform=transform,
        )


class ImageFolderSource(Source):
    """Labeled real images in class subfolders (see :class:`~datamodules.folders.ImageFolderDataset`)."""

    def __init__(
        self,
        *,
        root: str,
        classes: list[str] | None = None,
        channels: int = 3,
        size: tuple[int, int] | None = None,
        use_labels: bool = True,
        domain: int = 1,
    ) -> None:
        self.root, self.classes, self.channels, self.size = root, classes, channels, size
        self.use_labels, self.domain = use_labels, domain

    def load(self, transform: Any = None) -> ImageFolderDataset:
        return ImageFolderDataset(
            self.root,
            classes=self.classes,
            channels=self.channels,
            size=self.size,
            domain=self.domain,
            use_labels=self.use_labels,
            transform=transform,
        )


class UnlabeledFolderSource(Source):
    """Unlabeled real images in one flat folder."""

    def __init__(self, *, root: str, channels: int = 3, size: tuple[int, int] | None = None, domain: int = 1) -> None:
        self.root, self.channels, self.size, self.domain = root, channels, size, domain

    def load(self, transform: Any = None) -> UnlabeledFolderDataset:
        return UnlabeledFolderDataset(
            self.root, channels=self.channels, size=self.size, domain=self.domain, transform=transform
        )


class SegmentationFolderSource(Source):
    """Real image + label-map pairs with a class-mapping file."""

    def __init__(
        self,
        *,
        images: str,
        labels: str,
        class_map: str,
        channels: int = 3,
        size: tuple[int, int] | None = None,
        domain: int = 1,
    ) -> None:
        self.images, self.labels, self.class_map = images, labels, class_map
        self.channels, self.size, self.domain = channels, size, domain

    def load(self, transform: Any = None) -> SegmentationFolderDataset:
        return SegmentationFolderDataset(
            self.images,
            self.labels,
            self.class_map,
            channels=self.channels,
            size=self.size,
            domain=self.domain,
            transform=transform,
        )


class RandomSource(Source):
    """Random tensors for smoke tests: uniform images, random labels, masks and depth. No files.

    Args:
        num_samples: dataset length.
        num_classes: label range.
        size: image side.
        channels: image channels.
        task: classification (``B`` labels) or segmentation (``B×H×W`` maps with some ignore pixels).
        seed: generator seed.
        use_labels: attach labels.
        domain: domain id.
    """

    def __init__(
        self,
        *,
        num_samples: int = 16,
        num_classes: int = 10,
        size: int = 32,
        channels: int = 1,
        task: Literal["classification", "segmentation"] = "classification",
        seed: int = 0,
        use_labels: bool = True,
        domain: int = 0,
    ) -> None:
        self.num_samples, self.num_classes, self.size, self.channels = num_samples, num_classes, size, channels
        self.task, self.seed, self.use_labels, self.domain = task, seed, use_labels, domain

    def load(self, transform: Any = None) -> SampleTensorDataset:
        g = torch.Generator().manual_seed(self.seed)
        n, s = self.num_samples, self.size
        images = torch.rand(n, self.channels, s, s, generator=g)
        if self.task == "classification":
            labels = torch.randint(self.num_classes, (n,), generator=g)
        else:
            labels = torch.randint(self.num_classes, (n, s, s), generator=g)
            labels[torch.rand(n, s, s, generator=g) < 0.05] = IGNORE_INDEX
        masks = (torch.rand(n, 1, s, s, generator=g) > 0.5).float()
        depth = torch.rand(n, 1, s, s, generator=g)
        return SampleTensorDataset(
            images,
            labels=labels if self.use_labels else None,
            masks=masks,
            depth=depth,
            domain=self.domain,
            prefix=f"rand{self.seed}-",
            transform=transform,
        )


def stratified_budget(labels: list[int], budget: int, seed: int) -> list[int]:
    """``budget`` indices, class-stratified (round-robin over classes in a seeded order), seeded.

    Budgets of one seed are nested: the first ``n`` picks of a larger budget are the smaller budget.

    Raises:
        ValueError: if ``budget`` exceeds the number of labeled samples.
    """
    if budget > len(labels):
        raise ValueError(
            f"budget {budget} is larger than the real pool ({len(labels)} labeled images); use at most {len(labels)}"
        )
    g = torch.Generator().manual_seed(seed)
    by_class: dict[int, list[int]] = {}
    for i in torch.randperm(len(labels), generator=g).tolist():
        by_class.setdefault(labels[i], []).append(i)
    classes = [sorted(by_class)[j] for j in torch.randperm(len(by_class), generator=g).tolist()]
    picked: list[int] = []
    depth = 0
    while len(picked) < budget:
        for c in classes:
            if depth < len(by_class[c]) and len(picked) < budget:
                picked.append(by_class[c][depth])
        depth += 1
    return picked


class BudgetSource(Source):
    """A seeded, class-stratified subset of ``budget`` labeled samples of another source (real-label budgets).

    Args:
        source: the labeled source to draw from (e.g. the real digits pool with ``use_labels: true``).
        budget: number of samples.
        seed: draw seed; budgets of one seed are nested.
    """

    def __init__(self, *, source: Source, budget: int, seed: int = 0) -> None:
        if budget < 1:
            raise ValueError(f"budget must be at least 1, got {budget}")
        self.source, self.budget, self.seed = source, budget, seed

    def load(self, transform: Any = None) -> Dataset[Sample]:
        data = self.source.load(transform)
        labels = data.labels() if hasattr(data, "labels") else []
        if not labels or min(labels) < 0:
            raise ValueError(
                f"{type(self.source).__name__} has no labels to draw a budget from: use a labeled split "
                "(for the real digits pool: use_labels: true)"
            )
        subset = Subset(data, stratified_budget(labels, self.budget, self.seed))
        subset.classes = getattr(data, "classes", None)  # type: ignore[attr-defined]
        return subset
