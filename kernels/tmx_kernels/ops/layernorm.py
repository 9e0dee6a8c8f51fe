"""LayerNorm: y = (x - mean) / sqrt(var + eps) * w + b over the last dimension. Mean and variance come from
Welford's algorithm merged tile by tile (Chan et al.), in fp32, so rows of any length stream through a fixed
tile without the cancellation of the sum-of-squares formula."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl

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
)
