"""Export a refined dataset: run a trained refiner over a syn2real dataset (``syn2real refine`` calls this).

Labels, masks, depth, ids and per-sample simulator parameters are carried over unchanged; only images change: label
maps, masks and depth files are hard-linked to the parent's (copied where the filesystem cannot link; never decoded),
the parent is checked by its images', masks' and label maps' headers and its depth files' existence (the export
decodes every image itself, with the same clear error), and with ``workers`` the images are read by DataLoader worker
processes and written by writer threads while the refiner runs. The output streams to a temporary folder renamed at
the end (an interrupt leaves nothing behind; re-run to redo), and ``producer`` records the refiner, its checkpoint and
the parent dataset.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from datamodules.errors import DatasetError
from datamodules.format import Syn2RealDataset
from datamodules.imageio import read_image
from datamodules.stages import select_stages
from datamodules.writer import DatasetWriter, prepare_output
from syn2real import __version__
from syn2real.finite_guard import nonfinite_tensors
from syn2real.label_preservation import LabelPreservation, SegmentationPreservation, load_judge
from syn2real.refiner import REFINER_RECORD
from syn2real.tasks.weights import read_checkpoint


def load_refiner(ckpt: Path, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """The refiner stored in ``ckpt`` (eval mode) and its record; a clear error for anything else."""
    checkpoint = read_checkpoint(ckpt)
    record = checkpoint.get(REFINER_RECORD) if isinstance(checkpoint, dict) else None
    if record is None:
        raise ValueError(
            f"{ckpt} is not a refiner checkpoint (no {REFINER_RECORD!r} record): `syn2real refine` "
            "needs a checkpoint written while training CycleGAN, SimGAN or another refiner"
        )
    module, _, name = record["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    model = cls.load_from_checkpoint(ckpt, map_location=device).eval()
    broken = nonfinite_tensors(model.state_dict())
    if broken:
        raise ValueError(
            f"{ckpt}: the refiner's weights are not finite ({broken[0]}{' and more' if len(broken) > 1 else ''}): its "
            "training diverged; refine with an earlier checkpoint or retrain with a lower learning rate"
        )
    return model, record


def trained_size(record: dict[str, Any]) -> tuple[int, int] | None:
    """The image size a refiner's checkpoint record says it was trained on; ``None`` when not recorded (any size)."""
    size = tuple(record.get("size") or ())
    return size if size and size != (0, 0) else None  # type: ignore[return-value]


def check_compatible(record: dict[str, Any], info: Any, where: Path) -> None:
    """The dataset must have the channels and image size the refiner was trained on."""
    if info.channels != record["channels"]:
        raise DatasetError(
            where,
            f"has {info.channels}-channel images; the refiner was trained on {record['channels']}-channel images",
            "refine data of the kind the refiner was trained on",
        )
    size = trained_size(record)
    if size is not None and tuple(info.size) != size:
        raise DatasetError(
            where,
            f"images are {info.size[0]}×{info.size[1]}; the refiner was trained on {size[0]}×{size[1]}",
            "resize the dataset or train the refiner at this size",
        )


class _Images(Dataset[tuple[int, Tensor, str]]):
    """The images of a syn2real dataset alone, with their row index: all an export decodes.

    A file that cannot be read comes back as its :class:`DatasetError`'s parts (JSON; a blank image in its place), so
    the export raises that same one-line error whether the image was read here or in a DataLoader worker process
    (which would otherwise re-raise it as a ``RuntimeError`` holding a traceback).
    """

    def __init__(self, dataset: Syn2RealDataset) -> None:
        self.root, self.rows, self.info = dataset.root, dataset.rows, dataset.info

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[int, Tensor, str]:
        try:
            return index, read_image(self.root / self.rows[index].image, self.info.channels), ""
        except DatasetError as err:
            return (
                index,
                torch.zeros(self.info.channels, *self.info.size),
                json.dumps([err.where, err.problem, err.fix]),
            )


def _raise_unreadable(errors: list[str]) -> None:
    for error in errors:
        if error:
            raise DatasetError(*json.loads(error))


