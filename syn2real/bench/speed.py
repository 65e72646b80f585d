"""``syn2real bench speed``: the project's speed claims as one command that prints ratios with their spread.

Four groups, each measured in interleaved rounds (every variant once per round, so load on the machine hits all of
them alike); a figure is the median over rounds, its spread the lowest and highest round:

- ``cyclegan``: seconds per training iteration of the reference loop (:mod:`syn2real.bench.speed_reference`)
  against ours (:class:`refinement.cyclegan.CycleGAN` under a Lightning Trainer: batched network calls) in fp32 and
  with ``precision: bf16-mixed``, at the digits config and at the paper's networks at 64 px; CPU seconds with one
  torch thread, wall seconds with ``--threads`` > 1 or ``--device cuda`` (synchronized). Speed-up = reference / ours
  (targets 1.2× fp32, 1.5× bf16-mixed).
- ``startup``: wall seconds of the light commands in a fresh interpreter (target 1.5 s).
- ``simulate``: ``syn2real simulate``'s work (render + write the full format) against its floor, the same digits
  rendered in memory plus PIL/numpy writing the same files (image PNG, mask PNG, depth ``.npy``, one CSV). Ratio =
  ours / floor (target 1.5×); with ``--workers`` also the threaded writer.
- ``refine``: ``syn2real refine`` on those renders against its floor, PIL reading every image, the generator
  forward, PIL writing every image (target 1.5×).

Results go to the terminal and to ``--out`` (speed.csv, speed.json, speed.md; with ``--profile`` also each CycleGAN
size's operator profile, reference and ours, in ``profile_<size>.txt``).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from syn2real.bench.runs import positive_int

GROUPS = ("cyclegan", "startup", "simulate", "refine")
CAPTION = (
    "baselines: cyclegan = the reference loop in fp32 (CPU s/iteration, figure = speed-up); simulate = render in "
    "memory + PIL/numpy writing the same files; refine = PIL read + generator forward + PIL write (figure = ours / "
    "floor); startup = wall seconds"
)
LIGHT_COMMANDS = (["--help"], ["--version"], ["list"], ["simulate", "--help"])


def _rounds(variants: dict[str, Callable[[], float]], rounds: int, console: Console, what: str) -> dict[str, list]:
    """Each variant once per round, the order rotated every round; the per-round figures of each."""
    out: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds):
        console.log(f"{what}: round {r + 1}/{rounds}")
        for name in names[r % len(names) :] + names[: r % len(names)]:
            out[name].append(variants[name]())
    return out


def _row(group: str, row: str, ours: list[float], base: list[float] | None, *, kind: str, target: float) -> dict:
    """One table row: medians, the per-round ratio's median and spread, the target and whether it is met."""
    ours_median = statistics.median(ours)
    result: dict[str, Any] = {"group": group, "row": row, "ours_s": ours_median, "rounds": len(ours)}
    if base is None:  # an absolute figure (seconds)
        result |= {"value": ours_median, "low": min(ours), "high": max(ours), "kind": "seconds"}
        result |= {"target": f"≤ {target:g} s", "met": ours_median <= target}
        return result
    per_round = [b / o if kind == "speed-up" else o / b for o, b in zip(ours, base, strict=True)]
    value = statistics.median(per_round)
    result |= {"baseline_s": statistics.median(base), "value": value, "low": min(per_round), "high": max(per_round)}
    met = value >= target if kind == "speed-up" else value <= target
    result |= {"kind": kind, "target": f"{'≥' if kind == 'speed-up' else '≤'} {target:g}×", "met": met}
    return result


def cyclegan_rows(
    sizes: list[str], steps: int, rounds: int, console: Console, *, threads: int, device: str
) -> list[dict]:
    """Reference vs ours (fp32, bf16-mixed) per size: CPU seconds with one thread, wall seconds otherwise."""
    from syn2real.bench.speed_reference import SIZES
    from syn2real.bench.speed_timing import gpu_clock, ours_step_times, reference_step_times

    on_gpu = device.startswith("cuda")
    clock = gpu_clock if on_gpu else time.process_time if threads == 1 else time.perf_counter
    timed = {"steps": steps, "clock": clock, "device": device}
    rows = []
    for name in sizes:
        size = SIZES[name]
        variants = {
            "reference": lambda size=size: statistics.median(reference_step_times(size, **timed)),
            "fp32": lambda size=size: statistics.median(ours_step_times(size, **timed)),
            "bf16": lambda size=size: statistics.median(ours_step_times(size, precision="bf16-mixed", **timed)),
        }
        t = _rounds(variants, rounds, console, f"cyclegan {name}")
        for variant, target in (("fp32", 1.2), ("bf16", 1.5)):
            label = f"{name}, ours {'fp32' if variant == 'fp32' else 'bf16-mixed'}"
            rows.append(_row("cyclegan", label, t[variant], t["reference"], kind="speed-up", target=target))
    return rows


def startup_rows(rounds: int, console: Console) -> list[dict]:
    from syn2real.bench.speed_timing import command_seconds

    variants = {" ".join(argv): (lambda argv=argv: command_seconds(list(argv))) for argv in LIGHT_COMMANDS}
    t = _rounds(variants, rounds, console, "startup")
    return [_row("startup", f"syn2real {name}", t[name], None, kind="seconds", target=1.5) for name in variants]


