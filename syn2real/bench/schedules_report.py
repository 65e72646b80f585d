"""Tables and the accuracy-vs-budget plot of ``syn2real bench schedules``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from syn2real.bench.runs import CellResult, mean_std, write_runs_csv


def curves(results: list[CellResult], budgets: list[int], metric: str) -> dict[str, dict[int, list[float]]]:
    """Per schedule, per budget: the metric (%) of every finished seed.

    Budget 0 of the schedules that start from synthetic data is the ``synthetic_only`` run of the same seed.
    """
    out: dict[str, dict[int, list[float]]] = {}
    synthetic = [100 * r.metrics[metric] for r in results if r.name == "synthetic_only" and r.status == "ok"]
    for r in results:
        if r.name == "synthetic_only" or r.status != "ok" or metric not in r.metrics:
            continue
        out.setdefault(r.name, {}).setdefault(int(r.tags["budget"]), []).append(100 * r.metrics[metric])
    for name in out:
        if name != "real_only" and 0 in budgets and synthetic:
            out[name][0] = synthetic
    if synthetic:
        out["synthetic_only"] = dict.fromkeys(budgets, synthetic)
    return out


def plain_summary(table: dict[str, dict[int, list[float]]]) -> list[str]:
    """Sentences on where pretrain-then-fine-tune beats hybrid, and by how much."""
    lines = []
    pft = table.get("pretrain_finetune", {})
    for name in sorted(k for k in table if k.startswith("hybrid")):
        for budget in sorted(b for b in pft if b > 0 and b in table[name]):
            diff = mean_std(pft[budget])[0] - mean_std(table[name][budget])[0]
            winner = "pretrain_finetune" if diff > 0 else name
            lines.append(f"budget {budget}: {winner} leads by {abs(diff):.1f} points")
    real, syn = table.get("real_only", {}), table.get("synthetic_only", {})
    for budget in sorted(b for b in real if b > 0):
        best_syn = max(
            (
                mean_std(table[k][budget])[0]
                for k in table
                if k not in ("real_only", "synthetic_only") and budget in table[k]
            ),
            default=math.nan,
        )
        gain = best_syn - mean_std(real[budget])[0]
        lines.append(f"budget {budget}: best schedule with synthetic data vs real_only: {gain:+.1f} points")
    if syn:
        lines.append(f"synthetic_only: {mean_std(next(iter(syn.values())))[0]:.1f}%")
    return lines


def write_schedule_tables(out: Path, results: list[CellResult], budgets: list[int], metric: str) -> str:
    """Write ``results.csv``, ``results.json``, ``schedules.md`` and ``schedules.png``; return the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    rows = write_runs_csv(out / "results.csv", results)
    table = curves(results, budgets, metric)
    failed = [
        f"{r.name} seed {r.seed} budget {r.tags.get('budget')}: {r.error.splitlines()[-1] if r.error else ''}"
        for r in results
        if r.status != "ok"
    ]
    stats = {k: {b: (*mean_std(v), len(v)) for b, v in sorted(c.items())} for k, c in table.items()}
    summary = {k: {str(b): {"mean": m, "std": s, "n": n} for b, (m, s, n) in c.items()} for k, c in stats.items()}
    (out / "results.json").write_text(
        json.dumps({"metric": metric, "runs": rows, "curves": summary, "failed": failed}, indent=2)
    )
    header = "| schedule | " + " | ".join(str(b) for b in budgets) + " |"
    lines = [
        f"Real test {metric.split('/')[-1]} (%) by real-label budget, mean ± std over seeds.",
        "",
        header,
        "|---" * (len(budgets) + 1) + "|",
    ]
    for name in sorted(table):
        cells = [f"{stats[name][b][0]:.1f} ± {stats[name][b][1]:.1f}" if b in stats[name] else "–" for b in budgets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", *[f"- {s}" for s in plain_summary(table)]]
    if failed:
        lines += ["", "Failed runs:", *[f"- {f}" for f in failed]]
    markdown = "\n".join(lines) + "\n"
    (out / "schedules.md").write_text(markdown)
    _plot(out / "schedules.png", table, metric)
    return markdown


def _plot(path: Path, table: dict[str, dict[int, list[float]]], metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for name in sorted(table):
        xs = sorted(table[name])
        stats: list[Any] = [mean_std(table[name][x]) for x in xs]
        mean = [m for m, _ in stats]
        lo = [min(table[name][x]) for x in xs]
        hi = [max(table[name][x]) for x in xs]
        style = {"linestyle": "--", "color": "grey"} if name == "synthetic_only" else {"marker": "o"}
        (line,) = ax.plot(xs, mean, label=name, **style)
        ax.fill_between(xs, lo, hi, alpha=0.2, color=line.get_color())
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("real labeled images (budget)")
    ax.set_ylabel(f"real test {metric.split('/')[-1]} (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Schedules: seed spread shaded (min–max)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
