"""fp8 (e4m3) with dynamic scales: a per-token quantiser and a scaled matmul.

- fp8_quant: x [M, K] -> (q float8_e4m3fn [M, K], scale fp32 [M, 1]) with scale = max|x_row| / 448, so
  x ~ q * scale. The rounding to e4m3 (nearest-even, saturating at +-448) is done in fp32 bit arithmetic and
  the store is then exact; this also sidesteps the Triton interpreter's broken fp32 -> fp8 carry.
- fp8_matmul: y = (a * a_scale) @ (b * b_scale)^T for a [M, K], b [N, K] in e4m3, a_scale [M, 1],
  b_scale [N] in fp32, y in fp16/bf16/fp32. Products of e4m3 values are exact in fp32; the scales are applied
  once per output. On sm89+ the dot runs on the fp8 tensor cores.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import triton
import triton.language as tl

from tmx_kernels.ops.tiling import MATMUL_DEFAULT, MATMUL_SEARCH, grouped_tile
from tmx_kernels.registry import OpSpec, Tolerance

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0


@triton.jit
def _round_e4m3(v):
    """Round fp32 to the nearest e4m3 value (ties to even), saturating; the result is exactly representable."""
    v = tl.minimum(tl.maximum(v, -448.0), 448.0)
    bits = v.to(tl.int32, bitcast=True)
    normal = ((bits + 0x7FFFF + ((bits >> 20) & 1)) & -1048576).to(tl.float32, bitcast=True)  # keep 3 mantissa bits
    sub = (v + 24576.0) - 24576.0  # below 2^-6 e4m3 steps by 2^-9: 1.5 * 2^14 + v rounds to that grid
    return tl.where(tl.abs(v) < 0.015625, sub, normal)


@triton.jit
def _quant_rows(X, Q, S, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    amax = 0.0
    for start in range(0, n_cols, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        x = tl.load(X + row * n_cols + offs, mask=offs < n_cols, other=0.0).to(tl.float32)
        amax = tl.maximum(amax, tl.max(tl.abs(x), axis=0))
    amax = tl.maximum(amax, 1e-12)
    inv = 448.0 / amax
    tl.store(S + row, amax / 448.0)
    for start in range(0, n_cols, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        mask = offs < n_cols
        x = tl.load(X + row * n_cols + offs, mask=mask, other=0.0).to(tl.float32)
        tl.store(Q + row * n_cols + offs, _round_e4m3(x * inv).to(Q.dtype.element_ty), mask=mask)


@triton.jit
def _fp8_matmul(A, B, SA, SB, Y, M, N, K, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                GROUP_M: tl.constexpr, DOT_FP32: tl.constexpr):
    pid_m, pid_n = grouped_tile(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)
    for start in range(0, K, BLOCK_K):
        k = start + rk
        a = tl.load(A + rm[:, None].to(tl.int64) * K + k[None, :], mask=(rm < M)[:, None] & (k < K)[None, :],
                    other=0.0)
        b = tl.load(B + rn[None, :].to(tl.int64) * K + k[:, None], mask=(rn < N)[None, :] & (k < K)[:, None],
                    other=0.0)
        if DOT_FP32:
            acc += tl.dot(a.to(tl.float32), b.to(tl.float32))
        else:
            acc += tl.dot(a, b)
    sa = tl.load(SA + rm, mask=rm < M, other=0.0)
    sb = tl.load(SB + rn, mask=rn < N, other=0.0)
    y = acc * sa[:, None] * sb[None, :]
    tl.store(Y + rm[:, None].to(tl.int64) * N + rn[None, :], y.to(Y.dtype.element_ty),
             mask=(rm < M)[:, None] & (rn < N)[None, :])


def fp8_quant(x: torch.Tensor, *, block: int = 1024, num_warps: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    if x.dim() != 2:
        raise ValueError("x must be [tokens, hidden]")
    x = x.contiguous()
    q = torch.empty(x.shape, dtype=FP8, device=x.device)
    scale = torch.empty(x.shape[0], 1, dtype=torch.float32, device=x.device)
    if x.shape[0]:
        _quant_rows[(x.shape[0],)](x, q, scale, x.shape[1], BLOCK=block, num_warps=num_warps)
    return q, scale


def fp8_matmul(a: torch.Tensor, a_scale: torch.Tensor, b: torch.Tensor, b_scale: torch.Tensor,
               out_dtype: torch.dtype = torch.bfloat16, *, block_m: int = 64, block_n: int = 64, block_k: int = 64,
               group_m: int = 8, num_warps: int = 4, num_stages: int = 3) -> torch.Tensor:
    if a.dtype != FP8 or b.dtype != FP8 or a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError("a [M, K] and b [N, K] must be float8_e4m3fn")
    if a_scale.numel() != a.shape[0] or b_scale.numel() != b.shape[0]:
        raise ValueError("one scale per row of a and per row of b")
    a, b = a.contiguous(), b.contiguous()
    M, K = a.shape
    N = b.shape[0]
    y = torch.empty(M, N, dtype=out_dtype, device=a.device)
    grid = (triton.cdiv(M, block_m) * triton.cdiv(N, block_n),)
    _fp8_matmul[grid](a, b, a_scale.float().contiguous(), b_scale.float().contiguous(), y, M, N, K,
                      BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, GROUP_M=group_m,
                      DOT_FP32=os.environ.get("TRITON_INTERPRET") == "1", num_warps=num_warps,
                      num_stages=num_stages)
    return y


def quant_reference(x):
    xf = x.float()
    amax = xf.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
    return (xf * (FP8_MAX / amax)).clamp(-FP8_MAX, FP8_MAX).to(FP8), amax / FP8_MAX


def quant_eager(x):
    """The PyTorch path vLLM falls back to: amax, divide, clamp, cast (four passes over x)."""
    scale = x.abs().amax(dim=1, keepdim=True).float().clamp_min(1e-12) / FP8_MAX
    return (x.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8), scale


def matmul_reference(a, a_scale, b, b_scale, out_dtype=torch.bfloat16):
    return ((a.double() * a_scale.double().reshape(-1, 1)) @ (b.double() * b_scale.double().reshape(-1, 1)).T) \
        .to(out_dtype)


def matmul_eager(a, a_scale, b, b_scale, out_dtype=torch.bfloat16):
    if a.is_cuda:  # cuBLASLt's fp8 GEMM with row-wise scales
        return torch._scaled_mm(a, b.T, scale_a=a_scale.float().reshape(-1, 1),
                                scale_b=b_scale.float().reshape(1, -1), out_dtype=out_dtype)
    return ((a.float() * a_scale.reshape(-1, 1)) @ (b.float() * b_scale.reshape(-1, 1)).T).to(out_dtype)


def _activations(gen, rows, cols) -> torch.Tensor:
    x = torch.randn(rows, cols, generator=gen)
    outliers = torch.rand(rows, cols, generator=gen) < 0.005
    return torch.where(outliers, x * 30.0, x)  # a few outlier channels set each row's scale


def make_quant_inputs(shape: Sequence[int], dtype: torch.dtype, seed: int, device: str = "cpu") -> tuple:
    """shape = (tokens, hidden); includes values small enough to land in e4m3's subnormal range."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = _activations(gen, *shape)
    x[:, ::7] *= 1e-3
    return (x.to(device=device, dtype=dtype),)


