"""``syn2real bench zoo``: the leaderboard of every method with an experiment config, each row paired with its baseline.

Each cell is a real ``syn2real fit`` run (:mod:`syn2real.bench.runs`) that also tests its validation-selected
weights; re-running reuses finished cells and retries failed ones; failures are reported in the tables, never
dropped. Which baseline a row is compared with comes from ``configs/bench/zoo.yaml``
(:mod:`syn2real.bench.zoo_pairs`); the tables from :mod:`syn2real.bench.zoo_report`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from rich.console import Console

from datamodules.errors import DatasetError
from syn2real.bench.benchmarks import BENCHMARKS, get_benchmark
from syn2real.bench.runs import (
    Cell,
    CellResult,
    add_jobs_argument,
    finished_results,
    interrupted_message,
    run_cells,
)
from syn2real.bench.synthetic import check_synthetic, synthetic_cells
from syn2real.bench.zoo_pairs import Pairing, ZooConfig, check_rows, load_zoo_config
from syn2real.bench.zoo_refiners import REFINER_SUFFIX, add_label_preservation, refiner_cells
from syn2real.bench.zoo_report import leaderboard, write_tables
from syn2real.cli.configs import configs_dir, shown
from syn2real.cli.methods import import_methods
from syn2real.registry import family_of, list_methods

BASELINES = {"source_only": "baseline", "source_only_mixture": "baseline", "target_oracle": "baseline (ceiling)"}
QUICK_ARGS = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=0.5"]  # --quick: half an epoch per run
QUICK_JUDGED = 1000  # --quick: label preservation on the first 1,000 renders
RUN_ARGS = ["--test_val_selected=true"]


def zoo_cells(
    benchmark: str,
    seeds: list[int],
    out: Path,
    methods: list[str] | None,
    quick: bool,
    extra: list[str],
    experiments: Path,
    zoo: ZooConfig,
    zoo_path: Path,
    *,
    every_row: bool = False,
) -> list[Cell]:
    """One cell per (experiment config ``<name>__<benchmark>.yaml`` in the ``experiments`` folder, seed).

    Every experiment must have a pairing in ``zoo`` (read from ``zoo_path``; refused otherwise, before any run);
    ``unpaired`` rows are left out unless named in ``methods`` (or ``every_row``: all rows, to collect finished
    runs; nothing is written), and a named row brings its baseline along, and that one's (:func:`with_baselines`; a
    refiner also its judge). A ``refines`` row gives two cells per seed (:mod:`syn2real.bench.zoo_refiners`).
    """
    import_methods()
    configs = sorted(experiments.glob(f"*__{benchmark}.yaml"))
    if not configs:
        raise ValueError(f"no {experiments}/*__{benchmark}.yaml: no experiment configs for benchmark {benchmark!r}")
    names = [cfg.name.split("__")[0] for cfg in configs]
    check_rows(zoo, names, config_path=zoo_path)
    wanted = with_baselines(set(methods or []), zoo)
    judged = lambda m: zoo.rows[m].kind == "refines" or zoo.rows[m].label_preservation is not None  # noqa: E731
    if zoo.judge is not None and any(judged(m) for m in wanted if m in zoo.rows):
        wanted.add(zoo.judge)  # per image for classification, per pixel for segmentation
    cells = []
    for cfg, name in zip(configs, names, strict=True):
        pairing = zoo.rows[name]
        if wanted and name not in wanted:
            continue
        if not wanted and pairing.kind == "unpaired" and not every_row:
            continue
        family = BASELINES.get(name) or (family_of(name) if name in list_methods() else "other")
        tags = {"method": name, "family": family, "config": shown(cfg), "benchmark": benchmark}
        quick_args = QUICK_ARGS if quick else []
        if pairing.kind == "refines":
            task = experiments / f"{pairing.value}__{benchmark}.yaml"
            if not task.is_file():
                raise ValueError(
                    f"{zoo_path}: row {name!r} refines {pairing.value!r}, but {task} is missing: add that experiment "
                    "or change the row"
                )
            cells += refiner_cells(
                name,
                cfg,
                task,
                seeds,
                out,
                refiner_args=[*quick_args, *extra],
                task_args=[*RUN_ARGS, *quick_args, *extra],
                tags=tags,
                write=not every_row,
            )
            continue
        judged_on = pairing.label_preservation  # its refiner, judged on a task row's renders
        for seed in seeds:
            folder = out / name / f"seed{seed}"
            judged = {
                "refiner_checkpoint": str(folder / "checkpoints" / "last.ckpt"),
                "task_experiment": str(experiments / f"{judged_on}__{benchmark}.yaml"),
            }
            cells.append(
                Cell(
                    name=name,
                    seed=seed,
                    folder=folder,
                    args=["--config", str(cfg), *RUN_ARGS, *quick_args, *extra],
                    tags=tags if judged_on is None else {**tags, **judged},
                )
            )
    if methods:
        unknown = sorted(set(methods) - {c.name for c in cells})
        if unknown:
            raise ValueError(f"no experiment config for {unknown} on {benchmark!r}")
    return cells


def with_baselines(methods: set[str], zoo: ZooConfig) -> set[str]:
    """``methods`` and their baselines, and the baselines' baselines (a control paired with a method brings both).

    Examples:
        >>> from syn2real.bench.zoo_pairs import Pairing
        >>> rows = {"a": Pairing("reference", "x"), "b": Pairing("baseline", "a"), "c": Pairing("baseline", "b")}
        >>> sorted(with_baselines({"c"}, ZooConfig(seeds=(0, 1), rows=rows)))
        ['a', 'b', 'c']
    """
    wanted, frontier = set(methods), set(methods)
    while frontier:
        frontier = {zoo.rows[m].baseline_row for m in frontier if m in zoo.rows and zoo.rows[m].baseline_row}
        frontier -= wanted
        wanted |= frontier
    return wanted


def seeds_in(out: Path) -> set[int]:
    """The seeds of the runs already under a benchmark's folder (``<row>/seed<N>``, ``<row>/refiner/seed<N>``)."""
    folders = [*out.glob("*/seed*"), *out.glob("*/refiner/seed*")]
    return {int(f.name[4:]) for f in folders if f.name[4:].isdigit()}


