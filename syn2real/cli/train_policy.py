"""``syn2real train-policy --config ASG_EXPERIMENT.yaml --out DIR``: meta-train ASG's learning-rate policy.

The experiment config is the one ``syn2real fit`` takes for an ASG run (model and data; its trainer is not used):
the policy learns to choose that network's layer-group rates on that synthetic data (:mod:`generalization.asg.meta`).
``--model.*`` / ``--data.*`` arguments override the config as they do for ``syn2real fit`` (e.g. a smaller batch for
short episodes).
Writes ``policy.pt`` (give it to ASG as ``model.init_args.policy``), ``episodes.csv``, ``decisions.csv`` (every
decision: the multiplier sampled and the policy's expected one), ``decisions.png`` (every group's sampled multiplier
over the steps of the first and the last episode) and ``meta_training.png`` (every group's expected multiplier,
averaged over an episode's decisions, across the episodes: what meta-training taught the policy, free of the
sampling noise that dominates ``decisions.png``).

``--episodes 0`` writes the policy as meta-training would start it (same seed, same network, no update): the control
that tells what meta-training changed in a policy from where it started.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from datamodules.errors import DatasetError

_RECORDS = ("episodes.csv", "decisions.csv", "decisions.png", "meta_training.png")  # a trained run's, beside policy.pt


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _batches(loader: Any) -> Iterator[Any]:
    for _ in itertools.count():
        yield from loader


def plot_decisions(rows: list[dict[str, Any]], groups: list[str], path: Path) -> None:
    """Each group's multiplier over the steps of the first and the last episode (a step plot per group)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    episodes = sorted({r["episode"] for r in rows})
    shown = [episodes[0], episodes[-1]] if len(episodes) > 1 else episodes
    fig, axes = plt.subplots(len(groups), 1, figsize=(7, 1.1 * len(groups) + 1), sharex=True, squeeze=False)
    for ax, group in zip(axes[:, 0], groups, strict=True):
        for ep in shown:
            pts = [(r["step"], r["multiplier"]) for r in rows if r["episode"] == ep and r["group"] == group]
            ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", label=f"episode {ep}")
        ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel(group, rotation=0, ha="right", fontsize=8)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("step")
    fig.suptitle("ASG policy: learning-rate multiplier per layer group")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_meta_training(rows: list[dict[str, Any]], groups: list[str], path: Path) -> None:
    """Each group's expected multiplier (mean over an episode's decisions) against the episode, one line per group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from generalization.asg.policy import ACTIONS

    episodes = sorted({r["episode"] for r in rows})
    fig, ax = plt.subplots(figsize=(7, 4))
    for group in groups:
        means = []
        for ep in episodes:
            values = [r["expected"] for r in rows if r["episode"] == ep and r["group"] == group]
            means.append(sum(values) / len(values))
        ax.plot(episodes, means, marker="." if len(episodes) < 50 else None, label=group)
    ax.axhline(sum(ACTIONS) / len(ACTIONS), color="grey", linestyle=":", linewidth=1)  # the uniform start
    ax.set_xlabel("episode")
    ax.set_ylabel("expected multiplier")
    ax.legend(fontsize=7, ncol=3)
    fig.suptitle("ASG policy over meta-training: each group's expected learning-rate multiplier")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train_policy_command(argv: list[str]) -> int:
    """``syn2real train-policy``."""
    parser = argparse.ArgumentParser(
        prog="syn2real train-policy",
        description="Meta-train ASG's layer-wise learning-rate policy with REINFORCE on short training episodes.",
    )
    parser.add_argument("--config", type=Path, required=True, help="an ASG experiment config (model + data)")
    parser.add_argument("--out", type=Path, required=True, help="folder for policy.pt and its report")
    parser.add_argument(
        "--episodes", type=int, default=20, help="REINFORCE updates, one per episode (0: the untrained policy)"
    )
    parser.add_argument("--episode-steps", type=int, default=150, help="training steps per (truncated) episode")
    parser.add_argument(
        "--run-steps",
        type=int,
        help="length of the run an episode is the start of (default: the config's max_epochs × batches per epoch)",
    )
    parser.add_argument("--min-window", type=int, default=10, help="steps of the shortest decision window")
    parser.add_argument("--gamma", type=float, default=0.99, help="discount of the rewards")
    parser.add_argument("--meta-lr", type=float, default=7e-4, help="SGD rate of the policy (official 7e-4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace the files of an earlier run in --out")
    args, overrides = parser.parse_known_args(argv)
    console = Console(stderr=True)
    unknown = [a for a in overrides if a.startswith("-") and not a.startswith(("--model.", "--data."))]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)} (only --model.* / --data.* overrides pass through)")
    args.overrides = overrides
    try:
        return _run(args, console)
    except (DatasetError, FileNotFoundError, ValueError) as err:
        console.print(f"[red]error:[/red] {err}")
        return 2


def _run(args: argparse.Namespace, console: Console) -> int:
    import pytorch_lightning as pl

    from generalization.asg import ASG
    from generalization.asg.meta import Episode, train_policy
    from generalization.asg.policy import save_policy
    from syn2real.cli import cli_main

    if args.episodes < 0:
        raise ValueError(f"--episodes must be 0 (the untrained policy) or more, got {args.episodes}")
    if args.episode_steps <= args.min_window:
        raise ValueError(f"--episode-steps ({args.episode_steps}) must exceed --min-window ({args.min_window})")
    policy_path = args.out / "policy.pt"
    if policy_path.exists() and not args.overwrite:
        raise ValueError(f"{policy_path} exists; pass --overwrite to replace it or choose another --out")
    if not args.config.is_file():
        raise FileNotFoundError(f"config {args.config} not found")
    pl.seed_everything(args.seed, verbose=False)
    with warnings.catch_warnings():  # the config is given as args on purpose (sys.argv holds train-policy's own)
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        cli = cli_main(["--config", str(args.config), "--trainer.logger=false", *args.overrides], run=False)
    method, data = cli.model, cli.datamodule
    if not isinstance(method, ASG):
        raise ValueError(f"{args.config} trains {type(method).__name__}; train-policy needs an ASG experiment config")
    if method.controller is not None:
        raise ValueError(f"{args.config} already deploys a policy (model.init_args.policy); remove it to train one")
    data.setup("fit")
    loader = data.train_dataloader()
    batches = _batches(loader)
    run_steps = args.run_steps or int(cli.trainer.max_epochs or 1) * len(loader)
    if run_steps < args.episode_steps:
        raise ValueError(f"--run-steps ({run_steps}) must be at least --episode-steps ({args.episode_steps})")
    args.out.mkdir(parents=True, exist_ok=True)
    episodes_rows: list[dict[str, Any]] = []
    decision_rows: list[dict[str, Any]] = []

    with Progress(console=console) as bar:
        task = bar.add_task("episodes", total=args.episodes)

        def on_episode(index: int, episode: Episode, loss: float) -> None:
            for d in episode.decisions:
                for group, m, e in zip(method.group_names, d.multipliers, d.expected, strict=True):
                    decision_rows.append(
                        {"episode": index, "step": d.step, "group": group, "multiplier": m, "expected": e}
                    )
            n = len(episode.objective)
            episodes_rows.append(
                {
                    "episode": index,
                    "mean_objective": sum(episode.objective) / n,
                    "last_window_objective": -episode.rewards[-1],
                    "decisions": len(episode.decisions),
                    "policy_loss": loss,
                    "mean_multiplier": sum(sum(d.multipliers) for d in episode.decisions)
                    / (len(episode.decisions) * len(method.group_names)),
                }
            )
            bar.update(task, advance=1, description=f"episode {index}: objective {sum(episode.objective) / n:.3f}")
            row = episodes_rows[-1]
            console.print(
                f"episode {index + 1}/{args.episodes}: mean objective {row['mean_objective']:.3f}, mean multiplier "
                f"{row['mean_multiplier']:.2f}, policy loss {loss:.2f}"
            )
            _write_csv(args.out / "episodes.csv", episodes_rows)  # the record so far, if the run is cut off

        policy = train_policy(
            method,
            batches,
            episodes=args.episodes,
            steps=args.episode_steps,
            run_steps=run_steps,
            min_window=args.min_window,
            gamma=args.gamma,
            meta_lr=args.meta_lr,
            on_episode=on_episode,
        )
    save_policy(
        policy,
        policy_path,
        backbone=method.network_spec.arch,
        metadata={
            "config": str(args.config),
            "run_steps": run_steps,
            **{k: v for k, v in vars(args).items() if k not in ("config", "out", "run_steps")},
        },
    )
    _report(args, method.group_names, episodes_rows, decision_rows, run_steps, console)
    return 0


def _report(
    args: argparse.Namespace,
    groups: list[str],
    episodes_rows: list[dict[str, Any]],
    decision_rows: list[dict[str, Any]],
    run_steps: int,
    console: Console,
) -> None:
    """Write the episodes' record and plot next to the policy, and say what was written."""
    policy_path = args.out / "policy.pt"
    if not episodes_rows:
        for name in _RECORDS:  # an earlier trained run's, when overwritten
            (args.out / name).unlink(missing_ok=True)
        console.print(f"untrained policy for {len(groups)} groups (no episode, seed {args.seed}) -> {policy_path}")
        return
    for name, rows in (("episodes.csv", episodes_rows), ("decisions.csv", decision_rows)):
        _write_csv(args.out / name, rows)
    plot_decisions(decision_rows, groups, args.out / "decisions.png")
    plot_meta_training(decision_rows, groups, args.out / "meta_training.png")
    first, last = episodes_rows[0]["mean_objective"], episodes_rows[-1]["mean_objective"]
    console.print(
        f"policy for {len(groups)} groups after {args.episodes} episodes (the first {args.episode_steps} "
        f"of {run_steps} steps) "
        f"(mean objective {first:.3f} in the first, {last:.3f} in the last) -> {policy_path}"
    )
