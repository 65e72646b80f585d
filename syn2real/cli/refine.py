"""``syn2real refine --ckpt CKPT --data DATASET --out DIR``: the command around :mod:`syn2real.export`."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from datamodules.errors import DatasetError


def refine_command(argv: list[str]) -> int:
    """``syn2real refine``: export a refined syn2real dataset."""
    from syn2real.export import refine_dataset

    parser = argparse.ArgumentParser(
        prog="syn2real refine",
        description="Export a refined syn2real dataset: "
        "every image through the refiner; labels, masks, depth and ids unchanged.",
    )
    parser.add_argument("--ckpt", type=Path, required=True, help="refiner checkpoint (CycleGAN, SimGAN...)")
    parser.add_argument("--data", type=Path, required=True, help="syn2real dataset or run folder of stages")
    parser.add_argument("--out", type=Path, required=True, help="refined dataset folder to create")
    parser.add_argument("--stage", default="latest", help="stage of a run folder: latest | best | <index>")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    parser.add_argument(
        "--workers", type=int, default=0, help="processes reading images (and threads writing them); 0 = none"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of a refiner's noise (PixelDA): same seed, same export"
    )
    parser.add_argument(
        "--judge",
        type=Path,
        help="a task checkpoint trained on real labels (e.g. the target oracle): report the share of raw and of "
        "refined images it assigns their source label, or for label maps its mIoU on raw and refined (label "
        "preservation)",
    )
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    try:
        result = refine_dataset(
            args.ckpt,
            args.data,
            args.out,
            stage=args.stage,
            batch_size=args.batch_size,
            device=args.device,
            overwrite=args.overwrite,
            judge=args.judge,
            seed=args.seed,
            workers=args.workers,
            console=console,
        )
    except (DatasetError, FileNotFoundError, ValueError) as err:
        console.print(f"[red]error:[/red] {err}")
        return 2
    console.print(
        f"refined {result['images']} images in {result['seconds']:.1f} s "
        f"({result['images_per_s']:.0f} images/s) -> {result['out']}"
    )
    if "label_preservation" in result:
        kept = result["label_preservation"]
        what = "mIoU on the label maps, " if "naming_raw" in kept else ""  # judged per pixel
        console.print(
            f"label preservation (judge {args.judge}): {what}raw {100 * kept['raw']:.1f}%, "
            f"refined {100 * kept['refined']:.1f}%"
        )
    return 0
