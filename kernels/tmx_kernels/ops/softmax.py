"""Row softmax, numerically stable, over variable-length rows: `lengths[i]` valid columns in row i (the rest
are masked to 0 in the output). Online: one pass keeps a running max and a rescaled running sum, so rows of
any length stream through a fixed BLOCK_N tile."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl

from tmx_kernels.registry import OpSpec, Tolerance


@triton.jit
def _softmax_fwd(X, L, Y, n_cols, BLOCK_N: tl.constexpr):
    row = tl.program_id(0)
    length = tl.load(L + row)
    base = row * n_cols
    running_max = -float("inf")
    running_sum = 0.0
    for start in range(0, n_cols, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        x = tl.load(X + base + cols, mask=cols < length, other=-float("inf")).to(tl.float32)
        block_max = tl.max(x, axis=0)
        new_max = tl.maximum(running_max, block_max)
        safe_max = tl.where(new_max == -float("inf"), 0.0, new_max)
        running_sum = running_sum * tl.exp(running_max - safe_max) + tl.sum(tl.exp(x - safe_max), axis=0)
        running_max = new_max
    safe_max = tl.where(running_max == -float("inf"), 0.0, running_max)
    inv = tl.where(running_sum > 0, 1.0 / tl.maximum(running_sum, 1e-30), 0.0)  # an empty row stays all zero
    for start in range(0, n_cols, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        valid = cols < length
        x = tl.load(X + base + cols, mask=valid, other=-float("inf")).to(tl.float32)
        y = tl.where(valid, tl.exp(x - safe_max) * inv, 0.0)
        tl.store(Y + base + cols, y.to(Y.dtype.element_ty), mask=cols < n_cols)


def softmax(x: torch.Tensor, lengths: torch.Tensor | None = None, *, block_n: int = 256,
            num_warps: int = 4) -> torch.Tensor:
    """Softmax over the last dimension of a 2-D `x`; `lengths` (int32, one per row) masks the tail."""
    if x.dim() != 2:
        raise ValueError("x must be 2-D (rows, columns)")
    rows, cols = x.shape
    if lengths is None:
        lengths = torch.full((rows,), cols, dtype=torch.int32, device=x.device)
    if lengths.shape != (rows,) or int(lengths.max()) > cols or int(lengths.min()) < 0:
        raise ValueError("lengths must hold one value in [0, columns] per row")
    x = x.contiguous()
    y = torch.empty_like(x)
    _softmax_fwd[(rows,)](x, lengths.to(torch.int32).contiguous(), y, cols, BLOCK_N=block_n, num_warps=num_warps)
    return y


def reference(x, lengths=None):
    rows, cols = x.shape
    lengths = lengths if lengths is not None else torch.full((rows,), cols, dtype=torch.int32)
    mask = torch.arange(cols)[None, :] < lengths.cpu()[:, None].long()
    x64 = x.double().cpu().masked_fill(~mask, float("-inf"))
    y = torch.softmax(x64, dim=-1).nan_to_num(0.0).masked_fill(~mask, 0.0)  # an empty row is all zeros
    return y.to(device=x.device, dtype=x.dtype)


def eager(x, lengths=None):
    rows, cols = x.shape
    lengths = lengths if lengths is not None else torch.full((rows,), cols, dtype=torch.int32, device=x.device)
    mask = torch.arange(cols, device=x.device)[None, :] < lengths[:, None]
    return torch.softmax(x.float().masked_fill(~mask, float("-inf")), dim=-1).nan_to_num(0.0).to(x.dtype)


def make_inputs(shape: Sequence[int], dtype: torch.dtype, seed: int, device: str = "cpu") -> tuple:
    gen = torch.Generator(device="cpu").manual_seed(seed)
    rows, cols = shape
    x = torch.randn(rows, cols, generator=gen) * 8  # large logits: the max subtraction must matter
    x[0, 0] = 60.0  # exp(60) overflows fp16 without it
    lengths = torch.randint(1, cols + 1, (rows,), generator=gen, dtype=torch.int32)
    lengths[-1] = cols
    return x.to(device=device, dtype=dtype), lengths.to(device)


def bytes_moved(shape: Sequence[int], dtype: torch.dtype) -> int:
    return 3 * shape[0] * shape[1] * (torch.finfo(dtype).bits // 8)  # two reads (online pass, output pass), a write


def flops(shape: Sequence[int]) -> int:
    return 5 * shape[0] * shape[1]


SPEC = OpSpec(
    name="softmax", module=__import__(__name__, fromlist=["_"]), launch=softmax, reference=reference,
    baseline=eager, make_inputs=make_inputs,
    tolerances={
        torch.float32: Tolerance(1e-6, 1e-5, "fp32 exp and sum order vs fp64"),
        torch.float16: Tolerance(1e-3, 1e-3, "one fp16 rounding of each probability"),
        torch.bfloat16: Tolerance(8e-3, 1.6e-2, "bf16 output rounding; the interpreter truncates: 2 ulp"),
    },
    bytes_moved=bytes_moved, flops=flops,
    search_space={"block_n": (64, 128, 256, 512, 1024), "num_warps": (1, 2, 4, 8)},
    default_config={"block_n": 256, "num_warps": 4},
    test_shapes=((1, 1), (7, 33), (5, 300)),
    bench_shapes=((4096, 4096), (16384, 8192), (2048, 32768)),
)
