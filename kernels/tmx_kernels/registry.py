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
    "attention": ("tmx_kernels.ops.attention", "SPEC"),
    "kv_append": ("tmx_kernels.ops.kv_cache", "CONTIGUOUS"),
    "kv_append_paged": ("tmx_kernels.ops.kv_cache", "PAGED"),
    "sampling": ("tmx_kernels.ops.sampling", "SPEC"),
    "int8_matmul": ("tmx_kernels.ops.int8_matmul", "SPEC"),
    "fp8_quant": ("tmx_kernels.ops.fp8", "QUANT"),
    "fp8_matmul": ("tmx_kernels.ops.fp8", "MATMUL"),
    "rmsnorm_bwd": ("tmx_kernels.ops.rmsnorm", "BACKWARD"),
    "layernorm_bwd": ("tmx_kernels.ops.layernorm", "BACKWARD"),
    "swiglu_bwd": ("tmx_kernels.ops.swiglu", "SWIGLU_BACKWARD"),
    "geglu_bwd": ("tmx_kernels.ops.swiglu", "GEGLU_BACKWARD"),
    "rope_neox_bwd": ("tmx_kernels.ops.rope", "NEOX_BACKWARD"),
    "rope_gptj_bwd": ("tmx_kernels.ops.rope", "GPTJ_BACKWARD"),
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
    bound: str = "memory"  # "memory": report % of copy bandwidth; "compute": % of the measured matmul rate
    test_shapes: tuple[tuple[int, ...], ...] = ()  # small, odd sizes for the interpreter
    bench_shapes: tuple[tuple[int, ...], ...] = ()  # production sizes for the GPU benchmark
    mutates: tuple[int, ...] = ()  # inputs the op writes in place (a KV cache); all others must stay unchanged

    @property
    def dtypes(self) -> list[torch.dtype]:
        return list(self.tolerances)

    def mismatch(self, got: Sequence, expected: Sequence, dtype: torch.dtype) -> str | None:
        """Why the outputs `got` are not the reference's `expected` at this op's tolerance, or None."""
        tol = self.tolerances[dtype]
        if len(got) != len(expected):
            return f"{len(got)} outputs, the reference has {len(expected)}"
        for n, (g, e) in enumerate(zip(got, expected)):
            if not isinstance(g, torch.Tensor) or g.shape != e.shape or g.dtype != e.dtype:
                return (f"output {n} is {tuple(getattr(g, 'shape', ()))}/{getattr(g, 'dtype', type(g).__name__)}, "
                        f"the reference {tuple(e.shape)}/{e.dtype}")
            gf, ef = g.float(), e.float()
            if bool((~torch.isfinite(gf) & torch.isfinite(ef)).any()):
                return f"output {n} has NaN/inf where the reference is finite (an unwritten or poisoned output)"
            if not torch.allclose(gf, ef, atol=tol.atol, rtol=tol.rtol, equal_nan=True):
                err = (gf - ef).abs().nan_to_num(nan=float("inf")).max().item()
                return f"output {n} max abs error {err:.3g} exceeds atol {tol.atol} rtol {tol.rtol}"
        return None


def as_outputs(result) -> tuple:
    """An op returns one tensor or a tuple of them; callers compare tuples."""
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


def clone_inputs(inputs: Sequence) -> tuple:
    """Fresh copies of an op's inputs (non-tensor arguments such as an output dtype pass through)."""
    return tuple(t.clone() if isinstance(t, torch.Tensor) else t for t in inputs)


def op_names() -> list[str]:
    return sorted(_OPS)


def get_op(name: str) -> OpSpec:
    try:
        module_name, attribute = _OPS[name]
    except KeyError:
        raise KeyError(f"unknown op {name!r}; known: {', '.join(op_names())}") from None
    return getattr(importlib.import_module(module_name), attribute)
