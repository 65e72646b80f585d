"""``syn2real adapt-bn``: AdaBN for a model that is already trained.

Re-estimates its BN statistics on real images and writes an adapted checkpoint (same class, same weights, new
statistics) that ``syn2real test --ckpt_path`` and ``TaskModule(init_from=...)`` read as usual.
"""

from __future__ import annotations

import argparse
import os
import uuid
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from datamodules.digit_scenes import RealDigitScenesSource
from datamodules.errors import DatasetError
from datamodules.format import read_info
from datamodules.real_digits import Background
from datamodules.sources import ImageFolderSource, RealDigitsSource, Source, Syn2RealSource, UnlabeledFolderSource
from datamodules.stages import select_stages
from syn2real.batch import collate
from syn2real.bn_stats import bn_layers, reestimate_bn_stats
from syn2real.tasks.weights import load_task_checkpoint

BUILTIN_POOLS: dict[str, tuple[type[RealDigitsSource | RealDigitScenesSource], Background]] = {
    "digits-real-pool": (RealDigitsSource, "black"),
    "digits-photo-real-pool": (RealDigitsSource, "photo"),
    "digits-scenes-real-pool": (RealDigitScenesSource, "photo"),
}
"""The unlabeled real pools of the built-in benchmarks (``digits``, ``digits-photo``, ``digits-scenes``).

Each name maps to the source that reads it and the background of its images."""


def _builtin_pool(name: str, channels: int) -> Source:
    """The unlabeled real pool of a built-in benchmark, at the model's channel count.

    The datasets refuse photo backgrounds below 3 channels too, but their fix ("set channels: 3") is a config's; here
    the channel count is the model's, so the error says which pool to use instead.
    """
    source, background = BUILTIN_POOLS[name]
    if background == "photo" and channels != 3:
        raise ValueError(
            f"{name!r} holds RGB images (real digits on photo patches) but the model takes {channels} channel(s): "
            "adapt a 3-channel model, or use 'digits-real-pool'"
        )
    return source(split="pool", channels=channels, background=background, use_labels=False)


def _source_for(data: str, channels: int, size: tuple[int, int] | None) -> Source:
    """A source reading ``data`` without its labels: a built-in pool, a syn2real dataset/run, or image folders."""
    if data in BUILTIN_POOLS:
        return _builtin_pool(data, channels)
    root = Path(data)
    if not root.is_dir():
        pools = ", ".join(repr(p) for p in BUILTIN_POOLS)
        raise DatasetError(root, "folder does not exist", f"give a dataset or image folder, or one of {pools}")
    if (root / "dataset.json").is_file() or any((p / "dataset.json").is_file() for p in root.iterdir()):
        info = read_info(select_stages(root, "latest")[0])
        if info.channels != channels:
            raise DatasetError(
                root,
                f"has {info.channels}-channel images but the model takes {channels}",
                "adapt with images of the model's channel count (or retrain the model)",
            )
        return Syn2RealSource(root=data, use_labels=False)
    if any(p.is_dir() for p in root.iterdir()):
        return ImageFolderSource(root=data, channels=channels, size=size, use_labels=False)
    return UnlabeledFolderSource(root=data, channels=channels, size=size)


def adapt_checkpoint(
    ckpt: Path,
    data: str,
    out: Path,
    *,
    batch_size: int = 128,
    size: tuple[int, int] | None = None,
    overwrite: bool = False,
    device: str = "cpu",
) -> dict[str, Any]:
    """Re-estimate the BN statistics of ``ckpt``'s task network on ``data``; write the result to ``out``.

    Every check (output path, checkpoint, data, BN layers) runs before anything is written; the file is written to
    a temporary name and renamed, so an error never leaves a partial checkpoint.
    """
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; choose another --out or pass --overwrite")
    if out.resolve() == ckpt.resolve():
        raise ValueError(f"{out} is the checkpoint being adapted: write the adapted checkpoint to another --out")
    loaded = load_task_checkpoint(ckpt)
    network, spec, prefix, checkpoint = loaded.network, loaded.spec, loaded.prefix, loaded.checkpoint
    if not bn_layers(network):
        raise ValueError(f"the network in {ckpt} ({spec.arch}) has no BatchNorm layers: nothing to adapt")
    dataset = _source_for(data, spec.in_channels, size).load()
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        collate_fn=collate,
        drop_last=len(dataset) >= batch_size,
        generator=torch.Generator().manual_seed(0),
    )
    network.to(device)
    seen = reestimate_bn_stats(network, (b.images.to(device) for b in loader))
    for key, value in network.state_dict().items():
        checkpoint["state_dict"][prefix + key] = value.cpu()
    checkpoint["syn2real_adapt_bn"] = {
        "source_checkpoint": str(ckpt),
        "data": data,
        "images": seen,
        "batch_size": batch_size,
        "prefix": prefix,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}.partial"  # created by torch.save: umask permissions
    try:
        torch.save(checkpoint, tmp)
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return checkpoint["syn2real_adapt_bn"]


def adapt_bn_command(argv: list[str]) -> int:
    """``syn2real adapt-bn --ckpt CKPT --data DATA --out OUT``."""
    parser = argparse.ArgumentParser(
        prog="syn2real adapt-bn",
        description="AdaBN: re-estimate a trained model's "
        "BatchNorm statistics on (unlabeled) real images and write a new checkpoint.",
    )
    parser.add_argument("--ckpt", type=Path, required=True, help="checkpoint of a task model (TaskModule, DANN...)")
    parser.add_argument(
        "--data", required=True, help=f"syn2real dataset, image folder, or a built-in pool: {', '.join(BUILTIN_POOLS)}"
    )
    parser.add_argument("--out", type=Path, required=True, help="adapted checkpoint to write")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="resize folder images to H W")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    try:
        record = adapt_checkpoint(
            args.ckpt,
            args.data,
            args.out,
            batch_size=args.batch_size,
            size=tuple(args.size) if args.size else None,
            overwrite=args.overwrite,
            device=args.device,
        )
    except (DatasetError, FileExistsError, FileNotFoundError, ValueError) as err:
        console.print(f"[red]error:[/red] {err}")
        return 2
    console.print(f"re-estimated BN statistics on {record['images']} images; wrote {args.out}")
    return 0
