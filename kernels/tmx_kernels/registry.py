"""One registry of ops for the forge, the tests and the benchmarks."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType

import torch

# op name -> (module, attribute holding its OpSpec)
_OPS = {
    "rmsnorm": ("tmx_kernels.ops.rmsnorm", "SPEC"),
    "fused_add_rmsnorm": ("tmx_kernels.ops.fused_add_rmsnorm", "SPEC"),
    "swiglu": ("tmx_kernels.ops.swiglu", "SWIGLU"),
    "geglu": ("tmx_kernels.ops.swiglu", "GEGLU"),
    "softmax": ("tmx_kernels.ops.softmax", "SPEC"),
    "layernorm": ("tmx_kernels.ops.layernorm", "SPEC"),
    "rope_neox": ("tmx_kernels.ops.rope", "NEOX"),
    "rope_gptj": ("tmx_kernels.ops.rope", "GPTJ"),
}


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float
    why: str


@dataclass(frozen=True)
class OpSpec:
    name: str
    module: ModuleType
    launch: Callable[..., torch.Tensor]  # launch(*inputs, **config) -> output
    reference: Callable[..., torch.Tensor]  # higher-precision reference, output in the input dtype
    baseline: Callable[..., torch.Tensor]  # what a user would run without us (eager PyTorch)
    make_inputs: Callable[[Sequence[int], torch.dtype, int, str], tuple]  # (shape, dtype, seed, device)
    tolerances: dict[torch.dtype, Tolerance]
    bytes_moved: Callable[[Sequence[int], torch.dtype], int]
    flops: Callable[[Sequence[int]], int]
    search_space: dict[str, tuple] = field(default_factory=dict)
    default_config: dict = field(default_factory=dict)


def op_names() -> list[str]:
    return sorted(_OPS)


def get_op(name: str) -> OpSpec:
    try:
        module_name, attribute = _OPS[name]
    except KeyError:
        raise KeyError(f"unknown op {name!r}; known: {', '.join(op_names())}") from None
    return getattr(importlib.import_module(module_name), attribute)
