"""RMSNorm: y = x / sqrt(mean(x^2) + eps) * w, over the last dimension, accumulated in fp32.

The kernel processes ROWS_PER_PROGRAM rows per program instance in one [ROWS, BLOCK_N] tile; a search may
vary that and num_warps. BLOCK_N is the next power of two of the row length (a whole row stays in
registers), so rows up to 65536 elements are supported.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl

from tmx_kernels.autodiff import vjp_reference
from tmx_kernels.ops.tiling import NORM_BACKWARD_DEFAULT, NORM_BACKWARD_SEARCH, NORM_BENCH_SHAPES, row_block
from tmx_kernels.registry import OpSpec, Tolerance


@triton.jit
def _rmsnorm_fwd(X, W, Y, n_rows, n_cols, stride_x, stride_y, eps,
                 BLOCK_N: tl.constexpr, ROWS_PER_PROGRAM: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * ROWS_PER_PROGRAM + tl.arange(0, ROWS_PER_PROGRAM)
    cols = tl.arange(0, BLOCK_N)
    row_mask = rows < n_rows
    col_mask = cols < n_cols
    mask = row_mask[:, None] & col_mask[None, :]
    x = tl.load(X + rows[:, None] * stride_x + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    mean_sq = tl.sum(x * x, axis=1) / n_cols
    rstd = 1.0 / tl.sqrt(mean_sq + eps)
    w = tl.load(W + cols, mask=col_mask, other=0.0).to(tl.float32)
    y = x * rstd[:, None] * w[None, :]
    tl.store(Y + rows[:, None] * stride_y + cols[None, :], y.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _rmsnorm_bwd(DY, X, W, DX, DW, n_rows, n_cols, eps, BLOCK_N: tl.constexpr, ROWS_PER_PROGRAM: tl.constexpr):
    """dx = rstd * (g - x * rstd^2 * mean(g * x)) with g = dy * w; each program sums its rows' dw partials."""
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    col_mask = cols < n_cols
    w = tl.load(W + cols, mask=col_mask, other=0.0).to(tl.float32)
    dw = tl.zeros([BLOCK_N], tl.float32)
    for i in range(ROWS_PER_PROGRAM):
        row = pid * ROWS_PER_PROGRAM + i
        mask = col_mask & (row < n_rows)
        base = row.to(tl.int64) * n_cols
        x = tl.load(X + base + cols, mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(DY + base + cols, mask=mask, other=0.0).to(tl.float32)
        rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / n_cols + eps)
        g = dy * w
        dx = rstd * g - x * (rstd * rstd * rstd) * (tl.sum(g * x, axis=0) / n_cols)
        tl.store(DX + base + cols, dx.to(DX.dtype.element_ty), mask=mask)
        dw += dy * x * rstd
    tl.store(DW + pid * n_cols + cols, dw, mask=col_mask)


def rmsnorm_bwd(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6, *, num_warps: int = 4,
                rows_per_program: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """(dx, dw) of RMSNorm; dw is reduced from per-program fp32 partials (deterministic, no atomics)."""
    if dy.shape != x.shape or x.shape[-1] != weight.shape[0]:
        raise ValueError("dy must match x, and weight the last dimension of x")
    n_cols = x.shape[-1]
    block_n = row_block(n_cols)
    x2, dy2 = x.reshape(-1, n_cols).contiguous(), dy.reshape(-1, n_cols).contiguous()
    n_rows = x2.shape[0]
    programs = triton.cdiv(n_rows, rows_per_program)
    dx = torch.empty_like(x2)
    partial = torch.empty(programs, n_cols, dtype=torch.float32, device=x.device)
    _rmsnorm_bwd[(programs,)](dy2, x2, weight, dx, partial, n_rows, n_cols, eps, BLOCK_N=block_n,
                              ROWS_PER_PROGRAM=rows_per_program, num_warps=num_warps)
    return dx.reshape(x.shape), partial.sum(0).to(weight.dtype)


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6, *, num_warps: int = 4,
            rows_per_program: int = 1) -> torch.Tensor:
    """Triton RMSNorm over the last dimension of `x` (any leading shape)."""
    if x.shape[-1] != weight.shape[0]:
        raise ValueError(f"weight has {weight.shape[0]} elements, rows have {x.shape[-1]}")
    n_cols = x.shape[-1]
    block_n = row_block(n_cols)
    x2 = x.reshape(-1, n_cols)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    y = torch.empty_like(x2)
    n_rows = x2.shape[0]
    grid = (triton.cdiv(n_rows, rows_per_program),)
    _rmsnorm_fwd[grid](x2, weight, y, n_rows, n_cols, x2.stride(0), y.stride(0), eps,
                       BLOCK_N=block_n, ROWS_PER_PROGRAM=rows_per_program, num_warps=num_warps)
    return y.reshape(x.shape)


