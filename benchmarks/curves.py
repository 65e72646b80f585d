"""Training curves of a ``syn2real bench zoo`` run: real-validation accuracy per epoch, mean ± std over seeds.

Usage: ``python benchmarks/curves.py runs/bench/zoo/digits [--methods source_only dann] --out docs/curves_digits.png``

Reads each run's Lightning ``metrics.csv`` (``<zoo out>/<method>/seed<k>/metrics.csv``) and draws one line per
method, so a reader can see whether a recipe's length is past the plateau of its real validation accuracy (the
final-weights numbers are only meaningful there). Also prints the per-epoch means as a table.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path


def val_curves(zoo_out: Path, metric: str = "val/target_acc") -> dict[str, list[list[float]]]:
    """``{method: [curve of seed 0, curve of seed 1, ...]}`` with one value per validation (epoch)."""
    curves: dict[str, list[list[float]]] = {}
    for csv_path in sorted(zoo_out.glob("*/seed*/metrics.csv")):
        with csv_path.open() as f:
            values = [float(row[metric]) for row in csv.DictReader(f) if row.get(metric)]
        if values:
            curves.setdefault(csv_path.parent.parent.name, []).append(values)
    return curves


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("zoo_out", type=Path, help="a benchmark's folder of a zoo run (runs/bench/zoo/digits)")
    parser.add_argument("--methods", nargs="+", help="only these rows")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = parser.parse_args(argv)
    curves = val_curves(args.zoo_out)
    if args.methods:
        curves = {m: c for m, c in curves.items() if m in args.methods}
    if not curves:
        sys.stderr.write(f"no metrics.csv with val/target_acc under {args.zoo_out}/<method>/seed*/\n")
        return 2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for method, runs in curves.items():
        epochs = min(len(r) for r in runs)
        mean = [100 * statistics.mean(r[e] for r in runs) for e in range(epochs)]
        std = [100 * statistics.stdev([r[e] for r in runs]) if len(runs) > 1 else 0.0 for e in range(epochs)]
        x = list(range(1, epochs + 1))
        ax.plot(x, mean, label=f"{method} ({len(runs)} seeds)")
        low = [m - s for m, s in zip(mean, std, strict=True)]
        high = [m + s for m, s in zip(mean, std, strict=True)]
        ax.fill_between(x, low, high, alpha=0.15)
        sys.stdout.write(f"{method}: " + " ".join(f"{m:.1f}" for m in mean) + "\n")
    ax.set_xlabel("epoch")
    ax.set_ylabel("real validation accuracy (%), mean ± std over seeds")
    ax.set_title(f"real validation accuracy per epoch: {args.zoo_out}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
