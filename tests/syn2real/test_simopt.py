"""Simulator optimization: the estimators against hand values and closed forms, the toy strategies' direction, and the
run folder (atomic stages, ``best``, resume) with a second, toy renderer through the documented protocol.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from datamodules.sources import Syn2RealSource
from datamodules.stages import select_stages
from syn2real.simopt import DigitsRenderer, RenderedBatch, Renderer, SearchSpace, StageRun, StepOutcome, optimize
from syn2real.simopt.base import Strategy
from syn2real.simopt.gradients import conjugate_gradient, finite_difference_gradient, mmd2, newton_step_hypergradient
from syn2real.simopt.lts import LearningToSimulate
from syn2real.simopt.metasim import MetaSim


class ToyRenderer:
    """A second renderer: 4×4 grey images of constant ``level`` (+ a per-index offset), labels index % 2."""

    name = "tests.toy"
    classes = ("even", "odd")
    channels = 1
    size = 4

    def defaults(self) -> dict[str, float]:
        return {"level": 0.2, "spread": 0.0}

    def domain(self) -> dict[str, tuple[float, float]]:
        return {"level": (0.0, 1.0), "spread": (0.0, 0.5)}

    def render(self, psi: Mapping[str, float], indices: Sequence[int], *, seed: int) -> RenderedBatch:
        values = {**self.defaults(), **psi}
        idx = torch.tensor(list(indices), dtype=torch.float32)
        offsets = values["spread"] * torch.sin(idx * 12.9898 + seed)  # deterministic in (seed, index)
        images = (values["level"] + offsets).clamp(0, 1).view(-1, 1, 1, 1).expand(-1, 1, 4, 4).contiguous()
        return RenderedBatch(images=images, labels=(idx.long() % 2))

    def record(self, psi: Mapping[str, float]) -> dict[str, Any]:
        return {**self.defaults(), **psi}


def test_toy_renderer_satisfies_the_protocol() -> None:
    assert isinstance(ToyRenderer(), Renderer)
    assert isinstance(DigitsRenderer(), Renderer)


def test_mmd_matches_the_hand_value() -> None:
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[2.0], [3.0]])
    # unbiased: k(x1,x2) + k(y1,y2) − 2·mean k(x_i, y_j), k(a,b) = exp(−(a−b)²/2)
    kxy = (math.exp(-2) + math.exp(-4.5) + math.exp(-0.5) + math.exp(-2)) / 4
    expected = math.exp(-0.5) + math.exp(-0.5) - 2 * kxy
    assert float(mmd2(x, y, [1.0])) == pytest.approx(expected, abs=1e-12)
    # two widths add their kernels
    assert float(mmd2(x, y, [1.0, 2.0])) == pytest.approx(expected + float(mmd2(x / 2, y / 2, [1.0])), abs=1e-12)


def test_mmd_of_identical_samples_is_lower_than_of_shifted() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(200, 3, generator=g), torch.randn(200, 3, generator=g)
    assert abs(float(mmd2(a, b, [1.0]))) < 0.02 < float(mmd2(a, b + 2, [1.0]))


def test_finite_difference_gradient_of_a_toy_renderer_matches_the_analytic_one() -> None:
    renderer = ToyRenderer()
    space = SearchSpace(renderer, {"level": (0.0, 1.0), "spread": (0.0, 0.5)})

    def f(u: torch.Tensor) -> float:  # mean squared distance of the images' brightness to 0.7
        images = renderer.render(space.to_psi(u), range(64), seed=0).images
        return float(((images - 0.7) ** 2).mean())

    u = torch.tensor([0.3, 0.4], dtype=torch.float64)
    s = torch.sin(torch.arange(64) * 12.9898)
    level, spread = 0.3, 0.4 * 0.5
    # d/dlevel mean((level + spread·s − 0.7)²) = 2·mean(level + spread·s − 0.7); d/du_spread = 0.5·2·mean((…)·s)
    residual = level + spread * s - 0.7
    analytic = torch.tensor([float(2 * residual.mean()), float(0.5 * 2 * (residual * s).mean())], dtype=torch.float64)
    assert torch.allclose(finite_difference_gradient(f, u, 1e-3), analytic, atol=1e-4)
    # at the upper bound the difference is one-sided and still right
    edge = finite_difference_gradient(f, torch.tensor([1.0, 0.0], dtype=torch.float64), 1e-3)
    assert float(edge[0]) == pytest.approx(2 * (1.0 - 0.7), abs=1e-3)


def test_conjugate_gradient_solves_a_damped_system() -> None:
    a = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    b = torch.tensor([1.0, 2.0], dtype=torch.float64)
    v = conjugate_gradient(lambda w: a @ w, b, iterations=10, damping=0.5)
    assert torch.allclose(v, torch.linalg.solve(a + 0.5 * torch.eye(2, dtype=torch.float64), b))


def test_newton_step_hypergradient_equals_the_closed_form_on_a_quadratic() -> None:
    """L_train(θ; ψ) = ½(θ − Aψ)ᵀQ(θ − Aψ), L_val(θ) = ½‖θ − t‖²: θ*(ψ) = Aψ, so ∂L_val/∂ψ = Aᵀ(Aψ − t).

    One Newton step from any θ lands on Aψ exactly, so the approximation must equal the closed form there.
    """
    q = torch.tensor([[3.0, 0.5, 0.0], [0.5, 2.0, 0.3], [0.0, 0.3, 1.5]], dtype=torch.float64)
    a = torch.tensor([[1.0, 0.0], [0.5, 2.0], [-1.0, 0.3]], dtype=torch.float64)
    t = torch.tensor([0.2, -0.4, 1.0], dtype=torch.float64)
    psi = torch.tensor([0.3, 0.6], dtype=torch.float64)
    theta = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)  # any point: the Newton step is exact
    theta_star = theta - torch.linalg.solve(q, q @ (theta - a @ psi))
    val_grad = theta_star - t  # ∇L_val at the Newton-step weights
    hyper = newton_step_hypergradient(
        lambda w: q @ (theta - a @ w), lambda w: q @ w, val_grad, psi, step=1e-3, cg_iterations=10, damping=0.0
    )
    assert torch.allclose(hyper, a.T @ (a @ psi - t), atol=1e-8)


def test_reinforce_moves_a_toy_policy_toward_the_rewarded_psi() -> None:
    space = SearchSpace(ToyRenderer(), {"level": (0.0, 1.0)})
    strategy = LearningToSimulate(
        space=space, reward=lambda psi: -((psi["level"] - 0.8) ** 2), samples_per_stage=8, sigma=0.1, lr=0.05
    )
    u = torch.tensor([0.2], dtype=torch.float64)
    for stage in range(30):
        u = strategy.step(u, stage).next_u
    assert abs(float(u[0]) - 0.8) < 0.1


def test_meta_sim_moves_toward_the_real_distribution() -> None:
    renderer = ToyRenderer()
    space = SearchSpace(renderer, {"level": (0.0, 1.0)})
    real = torch.full((32, 1), 0.6) + 0.01 * torch.randn(32, 1, generator=torch.Generator().manual_seed(0))

    def distance(psi: Mapping[str, float], stage: int) -> float:
        images = renderer.render(psi, range(stage * 16, stage * 16 + 16), seed=0).images
        return float(mmd2(images.mean(dim=(2, 3)), real, [0.2]))

    strategy = MetaSim(space=space, distance=distance, lr=0.1, fd_step=0.02)
    u = space.initial()
    scores = []
    for stage in range(15):
        out = strategy.step(u, stage)
        scores.append(out.score)
        u = out.next_u
    assert abs(float(space.to_psi(u)["level"]) - 0.6) < 0.1
    assert scores[-1] > scores[0]


def test_meta_sim_tpe_search_keeps_the_best_trial() -> None:
    renderer = ToyRenderer()
    space = SearchSpace(renderer, {"level": (0.0, 1.0)})
    strategy = MetaSim(
        space=space, distance=lambda psi, stage: (psi["level"] - 0.3) ** 2, optimizer="tpe", trials_per_stage=6
    )
    out = strategy.step(space.initial(), 0)
    assert len(strategy.trials) == 7
    assert (float(out.next_u[0]) - 0.3) ** 2 == pytest.approx(min(v for _, v in strategy.trials))


class Scripted(Strategy):
    """Scores ψ by a fixed table and walks ``level`` up by 0.1 per stage; fails at ``fail_at`` (an interruption)."""

    name = "scripted"
    score_name = "score"

    def __init__(self, *, space: SearchSpace, scores: list[float], fail_at: int | None = None) -> None:
        super().__init__(space=space)
        self.scores, self.fail_at, self.calls = scores, fail_at, []

    def step(self, u: torch.Tensor, stage: int) -> StepOutcome:
        if stage == self.fail_at:
            raise KeyboardInterrupt
        self.calls.append(stage)
        return StepOutcome(self.scores[stage], (u + 0.1).clamp(0, 1), {"calls": float(len(self.calls))})


def _run(folder: Path, strategy: Strategy, stages: int) -> list[dict[str, Any]]:
    renderer = strategy.space.renderer
    run = StageRun(folder, renderer=renderer, settings={"strategy": strategy.name})
    return optimize(
        run, strategy, strategy.space, stages=stages, stage_samples=6, seed=0, start=strategy.space.initial()
    )


def test_stages_are_datasets_with_their_score_and_best_picks_the_highest(tmp_path: Path) -> None:
    space = SearchSpace(ToyRenderer(), {"level": (0.0, 1.0)})
    history = _run(tmp_path / "run", Scripted(space=space, scores=[0.1, 0.7, 0.4]), 3)
    assert [h["stage"] for h in history] == [0, 1, 2]
    (best,) = select_stages(tmp_path / "run", "best")
    assert best.name == "stage_001"
    data = Syn2RealSource(root=str(tmp_path / "run"), stage="best").load()
    assert len(data) == 6
    # the stage's images were rendered with the stage's ψ: level 0.3 at stage 1
    assert torch.allclose(data[0].image, torch.full((1, 4, 4), 0.3), atol=1 / 255)
    assert not list((tmp_path / "run").glob(".*partial*"))


def test_resume_continues_after_the_last_complete_stage(tmp_path: Path) -> None:
    space = SearchSpace(ToyRenderer(), {"level": (0.0, 1.0)})
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "run", Scripted(space=space, scores=[0.1, 0.2, 0.3, 0.4], fail_at=2), 4)
    assert sorted(p.name for p in (tmp_path / "run").glob("stage_*")) == ["stage_000", "stage_001"]
    first = (tmp_path / "run" / "stage_001" / "dataset.json").stat().st_mtime_ns
    # a stage written after the last saved state (stopped between the two writes) is not trusted
    (tmp_path / "run" / "stage_002").mkdir()
    (tmp_path / "run" / "stage_002" / "dataset.json").write_text("{}")
    again = Scripted(space=space, scores=[0.1, 0.2, 0.3, 0.4])
    history = _run(tmp_path / "run", again, 4)
    assert again.calls == [2, 3]
    assert [h["stage"] for h in history] == [0, 1, 2, 3]
    assert (tmp_path / "run" / "stage_001" / "dataset.json").stat().st_mtime_ns == first
    levels = [h["psi/level"] for h in history]
    assert levels == pytest.approx([0.2, 0.3, 0.4, 0.5])  # ψ continued from the saved state


def test_a_run_folder_of_another_simulator_is_refused(tmp_path: Path) -> None:
    from datamodules.errors import DatasetError

    space = SearchSpace(ToyRenderer(), {"level": (0.0, 1.0)})
    _run(tmp_path / "run", Scripted(space=space, scores=[0.1]), 1)
    with pytest.raises(DatasetError, match=r"simulator 'tests\.toy'"):
        StageRun(tmp_path / "run", renderer=DigitsRenderer(), settings={"strategy": "scripted"})
    with pytest.raises(DatasetError, match="other settings"):
        StageRun(tmp_path / "run", renderer=ToyRenderer(), settings={"strategy": "other"})


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        ({"colour": (0, 1)}, "unknown simulator field 'colour'"),
        ({"scale": (0.5, 3.0)}, "outside the valid domain"),
        ({"clutter": (0.5, 0.2)}, "low >= high"),
        ({"size": (8, 64)}, "unknown simulator field 'size'"),
    ],
)
def test_bad_search_spaces_are_refused(ranges: dict[str, tuple[float, float]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SearchSpace(DigitsRenderer(), ranges)


def test_digits_renderer_maps_knobs_to_the_simulator_config() -> None:
    renderer = DigitsRenderer()
    config = renderer.config({"scale.low": 1.1, "scale.high": 0.9, "stroke.high": 2.6, "clutter": 0.0})
    assert config.scale == (0.9, 1.1)  # crossed ends re-ordered
    assert config.stroke == (-1, 3)  # integer field rounded
    assert config.clutter == 0.0
    same = renderer.render({"clutter": 0.0}, [3, 4], seed=0).images
    assert torch.equal(renderer.render({"clutter": 0.0}, [4], seed=0).images[0], same[1])
