"""Causal flash attention forward with grouped-query heads: q [batch, q_heads, q_len, head_dim] attends to
k, v [batch, kv_heads, kv_len, head_dim], q head h reading kv head h // (q_heads / kv_heads). Online softmax
in fp32 over BLOCK_N key tiles (FlashAttention-2's loop order: one program owns BLOCK_M query rows).

When kv_len > q_len (decode or chunked prefill after a KV cache), query i sits at key position
kv_len - q_len + i: the causal mask is aligned bottom-right, as vLLM and FlashAttention define it.
Key tiles entirely above the diagonal are never loaded.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from tmx_kernels.registry import OpSpec, Tolerance

LOG2E = 1.4426950408889634


@triton.jit
def _attn_fwd(Q, K, V, O, qk_scale, q_len, kv_len, head_dim, q_heads, group,
              s_qb, s_qh, s_qs, s_kb, s_kh, s_ks, s_vb, s_vh, s_vs, s_ob, s_oh, s_os,
              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, CAUSAL: tl.constexpr,
              DOT_FP32: tl.constexpr):
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // q_heads
    h = bh % q_heads
    kvh = h // group
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < head_dim
    q = tl.load(Q + b * s_qb + h * s_qh + offs_m[:, None] * s_qs + offs_d[None, :],
                mask=(offs_m < q_len)[:, None] & d_mask[None, :], other=0.0)
    if DOT_FP32:
        q = q.to(tl.float32)
    k_base = K + b * s_kb + kvh * s_kh
    v_base = V + b * s_vb + kvh * s_vh
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    shift = kv_len - q_len  # query row i may see keys 0 .. shift + i
    hi = kv_len
    if CAUSAL:
        hi = tl.minimum(kv_len, shift + (pid_m + 1) * BLOCK_M)
    for start in range(0, hi, BLOCK_N):
        n = start + offs_n
        kv_mask = (n < kv_len)[:, None] & d_mask[None, :]
        k = tl.load(k_base + n[:, None] * s_ks + offs_d[None, :], mask=kv_mask, other=0.0)
        v = tl.load(v_base + n[:, None] * s_vs + offs_d[None, :], mask=kv_mask, other=0.0)
        if DOT_FP32:
            k = k.to(tl.float32)
            v = v.to(tl.float32)
        s = tl.dot(q, tl.trans(k)) * qk_scale  # log2 domain: qk_scale folds in log2(e)
        valid = (n < kv_len)[None, :]
        if CAUSAL:
            valid = valid & (n[None, :] <= shift + offs_m[:, None])
        s = tl.where(valid, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # a row with nothing visible yet stays at zero
        alpha = tl.exp2(m_i - m_safe)
        p = tl.exp2(s - m_safe[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    out = acc / tl.where(l_i > 0.0, l_i, 1.0)[:, None]
    tl.store(O + b * s_ob + h * s_oh + offs_m[:, None] * s_os + offs_d[None, :], out.to(O.dtype.element_ty),
             mask=(offs_m < q_len)[:, None] & d_mask[None, :])


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if q.dim() != 4 or k.shape != v.shape or k.dim() != 4:
        raise ValueError("q must be [batch, q_heads, q_len, head_dim] and k, v [batch, kv_heads, kv_len, head_dim]")
    if q.shape[0] != k.shape[0] or q.shape[3] != k.shape[3]:
        raise ValueError("q and k/v differ in batch or head_dim")
    if q.shape[1] % k.shape[1]:
        raise ValueError(f"{q.shape[1]} query heads are not a multiple of {k.shape[1]} kv heads")
    if k.shape[2] < q.shape[2]:
        raise ValueError("kv_len must be at least q_len (queries are the last q_len positions)")


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True, *, block_m: int = 64,
              block_n: int = 64, num_warps: int = 4, num_stages: int = 2) -> torch.Tensor:
    _check(q, k, v)
    batch, q_heads, q_len, head_dim = q.shape
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    o = torch.empty_like(q)
    scale = LOG2E / math.sqrt(head_dim)
    grid = (triton.cdiv(q_len, block_m), batch * q_heads)
    _attn_fwd[grid](q, k, v, o, scale, q_len, k.shape[2], head_dim, q_heads, q_heads // k.shape[1],
                    *q.stride()[:3], *k.stride()[:3], *v.stride()[:3], *o.stride()[:3],
                    BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=max(16, triton.next_power_of_2(head_dim)),
                    CAUSAL=causal, DOT_FP32=os.environ.get("TRITON_INTERPRET") == "1",
                    num_warps=num_warps, num_stages=num_stages)
    return o


def _mask(q_len: int, kv_len: int, device) -> torch.Tensor:
    """Bottom-right aligned causal mask: True where query i may see key j."""
    i = torch.arange(q_len, device=device)[:, None]
    j = torch.arange(kv_len, device=device)[None, :]
    return j <= i + (kv_len - q_len)


def reference(q, k, v, causal: bool = True):
    _check(q, k, v)
    group = q.shape[1] // k.shape[1]
    k64 = k.double().repeat_interleave(group, dim=1)
    v64 = v.double().repeat_interleave(group, dim=1)
    s = q.double() @ k64.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        s = s.masked_fill(~_mask(q.shape[2], k.shape[2], q.device), float("-inf"))
    return (s.softmax(-1) @ v64).to(q.dtype)


def eager(q, k, v, causal: bool = True):
    """PyTorch's fused SDPA (flash / memory-efficient backends on GPU), GQA handled by the library."""
    mask = _mask(q.shape[2], k.shape[2], q.device) if causal and q.shape[2] != k.shape[2] else None
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None,
                                          enable_gqa=True)