def make_matmul_inputs(shape: Sequence[int], dtype: torch.dtype, seed: int, device: str = "cpu") -> tuple:
    """shape = (M, N, K); dtype is the output dtype. Operands quantised by the reference quantiser."""
    M, N, K = shape
    gen = torch.Generator(device="cpu").manual_seed(seed)
    a, a_scale = quant_reference(_activations(gen, M, K))
    b, b_scale = quant_reference(torch.randn(N, K, generator=gen) / K ** 0.5)
    return a.to(device), a_scale.to(device), b.to(device), b_scale.reshape(-1).to(device), dtype


_MODULE = __import__(__name__, fromlist=["_"])
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

QUANT = OpSpec(
    name="fp8_quant", module=_MODULE, launch=fp8_quant, reference=quant_reference, baseline=quant_eager,
    make_inputs=make_quant_inputs,
    tolerances={dtype: Tolerance(2.0 ** -9, 0.125, "x * (448 / amax) is one fp32 division whose rounding differs "
                                                   "between torch, the interpreter and the GPU: a value on an "
                                                   "e4m3 rounding boundary may land one step (<= 1/8) away")
                for dtype in _DTYPES},
    bytes_moved=lambda shape, dtype: shape[0] * shape[1] * (2 * torch.finfo(dtype).bits // 8 + 1) + 4 * shape[0],
    flops=lambda shape: 3 * shape[0] * shape[1],
    search_space={"block": (256, 512, 1024, 2048, 4096), "num_warps": (1, 2, 4, 8)},
    default_config={"block": 1024, "num_warps": 4},
    test_shapes=((1, 1), (7, 33), (5, 1500)),
    bench_shapes=((16, 4096), (4096, 4096), (16384, 8192)),
)

MATMUL = OpSpec(
    name="fp8_matmul", module=_MODULE, launch=fp8_matmul, reference=matmul_reference, baseline=matmul_eager,
    make_inputs=make_matmul_inputs,
    tolerances={
        torch.float32: Tolerance(1e-4, 1e-4, "exact e4m3 products, fp32 accumulation order vs fp64 (|y| ~ 1)"),
        torch.float16: Tolerance(2e-3, 2e-3, "one fp16 rounding of the output"),
        torch.bfloat16: Tolerance(2e-2, 2e-2, "bf16 output rounding; the interpreter truncates: 2 ulp"),
    },
    bytes_moved=lambda shape, dtype: shape[0] * shape[2] + shape[1] * shape[2]
    + shape[0] * shape[1] * (torch.finfo(dtype).bits // 8),
    flops=lambda shape: 2 * shape[0] * shape[1] * shape[2], bound="compute",
    search_space=MATMUL_SEARCH, default_config=MATMUL_DEFAULT,
    test_shapes=((1, 1, 1), (7, 33, 50), (70, 19, 129)),
    bench_shapes=((16, 4096, 4096), (4096, 4096, 4096), (8192, 8192, 8192)),
)