def io_rows(groups: list[str], samples: int, workers: int, rounds: int, work: Path, console: Console) -> list[dict]:
    """The simulate and refine rows (refine reads the renders simulate wrote)."""
    from syn2real.bench import speed_timing as timing

    timing.rendered_arrays(256)  # the renderer's glyph caches warm before the first timed round
    sim = work / "sim"

    def floor() -> float:
        shutil.rmtree(work / "floor", ignore_errors=True)  # before the timer, as for ours
        return timing.render_floor_seconds(work / "floor", samples)

    rows: list[dict] = []
    counts = sorted({1, workers})
    variants: dict[str, Callable[[], float]] = {"floor": floor}
    variants |= {f"w{w}": (lambda w=w: timing.simulate_seconds(sim, samples, workers=w)) for w in counts}
    if "simulate" in groups or not sim.exists():
        t = _rounds(variants, rounds if "simulate" in groups else 1, console, "simulate")
        if "simulate" in groups:
            for w in counts:
                label = f"{samples} digits, {w} writer thread{'s' * (w > 1)}"
                rows.append(_row("simulate", label, t[f"w{w}"], t["floor"], kind="ratio", target=1.5))
    if "refine" in groups:
        ckpt, generator = timing.tiny_refiner(work / "refiner")
        refine_variants = {"floor": lambda: timing.refine_floor_seconds(generator, sim, work / "refine_floor")}
        for w in sorted({0, workers}):
            refine_variants[f"w{w}"] = lambda w=w: timing.refine_seconds(ckpt, sim, work / "refined", workers=w)
        t = _rounds(refine_variants, rounds, console, "refine")
        for w in sorted({0, workers}):
            label = f"{samples} digits, {w} reader processes"
            rows.append(_row("refine", label, t[f"w{w}"], t["floor"], kind="ratio", target=1.5))
    return rows


HEADER = ("group", "row", "ours", "baseline", "figure", "spread (rounds)", "target", "met")


def _cells(r: dict) -> tuple[str, ...]:
    """One row as the printed and Markdown tables show it (see :data:`HEADER`)."""
    unit = "s" if r["kind"] == "seconds" else "×"
    return (
        r["group"],
        r["row"],
        f"{r['ours_s']:.3f} s",
        f"{r['baseline_s']:.3f} s" if "baseline_s" in r else "",
        f"{r['value']:.2f}{unit}",
        f"{r['low']:.2f}–{r['high']:.2f} ({r['rounds']})",
        r["target"],
        "yes" if r["met"] else "no",
    )


def write_results(rows: list[dict], out: Path, settings: dict[str, Any]) -> None:
    """speed.json (settings + rows), speed.csv (one line per row) and speed.md (the printed table) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.json").write_text(json.dumps({"settings": settings, "rows": rows}, indent=2) + "\n")
    columns = ["group", "row", "ours_s", "baseline_s", "value", "low", "high", "rounds", "kind", "target", "met"]
    with (out / "speed.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    md = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    md += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    (out / "speed.md").write_text("\n".join(md) + f"\n\n{CAPTION}.\n")


def speed_command(argv: list[str]) -> int:
    """``syn2real bench speed``."""
    parser = argparse.ArgumentParser(
        prog="syn2real bench speed",
        description="Time CycleGAN against its reference loop, the light commands' start-up, and simulate / refine "
        "against their I/O floors, in interleaved rounds; print the ratios with their spread.",
    )
    parser.add_argument("--only", nargs="+", choices=GROUPS, default=list(GROUPS), help="groups to run (default: all)")
    parser.add_argument("--rounds", type=positive_int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument(
        "--steps", type=positive_int, default=10, help="timed CycleGAN iterations per variant and round"
    )
    parser.add_argument("--sizes", nargs="+", default=["digits", "paper-64px"], choices=["digits", "paper-64px"])
    parser.add_argument("--samples", type=positive_int, default=5000, help="digits simulated and refined per round")
    parser.add_argument("--workers", type=positive_int, default=2, help="writer threads / reader processes to add")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1: one core)")
    parser.add_argument(
        "--device", default="cpu", help="where the CycleGAN rows train: cpu (default) or cuda (GPU rows, wall time)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also write the operator profile of both CycleGAN loops per size"
    )
    parser.add_argument("--quick", action="store_true", help="2 rounds, 3 steps, 1,000 digits: the shape in a minute")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/speed"), help="where the tables go")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.steps, args.samples = 2, 3, 1000
    import torch

    from syn2real.bench.speed_reference import SIZES

    torch.set_num_threads(args.threads)
    console = Console(stderr=True)
    rows: list[dict] = []
    if "cyclegan" in args.only:
        rows += cyclegan_rows(args.sizes, args.steps, args.rounds, console, threads=args.threads, device=args.device)
    if "cyclegan" in args.only and args.profile:
        from syn2real.bench.speed_timing import profile_tables

        args.out.mkdir(parents=True, exist_ok=True)
        for name in args.sizes:
            (args.out / f"profile_{name}.txt").write_text(profile_tables(SIZES[name], args.steps))
    if "startup" in args.only:
        rows += startup_rows(args.rounds, console)
    io_groups = [g for g in args.only if g in ("simulate", "refine")]
    if io_groups:
        with tempfile.TemporaryDirectory(prefix="syn2real-speed-") as work:
            rows += io_rows(io_groups, args.samples, args.workers, args.rounds, Path(work), console)
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    write_results(rows, args.out, settings | {"torch": torch.__version__})
    table = Table(*HEADER, title="syn2real bench speed", caption=CAPTION)
    for r in rows:
        table.add_row(*_cells(r))
    Console().print(table)
    console.print(f"tables in {args.out}/speed.{{md,csv,json}}")
    return 0