def make_inputs(shape: Sequence[int], dtype: torch.dtype, seed: int, device: str = "cpu") -> tuple:
    """shape = (batch, q_heads, kv_heads, seq_len, head_dim); prefill (q_len == kv_len)."""
    batch, q_heads, kv_heads, seq, head_dim = shape
    gen = torch.Generator(device="cpu").manual_seed(seed)
    q = torch.randn(batch, q_heads, seq, head_dim, generator=gen)
    k = torch.randn(batch, kv_heads, seq, head_dim, generator=gen)
    v = torch.randn(batch, kv_heads, seq, head_dim, generator=gen)
    q[..., 0] *= 8.0  # one hot channel, as trained attention has: sharp rows stress the online rescaling
    return tuple(t.to(device=device, dtype=dtype) for t in (q, k, v))


def bytes_moved(shape: Sequence[int], dtype: torch.dtype) -> int:
    batch, q_heads, kv_heads, seq, head_dim = shape
    return (2 * batch * q_heads + 2 * batch * kv_heads) * seq * head_dim * (torch.finfo(dtype).bits // 8)


def flops(shape: Sequence[int]) -> int:
    batch, q_heads, _, seq, head_dim = shape
    return 2 * batch * q_heads * seq * seq * head_dim  # 4*B*H*S^2*D for QK^T and PV, halved by the causal mask


SPEC = OpSpec(
    name="attention", module=__import__(__name__, fromlist=["_"]), launch=attention, reference=reference,
    baseline=eager, make_inputs=make_inputs,
    tolerances={
        torch.float32: Tolerance(2e-5, 2e-5, "fp32 dot products and online softmax vs fp64"),
        torch.float16: Tolerance(2e-3, 2e-3, "probabilities rounded to fp16 before the PV product, fp16 output"),
        torch.bfloat16: Tolerance(2e-2, 2e-2, "probabilities rounded to bf16 before the PV product, bf16 output"),
    },
    bytes_moved=bytes_moved, flops=flops, bound="compute",
    search_space={"block_m": (16, 32, 64, 128), "block_n": (16, 32, 64, 128), "num_warps": (4, 8),
                  "num_stages": (1, 2, 3, 4)},
    default_config={"block_m": 64, "block_n": 64, "num_warps": 4, "num_stages": 2},
    test_shapes=((1, 1, 1, 1, 16), (2, 4, 2, 37, 24), (1, 6, 2, 130, 64)),
    bench_shapes=((4, 32, 8, 1024, 128), (1, 32, 8, 4096, 128), (8, 64, 8, 2048, 128)),
)
