"""The ``syn2real`` console script: the composition root, one module per command.

``syn2real fit|validate|test|predict`` run LightningCLI (:mod:`syn2real.cli.lightning`); ``simulate``, ``import``,
``refine``, ``adapt-bn``, ``list``, ``bench`` and ``train-policy`` are plain commands. Only this package and
:mod:`syn2real.bench` import the method families; each command imports what it needs when it runs, so
``syn2real --help`` starts fast.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from syn2real import __version__

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
COMMANDS = {  # command -> "module:function" taking argv and returning an exit status
    "simulate": "syn2real.cli.simulate:simulate_command",
    "import": "syn2real.cli.import_data:import_command",
    "optimize-sim": "syn2real.cli.optimize_sim:optimize_sim_command",
    "refine": "syn2real.cli.refine:refine_command",
    "adapt-bn": "syn2real.cli.adapt_bn:adapt_bn_command",
    "list": "syn2real.cli.listing:list_command",
    "bench": "syn2real.cli.bench:bench_command",
    "train-policy": "syn2real.cli.train_policy:train_policy_command",
}

USAGE = """usage: syn2real <command> [options]

commands:
  fit | validate | test | predict   train / evaluate with LightningCLI:  syn2real fit --config CONFIG.yaml
  simulate                          render the built-in digits simulator into a syn2real dataset
  import                            SOLO / BlenderProc / Replicator output -> syn2real dataset: --from solo SRC --out O
  optimize-sim                      search the simulator's ψ (meta-sim | autosimulate | lts), one stage per step
  refine                            export a refined dataset: syn2real refine --ckpt C --data D --out O
  adapt-bn                          AdaBN: re-estimate a trained model's BN statistics on real images
  list                              registered methods and runnable experiment configs
  bench zoo | schedules | speed     leaderboard of every method / hybrid vs pretrain-finetune / speed ratios
  train-policy                      meta-train ASG's learning-rate policy: --config ASG_EXPERIMENT.yaml --out DIR

`syn2real <command> --help` describes each command's options. Bad input is one line naming the file and the
fix (exit status 2); `syn2real fit ... --traceback` shows the full trace instead.
"""


def cli_main(args: Any = None, *, run: bool = True) -> Any:
    """Build (and with ``run``, execute) the Lightning command line; see :func:`syn2real.cli.lightning.cli_main`."""
    from syn2real.cli.lightning import cli_main as lightning_main

    return lightning_main(args, run=run)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``syn2real`` console script."""
    from_shell = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return
    if argv[0] in ("-V", "--version"):
        sys.stdout.write(f"syn2real {__version__}\n")
        return
    if argv[0] in COMMANDS:
        module, _, function = COMMANDS[argv[0]].partition(":")
        sys.exit(getattr(importlib.import_module(module), function)(argv[1:]))
    if argv[0] not in LIGHTNING_COMMANDS:
        sys.stderr.write(f"syn2real: unknown command {argv[0]!r}\n\n{USAGE}")
        sys.exit(2)
    full_trace = "--traceback" in argv
    if full_trace:
        argv.remove("--traceback")
        if from_shell:
            sys.argv.remove("--traceback")
    from datamodules.errors import DatasetError

    try:
        cli_main(None if from_shell else argv)  # LightningCLI reads sys.argv itself when run from the shell
    except (DatasetError, FileNotFoundError, FloatingPointError) as err:  # bad input or divergence: one line
        if full_trace:
            raise
        sys.stderr.write(f"error: {err}\n(syn2real {argv[0]} --traceback ... shows the full trace)\n")
        sys.exit(2)