def benchmark_tables(
    name: str,
    cells: list[Cell],
    results: list[CellResult],
    every: list[Cell],
    zoo: ZooConfig,
    rows: dict[str, Pairing],
    metric: str,
    out: Path,
    console: Console,
    *,
    quick: bool = False,
) -> str:
    """Write one benchmark's tables from this invocation's runs and every run finished earlier under ``out``.

    Refiner rows get their label preservation (judged by ``zoo.judge``'s run of the same seed) first; a run that
    cannot be judged is reported, not fatal. Returns the Markdown table.
    """
    ran = {c.folder for c in cells}
    earlier = [c for c in every if c.folder not in ran]
    mine = [r for r in results if r.tags["benchmark"] == name] + finished_results(earlier)
    if zoo.judge is not None:
        for note in add_label_preservation(mine, cells + earlier, zoo.judge, limit=QUICK_JUDGED if quick else None):
            console.print(f"[yellow]label preservation ({name}):[/yellow] {note}")
    rows = {
        **rows,
        **{r.name: Pairing("reference", "refiner training") for r in mine if r.name.endswith(REFINER_SUFFIX)},
    }
    return write_tables(out, mine, leaderboard(mine, metric, rows), metric, f"syn2real zoo on {name}")


def metric_of(benchmark: str, given: str | None) -> str:
    """The metric a benchmark's leaderboard uses: ``given``, else its own (accuracy; mIoU for segmentation)."""
    if given:
        return given
    known = BENCHMARKS.get(benchmark)
    return known.metric if known is not None else "test/target_acc"


def benchmarks_in(experiments: Path) -> list[str]:
    """The benchmarks that have experiment configs ``<row>__<benchmark>.yaml`` in ``experiments``."""
    return sorted({cfg.stem.split("__", 1)[1] for cfg in experiments.glob("*__*.yaml")})


