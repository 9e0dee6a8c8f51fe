"""Weight-only int8 matmul: y = x @ (w_q * scale)^T with x [M, K] in fp16/bf16/fp32, w_q int8 [N, K] and one
fp32 scale per output channel [N]. The weight is dequantised tile by tile in registers (int8 -> the
activation dtype is exact for |w| <= 127), products accumulate in fp32 and the scale is applied once per
output. A grouped launch order (GROUP_M rows of tiles share a weight column band) keeps weight tiles in L2.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from tmx_kernels.ops.tiling import MATMUL_DEFAULT, MATMUL_SEARCH, grouped_tile
from tmx_kernels.registry import OpSpec, Tolerance


@triton.jit
def _w8_matmul(X, W, S, Y, M, N, K, s_xm, s_wn, s_ym,
               BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
               DOT_FP32: tl.constexpr):
    pid_m, pid_n = grouped_tile(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)
    for start in range(0, K, BLOCK_K):
        k = start + rk
        x = tl.load(X + rm[:, None].to(tl.int64) * s_xm + k[None, :],
                    mask=(rm < M)[:, None] & (k < K)[None, :], other=0.0)
        w = tl.load(W + rn[None, :].to(tl.int64) * s_wn + k[:, None],
                    mask=(rn < N)[None, :] & (k < K)[:, None], other=0)
        if DOT_FP32:
            acc += tl.dot(x.to(tl.float32), w.to(tl.float32))
        else:
            acc += tl.dot(x, w.to(x.dtype))
    scale = tl.load(S + rn, mask=rn < N, other=0.0)
    y = acc * scale[None, :]
    tl.store(Y + rm[:, None].to(tl.int64) * s_ym + rn[None, :], y.to(Y.dtype.element_ty),
             mask=(rm < M)[:, None] & (rn < N)[None, :])


def int8_matmul(x: torch.Tensor, w_q: torch.Tensor, scale: torch.Tensor, *, block_m: int = 64, block_n: int = 64,
                block_k: int = 64, group_m: int = 8, num_warps: int = 4, num_stages: int = 3) -> torch.Tensor:
    if x.dim() != 2 or w_q.dim() != 2 or x.shape[1] != w_q.shape[1]:
        raise ValueError("x must be [M, K] and w_q [N, K]")
    if w_q.dtype != torch.int8 or scale.shape != (w_q.shape[0],):
        raise ValueError("w_q must be int8 with one scale per output channel")
    x, w_q = x.contiguous(), w_q.contiguous()
    M, K = x.shape
    N = w_q.shape[0]
    y = torch.empty(M, N, dtype=x.dtype, device=x.device)
    grid = (triton.cdiv(M, block_m) * triton.cdiv(N, block_n),)
    _w8_matmul[grid](x, w_q, scale.float().contiguous(), y, M, N, K, x.stride(0), w_q.stride(0), y.stride(0),
                     BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, GROUP_M=group_m,
                     DOT_FP32=os.environ.get("TRITON_INTERPRET") == "1", num_warps=num_warps,
                     num_stages=num_stages)
    return y


def quantize(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-channel int8: scale = max|w| / 127 per output row."""
    scale = w.abs().amax(dim=1).clamp_min(1e-12).float() / 127.0
    return torch.round(w.float() / scale[:, None]).clamp(-127, 127).to(torch.int8), scale


def reference(x, w_q, scale):
    return (x.double() @ (w_q.double() * scale.double()[:, None]).T).to(x.dtype)


def eager(x, w_q, scale):
    """Dequantise the whole weight, then a dense matmul (what a PyTorch model without a w8 kernel does)."""
    return F.linear(x, (w_q.to(x.dtype) * scale[:, None].to(x.dtype)))


def make_inputs(shape: Sequence[int], dtype: torch.dtype, seed: int, device: str = "cpu") -> tuple:
    """shape = (M, N, K); weights with per-channel spread so scales differ by 10x across channels."""
    M, N, K = shape
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn(M, K, generator=gen)
    w = torch.randn(N, K, generator=gen) * (0.2 + 2.0 * torch.rand(N, 1, generator=gen)) / K ** 0.5
    w_q, scale = quantize(w)
    return x.to(device=device, dtype=dtype), w_q.to(device), scale.to(device)


SPEC = OpSpec(
    name="int8_matmul", module=__import__(__name__, fromlist=["_"]), launch=int8_matmul, reference=reference,
    baseline=eager, make_inputs=make_inputs,
    tolerances={
        torch.float32: Tolerance(1e-4, 1e-4, "fp32 accumulation over K in tile order vs fp64 (|y| ~ 1)"),
        torch.float16: Tolerance(2e-3, 2e-3, "one fp16 rounding of the output (|y| ~ 1)"),
        torch.bfloat16: Tolerance(2e-2, 2e-2, "bf16 output rounding; the interpreter truncates: 2 ulp"),
    },
    bytes_moved=lambda shape, dtype: (shape[0] * shape[2] + shape[0] * shape[1]) * (torch.finfo(dtype).bits // 8)
    + shape[1] * shape[2] + 4 * shape[1],
    flops=lambda shape: 2 * shape[0] * shape[1] * shape[2], bound="compute",
    search_space=MATMUL_SEARCH, default_config=MATMUL_DEFAULT,
    test_shapes=((1, 1, 1), (7, 33, 50), (70, 19, 129)),
    bench_shapes=((1, 4096, 4096), (16, 14336, 4096), (4096, 4096, 4096)),
)
