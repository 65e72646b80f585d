"""``syn2real bench schedules``: hybrid vs pretrain-then-fine-tune over real-label budgets.

Schedules (each cell a real ``syn2real fit`` run of ``TaskModule``; see :mod:`syn2real.runs`):

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
import math
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from syn2real.runs import Cell, CellResult, add_jobs_argument, interrupted_message, run_cells
from syn2real.schedules_report import write_schedule_tables

SCHEDULES = ("synthetic_only", "real_only", "hybrid", "pretrain_finetune")
DIGITS_POOL = {"class_path": "datamodules.RealDigitsSource", "init_args": {"split": "pool", "use_labels": True}}


def _real(split: str, folder: str | None, channels: int, size: int) -> dict[str, Any]:
    if folder is None:
        return {"class_path": "datamodules.RealDigitsSource", "init_args": {"split": split, "use_labels": True,
                                                                             "channels": channels, "size": size}}
    return {"class_path": "datamodules.ImageFolderSource",
            "init_args": {"root": folder, "channels": channels, "size": [size, size]}}


class Plan:
    """The cells of one schedules benchmark, built from the command-line flags."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out: Path = args.out
        c, s = args.channels, args.size
        self.synthetic = ({"class_path": "datamodules.Syn2RealSource", "init_args": {"root": args.synthetic}}
                          if args.synthetic else
                          {"class_path": "datamodules.DigitsSimulatorSource",
                           "init_args": {"num_samples": args.synthetic_samples, "seed": 0}})
        self.pool = _real("pool", args.real_train, c, s)
        self.val, self.test = _real("val", args.real_val, c, s), _real("test", args.real_test, c, s)

    def _config(self, train: list[dict[str, Any]], proportions: list[float] | None, steps: int, batch: int,
                model: dict[str, Any]) -> dict[str, Any]:
        a = self.args
        return {
            "trainer": {"accelerator": a.accelerator, "devices": 1, "max_steps": steps, "max_epochs": -1,
                        "num_sanity_val_steps": 0,
                        "callbacks": [{"class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
                                       "init_args": {"save_last": True, "save_top_k": 0}}]},
            "model": {"class_path": "syn2real.tasks.TaskModule",
                      "init_args": {"arch": a.arch, "width": a.width, "num_classes": a.num_classes,
                                    "in_channels": a.channels,
                                    "lr": a.lr, "weight_decay": 1e-4, **model}},
            "data": {"class_path": "datamodules.TaskDataModule",
                     "init_args": {"train": train, "proportions": proportions, "val": self.val, "test": self.test,
                                   "batch_size": batch, "epoch_size": steps * batch, "augment": a.augment}},
        }

    def _budget(self, budget: int, seed: int) -> dict[str, Any]:
        return {"class_path": "datamodules.BudgetSource",
                "init_args": {"source": self.pool, "budget": budget, "seed": seed}}

    def _cell(self, schedule: str, seed: int, budget: int, config: dict[str, Any] | None,
              extra: list[str] | None = None, fraction: float | None = None) -> Cell:
        label = schedule if fraction is None else f"hybrid@{fraction:g}"
        folder = self.out / label / f"seed{seed}" if budget == 0 else self.out / f"{label}__b{budget}" / f"seed{seed}"
        args = list(extra or [])
        if config is not None:
            folder.mkdir(parents=True, exist_ok=True)
            (folder.parent / f"config.seed{seed}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
            args = ["--config", str(folder.parent / f"config.seed{seed}.yaml"), *args]
        return Cell(name=label, seed=seed, folder=folder, args=args,
                    tags={"schedule": label, "budget": budget, "real_fraction": fraction})

    def pretrain(self, seed: int) -> Cell:
        a = self.args
        if a.pretrain_config:
            return self._cell("synthetic_only", seed, 0, None, ["--config", str(a.pretrain_config)])
        return self._cell("synthetic_only", seed, 0, self._config([self.synthetic], None, a.synthetic_steps,
                                                                  a.batch_size, {}))

    def cells(self, seed: int, budget: int, pretrained: Cell) -> list[Cell]:
        a, out = self.args, []
        real = self._budget(budget, seed)
        if "real_only" in a.schedules:
            out.append(self._cell("real_only", seed, budget, self._config([real], None, a.finetune_steps,
                                                                          a.finetune_batch_size, {})))
        if "pretrain_finetune" in a.schedules:
            ckpt = pretrained.folder / "checkpoints" / "last.ckpt"
            model = {"init_from": str(ckpt), "lr": a.finetune_lr, "freeze_features": a.freeze == "features"}
            out.append(self._cell("pretrain_finetune", seed, budget, self._config(
                [real], None, a.finetune_steps, a.finetune_batch_size, model)))
        if "hybrid" in a.schedules:
            for f in a.real_fractions:
                out.append(self._cell("hybrid", seed, budget, self._config(
                    [self.synthetic, real], [1 - f, f], a.synthetic_steps + a.finetune_steps, a.batch_size, {}),
                    fraction=f))
        return out

    def all_cells(self) -> tuple[list[Cell], dict[int, int]]:
        """Every cell of every seed, and which cell each fine-tune waits for (its seed's pretraining)."""
        a = self.args
        cells: list[Cell] = []
        after: dict[int, int] = {}
        needs_pretrain = bool({"synthetic_only", "pretrain_finetune"} & set(a.schedules)) or 0 in a.budgets
        for seed in a.seeds:
            pre, pre_index = self.pretrain(seed), len(cells)
            if needs_pretrain:
                cells.append(pre)
            for budget in [b for b in a.budgets if b > 0]:
                for cell in self.cells(seed, budget, pre):
                    if cell.name == "pretrain_finetune":
                        after[len(cells)] = pre_index
                    cells.append(cell)
        return cells, after


def check_inputs(args: argparse.Namespace) -> None:
    """Everything that can be checked before the first run: schedule names, budgets vs the labeled pool."""
    unknown = sorted(set(args.schedules) - set(SCHEDULES))
    if unknown:
        raise ValueError(f"unknown schedule(s) {unknown}; choose from {list(SCHEDULES)}")
    if any(not 0 < f < 1 for f in args.real_fractions):
        raise ValueError(f"real fractions must lie strictly between 0 and 1, got {args.real_fractions}")
    from datamodules.folders import ImageFolderDataset
    from datamodules.real_digits import RealDigits

    pool = (RealDigits("pool") if args.real_train is None else
            ImageFolderDataset(args.real_train, channels=args.channels, size=(args.size, args.size)))
    too_big = [b for b in args.budgets if b > len(pool)]
    if too_big:
        raise ValueError(f"budget(s) {too_big} exceed the labeled real pool ({len(pool)} images); the largest "
                         f"possible budget is {len(pool)}")
    if args.real_train is not None and (args.real_val is None or args.real_test is None):
        raise ValueError("with --real-train give --real-val and --real-test too (labeled class folders)")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="syn2real bench schedules", description=__doc__.split("\n\n")[0])
    p.add_argument("--schedules", nargs="+", default=list(SCHEDULES))
    p.add_argument("--budgets", type=int, nargs="+", default=[0, 10, 50, 250, 1000])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--real-fractions", type=float, nargs="+", default=[0.5], help="hybrid: real share per batch")
    p.add_argument("--synthetic", help="syn2real dataset (simulated or refined); default: the digits simulator")
    p.add_argument("--synthetic-samples", type=int, default=10000)
    p.add_argument("--pretrain-config", type=Path, help="experiment config to use as the synthetic stage")
    p.add_argument("--real-train", help="labeled real pool (class folders); default: the real digits pool")
    p.add_argument("--real-val", help="labeled real validation folder")
    p.add_argument("--real-test", help="labeled real test folder")
    p.add_argument("--arch", default="small_cnn")
    p.add_argument("--width", type=int, default=32, help="width of small_cnn")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--finetune-lr", type=float, default=5e-4)
    p.add_argument("--freeze", choices=["none", "features"], default="none")
    p.add_argument("--synthetic-steps", type=int, default=160, help="steps on synthetic data (~2 epochs of 10k)")
    p.add_argument("--finetune-steps", type=int, default=100, help="steps on the real budget")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--finetune-batch-size", type=int, default=64)
    p.add_argument("--augment", choices=["none", "light", "strong"], default="none")
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--out", type=Path, default=Path("runs/bench/schedules"))
    add_jobs_argument(p)
    p.add_argument("--quick", action="store_true", help="budgets 0 10 100, 1 seed, short training: minutes")
    args = p.parse_args(argv)
    if args.quick:
        args.budgets, args.seeds = [0, 10, 100], args.seeds[:1]
        args.synthetic_steps, args.finetune_steps, args.synthetic_samples = 80, 60, 5000
    return args


def schedules_command(argv: list[str]) -> int:
    """Run (or resume) the schedules benchmark and write its tables and plot."""
    args = parse(argv)
    console = Console(stderr=True)
    try:
        check_inputs(args)
    except (ValueError, OSError) as err:
        console.print(f"[red]error:[/red] {err}")
        return 2
    plan = Plan(args)
    cells, after = plan.all_cells()

    def report(cell: Cell, result: CellResult) -> None:
        budget = cell.tags.get("budget", 0)
        console.print(f"seed {cell.seed} {cell.name} budget {budget}: {_fmt(result)}")
        if result.status != "ok" and result.error:
            console.print(f"  {result.error.splitlines()[-1]}")

    try:
        results = run_cells(cells, jobs=args.jobs, after=after, log=console.print, on_result=report)
    except KeyboardInterrupt:
        console.print(interrupted_message(args.out))
        return 130
    summary = write_schedule_tables(args.out, results, args.budgets, "test/target_acc")
    console.print(summary)
    failed = sum(r.status != "ok" for r in results)
    return 1 if failed else 0


def _fmt(result: CellResult) -> str:
    acc = result.metrics.get("test/target_acc", math.nan)
    return f"{100 * acc:.1f}% ({'reused' if result.reused else result.status})"