def zoo_command(argv: list[str]) -> int:
    """``syn2real bench zoo``."""
    parser = argparse.ArgumentParser(
        prog="syn2real bench zoo",
        description="Train every method that has configs/experiments/<method>__<benchmark>.yaml for several seeds "
        "and write a leaderboard (CSV, JSON, Markdown, PNG) with each row beside its paired baseline "
        "(configs/bench/zoo.yaml). Finished runs are reused.",
    )
    parser.add_argument(
        "--benchmark", nargs="+", default=list(BENCHMARKS), help=f"any of {', '.join(BENCHMARKS)} (default: all)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="training seeds (default: the zoo config's, 5)")
    parser.add_argument("--methods", nargs="+", help="only these experiments, with their baselines (default: all)")
    parser.add_argument(
        "--out",
        type=Path,
        help="one folder per benchmark inside (default: runs/bench/zoo, with --quick runs/bench/zoo_quick)",
    )
    parser.add_argument("--quick", action="store_true", help="2 seeds, half an epoch each: the shape in minutes")
    parser.add_argument(
        "--synthetic",
        type=Path,
        help="an optimize-sim run folder: also run every row on its --stage, paired with the row on the default ψ "
        "(a refiner row is re-run whole: the refiner trained on the stage, the task on the stage refined by it)",
    )
    parser.add_argument("--stage", default="best", help="stage of --synthetic: best | latest | <index>")
    parser.add_argument(
        "--metric", help="the leaderboard's metric (default: test/target_acc, test/target_miou on segmentation)"
    )
    parser.add_argument("--configs", type=Path, help="configs folder holding experiments/ (default: the shipped one)")
    parser.add_argument("--zoo-config", type=Path, help="pairings and seeds (default: <configs>/bench/zoo.yaml)")
    add_jobs_argument(parser)
    args, extra = parser.parse_known_args(argv)
    args.out = args.out or Path("runs/bench/zoo_quick" if args.quick else "runs/bench/zoo")
    console = Console(stderr=True)
    try:
        folder = configs_dir(args.configs)
        known = benchmarks_in(folder / "experiments")
        unknown = [name for name in args.benchmark if name not in known]
        if unknown:
            raise ValueError(f"unknown benchmark(s) {unknown}; use any of: {', '.join(known) or 'none found'}")
        zoo_path = args.zoo_config or folder / "bench" / "zoo.yaml"
        zoo = load_zoo_config(zoo_path)
        seeds = args.seeds or list(zoo.seeds)
        seeds = seeds[:2] if args.quick else seeds
        if len(seeds) < 2:
            raise ValueError(f"a paired difference needs at least 2 seeds, got {seeds}: give --seeds 0 1 or more")
        cells, rows, every = [], dict(zoo.rows), {}
        for name in args.benchmark:
            common = (name, seeds, args.out / name)
            rest = (args.quick, extra, folder / "experiments", zoo, zoo_path)
            mine = zoo_cells(*common, args.methods, *rest)
            on_disk = sorted(set(seeds) | seeds_in(args.out / name))  # the tables show every finished run
            every[name] = zoo_cells(name, on_disk, args.out / name, None, *rest, every_row=True)
            if args.synthetic is not None:
                check_synthetic(args.synthetic, args.stage, get_benchmark(name, task=None).channels)
                extra_cells, pairings = synthetic_cells(mine, args.synthetic, args.stage, args.out / name, rows)
                mine += extra_cells
                rows.update(pairings)
            cells += mine
    except (ValueError, FileNotFoundError, DatasetError) as err:
        console.print(f"[red]error:[/red] {err}")
        return 2
    done = iter(range(1, len(cells) + 1))

    def report(cell: Cell, result: CellResult) -> None:
        metric = metric_of(cell.tags["benchmark"], args.metric)
        acc = result.metrics.get(metric, math.nan)
        console.print(
            f"[{next(done)}/{len(cells)}] {cell.tags['benchmark']} {cell.name} seed {cell.seed}: {result.status}"
            f"{' (reused)' if result.reused else ''}, {metric} {acc:.4f}, {result.wall_time_s:.0f} s"
        )

    try:
        results = run_cells(cells, jobs=args.jobs, log=console.print, on_result=report)
    except KeyboardInterrupt:
        console.print(interrupted_message(args.out))
        return 130
    for name in args.benchmark:
        mine = [c for c in cells if c.tags["benchmark"] == name]
        table = benchmark_tables(
            name,
            mine,
            results,
            every[name],
            zoo,
            rows,
            metric_of(name, args.metric),
            args.out / name,
            console,
            quick=args.quick,
        )
        console.print(table)
    failed = sum(r.status != "ok" for r in results)
    if failed:
        console.print(f"[red]{failed} run(s) failed[/red]: see {args.out}/<benchmark>/results.csv and each output.log")
    return 1 if failed else 0
