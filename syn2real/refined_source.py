"""Train on refined data without exporting it: a data source seen through a trained refiner.

``syn2real.refined_source.RefinedSource`` wraps any source (the simulator's renders, a syn2real dataset): at load
every image goes once through the refiner of a checkpoint (its EMA generator if it has one, eval mode); labels,
masks, depth, ids and domain are kept. The task model then trains on exactly the renders its raw-data baseline
trains on, refined — the pairing ``syn2real bench zoo`` uses for refiners. ``syn2real refine`` is the same
refinement written to disk as a dataset.

    data:
      class_path: datamodules.TaskDataModule
      init_args:
        train:
          - class_path: syn2real.refined_source.RefinedSource
            init_args:
              checkpoint: runs/cyclegan__digits/version_0/checkpoints/last.ckpt
              source: {class_path: datamodules.DigitsSimulatorSource, init_args: {num_samples: 10000, seed: 0}}
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.sources import SampleTensorDataset, Source
from syn2real.batch import Batch, Sample, collate


class RefinedSource(Source):
    """``source`` with every image refined by the refiner in ``checkpoint``.

    Args:
        source: the data to refine.
        checkpoint: a refiner checkpoint (CycleGAN, SimGAN, ...) as written while training it.
        batch_size: images per refiner forward pass.
        device: where the refiner runs while loading.
    """

    def __init__(self, *, source: Source, checkpoint: str, batch_size: int = 256, device: str = "cpu") -> None:
        self.source, self.checkpoint, self.batch_size, self.device = source, checkpoint, batch_size, device

    def load(self, transform: Any = None) -> SampleTensorDataset:
        parts: dict[str, list[Any]] = {"images": [], "labels": [], "masks": [], "depth": [], "domains": [], "ids": []}
        batches = refined_batches(
            self.source.load(), Path(self.checkpoint), self.source, batch_size=self.batch_size, device=self.device
        )
        for batch, refined in batches:
            parts["images"].append(refined.cpu())
            for key in ("labels", "masks", "depth", "domains"):
                parts[key].append(getattr(batch, key))
            parts["ids"] += batch.ids
        domains = torch.cat(parts["domains"]).unique()
        if len(domains) != 1:
            raise ValueError(f"{type(self.source).__name__} mixes domains {domains.tolist()}: refine one at a time")
        cat = lambda key: None if parts[key][0] is None else torch.cat(parts[key])  # noqa: E731
        return SampleTensorDataset(
            torch.cat(parts["images"]),
            labels=cat("labels"),
            masks=cat("masks"),
            depth=cat("depth"),
            domain=int(domains[0]),
            ids=parts["ids"],
            transform=transform,
        )


def refined_batches(
    dataset: Dataset[Sample], ckpt: Path, source: Source, *, batch_size: int, device: str = "cpu"
) -> Iterator[tuple[Batch, torch.Tensor]]:
    """``(batch, refined images on device)`` for ``dataset`` (loaded from ``source``), in order.

    Images go through the refiner of ``ckpt``; the first batch is checked against its training channels and size.
    """
    from syn2real.export import load_refiner

    refiner, record = load_refiner(ckpt, device)
    for k, batch in enumerate(DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)):
        if k == 0:  # one dataset, one image shape
            check_refiner_input(batch.images, record, ckpt, source)
        yield batch, refiner.refine(batch.images.to(device))


def check_refiner_input(images: torch.Tensor, record: dict[str, Any], ckpt: Path, source: Source) -> None:
    """``source``'s images must have the channels and size the refiner of ``ckpt`` (its ``record``) was trained on."""
    from syn2real.export import trained_size

    size = trained_size(record) or tuple(images.shape[-2:])  # size not recorded: any
    if images.shape[1] != record["channels"] or tuple(images.shape[-2:]) != size:
        raise ValueError(
            f"{ckpt}: the refiner was trained on {record['channels']}-channel {size[0]}×{size[1]} images, the "
            f"source {type(source).__name__} gives {images.shape[1]}-channel "
            f"{images.shape[-2]}×{images.shape[-1]} images: refine data of the kind the refiner was trained on"
        )
