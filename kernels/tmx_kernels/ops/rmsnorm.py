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

from tmx_kernels.registry import OpSpec, Tolerance

MAX_BLOCK_N = 65536


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


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6, *, num_warps: int = 4,
            rows_per_program: int = 1) -> torch.Tensor:
    """Triton RMSNorm over the last dimension of `x` (any leading shape)."""
    if x.shape[-1] != weight.shape[0]:
        raise ValueError(f"weight has {weight.shape[0]} elements, rows have {x.shape[-1]}")
    n_cols = x.shape[-1]
    block_n = triton.next_power_of_2(n_cols)
    if block_n > MAX_BLOCK_N:
        raise ValueError(f"rows longer than {MAX_BLOCK_N} elements are not supported")
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
)