def _unchanged(dataset: Syn2RealDataset, labels: list[int], indices: list[int]) -> dict[str, Any]:
    """The writer's arguments for what an export carries over: labels, and the files of masks, depth, label maps."""
    info, rows = dataset.info, [dataset.rows[i] for i in indices]
    out: dict[str, Any] = {"params": [dataset.params(i) for i in indices]}
    if info.labels:
        out["labels"] = (
            torch.tensor([labels[i] for i in indices])
            if info.task == "classification"
            else [dataset.root / r.label for r in rows]
        )
    if info.masks:
        out["masks"] = [dataset.root / r.mask for r in rows]
    if info.depth:
        out["depth"] = [dataset.root / r.depth for r in rows]
    return out


def refine_dataset(
    ckpt: Path,
    data: Path,
    out: Path,
    *,
    stage: str = "latest",
    batch_size: int = 64,
    device: str = "cpu",
    overwrite: bool = False,
    judge: Path | None = None,
    seed: int = 0,
    workers: int = 0,
    console: Console | None = None,
) -> dict[str, Any]:
    """Refine ``data`` with the refiner of ``ckpt`` into ``out``; returns counts and throughput.

    Refiners that draw noise (PixelDA's z) draw it from torch's generators seeded with ``seed`` inside the export
    (the caller's CPU and CUDA random states are restored afterwards), so the same seed and batch size give the same
    images.

    With ``judge`` (a task checkpoint trained on real labels, of the dataset's task) the result also holds the label
    preservation of the raw and refined images, per image or per pixel (:mod:`syn2real.label_preservation`),
    recorded in the export's ``producer`` too.
    ``workers`` > 0 reads images in that many processes and writes with as many threads (same output bytes).
    """
    with torch.random.fork_rng(devices=range(torch.cuda.device_count())):  # manual_seed seeds every device
        torch.manual_seed(seed)
        stages = select_stages(data, stage)
        inside = [p.resolve() for p in (data, *stages)]
        target = out.resolve()
        if any(p == target or target in p.parents or p in target.parents for p in inside):
            raise DatasetError(
                out, "is the dataset being refined, holds it or lies inside it", "write the refined dataset elsewhere"
            )
        prepare_output(out, overwrite=overwrite)
        model, record = load_refiner(ckpt, device)
        source = stages[0]
        dataset = Syn2RealDataset(source, verify="headers")
        check_compatible(record, dataset.info, source)
        meter = None
        per_pixel = dataset.info.task == "segmentation"
        if judge is not None:
            if not dataset.info.labels:
                raise DatasetError(
                    source, "has no labels: label preservation judges the refined images against them", "drop --judge"
                )
            judge_net = load_judge(
                judge, task=dataset.info.task, channels=dataset.info.channels, num_classes=len(dataset.info.classes)
            ).to(device)
            meter = SegmentationPreservation(judge_net) if per_pixel else LabelPreservation(judge_net)
        info = dataclasses.replace(
            dataset.info,
            producer={
                "name": "syn2real.refine",
                "version": __version__,
                "refiner": record["class_path"],
                "checkpoint": str(ckpt.resolve()),
                "config": dict(model.hparams),
                "parent": str(source.resolve()),
                "parent_producer": dataset.info.producer,
                "seed": seed,
            },
        )
        loader = DataLoader(_Images(dataset), batch_size=batch_size, shuffle=False, num_workers=workers)
        columns = (TextColumn("refine"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        started, done = time.perf_counter(), 0
        with (
            Progress(*columns, console=console or Console(stderr=True)) as bar,
            DatasetWriter(out, info, overwrite=overwrite, workers=max(1, workers)) as writer,
            torch.inference_mode(),
        ):
            task = bar.add_task("refine", total=len(dataset))
            labels = dataset.labels()
            for indices, images, errors in loader:
                _raise_unreadable(errors)
                index = indices.tolist()
                kept = _unchanged(dataset, labels, index)
                raw = images.to(device)
                out_images = model.refine(raw)
                if meter is not None:  # judged where the refiner ran: no round trip through the host
                    truth = torch.stack([dataset.label_map(i) for i in index]) if per_pixel else kept["labels"]
                    meter.update(raw, out_images, truth)
                writer.add_batch(ids=[dataset.rows[i].id for i in index], images=out_images.cpu(), **kept)
                done += len(index)
                bar.advance(task, len(index))
            if meter is not None:  # the header is written when the writer closes
                writer.info.producer["label_preservation"] = {**meter.rates(), "judge": str(judge.resolve())}
        seconds = time.perf_counter() - started
        result = {"images": done, "seconds": seconds, "images_per_s": done / max(seconds, 1e-9), "out": str(out)}
        if meter is not None:
            result["label_preservation"] = writer.info.producer["label_preservation"]
        return result