def reference(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """fp64 reference, returned in the input dtype."""
    x64 = x.double()
    y = x64 * torch.rsqrt(x64.pow(2).mean(-1, keepdim=True) + eps) * weight.double()
    return y.to(x.dtype)


def _forward64(x, weight, eps: float = 1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def backward_reference(dy, x, weight, eps: float = 1e-6):
    return vjp_reference(lambda a, w: _forward64(a, w, eps), dy, x, weight, wrt=(0, 1))


def backward_eager(dy, x, weight, eps: float = 1e-6):
    """Autograd through the eager forward (what training without a fused backward runs)."""
    x_, w_ = x.detach().requires_grad_(), weight.detach().requires_grad_()
    return torch.autograd.grad(eager(x_, w_, eps), (x_, w_), dy)


def make_backward_inputs(shape: Sequence[int], dtype: torch.dtype, seed: int, device: str = "cpu") -> tuple:
    x, w = make_inputs(shape, dtype, seed, device)
    gen = torch.Generator(device="cpu").manual_seed(seed + 1)
    return torch.randn(*shape, generator=gen).to(device=device, dtype=dtype), x, w


def eager(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """What a model runs without a custom kernel (as in HF transformers' LlamaRMSNorm)."""
    xf = x.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (weight.float() * y).to(x.dtype)


def make_inputs(shape: Sequence[int], dtype: torch.dtype, seed: int, device: str = "cpu") -> tuple:
    """Normal activations with a few large outliers per row (as real hidden states have), weights near 1."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn(*shape, generator=gen, dtype=torch.float32)
    outliers = torch.rand(*shape, generator=gen) < 0.01
    x = torch.where(outliers, x * 20.0, x)
    w = 1.0 + 0.1 * torch.randn(shape[-1], generator=gen, dtype=torch.float32)
    return x.to(device=device, dtype=dtype), w.to(device=device, dtype=dtype)


def bytes_moved(shape: Sequence[int], dtype: torch.dtype) -> int:
    rows, cols = 1, shape[-1]
    for d in shape[:-1]:
        rows *= d
    size = torch.finfo(dtype).bits // 8
    return (2 * rows * cols + cols) * size  # read x, write y, read w once


def flops(shape: Sequence[int]) -> int:
    elements = 1
    for d in shape:
        elements *= d
    return 4 * elements  # square, sum, scale by rstd, scale by w


SPEC = OpSpec(
    name="rmsnorm",
    module=__import__(__name__, fromlist=["_"]),
    launch=rmsnorm,
    reference=reference,
    baseline=eager,
    make_inputs=make_inputs,
    tolerances={
        torch.float32: Tolerance(1e-5, 1e-5, "fp32 accumulation in a different order than the fp64 reference"),
        torch.float16: Tolerance(1e-3, 1e-3, "one fp16 rounding of the output (2^-11 relative)"),
        torch.bfloat16: Tolerance(1e-2, 1.6e-2, "bf16 output rounding; the interpreter truncates, so 2 ulp (2^-7)"),
    },
    bytes_moved=bytes_moved,
    flops=flops,
    search_space={"num_warps": (1, 2, 4, 8, 16), "rows_per_program": (1, 2, 4, 8)},
    default_config={"num_warps": 4, "rows_per_program": 1},
    test_shapes=((1, 1), (7, 33), (3, 5, 129), (2, 1000)),
    bench_shapes=NORM_BENCH_SHAPES,
)

BACKWARD = OpSpec(
    name="rmsnorm_bwd", module=SPEC.module, launch=rmsnorm_bwd, reference=backward_reference,
    baseline=backward_eager, make_inputs=make_backward_inputs,
    tolerances={
        torch.float32: Tolerance(2e-5, 2e-5, "fp32 row sums and a dw summed over rows in another order than fp64"),
        torch.float16: Tolerance(4e-3, 4e-3, "one fp16 rounding of dx and dw; dw sums many rows (|dw| up to ~30)"),
        torch.bfloat16: Tolerance(3e-2, 2e-2, "bf16 rounding of dx and dw; the interpreter truncates: 2 ulp"),
    },
    bytes_moved=lambda shape, dtype: 3 * bytes_moved(shape, dtype) // 2, flops=lambda shape: 3 * flops(shape),
    search_space=NORM_BACKWARD_SEARCH, default_config=NORM_BACKWARD_DEFAULT,
    test_shapes=((1, 1), (7, 33), (3, 5, 129)),
    bench_shapes=NORM_BENCH_SHAPES,
)
