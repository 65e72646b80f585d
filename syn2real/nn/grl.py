"""Gradient reversal (Ganin & Lempitsky, "Unsupervised Domain Adaptation by Backpropagation", ICML 2015).

Forward is the identity; backward multiplies the incoming gradient by ``-coeff``. The coefficient is passed
with every call (a pure function of training progress, see :mod:`syn2real.progress`), never advanced by
``forward`` itself.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, coeff: float) -> Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.coeff * grad, None


def grad_reverse(x: Tensor, coeff: float = 1.0) -> Tensor:
    """Identity forward, gradient times ``-coeff`` backward.

    Examples:
        >>> x = torch.ones(2, requires_grad=True)
        >>> grad_reverse(x, 0.5).sum().backward()
        >>> x.grad.tolist()
        [-0.5, -0.5]
    """
    return _GradientReversal.apply(x, float(coeff))


class GradientReversal(nn.Module):
    """Module form of :func:`grad_reverse`; ``coeff`` is given per call."""

    def forward(self, x: Tensor, coeff: float = 1.0) -> Tensor:
        return grad_reverse(x, coeff)
