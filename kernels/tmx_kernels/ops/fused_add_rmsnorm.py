"""Fused residual add + RMSNorm: h = x + residual; y = rmsnorm(h) * w. Returns (y, h) so the next layer
reuses h as its residual — one read of x and residual, one write of each output, instead of three passes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl

from tmx_kernels.ops.tiling import NORM_BENCH_SHAPES, row_block
from tmx_kernels.registry import OpSpec, Tolerance


@triton.jit
def _fused_add_rmsnorm_fwd(X, R, W, Y, H, n_rows, n_cols, eps, BLOCK_N: tl.constexpr,
                           ROWS_PER_PROGRAM: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * ROWS_PER_PROGRAM + tl.arange(0, ROWS_PER_PROGRAM)
    cols = tl.arange(0, BLOCK_N)
    col_mask = cols < n_cols
    mask = (rows < n_rows)[:, None] & col_mask[None, :]
    offsets = rows[:, None] * n_cols + cols[None, :]
    h = tl.load(X + offsets, mask=mask, other=0.0).to(tl.float32) + \
        tl.load(R + offsets, mask=mask, other=0.0).to(tl.float32)
    tl.store(H + offsets, h.to(H.dtype.element_ty), mask=mask)
    # normalise the residual stream as stored (rounded to the activation dtype), as the unfused model does
    h = h.to(H.dtype.element_ty).to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(h * h, axis=1) / n_cols + eps)
    w = tl.load(W + cols, mask=col_mask, other=0.0).to(tl.float32)
    tl.store(Y + offsets, (h * rstd[:, None] * w[None, :]).to(Y.dtype.element_ty), mask=mask)


def fused_add_rmsnorm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6, *,
                      num_warps: int = 4, rows_per_program: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    if x.shape != residual.shape:
        raise ValueError(f"x {tuple(x.shape)} and residual {tuple(residual.shape)} differ")
    if x.shape[-1] != weight.shape[0]:
        raise ValueError(f"weight has {weight.shape[0]} elements, rows have {x.shape[-1]}")
    n_cols = x.shape[-1]
    block_n = row_block(n_cols)
    x2, r2 = x.reshape(-1, n_cols).contiguous(), residual.reshape(-1, n_cols).contiguous()
    y, h = torch.empty_like(x2), torch.empty_like(x2)
    n_rows = x2.shape[0]
    _fused_add_rmsnorm_fwd[(triton.cdiv(n_rows, rows_per_program),)](
        x2, r2, weight, y, h, n_rows, n_cols, eps, BLOCK_N=block_n, ROWS_PER_PROGRAM=rows_per_program,
        num_warps=num_warps)
    return y.reshape(x.shape), h.reshape(x.shape)


def reference(x, residual, weight, eps: float = 1e-6):
    """fp64 reference; h is rounded to the activation dtype before normalising, as the unfused model."""
    h = (x.double() + residual.double()).to(x.dtype)
    h64 = h.double()
    y = h64 * torch.rsqrt(h64.pow(2).mean(-1, keepdim=True) + eps) * weight.double()
    return y.to(x.dtype), h


def eager(x, residual, weight, eps: float = 1e-6):
    h = x + residual
    hf = h.float()
    return (weight.float() * hf * torch.rsqrt(hf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype), h


def make_inputs(shape: Sequence[int], dtype: torch.dtype, seed: int, device: str = "cpu") -> tuple:
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn(*shape, generator=gen)
    residual = torch.randn(*shape, generator=gen) * 4  # the residual stream grows through the layers
    w = 1.0 + 0.1 * torch.randn(shape[-1], generator=gen)
    return tuple(t.to(device=device, dtype=dtype) for t in (x, residual, w))


def bytes_moved(shape: Sequence[int], dtype: torch.dtype) -> int:
    elements = 1
    for d in shape:
        elements *= d
    return (4 * elements + shape[-1]) * (torch.finfo(dtype).bits // 8)  # read x, r; write y, h; read w


def flops(shape: Sequence[int]) -> int:
    elements = 1
    for d in shape:
        elements *= d
    return 5 * elements


SPEC = OpSpec(
    name="fused_add_rmsnorm", module=__import__(__name__, fromlist=["_"]), launch=fused_add_rmsnorm,
    reference=reference, baseline=eager, make_inputs=make_inputs,
    tolerances={
        torch.float32: Tolerance(1e-5, 1e-5, "fp32 accumulation order differs from the fp64 reference"),
        torch.float16: Tolerance(1e-3, 1e-3, "one fp16 rounding of each output"),
        torch.bfloat16: Tolerance(1e-2, 1.6e-2, "bf16 output rounding; the interpreter truncates: 2 ulp"),
    },
    bytes_moved=bytes_moved, flops=flops,
    search_space={"num_warps": (1, 2, 4, 8, 16), "rows_per_program": (1, 2, 4, 8)},
    default_config={"num_warps": 4, "rows_per_program": 1},
    test_shapes=((1, 1), (7, 33), (3, 5, 129)),
    bench_shapes=NORM_BENCH_SHAPES,
)
