"""The report of a simulator-optimization run: score vs stage, ψ trajectory, rendered samples per stage, wall times."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from datamodules.format import Syn2RealDataset
from syn2real.simopt.run import stage_name


def write_report(folder: Path, history: list[dict[str, Any]], *, score_name: str, samples: int = 10) -> list[Path]:
    """Write ``score.png``, ``psi.png``, ``samples.png`` and ``report.md`` into the run ``folder``."""
    if not history:
        return []
    stages = [h["stage"] for h in history]
    scores = [h["score"] for h in history]
    best = max(range(len(history)), key=lambda i: scores[i])
    written = []

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(stages, scores, marker="o")
    ax.plot([stages[best]], [scores[best]], marker="*", markersize=14, color="tab:red", label=f"best: stage {best}")
    ax.set(xlabel="stage", ylabel=score_name, title="score per stage")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "score.png", dpi=110)
    plt.close(fig)
    written.append(folder / "score.png")

    knobs = [k.removeprefix("psi/") for k in history[0] if k.startswith("psi/")]
    cols = min(4, len(knobs))
    rows = -(-len(knobs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.2 * rows), squeeze=False)
    for ax, knob in zip(axes.flat, knobs, strict=False):
        ax.plot(stages, [h[f"psi/{knob}"] for h in history], marker=".")
        ax.set_title(knob, fontsize=9)
    for ax in list(axes.flat)[len(knobs) :]:
        ax.axis("off")
    fig.suptitle("ψ per stage")
    fig.tight_layout()
    fig.savefig(folder / "psi.png", dpi=110)
    plt.close(fig)
    written.append(folder / "psi.png")

    shown = stages if len(stages) <= 12 else sorted({stages[round(i * (len(stages) - 1) / 11)] for i in range(12)})
    fig, axes = plt.subplots(len(shown), samples, figsize=(samples * 0.8, len(shown) * 0.85), squeeze=False)
    for row, index in zip(axes, shown, strict=True):
        data = Syn2RealDataset(folder / stage_name(index))
        for k, ax in enumerate(row):
            image = data[k].image
            ax.imshow(image[0] if image.shape[0] == 1 else image.permute(1, 2, 0), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(str(index), rotation=0, labelpad=12)
    fig.suptitle("renders per stage (same samples, stage ψ)")
    fig.tight_layout()
    fig.savefig(folder / "samples.png", dpi=90)
    plt.close(fig)
    written.append(folder / "samples.png")

    lines = [
        f"| stage | {score_name} | search s | stage s | " + " | ".join(knobs) + " |",
        "|" + "---:|" * (4 + len(knobs)),
    ]
    for h in history:
        cells = [str(h["stage"]), f"{h['score']:.4f}", f"{h['search_s']:.1f}", f"{h['wall_s']:.1f}"]
        lines.append("| " + " | ".join(cells + [f"{h[f'psi/{k}']:.3g}" for k in knobs]) + " |")
    total = sum(h["wall_s"] for h in history)
    lines.append("")
    lines.append(f"Best: stage {best} ({score_name} {scores[best]:.4f}). Total wall time {total:.0f} s.")
    (folder / "report.md").write_text("\n".join(lines) + "\n")
    written.append(folder / "report.md")
    return written
