"""LayerNorm: y = (x - mean) / sqrt(var + eps) * w + b over the last dimension. Mean and variance come from
Welford's algorithm merged tile by tile (Chan et al.), in fp32, so rows of any length stream through a fixed
tile without the cancellation of the sum-of-squares formula."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl

from tmx_kernels.autodiff import vjp_reference
from tmx_kernels.ops.tiling import NORM_BACKWARD_DEFAULT, NORM_BACKWARD_SEARCH, NORM_BENCH_SHAPES, row_block
from tmx_kernels.registry import OpSpec, Tolerance


@triton.jit
def _layernorm_fwd(X, W, B, Y, n_cols, eps, BLOCK_N: tl.constexpr):
    row = tl.program_id(0)
    base = row * n_cols
    mean = 0.0
    m2 = 0.0
    count = 0.0
    for start in range(0, n_cols, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        valid = cols < n_cols
        x = tl.load(X + base + cols, mask=valid, other=0.0).to(tl.float32)
        n_tile = tl.sum(valid.to(tl.float32), axis=0)
        tile_mean = tl.sum(x, axis=0) / n_tile
        tile_m2 = tl.sum(tl.where(valid, (x - tile_mean) * (x - tile_mean), 0.0), axis=0)
        total = count + n_tile
        delta = tile_mean - mean
        mean = mean + delta * n_tile / total
        m2 = m2 + tile_m2 + delta * delta * count * n_tile / total
        count = total
    rstd = 1.0 / tl.sqrt(m2 / count + eps)
    for start in range(0, n_cols, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        valid = cols < n_cols
        x = tl.load(X + base + cols, mask=valid, other=0.0).to(tl.float32)
        w = tl.load(W + cols, mask=valid, other=0.0).to(tl.float32)
        b = tl.load(B + cols, mask=valid, other=0.0).to(tl.float32)
        tl.store(Y + base + cols, ((x - mean) * rstd * w + b).to(Y.dtype.element_ty), mask=valid)


@triton.jit
def _layernorm_bwd(DY, X, W, DX, DW, DB, n_rows, n_cols, eps, BLOCK_N: tl.constexpr, ROWS_PER_PROGRAM: tl.constexpr):
    """dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * w; a whole row sits in registers, so the
    statistics are recomputed two-pass (mean, then centred variance) instead of stored by the forward."""
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    col_mask = cols < n_cols
    w = tl.load(W + cols, mask=col_mask, other=0.0).to(tl.float32)
    dw = tl.zeros([BLOCK_N], tl.float32)
    db = tl.zeros([BLOCK_N], tl.float32)
    for i in range(ROWS_PER_PROGRAM):
        row = pid * ROWS_PER_PROGRAM + i
        mask = col_mask & (row < n_rows)
        base = row.to(tl.int64) * n_cols
        x = tl.load(X + base + cols, mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(DY + base + cols, mask=mask, other=0.0).to(tl.float32)
        mean = tl.sum(x, axis=0) / n_cols
        centred = tl.where(col_mask, x - mean, 0.0)
        rstd = 1.0 / tl.sqrt(tl.sum(centred * centred, axis=0) / n_cols + eps)
        xhat = centred * rstd
        g = dy * w
        dx = rstd * (g - tl.sum(g, axis=0) / n_cols - xhat * (tl.sum(g * xhat, axis=0) / n_cols))
        tl.store(DX + base + cols, dx.to(DX.dtype.element_ty), mask=mask)
        dw += dy * xhat
        db += dy
    tl.store(DW + pid * n_cols + cols, dw, mask=col_mask)
    tl.store(DB + pid * n_cols + cols, db, mask=col_mask)


def layernorm_bwd(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5, *,
                  num_warps: int = 4, rows_per_program: int = 4):
    """(dx, dw, db) of LayerNorm; dw and db are reduced from per-program fp32 partials."""
    n_cols = x.shape[-1]
    if dy.shape != x.shape or weight.shape != (n_cols,) or bias.shape != (n_cols,):
        raise ValueError("dy must match x, and weight and bias the last dimension of x")
    block_n = row_block(n_cols)
    x2, dy2 = x.reshape(-1, n_cols).contiguous(), dy.reshape(-1, n_cols).contiguous()
    programs = triton.cdiv(x2.shape[0], rows_per_program)
    dx = torch.empty_like(x2)
    dw = torch.empty(programs, n_cols, dtype=torch.float32, device=x.device)
    db = torch.empty_like(dw)
    _layernorm_bwd[(programs,)](dy2, x2, weight, dx, dw, db, x2.shape[0], n_cols, eps, BLOCK_N=block_n,
                                ROWS_PER_PROGRAM=rows_per_program, num_warps=num_warps)
    return dx.reshape(x.shape), dw.sum(0).to(weight.dtype), db.sum(0).to(bias.dtype)


def layernorm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5, *,
              block_n: int = 1024, num_warps: int = 4) -> torch.Tensor:
    n_cols = x.shape[-1]
    if weight.shape != (n_cols,) or bias.shape != (n_cols,):
        raise ValueError(f"weight and bias must have {n_cols} elements")
    x2 = x.reshape(-1, n_cols).contiguous()
    y = torch.empty_like(x2)
    _layernorm_fwd[(x2.shape[0],)](x2, weight, bias, y, n_cols, eps, BLOCK_N=block_n, num_warps=num_warps)
    return y.reshape(x.shape)


def reference(x, weight, bias, eps: float = 1e-5):
    return torch.nn.functional.layer_norm(x.double(), (x.shape[-1],), weight.double(), bias.double(), eps).to(x.dtype)


def eager(x, weight, bias, eps: float = 1e-5):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), weight, bias, eps)


def backward_reference(dy, x, weight, bias, eps: float = 1e-5):
    return vjp_reference(lambda a, w, b: torch.nn.functional.layer_norm(a, (a.shape[-1],), w, b, eps), dy, x,
                         weight, bias, wrt=(0, 1, 2))


def backward_eager(dy, x, weight, bias, eps: float = 1e-5):
    leaves = [t.detach().requires_grad_() for t in (x, weight, bias)]
    return torch.autograd.grad(eager(*leaves, eps), leaves, dy)


def make_backward_inputs(shape: Sequence[int], dtype: torch.dtype, seed: int, device: str = "cpu") -> tuple:
    gen = torch.Generator(device="cpu").manual_seed(seed + 1)
    return (torch.randn(*shape, generator=gen).to(device=device, dtype=dtype),
            *make_inputs(shape, dtype, seed, device))


def make_inputs(shape: Sequence[int], dtype: torch.dtype, seed: int, device: str = "cpu") -> tuple:
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn(*shape, generator=gen) + 50.0  # a large mean: naive E[x^2] - E[x]^2 loses the variance
    w = 1.0 + 0.1 * torch.randn(shape[-1], generator=gen)
    b = 0.1 * torch.randn(shape[-1], generator=gen)
    return tuple(t.to(device=device, dtype=dtype) for t in (x, w, b))


def bytes_moved(shape: Sequence[int], dtype: torch.dtype) -> int:
    elements = 1
    for d in shape:
        elements *= d
    return (3 * elements + 2 * shape[-1]) * (torch.finfo(dtype).bits // 8)  # x read twice, y written, w, b


def flops(shape: Sequence[int]) -> int:
    elements = 1
    for d in shape:
        elements *= d
    return 8 * elements


SPEC = OpSpec(
    name="layernorm", module=__import__(__name__, fromlist=["_"]), launch=layernorm, reference=reference,
    baseline=eager, make_inputs=make_inputs,
    tolerances={
        # inputs sit near 50, where one fp16/bf16 input ulp is large: the tolerance follows the output scale
        torch.float32: Tolerance(2e-5, 1e-5, "fp32 Welford vs fp64"),
        torch.float16: Tolerance(2e-3, 2e-3, "one fp16 rounding of the output (values up to ~4)"),
        torch.bfloat16: Tolerance(3e-2, 1.6e-2, "bf16 output rounding; the interpreter truncates: 2 ulp"),
    },
    bytes_moved=bytes_moved, flops=flops,
    search_space={"block_n": (64, 128, 256, 512, 1024, 2048), "num_warps": (1, 2, 4, 8)},
    default_config={"block_n": 1024, "num_warps": 4},
    test_shapes=((1, 1), (7, 33), (3, 2500)),
    bench_shapes=NORM_BENCH_SHAPES,
)

BACKWARD = OpSpec(
    name="layernorm_bwd", module=SPEC.module, launch=layernorm_bwd, reference=backward_reference,
    baseline=backward_eager, make_inputs=make_backward_inputs,
    tolerances={
        # inputs sit near 50: an fp16/bf16 input ulp there is 1/32 resp. 1/4 of the unit-variance signal
        torch.float32: Tolerance(5e-5, 2e-5, "fp32 two-pass statistics and row-order dw/db sums vs fp64"),
        torch.float16: Tolerance(1e-2, 4e-3, "one fp16 rounding of dx, dw, db; dw, db sum many rows"),
        torch.bfloat16: Tolerance(6e-2, 2e-2, "bf16 rounding of dx, dw, db; the interpreter truncates: 2 ulp"),
    },
    bytes_moved=lambda shape, dtype: 3 * bytes_moved(shape, dtype) // 2, flops=lambda shape: 2 * flops(shape),
    search_space=NORM_BACKWARD_SEARCH, default_config=NORM_BACKWARD_DEFAULT,
    test_shapes=((1, 1), (7, 33), (3, 700)),
    bench_shapes=NORM_BENCH_SHAPES,
)
