"""``syn2real bench``: benchmarks as commands. ``zoo`` is the leaderboard of every method with an experiment config.

Each cell is a real ``syn2real fit`` run (:mod:`syn2real.bench.runs`); re-running reuses finished cells and retries
failed ones; failures are reported in the tables, never dropped.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console

from syn2real.bench.runs import (
    Cell,
    CellResult,
    add_jobs_argument,
    interrupted_message,
    mean_std,
    run_cells,
    write_runs_csv,
)
from syn2real.cli.configs import configs_dir, shown
from syn2real.cli.methods import import_methods
from syn2real.registry import family_of, list_methods

BASELINES = {"source_only": "baseline", "target_oracle": "baseline (ceiling)"}
QUICK_ARGS = ["--trainer.max_epochs=1"]


def zoo_cells(
    benchmark: str,
    seeds: list[int],
    out: Path,
    methods: list[str] | None,
    quick: bool,
    extra: list[str],
    experiments: Path,
) -> list[Cell]:
    """One cell per (experiment config ``<name>__<benchmark>.yaml`` in the ``experiments`` folder, seed)."""
    import_methods()
    configs = sorted(experiments.glob(f"*__{benchmark}.yaml"))
    if not configs:
        raise ValueError(f"no {experiments}/*__{benchmark}.yaml: unknown benchmark {benchmark!r}")
    cells = []
    for cfg in configs:
        name = cfg.name.split("__")[0]
        if methods and name not in methods:
            continue
        family = BASELINES.get(name) or (family_of(name) if name in list_methods() else "other")
        for seed in seeds:
            cells.append(
                Cell(
                    name=name,
                    seed=seed,
                    folder=out / name / f"seed{seed}",
                    args=["--config", str(cfg), *(QUICK_ARGS if quick else []), *extra],
                    tags={"method": name, "family": family, "config": shown(cfg)},
                )
            )
    if methods:
        unknown = sorted(set(methods) - {c.name for c in cells})
        if unknown:
            raise ValueError(f"no experiment config for {unknown} on {benchmark!r}")
    return cells


def leaderboard(results: list[CellResult], metric: str) -> list[dict[str, Any]]:
    """Mean ± std of ``metric``, wall time and (refiners) ``val/fd_effnet`` per experiment, best first.

    Failed runs are counted, not averaged; a refiner has no task accuracy of its own (its refined data is judged by
    ``syn2real refine`` + a task run), so its row shows the feature distance instead.
    """
    rows = []
    for name in dict.fromkeys(r.name for r in results):
        runs = [r for r in results if r.name == name]
        ok = [r for r in runs if r.status == "ok"]
        acc, acc_std = mean_std([100 * r.metrics[metric] for r in ok if metric in r.metrics])
        wall, _ = mean_std([r.wall_time_s for r in ok])
        fd = [r.metrics["val/fd_effnet"] for r in ok if "val/fd_effnet" in r.metrics]
        rows.append(
            {
                "method": name,
                "family": runs[0].tags.get("family", ""),
                "runs": len(ok),
                "failed": len(runs) - len(ok),
                "mean": acc,
                "std": acc_std,
                "wall_time_s": wall,
                "fd_effnet": mean_std(fd)[0] if fd else None,
                "fd_effnet_std": mean_std(fd)[1] if fd else None,
                "config": runs[0].tags.get("config", ""),
            }
        )
    return sorted(rows, key=lambda r: -r["mean"] if not math.isnan(r["mean"]) else math.inf)


def write_tables(out: Path, results: list[CellResult], board: list[dict[str, Any]], metric: str, title: str) -> None:
    """``results.csv`` (one row per run), ``results.json`` (runs + leaderboard), ``leaderboard.md`` and ``.png``."""
    out.mkdir(parents=True, exist_ok=True)
    rows = write_runs_csv(out / "results.csv", results)
    (out / "results.json").write_text(json.dumps({"metric": metric, "runs": rows, "leaderboard": board}, indent=2))
    lines = [
        f"| method | family | real test {metric.split('/')[-1]} (%) | fd_effnet to real | runs | failed | "
        "wall time / run (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in board:
        score = "n/a" if math.isnan(r["mean"]) else f"{r['mean']:.1f} ± {r['std']:.1f}"
        fd = "–" if r["fd_effnet"] is None else f"{r['fd_effnet']:.1f} ± {r['fd_effnet_std']:.1f}"
        wall = "n/a" if math.isnan(r["wall_time_s"]) else f"{r['wall_time_s']:.0f}"
        lines.append(f"| {r['method']} | {r['family']} | {score} | {fd} | {r['runs']} | {r['failed']} | {wall} |")
    (out / "leaderboard.md").write_text(f"# {title}\n\n" + "\n".join(lines) + "\n")
    _plot(out / "leaderboard.png", board, metric, title)


def _plot(path: Path, board: list[dict[str, Any]], metric: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in board if not math.isnan(r["mean"])]
    refiners = [r for r in board if r["fd_effnet"] is not None]
    rows = max(len(done), len(refiners), 1)
    fig, axes = plt.subplots(
        1,
        2 if refiners else 1,
        figsize=(9 if refiners else 6, 0.45 * rows + 1.4),
        dpi=100,
        squeeze=False,
        width_ratios=[2, 1] if refiners else [1],
    )
    ax = axes[0, 0]
    ax.barh(
        [r["method"] for r in done][::-1],
        [r["mean"] for r in done][::-1],
        xerr=[r["std"] for r in done][::-1],
        color="#4c78a8",
        capsize=3,
    )
    ax.set_xlabel(f"real test {metric.split('/')[-1]} (%), mean ± std over seeds")
    ax.set_xlim(0, 100)
    if refiners:  # refiners have no task accuracy: their distance to real images, lower is closer
        right = axes[0, 1]
        right.barh(
            [r["method"] for r in refiners][::-1],
            [r["fd_effnet"] for r in refiners][::-1],
            xerr=[r["fd_effnet_std"] for r in refiners][::-1],
            color="#f58518",
            capsize=3,
        )
        right.set_xlabel("fd_effnet to real (lower = closer)")
        right.set_title("refiners", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def zoo_command(argv: list[str]) -> int:
    """``syn2real bench zoo``."""
    parser = argparse.ArgumentParser(
        prog="syn2real bench zoo",
        description="Train every method that has "
        "configs/experiments/<method>__<benchmark>.yaml for several seeds and write a "
        "leaderboard (CSV, JSON, Markdown, PNG). Finished runs are reused.",
    )
    parser.add_argument("--benchmark", default="digits")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", help="only these experiments (default: all)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/zoo"))
    parser.add_argument("--quick", action="store_true", help="1 seed, 1 epoch each: the shape in minutes")
    parser.add_argument("--metric", default="test/target_acc")
    parser.add_argument("--configs", type=Path, help="configs folder holding experiments/ (default: the shipped one)")
    add_jobs_argument(parser)
    args, extra = parser.parse_known_args(argv)
    console = Console(stderr=True)
    seeds = args.seeds[:1] if args.quick else args.seeds
    try:
        experiments = configs_dir(args.configs) / "experiments"
        cells = zoo_cells(args.benchmark, seeds, args.out, args.methods, args.quick, extra, experiments)
    except (ValueError, FileNotFoundError) as err:
        console.print(f"[red]error:[/red] {err}")
        return 2
    done = iter(range(1, len(cells) + 1))

    def report(cell: Cell, result: CellResult) -> None:
        acc = result.metrics.get(args.metric, math.nan)
        console.print(
            f"[{next(done)}/{len(cells)}] {cell.name} seed {cell.seed}: {result.status}"
            f"{' (reused)' if result.reused else ''}, {args.metric} {acc:.4f}, {result.wall_time_s:.0f} s"
        )

    try:
        results = run_cells(cells, jobs=args.jobs, log=console.print, on_result=report)
    except KeyboardInterrupt:
        console.print(interrupted_message(args.out))
        return 130
    board = leaderboard(results, args.metric)
    write_tables(args.out, results, board, args.metric, f"syn2real zoo on {args.benchmark}")
    console.print((args.out / "leaderboard.md").read_text())
    failed = sum(r.status != "ok" for r in results)
    if failed:
        console.print(f"[red]{failed} run(s) failed[/red]: see {args.out}/results.csv and each run's output.log")
    return 1 if failed else 0
