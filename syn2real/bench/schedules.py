"""``syn2real bench schedules``: hybrid vs pretrain-then-fine-tune over real-label budgets.

Schedules (each cell a real ``syn2real fit`` run of ``TaskModule``; see :mod:`syn2real.bench.runs`):

- ``synthetic_only``: train on the synthetic (or refined) data alone; also the pretraining of ``pretrain_finetune``
  and the budget-0 point of every schedule that uses synthetic data;
- ``real_only``: train on the real-label budget alone;
- ``hybrid``: one run on synthetic + real mixed at a given real fraction per batch (``--real-fractions`` sweeps);
- ``pretrain_finetune``: fine-tune the ``synthetic_only`` checkpoint of the same seed on the real budget
  (``--finetune-lr``, ``--freeze features``); ``--pretrain-config`` swaps in any experiment (e.g. DANN, AdaBN) as
  the synthetic stage.

Budgets are seeded, class-stratified subsets of the labeled real pool, nested across budgets of one seed.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from syn2real.bench.benchmarks import get_benchmark
from syn2real.bench.runs import Cell, CellResult, add_jobs_argument, interrupted_message, run_cells
from syn2real.bench.schedules_config import SCHEDULES, SchedulesConfig, load_schedules_config
from syn2real.bench.schedules_report import write_schedule_tables
from syn2real.cli.configs import configs_dir


def _real(split: str, folder: str | None, channels: int, size: int, background: str) -> dict[str, Any]:
    if folder is None:
        return {
            "class_path": "datamodules.RealDigitsSource",
            "init_args": {
                "split": split,
                "use_labels": True,
                "channels": channels,
                "size": size,
                "background": background,
            },
        }
    return {
        "class_path": "datamodules.ImageFolderSource",
        "init_args": {"root": folder, "channels": channels, "size": [size, size]},
    }


class Plan:
    """The cells of one schedules benchmark, built from its :class:`SchedulesConfig`."""

    def __init__(self, config: SchedulesConfig) -> None:
        self.config = config
        self.out: Path = config.out
        c, s = config.network.in_channels, config.size
        bg = get_benchmark(config.benchmark).background
        self.synthetic = (
            {
                "class_path": "datamodules.Syn2RealSource",
                "init_args": {"root": config.synthetic, "stage": config.synthetic_stage},
            }
            if config.synthetic
            else {
                "class_path": "datamodules.DigitsSimulatorSource",
                "init_args": {"num_samples": config.synthetic_samples, "seed": 0, "config": {"channels": c}},
            }
        )
        self.pool = _real("pool", config.real_train, c, s, bg)
        self.val, self.test = _real("val", config.real_val, c, s, bg), _real("test", config.real_test, c, s, bg)

    def _config(
        self,
        train: list[dict[str, Any]],
        proportions: list[float] | None,
        steps: int,
        batch: int,
        model: dict[str, Any] | None = None,
        lr: float | None = None,
    ) -> dict[str, Any]:
        """A ``TaskModule`` run; ``model`` adds init args, ``lr`` replaces the benchmark's learning rate."""
        a = self.config
        optimizer = {"name": "adamw", "lr": a.lr if lr is None else lr, "weight_decay": a.weight_decay}
        return {
            "trainer": {
                "accelerator": a.accelerator,
                "devices": 1,
                "max_steps": steps,
                "max_epochs": -1,
                "num_sanity_val_steps": 0,
                "callbacks": [
                    {
                        "class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
                        "init_args": {"save_last": True, "save_top_k": 0},
                    }
                ],
            },
            "model": {
                "class_path": "syn2real.tasks.TaskModule",
                "init_args": {"network": dataclasses.asdict(a.network), "optimizer": optimizer, **(model or {})},
            },
            "data": {
                "class_path": "datamodules.TaskDataModule",
                "init_args": {
                    "train": train,
                    "proportions": proportions,
                    "val": self.val,
                    "test": self.test,
                    "batch_size": batch,
                    "epoch_size": steps * batch,
                    "augment": a.augment,
                },
            },
        }

    def _budget(self, budget: int, seed: int) -> dict[str, Any]:
        return {
            "class_path": "datamodules.BudgetSource",
            "init_args": {"source": self.pool, "budget": budget, "seed": seed},
        }

    def _cell(
        self,
        schedule: str,
        seed: int,
        budget: int,
        config: dict[str, Any] | None,
        extra: list[str] | None = None,
        fraction: float | None = None,
        needs: Path | None = None,
    ) -> Cell:
        label = schedule if fraction is None else f"hybrid@{fraction:g}"
        folder = self.out / label / f"seed{seed}" if budget == 0 else self.out / f"{label}__b{budget}" / f"seed{seed}"
        args = list(extra or [])
        if config is not None:
            folder.mkdir(parents=True, exist_ok=True)
            (folder.parent / f"config.seed{seed}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
            args = ["--config", str(folder.parent / f"config.seed{seed}.yaml"), *args]
        return Cell(
            name=label,
            seed=seed,
            folder=folder,
            args=args,
            tags={"schedule": label, "budget": budget, "real_fraction": fraction},
            needs=needs,
        )

    def pretrain(self, seed: int) -> Cell:
        a = self.config
        if a.pretrain_config:
            return self._cell("synthetic_only", seed, 0, None, ["--config", str(a.pretrain_config)])
        return self._cell(
            "synthetic_only", seed, 0, self._config([self.synthetic], None, a.synthetic_steps, a.batch_size)
        )

    def cells(self, seed: int, budget: int, pretrained: Cell | None) -> list[Cell]:
        a, out = self.config, []
        real = self._budget(budget, seed)
        if "real_only" in a.schedules:
            out.append(
                self._cell(
                    "real_only", seed, budget, self._config([real], None, a.finetune_steps, a.finetune_batch_size)
                )
            )
        if "pretrain_finetune" in a.schedules:
            assert pretrained is not None, "pretrain_finetune needs its seed's synthetic_only cell"
            ckpt = pretrained.folder / "checkpoints" / "last.ckpt"
            model = {"init_from": str(ckpt), "freeze_features": a.freeze == "features"}
            out.append(
                self._cell(
                    "pretrain_finetune",
                    seed,
                    budget,
                    self._config([real], None, a.finetune_steps, a.finetune_batch_size, model, lr=a.finetune_lr),
                    needs=pretrained.folder,  # a pretraining run again makes this fine-tune stale
                )
            )
        if "hybrid" in a.schedules:
            for f in a.real_fractions:
                out.append(
                    self._cell(
                        "hybrid",
                        seed,
                        budget,
                        self._config(
                            [self.synthetic, real], [1 - f, f], a.synthetic_steps + a.finetune_steps, a.batch_size
                        ),
                        fraction=f,
                    )
                )
        return out

    def all_cells(self) -> tuple[list[Cell], dict[int, int]]:
        """Every cell of every seed, and which cell each fine-tune waits for (its seed's pretraining)."""
        a = self.config
        cells: list[Cell] = []
        after: dict[int, int] = {}
        needs_pretrain = bool({"synthetic_only", "pretrain_finetune"} & set(a.schedules)) or 0 in a.budgets
        for seed in a.seeds:
            pre, pre_index = (self.pretrain(seed) if needs_pretrain else None), len(cells)
            if pre is not None:
                cells.append(pre)
            for budget in [b for b in a.budgets if b > 0]:
                for cell in self.cells(seed, budget, pre):
                    if cell.name == "pretrain_finetune":
                        after[len(cells)] = pre_index
                    cells.append(cell)
        return cells, after


def check_inputs(config: SchedulesConfig) -> None:
    """Everything that can be checked before the first run, the budgets against the labeled pool included."""
    config.check()
    from datamodules.folders import ImageFolderDataset
    from datamodules.real_digits import RealDigits

    pool = (
        RealDigits("pool")
        if config.real_train is None
        else ImageFolderDataset(config.real_train, channels=config.network.in_channels, size=(config.size,) * 2)
    )
    too_big = [b for b in config.budgets if b > len(pool)]
    if too_big:
        raise ValueError(
            f"budget(s) {too_big} exceed the labeled real pool ({len(pool)} images); the largest "
            f"possible budget is {len(pool)}"
        )


FLAGS = {  # flag -> (config key, type, nargs, help); every default comes from configs/bench/schedules.yaml
    "--benchmark": ("benchmark", str, None, "digits | digits-photo (the simulator and real digits to use)"),
    "--schedules": ("schedules", str, "+", f"any of {', '.join(SCHEDULES)}"),
    "--budgets": ("budgets", int, "+", "real labeled images per run (0 = synthetic only)"),
    "--seeds": ("seeds", int, "+", "training seeds"),
    "--real-fractions": ("real_fractions", float, "+", "hybrid: real share per batch"),
    "--synthetic": ("synthetic", str, None, "syn2real dataset or optimize-sim run folder; default: the simulator"),
    "--synthetic-stage": ("synthetic_stage", str, None, "stage of an optimize-sim run: latest | best | all | <index>"),
    "--synthetic-samples": ("synthetic_samples", int, None, "images rendered by the simulator"),
    "--pretrain-config": ("pretrain_config", str, None, "experiment config to use as the synthetic stage"),
    "--real-train": ("real_train", str, None, "labeled real pool (class folders); default: the real digits pool"),
    "--real-val": ("real_val", str, None, "labeled real validation folder"),
    "--real-test": ("real_test", str, None, "labeled real test folder"),
    "--size": ("size", int, None, "image side"),
    "--lr": ("lr", float, None, "learning rate on synthetic / hybrid / real-only data"),
    "--finetune-lr": ("finetune_lr", float, None, "learning rate of the fine-tuning"),
    "--freeze": ("freeze", str, None, "none | features"),
    "--synthetic-steps": ("synthetic_steps", int, None, "steps on synthetic data"),
    "--finetune-steps": ("finetune_steps", int, None, "steps on the real budget"),
    "--batch-size": ("batch_size", int, None, "batch size on synthetic / hybrid data"),
    "--finetune-batch-size": ("finetune_batch_size", int, None, "batch size on the real budget"),
    "--augment": ("augment", str, None, "none | light | strong"),
    "--accelerator": ("accelerator", str, None, "Lightning accelerator"),
    "--out": ("out", Path, None, "output folder"),
}
NETWORK_FLAGS = {
    "--arch": ("arch", str),
    "--width": ("width", int),
    "--num-classes": ("num_classes", int),
    "--channels": ("in_channels", int),
}


def parse(argv: list[str]) -> tuple[SchedulesConfig, int]:
    """The benchmark's config (defaults file, ``--quick`` file, flags) and ``--jobs``."""
    p = argparse.ArgumentParser(prog="syn2real bench schedules", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, help="settings YAML (default: configs/bench/schedules.yaml)")
    for flag, (key, kind, nargs, text) in FLAGS.items():
        p.add_argument(flag, dest=key, type=kind, nargs=nargs, help=text)
    for flag, (key, kind) in NETWORK_FLAGS.items():
        p.add_argument(flag, dest=f"network_{key}", type=kind, help=f"task network {key}")
    p.add_argument("--configs", type=Path, help="configs folder (default: the shipped one)")
    add_jobs_argument(p)
    p.add_argument("--quick", action="store_true", help="budgets 0 10 100, 1 seed, short training: minutes")
    args = vars(p.parse_args(argv))
    bench = configs_dir(args.pop("configs")) / "bench"
    files = [args.pop("config") or bench / "schedules.yaml"] + (
        [bench / "schedules_quick.yaml"] if args.pop("quick") else []
    )
    jobs = args.pop("jobs")
    network = {k.removeprefix("network_"): args.pop(k) for k in list(args) if k.startswith("network_")}
    if args.get("benchmark") is not None and network.get("in_channels") is None:
        network["in_channels"] = get_benchmark(args["benchmark"]).channels  # the benchmark's images, unless --channels
    config = load_schedules_config(files, args)
    if any(v is not None for v in network.values()):
        config = dataclasses.replace(
            config, network=dataclasses.replace(config.network, **{k: v for k, v in network.items() if v is not None})
        )
    return config, jobs


def schedules_command(argv: list[str]) -> int:
    """Run (or resume) the schedules benchmark and write its tables and plot."""
    console = Console(stderr=True)
    try:
        config, jobs = parse(argv)
        check_inputs(config)
    except (ValueError, OSError) as err:
        console.print(f"[red]error:[/red] {err}")
        return 2
    plan = Plan(config)
    cells, after = plan.all_cells()

    def report(cell: Cell, result: CellResult) -> None:
        budget = cell.tags.get("budget", 0)
        console.print(f"seed {cell.seed} {cell.name} budget {budget}: {_fmt(result)}")
        if result.status != "ok" and result.error:
            console.print(f"  {result.error.splitlines()[-1]}")

    try:
        results = run_cells(cells, jobs=jobs, after=after, log=console.print, on_result=report)
    except KeyboardInterrupt:
        console.print(interrupted_message(config.out))
        return 130
    summary = write_schedule_tables(config.out, results, list(config.budgets), "test/target_acc")
    console.print(summary)
    failed = sum(r.status != "ok" for r in results)
    return 1 if failed else 0


def _fmt(result: CellResult) -> str:
    acc = result.metrics.get("test/target_acc", math.nan)
    return f"{100 * acc:.1f}% ({'reused' if result.reused else result.status})"
