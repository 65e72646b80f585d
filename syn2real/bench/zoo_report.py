"""The zoo's tables and plot: every row beside the baseline it is paired with, and the per-seed difference."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from syn2real.bench.runs import LAST_GAIN, CellResult, mean_std, write_runs_csv
from syn2real.bench.zoo_pairs import Pairing, paired_difference

VALSEL = "test_valsel/"
PRESERVATION = "label_preservation/"
# A row whose real validation metric still rose by this much (points, mean over seeds) in its last epoch has not
# converged: the leaderboard marks it, and its difference is a pointer, not a claim.
RISING_POINTS = 1.0
# Label-preservation figures kept per run: the judge's rate on raw and refined renders (accuracy, or mIoU for label
# maps) and, for label maps, the share of foreground pixels it finds and names right.
PER_PIXEL = ("foreground_recall_raw", "foreground_recall_refined", "naming_raw", "naming_refined")
PRESERVATION_KINDS = ("raw", "refined", *PER_PIXEL)


def valsel_metric(metric: str) -> str:
    """The validation-selected twin of a test metric: ``test/target_acc`` → ``test_valsel/target_acc``."""
    return VALSEL + metric.split("/", 1)[-1]


def leaderboard(results: list[CellResult], metric: str, pairings: dict[str, Pairing]) -> list[dict[str, Any]]:
    """One row per experiment, in the zoo config's order.

    Each row has the final-weights and val-selected ``metric`` (mean ± std, in %), the paired baseline over the same
    seeds and the paired difference (points), how much the real validation metric still rose in the last epoch
    (``last_gain``, points, mean ± std; ``rising`` when its mean is at least :data:`RISING_POINTS`;
    ``baseline_rising`` when the paired baseline row is), wall time and, for refiners, ``val/fd_effnet`` and the label
    preservation of raw and refined renders (%). Failed runs are counted, not averaged.
    """
    rows = []
    for name in dict.fromkeys(r.name for r in results):
        runs = [r for r in results if r.name == name]
        ok = [r for r in runs if r.status == "ok"]
        pairing = pairings.get(name, Pairing("unpaired", ""))
        row: dict[str, Any] = {
            "method": name,
            "family": runs[0].tags.get("family", ""),
            "paired_with": pairing.label(metric),
            "pairing": pairing.kind,
            "runs": len(ok),
            "failed": len(runs) - len(ok),
            "config": runs[0].tags.get("config", ""),
        }
        for key, m in (("final", metric), ("valsel", valsel_metric(metric))):
            row[f"{key}_mean"], row[f"{key}_std"] = mean_std([100 * r.metrics[m] for r in ok if m in r.metrics])
            row[f"{key}_diff"] = paired_difference(results, name, pairing, m) if pairing.paired else None
        gain = LAST_GAIN + metric.split("/", 1)[-1]
        row["last_gain"] = mean_std([100 * r.metrics[gain] for r in ok if gain in r.metrics])
        row["rising"] = row["last_gain"][0] >= RISING_POINTS  # False when no run has a curve (nan)
        row["valsel_epoch"] = mean_std([r.metrics["valsel_epoch"] for r in ok if "valsel_epoch" in r.metrics])[0]
        row["wall_time_s"] = mean_std([r.wall_time_s for r in ok])[0]
        for kind in PRESERVATION_KINDS:
            rates = [100 * r.metrics[f"{PRESERVATION}{kind}"] for r in ok if f"{PRESERVATION}{kind}" in r.metrics]
            row[f"preservation_{kind}"] = mean_std(rates) if rates else None
        both = [r.metrics for r in ok if {f"{PRESERVATION}raw", f"{PRESERVATION}refined"} <= set(r.metrics)]
        gains = [100 * (m[f"{PRESERVATION}refined"] - m[f"{PRESERVATION}raw"]) for m in both]
        if gains:  # same renders, same judge, seed by seed: a paired difference
            row["preservation_gain"] = dict(zip(("mean", "std"), mean_std(gains), strict=True), n=len(gains))
        else:
            row["preservation_gain"] = None
        fd = [r.metrics["val/fd_effnet"] for r in ok if "val/fd_effnet" in r.metrics]
        row["fd_effnet"], row["fd_effnet_std"] = mean_std(fd) if fd else (None, None)
        rows.append(row)
    rising = {row["method"]: row["rising"] for row in rows}
    for row in rows:  # a difference is a claim only when both of its runs had converged
        base = pairings.get(row["method"], Pairing("unpaired", "")).baseline_row
        row["baseline_rising"] = bool(base is not None and rising.get(base))
    order = list(pairings)

    def place(row: dict[str, Any]) -> tuple[int, bool]:  # a refiner's training row right after the refiner's row
        base = row["method"].split(":")[0]
        return (order.index(base) if base in order else len(order), row["method"] != base)

    return sorted(rows, key=place)


def _pm(mean: float, std: float, signed: bool = False) -> str:
    if mean is None or math.isnan(mean):
        return "n/a"
    return f"{mean:+.1f} ± {std:.1f}" if signed else f"{mean:.1f} ± {std:.1f}"


def _diff(d: dict[str, Any] | None) -> str:
    if d is None:
        return "–"
    if d["n"] == 0:
        return "n/a"
    if d["n"] == 1:
        return f"{d['mean']:+.1f} (1 seed, no spread)"
    return f"**{_pm(d['mean'], d['std'], signed=True)}** (n={d['n']})"


def _unconverged(row: dict[str, Any]) -> bool:
    """Whether the row's difference is a pointer only: the row or its paired baseline was still rising."""
    return row["rising"] or row["baseline_rising"]


