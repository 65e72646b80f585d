from __future__ import annotations

import math

import pytest
import torch

from syn2real.nn import GradientReversal, grad_reverse
from syn2real.progress import AnnealedLR, annealed_lr_factor, dann_lambda, progress


def test_grl_passes_gradcheck() -> None:
    # with coeff = -1 the reversal is the identity, so autograd's numerical check applies unchanged
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: grad_reverse(t * t, -1.0), (x,))


@pytest.mark.parametrize("coeff", [0.0, 0.3, 1.0, 2.5])
def test_grl_is_identity_forward_and_flips_scaled_gradient(coeff: float) -> None:
    x = torch.randn(5, requires_grad=True)
    w = torch.randn(5)
    y = grad_reverse(x, coeff)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    torch.testing.assert_close(x.grad, -coeff * w)


def test_function_and_module_agree() -> None:
    x1 = torch.randn(4, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    grad_reverse(x1, 0.7).pow(2).sum().backward()
    GradientReversal()(x2, 0.7).pow(2).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 1.0])
def test_lambda_schedule_matches_the_formula(p: float) -> None:
    assert dann_lambda(p) == pytest.approx(2 / (1 + math.exp(-10 * p)) - 1)
    assert dann_lambda(p, gamma=3.0) == pytest.approx(2 / (1 + math.exp(-3 * p)) - 1)


@pytest.mark.parametrize("p", [0.0, 0.25, 1.0])
def test_lr_annealing_matches_the_formula(p: float) -> None:
    assert annealed_lr_factor(p) == pytest.approx(1 / (1 + 10 * p) ** 0.75)
    assert AnnealedLR(total_steps=200)(int(p * 200)) == pytest.approx(1 / (1 + 10 * p) ** 0.75)


def test_progress_is_clamped() -> None:
    assert progress(50, 100) == 0.5
    assert progress(150, 100) == 1.0
    assert progress(3, float("inf")) == 0.0
