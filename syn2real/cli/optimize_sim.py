"""``syn2real optimize-sim``: search the simulator's ψ (Meta-Sim, AutoSimulate, Learning-to-Simulate).

One stage dataset per stage, resumable; every method then trains on ``stage: best`` of the run folder.

The run is described by a YAML file (``configs/optimize_sim/*.yaml``)::

    strategy: meta-sim            # meta-sim | autosimulate | lts
    benchmark: digits             # real images: the benchmark's unlabeled pool (meta-sim) and val split (others)
    real: null                    # or a flat folder of unlabeled real images (meta-sim)
    real_val: null                # or a folder of class subfolders (autosimulate, lts)
    renderer: null                # or "package.module:Class", your simulator (syn2real.simopt.Renderer protocol)
    simulator: {}                 # fixed DigitsSimulatorConfig fields (channels: 3 for digits-photo), or your
                                  # renderer's keyword arguments
    search: {scale: [0.4, 1.3]}   # field or field.low / field.high -> search range
    start: {}                     # starting ψ (default: the simulator defaults, clipped into the ranges)
    stages: 12
    stage_samples: 10000          # renders written per stage (the digits benchmark trains on 10,000)
    seed: 0                       # the stage datasets' render seed (the default-ψ baseline uses the same)
    network: {arch: small_cnn, width: 16}
    meta-sim: {...}               # the strategy's keyword arguments
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import importlib
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from rich.console import Console

from datamodules.errors import DatasetError
from datamodules.folders import ImageFolderDataset, UnlabeledFolderDataset
from datamodules.simulator import DigitsSimulatorConfig
from syn2real.bench.benchmarks import get_benchmark

STRATEGIES = ("meta-sim", "autosimulate", "lts")
KEYS = {
    "strategy",
    "benchmark",
    "real",
    "real_val",
    "renderer",
    "simulator",
    "search",
    "start",
    "stages",
    "stage_samples",
    "seed",
    "network",
    *STRATEGIES,
}
QUICK = {  # --quick: the shape of a run in minutes
    "stages": 3,
    "stage_samples": 1000,
    "meta-sim": {"samples": 96},
    "autosimulate": {"train_samples": 500, "inner_steps": 30, "hessian_samples": 96, "cg_iterations": 4},
    "lts": {"samples_per_stage": 2, "train_samples": 500, "steps": 30},
}


def load_run_config(path: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """The run config with command-line ``overrides``; unknown keys and strategies are refused."""
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise DatasetError(path, "is not a mapping of settings", "see configs/optimize_sim/digits_meta_sim.yaml")
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise DatasetError(path, f"unknown keys {unknown}", f"use only {sorted(KEYS)}")
    config = {"benchmark": "digits", "simulator": {}, "start": {}, "stages": 12, "stage_samples": 10000, "seed": 0}
    config.update(data)
    for key, value in overrides.items():
        if isinstance(value, dict):
            config[key] = {**config.get(key, {}), **value}
        elif value is not None:
            config[key] = value
    if config.get("strategy") not in STRATEGIES:
        raise DatasetError(path, f"strategy {config.get('strategy')!r} is not one of {STRATEGIES}", "set strategy:")
    if not config.get("search"):
        raise DatasetError(path, "has no search space", "add search: {field: [low, high], ...}")
    return config


def simulator_base(config: dict[str, Any], path: Path) -> DigitsSimulatorConfig:
    fields = {f.name for f in dataclasses.fields(DigitsSimulatorConfig)}
    unknown = sorted(set(config["simulator"]) - fields)
    if unknown:
        raise DatasetError(path, f"unknown simulator fields {unknown}", f"use only {sorted(fields)}")
    values = {k: tuple(v) if isinstance(v, list) and k != "fonts" else v for k, v in config["simulator"].items()}
    try:
        return DigitsSimulatorConfig(**values)
    except ValueError as err:
        raise DatasetError(path, f"simulator: {err}", "fix the value") from None


def build_renderer(config: dict[str, Any], path: Path) -> Any:
    """The built-in digits simulator, or the user's ``renderer: "module:Class"`` built with ``simulator`` kwargs."""
    from syn2real.simopt.space import DigitsRenderer, Renderer

    spec = config.get("renderer")
    if spec is None:
        return DigitsRenderer(simulator_base(config, path))
    module, _, name = str(spec).partition(":")
    try:
        renderer = getattr(importlib.import_module(module), name)(**config["simulator"])
    except (ImportError, AttributeError, TypeError, ValueError) as err:
        raise DatasetError(path, f"renderer {spec!r} could not be built ({err})", 'use "module:Class"') from None
    if not isinstance(renderer, Renderer):
        raise DatasetError(
            path,
            f"renderer {spec!r} does not follow the Renderer protocol",
            "give it name, classes, channels, size, defaults(), domain(), render() and record()",
        )
    return renderer


