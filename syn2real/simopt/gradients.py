"""The estimators the strategies share.

MMD between feature sets, finite differences through a renderer, and the inverse-Hessian-vector product of
AutoSimulate's local Newton step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor


def median_bandwidths(features: Tensor, factors: Sequence[float] = (0.5, 1.0, 2.0)) -> list[float]:
    """Gaussian-kernel widths: the median pairwise distance of ``features`` times ``factors`` (median heuristic)."""
    dist = torch.cdist(features.double(), features.double())
    off = dist[~torch.eye(len(features), dtype=torch.bool)]
    median = float(off.median()) if off.numel() else 1.0
    return [max(median, 1e-6) * f for f in factors]


def mmd2(x: Tensor, y: Tensor, bandwidths: Sequence[float]) -> Tensor:
    """Unbiased squared MMD between samples ``x`` (m×d) and ``y`` (n×d), kernel Σ_σ exp(−‖a−b‖² / 2σ²).

    Meta-Sim (Kar et al., ICCV 2019, eq. 2) matches rendered and real feature distributions with this estimate.

    Examples:
        >>> x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[2.0], [3.0]])
        >>> round(float(mmd2(x, y, [1.0])), 4)  # 2·e^-0.5 − 2·(2·e^-2 + e^-0.5 + e^-4.5) / 4
        0.7689
    """
    if len(x) < 2 or len(y) < 2:
        raise ValueError("the unbiased MMD needs at least two samples on each side")
    x, y = x.double(), y.double()

    def kernel(a: Tensor, b: Tensor) -> Tensor:
        d2 = torch.cdist(a, b).pow(2)
        return sum(torch.exp(-d2 / (2 * s * s)) for s in bandwidths)  # type: ignore[return-value]

    m, n = len(x), len(y)
    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    xx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    yy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return xx + yy - 2 * kxy.mean()


def finite_difference_gradient(
    f: Callable[[Tensor], float], u: Tensor, step: float, *, value: float | None = None
) -> Tensor:
    """∇f at ``u`` in the unit cube by central differences (one-sided where ``u ± step`` leaves [0, 1]).

    ``f`` should use common random numbers (the same sample indices for every call) so differences measure ψ, not
    sampling noise: this is how Meta-Sim differentiates through a non-differentiable renderer. ``value`` is f(u) if
    the caller has it (a one-sided difference needs it; otherwise it is computed at most once).
    """
    grad = torch.zeros_like(u, dtype=torch.float64)
    at_u: list[float] = [] if value is None else [value]

    def f_at(w: Tensor, j: int) -> float:
        if w[j] != u[j]:
            return f(w)
        if not at_u:
            at_u.append(f(u))
        return at_u[0]

    for j in range(len(u)):
        up, down = u.clone(), u.clone()
        up[j], down[j] = min(float(u[j]) + step, 1.0), max(float(u[j]) - step, 0.0)
        width = float(up[j] - down[j])
        if width > 0:
            grad[j] = (f_at(up, j) - f_at(down, j)) / width
    return grad


def conjugate_gradient(hvp: Callable[[Tensor], Tensor], b: Tensor, *, iterations: int, damping: float) -> Tensor:
    """Solve ``(H + damping·I) v = b`` for ``v`` given Hessian-vector products, by conjugate gradients."""
    v = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = r @ r
    for _ in range(iterations):
        if float(rr) < 1e-20:
            break
        hp = hvp(p) + damping * p
        curvature = p @ hp
        if float(curvature) <= 0:  # negative curvature: stop at the current (descent-safe) iterate
            break
        alpha = rr / curvature
        v = v + alpha * p
        r = r - alpha * hp
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return v


def newton_step_hypergradient(
    train_grad: Callable[[Tensor], Tensor],
    hvp: Callable[[Tensor], Tensor],
    val_grad: Tensor,
    u: Tensor,
    *,
    step: float,
    cg_iterations: int = 10,
    damping: float = 0.0,
) -> Tensor:
    """AutoSimulate's approximate ∂L_val/∂ψ (Behl et al., ECCV 2020, sec. 3).

    The trained weights are approximated by one Newton step from the current θ, θ*(ψ) ≈ θ − H⁻¹ ∇_θ L_train(θ, ψ),
    so ∂L_val/∂ψ ≈ −(H⁻¹ ∇_θ L_val)ᵀ ∂_ψ ∇_θ L_train(θ, ψ). ``v = H⁻¹ ∇_θ L_val`` comes from conjugate gradients on
    Hessian-vector products; the mixed derivative ``vᵀ ∂_ψ ∇_θ L_train`` from central differences of
    ``vᵀ train_grad(ψ)`` with common random numbers (the renderer is not differentiable).

    Args:
        train_grad: unit-cube ψ → ∇_θ L_train(θ, ψ) (flat), on the same samples for every ψ.
        hvp: w → H w, the Hessian of L_train at θ (flat).
        val_grad: ∇_θ L_val(θ) (flat).
        u: the current ψ in the unit cube.
        step: the finite-difference step in the unit cube.
        cg_iterations: conjugate-gradient iterations for ``H⁻¹ ∇_θ L_val``.
        damping: added to H's diagonal (H is indefinite away from a minimum).
    """
    v = conjugate_gradient(hvp, val_grad, iterations=cg_iterations, damping=damping)
    return -finite_difference_gradient(lambda w: float(v @ train_grad(w)), u, step)
