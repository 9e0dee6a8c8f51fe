"""KV-cache append: write the keys and values of new tokens into the cache, in place.

- contiguous: caches [batch, max_len, kv_heads, head_dim]; new k, v [batch, new_tokens, kv_heads, head_dim]
  go to positions cache_lens[b] .. cache_lens[b] + new_tokens - 1 of sequence b.
- paged (vLLM's flash layout): caches [num_blocks, block_size, kv_heads, head_dim]; new k, v
  [tokens, kv_heads, head_dim]; slot_mapping[t] = block * block_size + offset, -1 for a padding token that
  must not be written.

One program copies one token's heads x head_dim values in BLOCK-wide chunks. A copy is exact.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl

from tmx_kernels.registry import OpSpec, Tolerance


@triton.jit
def _append_contiguous(K, V, KC, VC, LENS, new_tokens, max_len, width, BLOCK: tl.constexpr):
    b = tl.program_id(0)
    t = tl.program_id(1)
    position = tl.load(LENS + b).to(tl.int64) + t
    src = (b * new_tokens + t).to(tl.int64) * width
    dst = (b * max_len + position) * width
    for start in range(0, width, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        mask = offs < width
        tl.store(KC + dst + offs, tl.load(K + src + offs, mask=mask), mask=mask)
        tl.store(VC + dst + offs, tl.load(V + src + offs, mask=mask), mask=mask)


@triton.jit
def _append_paged(K, V, KC, VC, SLOTS, width, BLOCK: tl.constexpr):
    t = tl.program_id(0)
    slot = tl.load(SLOTS + t).to(tl.int64)
    if slot >= 0:
        src = t.to(tl.int64) * width
        dst = slot * width
        for start in range(0, width, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            mask = offs < width
            tl.store(KC + dst + offs, tl.load(K + src + offs, mask=mask), mask=mask)
            tl.store(VC + dst + offs, tl.load(V + src + offs, mask=mask), mask=mask)


def _require_contiguous(*tensors: torch.Tensor) -> None:
    if not all(t.is_contiguous() for t in tensors):
        raise ValueError("caches and new keys/values must be contiguous")


def kv_append(k_cache: torch.Tensor, v_cache: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              cache_lens: torch.Tensor, *, block: int = 1024, num_warps: int = 4):
    batch, new_tokens, heads, head_dim = k.shape
    if k_cache.shape != v_cache.shape or k.shape != v.shape or k_cache.shape[0] != batch \
            or k_cache.shape[2:] != k.shape[2:] or k_cache.dtype != k.dtype:
        raise ValueError("caches must be [batch, max_len, kv_heads, head_dim] matching k, v in all but length")
    if cache_lens.shape != (batch,):
        raise ValueError("cache_lens must hold one length per sequence")
    if int(cache_lens.max()) + new_tokens > k_cache.shape[1] or int(cache_lens.min()) < 0:
        raise ValueError(f"appending {new_tokens} tokens overflows a cache of {k_cache.shape[1]} positions")
    _require_contiguous(k_cache, v_cache, k, v)
    if batch and new_tokens:
        _append_contiguous[(batch, new_tokens)](k, v, k_cache, v_cache, cache_lens, new_tokens, k_cache.shape[1],
                                                heads * head_dim, BLOCK=block, num_warps=num_warps)
    return k_cache, v_cache


def kv_append_paged(k_cache: torch.Tensor, v_cache: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    slot_mapping: torch.Tensor, *, block: int = 1024, num_warps: int = 4):
    tokens, heads, head_dim = k.shape
    if k_cache.shape != v_cache.shape or k.shape != v.shape or k_cache.shape[2:] != k.shape[1:] \
            or k_cache.dtype != k.dtype:
        raise ValueError("caches must be [num_blocks, block_size, kv_heads, head_dim] matching k, v")
    if slot_mapping.shape != (tokens,):
        raise ValueError("slot_mapping must hold one slot per token")
    if tokens and int(slot_mapping.max()) >= k_cache.shape[0] * k_cache.shape[1]:
        raise ValueError("a slot lies beyond the cache")
    _require_contiguous(k_cache, v_cache, k, v)
    if tokens:
        _append_paged[(tokens,)](k, v, k_cache, v_cache, slot_mapping, heads * head_dim, BLOCK=block,
                                 num_warps=num_warps)
    return k_cache, v_cache


def reference_contiguous(k_cache, v_cache, k, v, cache_lens):
    kc, vc = k_cache.clone(), v_cache.clone()
    for b, start in enumerate(cache_lens.tolist()):
        kc[b, start:start + k.shape[1]] = k[b]
        vc[b, start:start + k.shape[1]] = v[b]
    return kc, vc


def eager_contiguous(k_cache, v_cache, k, v, cache_lens):
    """One advanced-indexing scatter per cache, as an engine without a custom kernel does it."""
    positions = cache_lens[:, None] + torch.arange(k.shape[1], device=k.device)[None, :]
    rows = torch.arange(k.shape[0], device=k.device)[:, None]
    k_cache[rows, positions] = k
    v_cache[rows, positions] = v
    return k_cache, v_cache


def reference_paged(k_cache, v_cache, k, v, slot_mapping):
    kc, vc = k_cache.clone(), v_cache.clone()
    flat_k, flat_v = kc.view(-1, *k.shape[1:]), vc.view(-1, *k.shape[1:])
    for t, slot in enumerate(slot_mapping.tolist()):
        if slot >= 0:
            flat_k[slot], flat_v[slot] = k[t], v[t]
    return kc, vc


def eager_paged(k_cache, v_cache, k, v, slot_mapping):
    keep = slot_mapping >= 0
    slots = slot_mapping[keep]
    k_cache.view(-1, *k.shape[1:])[slots] = k[keep]
    v_cache.view(-1, *k.shape[1:])[slots] = v[keep]
    return k_cache, v_cache


def _values(gen: torch.Generator, shape, dtype, device) -> torch.Tensor:
    return torch.randn(*shape, generator=gen).to(device=device, dtype=dtype)


def make_contiguous(shape: Sequence[int], dtype: torch.dtype, seed: int, device: str = "cpu") -> tuple:
    """shape = (batch, new_tokens, kv_heads, head_dim); each sequence already holds a random prefix."""
    batch, new_tokens, heads, head_dim = shape
    gen = torch.Generator(device="cpu").manual_seed(seed)
    max_len = 2 * new_tokens + 7
    k_cache = _values(gen, (batch, max_len, heads, head_dim), dtype, device)  # stale contents must survive
    v_cache = _values(gen, (batch, max_len, heads, head_dim), dtype, device)
    lens = torch.randint(0, max_len - new_tokens + 1, (batch,), generator=gen).to(device)
    return (k_cache, v_cache, _values(gen, shape, dtype, device), _values(gen, shape, dtype, device), lens)


def make_paged(shape: Sequence[int], dtype: torch.dtype, seed: int, device: str = "cpu") -> tuple:
    """shape = (tokens, kv_heads, head_dim, block_size); slots scattered over shuffled blocks, some padding."""
    tokens, heads, head_dim, block_size = shape
    gen = torch.Generator(device="cpu").manual_seed(seed)
    num_blocks = 2 * triton.cdiv(tokens, block_size) + 1
    k_cache = _values(gen, (num_blocks, block_size, heads, head_dim), dtype, device)
    v_cache = _values(gen, (num_blocks, block_size, heads, head_dim), dtype, device)
    slots = torch.randperm(num_blocks * block_size, generator=gen)[:tokens]
    slots[torch.rand(tokens, generator=gen) < 0.1] = -1  # padding tokens of a batched step
    k = _values(gen, (tokens, heads, head_dim), dtype, device)
    v = _values(gen, (tokens, heads, head_dim), dtype, device)
    return k_cache, v_cache, k, v, slots.to(device)


def _elements(shape: Sequence[int], dims: int) -> int:
    n = 1
    for d in shape[:dims]:
        n *= d
    return n


EXACT = {dtype: Tolerance(0.0, 0.0, "a copy is exact") for dtype in (torch.float32, torch.float16, torch.bfloat16)}
_SEARCH = {"block": (128, 256, 512, 1024, 2048), "num_warps": (1, 2, 4, 8)}
_MODULE = __import__(__name__, fromlist=["_"])

CONTIGUOUS = OpSpec(
    name="kv_append", module=_MODULE, launch=kv_append, reference=reference_contiguous, baseline=eager_contiguous,
    make_inputs=make_contiguous, tolerances=EXACT,
    bytes_moved=lambda shape, dtype: 4 * _elements(shape, 4) * (torch.finfo(dtype).bits // 8),
    flops=lambda shape: 0, search_space=_SEARCH, default_config={"block": 1024, "num_warps": 4},
    test_shapes=((1, 1, 1, 1), (3, 5, 2, 24), (2, 17, 3, 64)),
    bench_shapes=((64, 1, 8, 128), (8, 512, 8, 128), (1, 8192, 8, 128)), mutates=(0, 1),
)

PAGED = OpSpec(
    name="kv_append_paged", module=_MODULE, launch=kv_append_paged, reference=reference_paged,
    baseline=eager_paged, make_inputs=make_paged, tolerances=EXACT,
    bytes_moved=lambda shape, dtype: 4 * _elements(shape, 3) * (torch.finfo(dtype).bits // 8) + 8 * shape[0],
    flops=lambda shape: 0, search_space=_SEARCH, default_config={"block": 1024, "num_warps": 4},
    test_shapes=((1, 1, 2, 16), (13, 2, 24, 4), (40, 3, 64, 16)),
    bench_shapes=((256, 8, 128, 16), (4096, 8, 128, 16), (16384, 8, 128, 16)), mutates=(0, 1),
)