def _gain(row: dict[str, Any]) -> str:
    mean, std = row["last_gain"]
    if math.isnan(mean):
        return "n/a (baseline still rising)" if row["baseline_rising"] else "n/a"
    text = f"{_pm(mean, std, signed=True)} **still rising**" if row["rising"] else _pm(mean, std, signed=True)
    return text + " (baseline still rising)" if row["baseline_rising"] else text


def markdown(board: list[dict[str, Any]], metric: str, title: str) -> str:
    """The leaderboard as a Markdown table (final weights first; validation-selected columns marked †)."""
    name = metric.split("/")[-1]
    lines = [
        f"# {title}",
        "",
        f"| method | paired with | real test {name} (%), final weights | baseline, same seeds (%) | paired "
        f"difference (points) | val-selected {name} (%) † | val-selected difference † | last-epoch gain, real val "
        "(points) ‡ | runs (failed) | wall / run (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in board:
        final = _pm(r["final_mean"], r["final_std"])
        if r["fd_effnet"] is not None and math.isnan(r["final_mean"]):
            final = f"fd_effnet {r['fd_effnet']:.1f} ± {r['fd_effnet_std']:.1f}"
        base = "–" if r["final_diff"] is None else _pm(r["final_diff"]["base_mean"], r["final_diff"]["base_std"])
        wall = "n/a" if math.isnan(r["wall_time_s"]) else f"{r['wall_time_s']:.0f}"
        lines.append(
            f"| {r['method']} | {r['paired_with']} | {final} | {base} | {_diff(r['final_diff'])} | "
            f"{_pm(r['valsel_mean'], r['valsel_std'])} | {_diff(r['valsel_diff'])} | {_gain(r)} | "
            f"{r['runs']} ({r['failed']}) | {wall} |"
        )
    lines += [
        "",
        "Final weights: no real labels used. † Validation-selected: the weights of the epoch with the best real "
        "validation metric, tested on the real test split: these numbers use the validation labels. Paired "
        "difference: the row minus its baseline, seed by seed (same data, seeds and steps), mean ± std over seeds. "
        "‡ Last-epoch gain: the real validation metric of the last epoch minus the best earlier epoch, mean ± std "
        f"over seeds; **still rising** (≥ {RISING_POINTS:g} point) marks a row cut off while learning: its numbers "
        "and differences are pointers, not claims, until it is run longer.",
    ]
    judged = [r for r in board if r.get("preservation_refined")]
    if judged:
        lines += ["", *_preservation_table(judged, per_pixel=name.endswith("miou"))]
    return "\n".join(lines) + "\n"


def _preservation_table(judged: list[dict[str, Any]], *, per_pixel: bool) -> list[str]:
    """The refiners' label preservation: raw and refined renders, and the difference on the same renders."""
    if not per_pixel:
        lines = [
            "Label preservation: the share of training renders that a classifier trained on real labels (the judge "
            "row's run of the same seed) assigns their source label, raw and after the refiner (%, mean ± std; the "
            "difference is seed by seed, on the same renders with the same judge, in points).",
            "",
            "| refiner | raw renders | refined renders | refined − raw |",
            "|---|---|---|---|",
        ]
        return lines + [
            f"| {r['method']} | {_pm(*r['preservation_raw'])} | {_pm(*r['preservation_refined'])} | "
            f"{_diff(r['preservation_gain'])} |"
            for r in judged
        ]
    lines = [
        "Label preservation: a segmenter trained on real labels (the judge row's run of the same seed) segments the "
        "training renders, raw and after the refiner: its mIoU against their label maps, the share of labelled "
        "foreground pixels it finds, and the share of those it names right (%, mean ± std; the mIoU difference is "
        "seed by seed, on the same renders with the same judge, in points).",
        "",
        "| refiner | mIoU, raw | mIoU, refined | refined − raw | found, raw | found, refined | named, raw | named, "
        "refined |",
        "|---|---|---|---|---|---|---|---|",
    ]
    cell = lambda r, kind: _pm(*r[f"preservation_{kind}"]) if r[f"preservation_{kind}"] else "n/a"  # noqa: E731
    return lines + [
        f"| {r['method']} | {cell(r, 'raw')} | {cell(r, 'refined')} | {_diff(r['preservation_gain'])} | "
        + " | ".join(cell(r, kind) for kind in PER_PIXEL)
        + " |"
        for r in judged
    ]


def write_tables(out: Path, results: list[CellResult], board: list[dict[str, Any]], metric: str, title: str) -> str:
    """``results.csv`` (one row per run), ``results.json`` (runs + leaderboard), ``leaderboard.md`` and ``.png``.

    Returns the Markdown leaderboard.
    """
    out.mkdir(parents=True, exist_ok=True)
    rows = write_runs_csv(out / "results.csv", results)
    (out / "results.json").write_text(json.dumps({"metric": metric, "runs": rows, "leaderboard": board}, indent=2))
    table = markdown(board, metric, title)
    (out / "leaderboard.md").write_text(table)
    _plot(out / "leaderboard.png", board, metric, title)
    return table


def _plot(path: Path, board: list[dict[str, Any]], metric: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in board if not math.isnan(r["final_mean"])]
    paired = [r for r in done if r["final_diff"] is not None and r["final_diff"]["n"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * max(len(done), 1) + 1.6), dpi=100, squeeze=False)
    left, right = axes[0]
    rev = lambda rows, f: [f(r) for r in rows][::-1]  # noqa: E731  (barh draws bottom-up)
    left.barh(
        rev(done, lambda r: r["method"]),
        rev(done, lambda r: r["final_mean"]),
        xerr=rev(done, lambda r: r["final_std"]),
        color="#4c78a8",
        capsize=3,
    )
    left.set_xlabel(f"real test {metric.split('/')[-1]} (%), final weights, mean ± std over seeds")
    left.set_xlim(0, 100)
    right.barh(
        rev(
            paired,
            lambda r: f"{r['method']} vs {r['paired_with']}" + (" (still rising)" if _unconverged(r) else ""),
        ),
        rev(paired, lambda r: r["final_diff"]["mean"]),
        xerr=rev(paired, lambda r: r["final_diff"]["std"]),
        color=rev(paired, lambda r: "#54a24b" if r["final_diff"]["mean"] > 0 else "#e45756"),
        hatch=rev(paired, lambda r: "//" if _unconverged(r) else ""),
        capsize=3,
    )
    right.axvline(0, color="black", linewidth=0.8)
    right.set_xlabel("paired difference to the baseline (points), mean ± std over seeds")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
