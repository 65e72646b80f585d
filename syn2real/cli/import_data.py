"""``syn2real import``: a real simulator's output (SOLO, BlenderProc, Replicator) -> a syn2real dataset.

The source folder is only read; the dataset streams through the atomic :class:`~datamodules.writer.DatasetWriter`.
A folder with a ``stages.yaml`` manifest becomes a run of stage datasets (``stage_000/`` ...) carrying each
stage's name, index, parameters and score, readable with ``stage: latest | best | all | <index>``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from datamodules.errors import DatasetError
from syn2real import __version__

FORMATS = ("solo", "blenderproc", "replicator")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syn2real import",
        description="Convert Unity Perception SOLO, BlenderProc (HDF5 or COCO) or Omniverse Replicator BasicWriter "
        "output into a syn2real dataset (images, labels, masks, depth, ψ per sample). The source is never modified.",
    )
    parser.add_argument("--from", dest="format", choices=FORMATS, required=True, help="the simulator's format")
    parser.add_argument("src", type=Path, help="the simulator's output folder (or a folder with stages.yaml)")
    parser.add_argument("--out", type=Path, required=True, help="dataset folder to create")
    parser.add_argument(
        "--task",
        choices=("segmentation", "classification"),
        default="segmentation",
        help="segmentation: a label map per frame; classification: a crop per object",
    )
    parser.add_argument("--classes", nargs="+", metavar="NAME", help="keep only these simulator classes")
    parser.add_argument(
        "--class-map",
        type=Path,
        metavar="YAML",
        help="YAML mapping `simulator class: class` (or a list of classes to keep)",
    )
    parser.add_argument(
        "--background",
        default="background",
        help="segmentation: class of pixels on no object (class 0); 'none' makes them ignore (255)",
    )
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="segmentation: resize frames; classification: crop size (default 64 64)",
    )
    parser.add_argument("--channels", type=int, choices=(1, 3), default=3)
    parser.add_argument("--crops-from", choices=("auto", "boxes", "instances"), default="auto")
    parser.add_argument("--padding", type=float, default=0.1, help="crop context, fraction of the box's longer side")
    parser.add_argument("--min-visible", type=float, default=0.0, help="skip objects less visible than this")
    parser.add_argument("--clip-boxes", action="store_true", help="clip boxes that leave the image")
    parser.add_argument("--invalid-depth", type=float, default=0.0, help="depth written where nothing was hit")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing syn2real dataset at --out")
    return parser


def _class_spec(args: argparse.Namespace) -> dict[str, str] | list[str] | None:
    if args.classes and args.class_map:
        raise DatasetError(args.class_map, "given together with --classes", "use one of --classes and --class-map")
    if args.classes:
        return list(args.classes)
    if args.class_map is None:
        return None
    if not args.class_map.exists():
        raise DatasetError(args.class_map, "class map not found", "check the --class-map path")
    try:
        spec = yaml.safe_load(args.class_map.read_text())
    except yaml.YAMLError as err:
        raise DatasetError(args.class_map, f"is not valid YAML ({' '.join(str(err).split())})", "fix it") from None
    if isinstance(spec, dict) and all(isinstance(v, str | int) for v in spec.values()):
        return {str(k): str(v) for k, v in spec.items()}
    if isinstance(spec, list):
        return [str(v) for v in spec]
    raise DatasetError(args.class_map, f"holds {type(spec).__name__}", "write `simulator name: class` lines or a list")


def build_source(args: argparse.Namespace) -> Any:
    """The format's source with the command's options (every stage of a run)."""
    from datamodules.readers import FORMATS as SOURCES

    return SOURCES[args.format](
        root=str(args.src),
        task=args.task,
        classes=_class_spec(args),
        background=None if args.background.lower() in ("none", "null", "") else args.background,
        channels=args.channels,
        size=tuple(args.size) if args.size else None,
        crops_from=args.crops_from,
        padding=args.padding,
        min_visible=args.min_visible,
        clip_boxes=args.clip_boxes,
        invalid_depth=args.invalid_depth,
        stage="all",
    )


def import_command(argv: list[str]) -> int:
    """``syn2real import --from FORMAT SRC --out DIR``."""
    args = _parser().parse_args(argv)
    console = Console(stderr=True)
    from datamodules.writer import DatasetWriter, prepare_output

    try:
        src, out = args.src.resolve(), args.out.resolve()
        if out == src or src in out.parents:
            raise DatasetError(args.out, f"lies inside the source folder {args.src}", "write the dataset elsewhere")
        source = build_source(args)
        stages = source.stages()
        run = stages[0][1] is not None
        outs = [args.out / f"stage_{k:03d}" for k in range(len(stages))] if run else [args.out]
        for folder in outs:  # a run's stages are replaced one by one (each only if it is a syn2real dataset)
            prepare_output(folder, overwrite=args.overwrite)
        if run and args.out.is_dir() and not args.overwrite and any(args.out.iterdir()):
            prepare_output(args.out, overwrite=False)
        opened = [(folder, record, source.open(folder)) for folder, record in stages]  # every frame checked first
    except (DatasetError, ValueError, ImportError) as err:
        console.print(f"[red]error:[/red] {err}")
        return 2
    columns = (TextColumn("import"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    total = 0
    with Progress(*columns, console=console) as bar:
        for k, (folder, record, data) in enumerate(opened):
            info = data.info()
            info.producer = {
                "name": "syn2real.import",
                "version": __version__,
                "parent": str(folder),
                "config": {
                    "from": args.format,
                    **{
                        key: _plain(v)
                        for key, v in vars(args).items()
                        if key not in ("format", "src", "out", "overwrite")
                    },
                    "classes": source.classes,
                },
            }
            info.stage = record
            task = bar.add_task(folder.name, total=len(data))
            with DatasetWriter(outs[k], info, overwrite=args.overwrite) as writer:
                for i in range(len(data)):
                    writer.add(data[i], params=data.params(i))
                    bar.advance(task)
            total += len(data)
    where = f"{len(opened)} stage datasets in {args.out}" if run else str(args.out)
    console.print(f"wrote {total} samples ({args.task}, classes {opened[0][2].classes}) to {where}")
    return 0


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value
