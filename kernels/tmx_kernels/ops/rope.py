"""Rotary position embeddings applied in place of a copy: x [tokens, heads, head_dim] at `positions`
[tokens], angle = position x base^(-2i/head_dim), in fp32. Two layouts: GPT-NeoX rotates the two halves
of each head (i pairs with i + d/2); GPT-J rotates interleaved pairs (2i with 2i + 1)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl

from tmx_kernels.autodiff import vjp_reference
from tmx_kernels.registry import OpSpec, Tolerance


@triton.jit
def _rope_fwd(X, P, Y, n_heads, head_dim, log2_base, HALF: tl.constexpr, NEOX: tl.constexpr,
              INVERSE: tl.constexpr):
    token = tl.program_id(0)
    head = tl.program_id(1)
    i = tl.arange(0, HALF)
    valid = i < head_dim // 2
    position = tl.load(P + token).to(tl.float32)
    inv_freq = tl.exp2(-(2.0 * i.to(tl.float32) / head_dim) * log2_base)
    angle = position * inv_freq
    cos, sin = tl.cos(angle), tl.sin(angle)
    if INVERSE:  # the backward of a rotation is the rotation by -angle
        sin = -sin
    base = (token * n_heads + head) * head_dim
    if NEOX:
        first, second = i, i + head_dim // 2
    else:
        first, second = 2 * i, 2 * i + 1
    a = tl.load(X + base + first, mask=valid, other=0.0).to(tl.float32)
    b = tl.load(X + base + second, mask=valid, other=0.0).to(tl.float32)
    tl.store(Y + base + first, (a * cos - b * sin).to(Y.dtype.element_ty), mask=valid)
    tl.store(Y + base + second, (b * cos + a * sin).to(Y.dtype.element_ty), mask=valid)


def rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0, *, neox: bool = True,
         num_warps: int = 1, inverse: bool = False) -> torch.Tensor:
    if x.dim() != 3 or x.shape[-1] % 2:
        raise ValueError("x must be [tokens, heads, head_dim] with an even head_dim")
    if positions.shape != (x.shape[0],):
        raise ValueError("positions must hold one position per token")
    tokens, heads, head_dim = x.shape
    x = x.contiguous()
    y = torch.empty_like(x)
    _rope_fwd[(tokens, heads)](x, positions.contiguous(), y, heads, head_dim, float(torch.log2(torch.tensor(base))),
                               HALF=triton.next_power_of_2(head_dim // 2), NEOX=neox, INVERSE=inverse,
                               num_warps=num_warps)
    return y


def reference(x, positions, base: float = 10000.0, neox: bool = True):
    head_dim = x.shape[-1]
    inv_freq = base ** (-torch.arange(0, head_dim // 2, dtype=torch.float64) * 2 / head_dim)
    angle = positions.double()[:, None, None] * inv_freq[None, None, :]
    cos, sin = angle.cos(), angle.sin()
    x64 = x.double()
    if neox:
        a, b = x64[..., : head_dim // 2], x64[..., head_dim // 2:]
        return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1).to(x.dtype)
    a, b = x64[..., 0::2], x64[..., 1::2]
    out = torch.empty_like(x64)
    out[..., 0::2], out[..., 1::2] = a * cos - b * sin, b * cos + a * sin
    return out.to(x.dtype)


def eager(x, positions, base: float = 10000.0, neox: bool = True):
    head_dim = x.shape[-1]
    inv_freq = base ** (-torch.arange(0, head_dim // 2, dtype=torch.float32, device=x.device) * 2 / head_dim)
    angle = positions.float()[:, None, None] * inv_freq[None, None, :]
    cos, sin = angle.cos(), angle.sin()
    xf = x.float()
    if neox:
        a, b = xf[..., : head_dim // 2], xf[..., head_dim // 2:]
        return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1).to(x.dtype)
    a, b = xf[..., 0::2], xf[..., 1::2]
    return torch.stack([a * cos - b * sin, b * cos + a * sin], dim=-1).flatten(-2).to(x.dtype)


def make_inputs(shape: Sequence[int], dtype: torch.dtype, seed: int, device: str = "cpu") -> tuple:
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn(*shape, generator=gen)
    positions = torch.randint(0, 8192, (shape[0],), generator=gen)  # far positions: large angles
    return x.to(device=device, dtype=dtype), positions.to(device)


def bytes_moved(shape: Sequence[int], dtype: torch.dtype) -> int:
    return 2 * shape[0] * shape[1] * shape[2] * (torch.finfo(dtype).bits // 8) + shape[0] * 8


def flops(shape: Sequence[int]) -> int:
    return 3 * shape[0] * shape[1] * shape[2]


def backward_reference(dy, positions, neox: bool):
    """dx of rope(x) by autograd in fp64; the forward is linear in x, so any x gives the same gradient."""
    return vjp_reference(lambda x: _reference64(x, positions, neox), dy, torch.zeros_like(dy), wrt=(0,))[0]


def _reference64(x, positions, neox):
    head_dim = x.shape[-1]
    inv_freq = 10000.0 ** (-torch.arange(0, head_dim // 2, dtype=torch.float64) * 2 / head_dim)
    angle = positions.double()[:, None, None] * inv_freq[None, None, :]
    cos, sin = angle.cos(), angle.sin()
    if neox:
        a, b = x[..., : head_dim // 2], x[..., head_dim // 2:]
        return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack([a * cos - b * sin, b * cos + a * sin], dim=-1).flatten(-2)


def backward_eager(dy, positions, neox: bool):
    x = torch.zeros_like(dy, requires_grad=True)
    return torch.autograd.grad(eager(x, positions, neox=neox), x, dy)[0]


def _spec(name: str, neox: bool, backward: bool = False) -> OpSpec:
    if backward:
        launch = lambda dy, p, **config: rope(dy, p, neox=neox, inverse=True, **config)  # noqa: E731
        ref, base = (lambda dy, p: backward_reference(dy, p, neox)), (lambda dy, p: backward_eager(dy, p, neox))
    else:
        launch = lambda x, p, **config: rope(x, p, neox=neox, **config)  # noqa: E731
        ref, base = (lambda x, p: reference(x, p, neox=neox)), (lambda x, p: eager(x, p, neox=neox))
    return OpSpec(
        name=name, module=__import__(__name__, fromlist=["_"]), launch=launch, reference=ref, baseline=base,
        make_inputs=make_inputs,
        tolerances={
            # angles up to 8191 rad in fp32: half an ulp of the product is 4.9e-4 rad, and the fp32 exp2 behind the
            # frequency adds a few ulp more, by CPU (SIMD exp2 differs between AVX2 and AVX-512 machines); times
            # |x| (N(0, 1) inputs) that reaches ~1e-3. The old 5e-4 held on one CPU and failed on another.
            torch.float32: Tolerance(2e-3, 1e-4, "fp32 angle (position x frequency) vs fp64 at positions < 8192"),
            torch.float16: Tolerance(2e-3, 2e-3, "fp32 angle error plus one fp16 output rounding"),
            torch.bfloat16: Tolerance(1.6e-2, 1.6e-2, "bf16 output rounding; the interpreter truncates: 2 ulp"),
        },
        bytes_moved=bytes_moved, flops=flops, search_space={"num_warps": (1, 2, 4)}, default_config={"num_warps": 1},
        test_shapes=((1, 1, 2), (5, 3, 64), (3, 2, 96)),
        bench_shapes=((4096, 32, 128), (16384, 32, 128), (16384, 8, 128)),
    )


NEOX = _spec("rope_neox", True)
GPTJ = _spec("rope_gptj", False)
NEOX_BACKWARD = _spec("rope_neox_bwd", True, backward=True)
GPTJ_BACKWARD = _spec("rope_gptj_bwd", False, backward=True)
