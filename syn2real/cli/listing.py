"""``syn2real list``: registered methods, their configs, and the runnable experiments (fits 80 columns)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from syn2real import __version__
from syn2real.cli.configs import configs_dir, shown
from syn2real.method_index import method_index


def methods_table(configs: Path) -> Table:
    """One row per method: name, family, class path, benchmarks with an experiment config (fits 80 columns)."""
    table = Table(
        title=f"syn2real {__version__}: methods",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        caption="paper defaults: configs/model/<method>.yaml",
        caption_justify="left",
    )
    table.add_column("method", no_wrap=True)
    table.add_column("family", no_wrap=True)
    table.add_column("class", no_wrap=True)
    table.add_column("experiments on", overflow="fold")
    methods = method_index()  # read from the source tree: listing imports no method (nor torch)
    for m in methods:
        benchmarks = sorted(p.stem.split("__", 1)[1] for p in (configs / "experiments").glob(f"{m.name}__*.yaml"))
        missing = "" if (configs / "model" / f"{m.name}.yaml").is_file() else " (no model config)"
        table.add_row(m.name, m.family, m.class_path + missing, ", ".join(benchmarks) or "-")
    if not methods:
        table.add_row("(none yet)", "", "", "")
    return table


def list_command(argv: list[str]) -> int:
    """``syn2real list [--configs DIR]``."""
    parser = argparse.ArgumentParser(prog="syn2real list", description="List methods and experiment configs.")
    parser.add_argument("--configs", type=Path, help="configs folder (default: the installed or checked-out one)")
    args = parser.parse_args(argv)
    console = Console()
    try:
        configs = configs_dir(args.configs)
    except FileNotFoundError as err:
        Console(stderr=True).print(f"[red]error:[/red] {err}")
        return 2
    console.print(methods_table(configs))
    experiments = Table(title="experiments: syn2real fit --config <path>", title_justify="left", box=box.SIMPLE_HEAD)
    experiments.add_column("config", overflow="fold")
    for path in sorted((configs / "experiments").glob("*.yaml")):
        experiments.add_row(shown(path))
    console.print(experiments)
    console.print(f"configs folder: {configs}", overflow="fold", soft_wrap=False)
    return 0
