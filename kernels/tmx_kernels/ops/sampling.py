"""Decode-time sampling from logits [batch, vocab] with per-row temperature, top-k and top-p, as an engine's
sampler applies them: top-k first (ties at the k-th value are kept, as vLLM does), then top-p over the
renormalised top-k mass, then a draw. Temperature 0 means greedy (first index of the maximum).

The draw is Gumbel-max with noise the caller supplies (uniforms in (0, 1), one per logit): the token is
argmax(logit / T - log(-log u)) over the kept set, which is distributed as the renormalised probabilities.
Explicit noise makes the kernel checkable token for token against the reference.

No sort: each program finds the top-k and top-p thresholds by a FANOUT-way search over the order-preserving
integer image of the fp32 logits (exact; 8 counting passes each at FANOUT 16), the row streaming through
BLOCK-wide tiles.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl

from tmx_kernels.registry import OpSpec, Tolerance


@triton.jit
def _key(x):
    """fp32 -> int32 with the same order (negative floats flip their magnitude bits)."""
    bits = x.to(tl.int32, bitcast=True)
    return tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits)


@triton.jit
def _count_and_mass(X, row_base, vocab, thresholds, m, inv_t, BLOCK: tl.constexpr):
    """For each threshold t: how many logits have key >= t, and their unnormalised probability mass."""
    count = tl.zeros(thresholds.shape, tl.float32)
    mass = tl.zeros(thresholds.shape, tl.float32)
    for start in range(0, vocab, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        valid = offs < vocab
        x = tl.load(X + row_base + offs, mask=valid, other=float("-inf")).to(tl.float32)
        keep = valid[None, :] & (_key(x).to(tl.int64)[None, :] >= thresholds[:, None])
        count += tl.sum(keep.to(tl.float32), axis=1)
        mass += tl.sum(tl.where(keep, tl.exp((x - m) * inv_t)[None, :], 0.0), axis=1)
    return count, mass


@triton.jit
def _narrow(X, row_base, vocab, lo, hi, goal, m, inv_t, BY_MASS: tl.constexpr, FANOUT: tl.constexpr,
            BLOCK: tl.constexpr):
    """The largest key threshold t in [lo, hi) with count(t) >= goal (or mass(t) >= goal), given that lo
    satisfies it and hi does not. Each pass tests FANOUT thresholds at once: 32 bits in 8 passes at 16."""
    j = tl.arange(0, FANOUT).to(tl.int64)
    for _ in range(12):
        if hi - lo > 1:
            step = (hi - lo + FANOUT - 1) // FANOUT
            thresholds = lo + (j + 1) * step
            count, mass = _count_and_mass(X, row_base, vocab, thresholds, m, inv_t, BLOCK)
            if BY_MASS:
                ok = mass >= goal
            else:
                ok = count >= goal
            passing = tl.sum(ok.to(tl.int32), axis=0)  # monotone: thresholds 0 .. passing-1 pass
            lo_next = tl.sum(tl.where(j == passing - 1, thresholds, 0), axis=0)
            hi_next = tl.sum(tl.where(j == passing, thresholds, 0), axis=0)
            if passing > 0:
                lo = lo_next
            if passing < FANOUT:
                hi = tl.minimum(hi, hi_next)
    return lo


@triton.jit
def _sample(X, U, TEMP, TOPK, TOPP, OUT, vocab, stride_x, stride_u, BLOCK: tl.constexpr, FANOUT: tl.constexpr):
    row = tl.program_id(0)
    row_base = row.to(tl.int64) * stride_x
    temperature = tl.load(TEMP + row).to(tl.float32)
    top_k = tl.minimum(tl.load(TOPK + row).to(tl.int32), vocab)
    top_p = tl.load(TOPP + row).to(tl.float32)
    # pass 1: max (and its first index, the greedy answer) and the smallest key
    m = float("-inf")
    arg = 0
    lo = 0x7FFFFFFF
    for start in range(0, vocab, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        valid = offs < vocab
        x = tl.load(X + row_base + offs, mask=valid, other=float("-inf")).to(tl.float32)
        tile_max = tl.max(x, axis=0)
        tile_arg = tl.min(tl.where(x == tile_max, offs, vocab), axis=0)
        if tile_max > m:
            m = tile_max
            arg = tile_arg
        lo = tl.minimum(lo, tl.min(tl.where(valid, _key(x), 0x7FFFFFFF), axis=0))
    if temperature > 0.0:
        inv_t = 1.0 / temperature
        top = _key(m).to(tl.int64) + 1  # nothing has a key this large
        threshold = lo.to(tl.int64)
        # top-k: the largest threshold keeping at least k logits is the k-th largest value
        if top_k < vocab:
            threshold = _narrow(X, row_base, vocab, threshold, top, top_k.to(tl.float32), m, inv_t, False, FANOUT,
                                BLOCK)
        # top-p: the largest threshold whose kept mass reaches top_p of the top-k mass
        if top_p < 1.0:
            one = tl.zeros([FANOUT], tl.int64) + threshold
            count, kept = _count_and_mass(X, row_base, vocab, one, m, inv_t, BLOCK)
            target = top_p * tl.max(kept, axis=0)
            threshold = _narrow(X, row_base, vocab, threshold, top, target, m, inv_t, True, FANOUT, BLOCK)
        best = float("-inf")
        for start in range(0, vocab, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            valid = offs < vocab
            x = tl.load(X + row_base + offs, mask=valid, other=float("-inf")).to(tl.float32)
            u = tl.load(U + row.to(tl.int64) * stride_u + offs, mask=valid, other=0.5)
            gumbel = -tl.log(-tl.log(u))
            score = tl.where(valid & (_key(x).to(tl.int64) >= threshold), (x - m) * inv_t + gumbel, float("-inf"))
            tile_best = tl.max(score, axis=0)
            tile_arg = tl.min(tl.where(score == tile_best, offs, vocab), axis=0)
            if tile_best > best:
                best = tile_best
                arg = tile_arg
    tl.store(OUT + row, arg.to(tl.int64))


def _check(logits, noise, temperature, top_k, top_p) -> None:
    batch = logits.shape[0]
    if logits.dim() != 2 or noise.shape != logits.shape:
        raise ValueError("logits and noise must both be [batch, vocab]")
    if any(t.shape != (batch,) for t in (temperature, top_k, top_p)):
        raise ValueError("temperature, top_k and top_p hold one value per row")
    if bool((temperature < 0).any()) or bool((top_k < 1).any()):
        raise ValueError("temperature must be >= 0 and top_k >= 1 (use vocab size to disable top-k)")
    if bool(((top_p <= 0) | (top_p > 1)).any()):
        raise ValueError("top_p must lie in (0, 1]")


def sample(logits: torch.Tensor, noise: torch.Tensor, temperature: torch.Tensor, top_k: torch.Tensor,
           top_p: torch.Tensor, *, block: int = 256, fanout: int = 16, num_warps: int = 4) -> torch.Tensor:
    _check(logits, noise, temperature, top_k, top_p)
    logits = logits if logits.stride(-1) == 1 else logits.contiguous()
    noise = noise.float().contiguous()
    out = torch.empty(logits.shape[0], dtype=torch.int64, device=logits.device)
    _sample[(logits.shape[0],)](logits, noise, temperature.float().contiguous(), top_k.contiguous(),
                                top_p.float().contiguous(), out, logits.shape[1], logits.stride(0), noise.stride(0),
                                BLOCK=block, FANOUT=fanout, num_warps=num_warps)
    return out


def _kept(x: torch.Tensor, probs: torch.Tensor, k: int, p: float) -> torch.Tensor:
    """The kept set of one row by sorting (ties at a threshold are kept)."""
    order = torch.sort(x, descending=True, stable=True)
    kth = order.values[min(k, x.numel()) - 1]
    keep = x >= kth
    if p < 1.0:
        sorted_probs = torch.where(keep[order.indices], probs[order.indices], 0.0)
        cumulative = sorted_probs.cumsum(0)
        first = int(torch.searchsorted(cumulative, p * cumulative[-1]))
        keep = keep & (x >= order.values[min(first, x.numel() - 1)])
    return keep


def reference(logits, noise, temperature, top_k, top_p):
    out = []
    for row in range(logits.shape[0]):
        x = logits[row].float()  # thresholds compare the logits as the kernel reads them
        t = float(temperature[row])
        if t == 0.0:
            out.append(int(torch.argmax(x)))
            continue
        scaled = x.double() / t
        probs = torch.softmax(scaled, 0)
        keep = _kept(x, probs, int(top_k[row]), float(top_p[row]))
        score = torch.where(keep, scaled - (-torch.log(noise[row].double())).log(), float("-inf"))
        out.append(int(torch.argmax(score)))
    return torch.tensor(out, dtype=torch.int64, device=logits.device)


def eager(logits, noise, temperature, top_k, top_p):
    """A sort-based sampler in the style of vLLM's PyTorch path: sort, mask by top-k and top-p, and draw
    with the exponential race probs / q (equivalent to Gumbel-max)."""
    t = temperature.float().clamp_min(1e-6)[:, None]
    scaled = logits.float() / t
    values, indices = scaled.sort(dim=-1, descending=True)
    ranks = torch.arange(values.shape[-1], device=logits.device)[None, :]
    values = values.masked_fill(ranks >= top_k[:, None], float("-inf"))
    probs = values.softmax(-1)
    cumulative = probs.cumsum(-1)
    values = values.masked_fill(cumulative - probs > top_p[:, None], float("-inf"))
    probs = values.softmax(-1)
    q = -torch.log(noise.gather(-1, indices))
    choice = indices.gather(-1, (probs / q).argmax(-1, keepdim=True)).squeeze(-1)
    return torch.where(temperature == 0, logits.argmax(-1), choice)


def make_inputs(shape: Sequence[int], dtype: torch.dtype, seed: int, device: str = "cpu") -> tuple:
    """shape = (batch, vocab). Rows mix greedy, plain, top-k only, top-p only and both."""
    batch, vocab = shape
    gen = torch.Generator(device="cpu").manual_seed(seed)
    logits = torch.randn(batch, vocab, generator=gen) * 3.0
    noise = torch.rand(batch, vocab, generator=gen).clamp(1e-7, 1 - 1e-7)
    temperature = 0.5 + torch.rand(batch, generator=gen)
    top_k = torch.randint(1, vocab + 1, (batch,), generator=gen, dtype=torch.int32)
    top_p = 0.3 + 0.7 * torch.rand(batch, generator=gen)
    modes = torch.arange(batch) % 5
    temperature[modes == 0] = 0.0
    top_k[(modes == 1) | (modes == 3)] = vocab
    top_p[(modes == 1) | (modes == 2)] = 1.0
    return tuple(t.to(device) for t in (logits.to(dtype), noise, temperature, top_k, top_p))


SPEC = OpSpec(
    name="sampling", module=__import__(__name__, fromlist=["_"]), launch=sample, reference=reference,
    baseline=eager, make_inputs=make_inputs,
    tolerances={dtype: Tolerance(0.0, 0.0, "token ids must match: thresholds are exact, the draw is the same "
                                            "argmax; only a top-p mass within fp32 rounding of the target can differ")
                for dtype in (torch.float32, torch.float16, torch.bfloat16)},
    bytes_moved=lambda shape, dtype: shape[0] * shape[1] * (torch.finfo(dtype).bits // 8 + 4),
    flops=lambda shape: 6 * shape[0] * shape[1],
    search_space={"block": (64, 128, 256, 512, 1024), "fanout": (4, 8, 16, 32), "num_warps": (2, 4, 8, 16)},
    default_config={"block": 256, "fanout": 16, "num_warps": 4},
    test_shapes=((1, 1), (5, 37), (8, 400)),
    bench_shapes=((1, 128256), (64, 128256), (256, 32000)),
)
