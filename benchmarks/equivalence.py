"""Check that a refactor changed no training behaviour: short runs of every experiment, compared bitwise.

    # in each checkout (e.g. a `git worktree` of the old commit and the new one), with the same environment:
    python benchmarks/equivalence.py run --out /tmp/eq/new          # 6 steps x 3 epochs of every *__digits config
    python benchmarks/equivalence.py compare /tmp/eq/old /tmp/eq/new

Each run saves the final ``state_dict`` and the real-test metrics; ``compare`` prints, per experiment, how many
tensors differ (0 = bitwise identical weights) and both test accuracies. One thread, CPU: deterministic.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

SHORT = [
    "--trainer.max_epochs=3",
    "--trainer.limit_train_batches=6",
    "--trainer.limit_val_batches=0",
    "--trainer.num_sanity_val_steps=0",
    "--trainer.logger=false",
    "--trainer.enable_progress_bar=false",
]


def run_one(config: str, out: Path) -> None:
    from syn2real.cli import cli_main

    torch.set_num_threads(1)
    cli = cli_main(["--config", config, *SHORT, f"--trainer.default_root_dir={out}"], run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    metrics = {}
    if getattr(cli.datamodule, "test", None) is not None:
        results = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
        metrics = {k: float(v) for r in results for k, v in r.items()}
    torch.save(cli.model.state_dict(), out / "state.pt")
    (out / "metrics.json").write_text(json.dumps(metrics))


def compare(old: Path, new: Path) -> list[str]:
    lines = []
    for folder in sorted(p for p in old.iterdir() if (p / "state.pt").is_file()):
        a = torch.load(folder / "state.pt", weights_only=False)
        b = torch.load(new / folder.name / "state.pt", weights_only=False)
        tensors = [k for k, v in a.items() if isinstance(v, torch.Tensor)]
        differing = [k for k in tensors if k not in b or not torch.equal(a[k], b[k])]
        acc = [json.loads((f / "metrics.json").read_text()).get("test/target_acc") for f in (folder, new / folder.name)]
        lines.append(
            f"{folder.name}: keys equal {set(a) == set(b)}, {len(differing)}/{len(tensors)} tensors differ, "
            f"test acc old {acc[0]} new {acc[1]}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--out", type=Path, required=True)
    run.add_argument("--configs", type=Path, default=Path("configs/experiments"))
    run.add_argument("--one", help=argparse.SUPPRESS)  # internal: one config, in this process
    cmp = sub.add_parser("compare")
    cmp.add_argument("old", type=Path)
    cmp.add_argument("new", type=Path)
    args = parser.parse_args()
    if args.command == "compare":
        sys.stdout.write("\n".join(compare(args.old, args.new)) + "\n")
    elif args.one:
        run_one(args.one, args.out)
    else:
        for config in sorted(args.configs.glob("*__digits.yaml")):
            out = args.out / config.stem
            out.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [sys.executable, __file__, "run", "--out", str(out), "--one", str(config)],
                check=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )


if __name__ == "__main__":
    main()