def real_images(
    config: dict[str, Any], *, channels: int, size: int, labeled: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unlabeled pool images (``labeled=False``) or labeled validation images and labels, as tensors."""
    from datamodules.real_digits import RealDigits

    folder = config.get("real_val" if labeled else "real")
    if folder is None and config.get("real") is not None and labeled:
        raise DatasetError(
            Path(config["real"]),
            "is unlabeled, and this strategy needs labeled real validation images",
            "add real_val: <folder of class subfolders>, or use strategy: meta-sim (no labels)",
        )
    if folder is None:
        bench = get_benchmark(config["benchmark"])
        if bench.channels != channels:
            raise DatasetError(
                Path(f"benchmark {bench.name}"),
                f"has {bench.channels}-channel images, the simulator renders {channels}",
                f"set simulator: {{channels: {bench.channels}}}",
            )
        data = RealDigits("val" if labeled else "pool", size=size, channels=channels, background=bench.background)
        return data.images, data.label_tensor
    if labeled:
        ds: Any = ImageFolderDataset(folder, classes=[str(d) for d in range(10)], channels=channels, size=(size, size))
        samples = [ds[i] for i in range(len(ds))]
        return torch.stack([s.image for s in samples]), torch.stack([s.label for s in samples])
    ds = UnlabeledFolderDataset(folder, channels=channels, size=(size, size))
    return torch.stack([ds[i].image for i in range(len(ds))]), torch.empty(0)


def meta_sim_features(name: str, size: int | None, *, checkpoint: str | None = None, channels: int = 1) -> Any:
    """Meta-Sim's frozen feature function by name.

    ``effnet``: the offline EfficientNet-Lite0 at ``size`` px (default 64); ``pixels``: images pooled to
    ``size``×``size`` (default 8); ``task``: the pooled features of the task network in ``checkpoint`` (a syn2real
    task checkpoint, e.g. source-only trained on the default renders: still no real label).
    """
    from syn2real.simopt.objectives import PixelFeatures, TaskFeatures

    if name == "effnet":
        from syn2real.distances import EffNetFeatures

        return EffNetFeatures(size or 64)
    if name == "pixels":
        return PixelFeatures(size or 8)
    if name == "task":
        if checkpoint is None:
            raise ValueError(
                "meta-sim features: task needs task_checkpoint: <a syn2real task checkpoint>, e.g. "
                "runs/source_only__digits/version_0/checkpoints/last.ckpt from `syn2real fit --config "
                "configs/experiments/source_only__digits.yaml`"
            )
        return TaskFeatures(Path(checkpoint), channels=channels)
    raise ValueError(f"unknown meta-sim features {name!r}; use effnet, pixels or task")


def build_strategy(config: dict[str, Any], space: Any, renderer: Any) -> Any:
    """The strategy named in ``config`` with its data and settings."""
    from syn2real.simopt.autosimulate import AutoSimulate
    from syn2real.simopt.lts import LearningToSimulate
    from syn2real.simopt.metasim import MetaSim
    from syn2real.simopt.objectives import FeatureMMD, TrainAndValidate
    from syn2real.tasks.networks import TaskNetworkSpec

    name, seed = config["strategy"], config["seed"]
    options = dict(config.get(name) or {})
    network = TaskNetworkSpec(
        **{"arch": "small_cnn", "width": 16, **(config.get("network") or {})}, in_channels=renderer.channels
    )
    if name == "meta-sim":
        pool, _ = real_images(config, channels=renderer.channels, size=renderer.size, labeled=False)
        distance = FeatureMMD(
            renderer=renderer,
            features=meta_sim_features(
                options.pop("features", "effnet"),
                options.pop("feature_size", None),
                checkpoint=options.pop("task_checkpoint", None),
                channels=renderer.channels,
            ),
            real_images=pool,
            samples=options.pop("samples", 256),
            seed=seed + 1000,
        )
        return MetaSim(space=space, distance=distance, seed=seed, **options)
    val_images, val_labels = real_images(config, channels=renderer.channels, size=renderer.size, labeled=True)
    if name == "autosimulate":
        return AutoSimulate(
            space=space,
            renderer=renderer,
            val_images=val_images,
            val_labels=val_labels,
            network=network,
            seed=seed,
            **options,
        )
    reward_keys = ("train_samples", "steps", "batch_size", "lr")
    reward = TrainAndValidate(
        renderer=renderer,
        val_images=val_images,
        val_labels=val_labels,
        network=network,
        seed=seed,
        **{k: options.pop(k) for k in reward_keys if k in options},
    )
    return LearningToSimulate(space=space, reward=reward, seed=seed, **options)


def optimize_sim_command(argv: list[str]) -> int:
    """``syn2real optimize-sim``."""
    parser = argparse.ArgumentParser(
        prog="syn2real optimize-sim",
        description="Search the built-in simulator's parameters ψ; write one syn2real stage dataset per stage. "
        "Re-running the same command resumes after the last complete stage.",
    )
    parser.add_argument("--config", type=Path, required=True, help="run config (configs/optimize_sim/*.yaml)")
    parser.add_argument("--out", type=Path, required=True, help="run folder (train on it with stage: best)")
    parser.add_argument("--strategy", choices=STRATEGIES, help="override the config's strategy")
    parser.add_argument("--stages", type=int, help="override the number of stages")
    parser.add_argument("--quick", action="store_true", help="3 small stages: the shape of a run in minutes")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    from syn2real.simopt.report import write_report
    from syn2real.simopt.run import StageRun, optimize
    from syn2real.simopt.space import SearchSpace

    try:
        overrides: dict[str, Any] = {"strategy": args.strategy, "stages": args.stages}
        if args.quick:
            overrides = {**copy.deepcopy(QUICK), **{k: v for k, v in overrides.items() if v is not None}}
        config = load_run_config(args.config, overrides)
        renderer = build_renderer(config, args.config)
        space = SearchSpace(renderer, config["search"])
        start = space.initial(config["start"])
        settings = {k: config.get(k) for k in sorted(KEYS - {"stages"}) if k in config}  # more stages extend a run
        run = StageRun(args.out, renderer=renderer, settings=settings)
        strategy = build_strategy(config, space, renderer)
    except (DatasetError, ValueError, TypeError, FileNotFoundError) as err:
        console.print(f"[red]error:[/red] {err}")
        return 2
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn(f"optimize-sim {strategy.name}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    started = time.perf_counter()
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("stages", total=config["stages"])

        def on_stage(entry: dict[str, Any]) -> None:
            bar.update(task, completed=entry["stage"] + 1)
            console.print(
                f"stage {entry['stage']}: {strategy.score_name} {entry['score']:.4f} ({entry['wall_s']:.0f} s)"
            )

        try:
            history = optimize(
                run,
                strategy,
                space,
                stages=config["stages"],
                stage_samples=config["stage_samples"],
                seed=config["seed"],
                start=start,
                on_stage=on_stage,
            )
        except KeyboardInterrupt:
            console.print(f"[yellow]interrupted[/yellow]: run the same command to resume from {args.out}")
            return 130
    write_report(args.out, history, score_name=strategy.score_name)
    best = max(history, key=lambda h: h["score"])
    console.print(
        f"{len(history)} stages in {args.out} ({time.perf_counter() - started:.0f} s this call); best: stage "
        f"{best['stage']} ({strategy.score_name} {best['score']:.4f}). Train on it with "
        f"Syn2RealSource(root={args.out}, stage=best); report: {args.out / 'report.md'}"
    )
    return 0
