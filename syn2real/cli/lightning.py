"""``syn2real fit|validate|test|predict``: LightningCLI in subclass mode for model and data, with syn2real defaults."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import ArgsType, LightningCLI
from pytorch_lightning.utilities import rank_zero_warn

import datamodules.data_modules  # noqa: F401  (lets --data=TaskDataModule resolve)
from syn2real import __version__
from syn2real.cli.config_files import MODE
from syn2real.cli.methods import import_methods
from syn2real.finite_guard import FiniteGuard
from syn2real.val_selection import BestValidationWeights

import_methods()  # registers every method; lets --model=DANN resolve


class Syn2RealCLI(LightningCLI):
    """LightningCLI with syn2real defaults: tests the final model after ``fit`` and writes ``results.json``."""

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=True,
            help="after fit, evaluate the final weights on data.test and write results.json",
        )
        parser.add_argument(
            "--test_val_selected",
            type=bool,
            default=False,
            help="also test the weights of the best real-validation epoch (metrics test_valsel/*: they use the "
            "validation labels)",
        )

    def _run_subcommand(self, subcommand: str) -> None:
        """Run it; if it fails before writing anything but its config, remove the run folder it created."""
        log_dir = Path(self.trainer.log_dir) if self.trainer.logger is not None and self.trainer.log_dir else None
        existed = log_dir is not None and log_dir.exists()
        try:
            super()._run_subcommand(subcommand)
        except BaseException:
            if log_dir is not None and not existed and _only_config(log_dir):
                shutil.rmtree(log_dir, ignore_errors=True)
            raise

    def before_fit(self) -> None:
        if self.trainer.max_epochs == 0 or self.trainer.max_steps == 0:
            from datamodules.errors import DatasetError

            key = "max_epochs" if self.trainer.max_epochs == 0 else "max_steps"
            raise DatasetError(f"trainer.{key}", "is 0: nothing would be trained", f"set trainer.{key} to 1 or more")
        self._started = time.perf_counter()
        self.trainer.callbacks.append(FiniteGuard())
        self._best = None
        if self.config[self.subcommand].get("test_val_selected"):
            self._best = BestValidationWeights()
            self.trainer.callbacks.append(self._best)

    def after_fit(self) -> None:
        wall = time.perf_counter() - self._started
        if self.trainer.interrupted:
            return
        # the last validation's metrics (e.g. a refiner's val/fd_effnet), then the test of the final weights
        metrics: dict[str, float] = {
            k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith("val/") and v.numel() == 1
        }
        if self.config[self.subcommand].get("test_after_fit") and getattr(self.datamodule, "test", None) is not None:
            for result in self.trainer.test(self.model, datamodule=self.datamodule, verbose=True):
                metrics |= result
            if self._best is not None and self._best.state is not None:
                kept = self._best.restore(self.model)
                for result in self.trainer.test(self.model, datamodule=self.datamodule, verbose=False):
                    metrics |= {k.replace("test/", "test_valsel/", 1): v for k, v in result.items()}
                metrics |= {"valsel_epoch": kept["epoch"], "valsel_score": kept["score"]}
        self._write_results(metrics | {"fit_wall_time_s": wall})

    def after_test(self) -> None:
        self._write_results(dict(self.trainer.callback_metrics.items()))

    def _write_results(self, metrics: dict[str, Any]) -> None:
        if not self.trainer.is_global_zero:
            return
        if self.trainer.logger is None or self.trainer.log_dir is None:  # no run folder: write nothing elsewhere
            rank_zero_warn("no logger, so no run folder: results.json is not written (the metrics are logged above)")
            return
        out = Path(self.trainer.log_dir) / "results.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "syn2real_version": __version__,
            "subcommand": self.subcommand,
            "seed": self.config[self.subcommand].get("seed_everything"),
            "model": type(self.model).__name__,
            # a run reproduces bit for bit only at the same torch version and CPU thread count (the order of float
            # reductions follows the threads): recorded so that two results can be told apart
            "torch_version": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "metrics": {k: float(v) for k, v in metrics.items()},
        }
        out.write_text(json.dumps(record, indent=2) + "\n")


def _only_config(folder: Path) -> bool:
    """Whether ``folder`` holds nothing a failed run should keep (its saved config, hparams, empty folders)."""
    return all(p.is_dir() or p.name in ("config.yaml", "hparams.yaml") for p in folder.rglob("*"))


def cli_main(args: ArgsType = None, *, run: bool = True) -> Syn2RealCLI:
    """Build (and with ``run``, execute) the Lightning command line; callable from tests and benchmarks."""
    return Syn2RealCLI(
        pl.LightningModule,
        pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        parser_kwargs={"parser_mode": MODE},  # includes + dotted overrides (syn2real.cli.config_files)
        args=args,
        run=run,
    )
