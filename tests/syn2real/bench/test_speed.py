"""``syn2real bench speed``: the reference loop computes CycleGAN's objective, per-round ratios, the command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from refinement.cyclegan import CycleGAN
from syn2real.bench.speed import _row
from syn2real.bench.speed_reference import CycleGANSize, ReferenceCycleGAN
from syn2real.cli import main

TINY = CycleGANSize("tiny", channels=1, image_size=16, batch_size=2, base_channels=4, num_blocks=1,
                    disc_base_channels=4, disc_layers=1)  # fmt: skip


def test_the_reference_iteration_computes_the_same_generator_objective_as_ours() -> None:
    torch.manual_seed(0)
    reference = ReferenceCycleGAN(TINY)
    ours = CycleGAN(**TINY.model_args(), fd_samples=0)
    ours.gen_s2t.load_state_dict(reference.gen_a.state_dict())
    ours.gen_t2s.load_state_dict(reference.gen_b.state_dict())
    ours.disc_t.load_state_dict(reference.disc_a.state_dict())  # the reference's D_A judges G_A(a), i.e. domain T
    ours.disc_s.load_state_dict(reference.disc_b.state_dict())
    a, b = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    expected = float(ours.generator_losses(a, b)[0]["loss_g"])
    before = [p.clone() for net in reference.networks() for p in net.parameters()]
    assert reference.step(a, b) == pytest.approx(expected, rel=1e-5)
    after = [p for net in reference.networks() for p in net.parameters()]
    assert all(not torch.equal(x, y) for x, y in zip(before, after, strict=True))  # both Adam steps moved every tensor


def test_rows_are_medians_of_per_round_ratios() -> None:
    up = _row("g", "r", [1.0, 2.0, 1.0], [2.0, 2.0, 3.0], kind="speed-up", target=1.2)
    assert up["value"] == 2.0 and (up["low"], up["high"]) == (1.0, 3.0) and up["met"]  # rounds: 2, 1, 3
    ratio = _row("g", "r", [3.0, 2.0, 4.0], [2.0, 2.0, 2.0], kind="ratio", target=1.5)
    assert ratio["value"] == 1.5 and ratio["met"] and ratio["target"] == "≤ 1.5×"
    seconds = _row("g", "r", [2.0, 1.0, 3.0], None, kind="seconds", target=1.5)
    assert seconds["value"] == 2.0 and not seconds["met"]


@pytest.mark.timeout(240)
def test_the_command_prints_and_writes_every_group(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "speed", "--rounds", "1", "--steps", "1", "--sizes", "digits", "--samples", "24"]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--out", str(tmp_path)])
    assert exit_.value.code == 0
    rows = json.loads((tmp_path / "speed.json").read_text())["rows"]
    assert [r["group"] for r in rows] == ["cyclegan"] * 2 + ["startup"] * 4 + ["simulate"] * 2 + ["refine"] * 2
    assert all(math.isfinite(r["value"]) and r["value"] > 0 and isinstance(r["met"], bool) for r in rows)
    assert "syn2real bench speed" in capsys.readouterr().out
    assert (tmp_path / "speed.md").read_text().count("\n| ") == len(rows)  # a line per row after the header
