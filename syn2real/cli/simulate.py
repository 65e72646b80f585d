"""``syn2real simulate``: render the built-in digits simulator into a syn2real (stage) dataset."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from datamodules.errors import DatasetError
from syn2real import __version__
from syn2real.bench.runs import positive_int  # standard library only: simulate --help stays light

if TYPE_CHECKING:
    from datamodules.simulator import DigitsSimulatorConfig


def load_simulator_config(path: Path | None) -> DigitsSimulatorConfig:
    """A simulator config from YAML (keys of :class:`DigitsSimulatorConfig`), with a clear error on unknown keys."""
    from datamodules.simulator import DigitsSimulatorConfig

    if path is None:
        return DigitsSimulatorConfig()
    if not path.is_file():
        raise DatasetError(path, "simulator config not found", "check the --config path")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise DatasetError(path, f"is not valid YAML ({' '.join(str(err).split())})", "fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise DatasetError(path, f"holds a {type(data).__name__}, not a mapping of ψ keys", "write `key: value` lines")
    data = data.get("config", data)  # accept a whole DigitsSimulatorSource init_args block too
    known = {f.name for f in dataclasses.fields(DigitsSimulatorConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise DatasetError(path, f"unknown simulator keys {unknown}", f"use only {sorted(known)}")
    for key, value in data.items():
        if isinstance(value, list) and key != "fonts":
            data[key] = tuple(value)
    try:
        return DigitsSimulatorConfig(**data)
    except (TypeError, ValueError) as err:
        raise DatasetError(path, str(err), "fix the value") from None


def simulate_command(argv: list[str]) -> int:
    """``syn2real simulate``: render digits into a syn2real (stage) dataset."""
    parser = argparse.ArgumentParser(
        prog="syn2real simulate",
        description="Render the built-in digits simulator "
        "into a syn2real dataset folder (images, labels, masks, depth, ψ per sample).",
    )
    parser.add_argument("--out", type=Path, required=True, help="dataset folder to create (e.g. runs/sim/stage_000)")
    parser.add_argument("--config", type=Path, help="YAML of simulator parameters ψ (DigitsSimulatorConfig keys)")
    parser.add_argument("--num-samples", type=positive_int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stage-index", type=int, default=0, help="stage index recorded in dataset.json")
    parser.add_argument("--stage-name", default=None, help="stage name (default: stage_<index>)")
    parser.add_argument("--score", type=float, default=None, help="stage score to record (for stage: best)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    parser.add_argument(
        "--workers", type=positive_int, default=1, help="threads writing files while the next batch renders"
    )
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    from datamodules.simulator import config_record  # torch: only once the arguments are known to be good
    from datamodules.writer import prepare_output

    try:
        config = load_simulator_config(args.config)
        prepare_output(args.out, overwrite=args.overwrite)
    except DatasetError as err:
        console.print(f"[red]error:[/red] {err}")
        return 2
    from syn2real.simopt.run import write_rendered
    from syn2real.simopt.space import DigitsRenderer

    stage = {
        "name": args.stage_name or f"stage_{args.stage_index:03d}",
        "index": args.stage_index,
        "parameters": config_record(config),
        "score": args.score,
    }
    producer = {
        "name": "syn2real.simulate",
        "version": __version__,
        "config": {"seed": args.seed, "num_samples": args.num_samples, "simulator": config_record(config)},
        "parent": None,
    }
    columns = (TextColumn("simulate"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("render", total=args.num_samples)
        write_rendered(
            args.out,
            DigitsRenderer(config),
            {},
            num_samples=args.num_samples,
            seed=args.seed,
            producer=producer,
            stage=stage,
            overwrite=args.overwrite,
            on_batch=lambda n: bar.advance(task, n),
            workers=args.workers,
        )
    console.print(f"wrote {args.num_samples} samples to {args.out}")
    return 0
