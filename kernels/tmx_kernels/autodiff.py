"""Backward references: gradients of an op's fp64 forward by autograd, returned in the inputs' dtypes."""

from __future__ import annotations

from collections.abc import Callable

import torch


def vjp_reference(forward64: Callable[..., torch.Tensor], dy: torch.Tensor, *inputs: torch.Tensor,
                  wrt: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    """d(sum(forward64(*inputs) * dy)) / d inputs[i] for i in wrt, computed entirely in fp64."""
    leaves = [t.detach().double().requires_grad_(i in wrt) if t.is_floating_point() else t
              for i, t in enumerate(inputs)]
    out = forward64(*leaves)
    grads = torch.autograd.grad(out, [leaves[i] for i in wrt], grad_outputs=dy.double())
    return tuple(g.to(inputs[i].dtype) for g, i in zip(grads, wrt))
