"""SwiGLU and GeGLU activations of a gated MLP: y = act(gate) * up, with act = SiLU (SwiGLU) or tanh-GELU
(GeGLU), computed in fp32 and stored in the input dtype."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from tmx_kernels.autodiff import vjp_reference
from tmx_kernels.registry import OpSpec, Tolerance


@triton.jit
def _glu_fwd(G, U, Y, n_elements, BLOCK: tl.constexpr, GELU: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n_elements
    g = tl.load(G + offsets, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(U + offsets, mask=mask, other=0.0).to(tl.float32)
    if GELU:
        inner = 0.7978845608028654 * (g + 0.044715 * g * g * g)
        # tanh via exp (portable); the exponent is clamped where the result is already exactly 0 or 1
        act = 0.5 * g * (1.0 + (2.0 / (1.0 + tl.exp(tl.minimum(-2.0 * inner, 80.0))) - 1.0))
    else:
        act = g / (1.0 + tl.exp(tl.minimum(-g, 80.0)))
    tl.store(Y + offsets, (act * u).to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _glu_bwd(DY, G, U, DG, DU, n_elements, BLOCK: tl.constexpr, GELU: tl.constexpr):
    """dgate = dy * up * act'(gate), dup = dy * act(gate); the activation is recomputed, not stored."""
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n_elements
    dy = tl.load(DY + offsets, mask=mask, other=0.0).to(tl.float32)
    g = tl.load(G + offsets, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(U + offsets, mask=mask, other=0.0).to(tl.float32)
    if GELU:
        inner = 0.7978845608028654 * (g + 0.044715 * g * g * g)
        t = 2.0 / (1.0 + tl.exp(tl.minimum(-2.0 * inner, 80.0))) - 1.0
        act = 0.5 * g * (1.0 + t)
        d_act = 0.5 * (1.0 + t) + 0.5 * g * (1.0 - t * t) * 0.7978845608028654 * (1.0 + 0.134145 * g * g)
    else:
        s = 1.0 / (1.0 + tl.exp(tl.minimum(-g, 80.0)))
        act = g * s
        d_act = s * (1.0 + g * (1.0 - s))
    tl.store(DG + offsets, (dy * u * d_act).to(DG.dtype.element_ty), mask=mask)
    tl.store(DU + offsets, (dy * act).to(DU.dtype.element_ty), mask=mask)


def _glu_backward(dy, gate, up, gelu: bool, block: int, num_warps: int):
    if not dy.shape == gate.shape == up.shape:
        raise ValueError("dy, gate and up must have one shape")
    dy, g, u = dy.contiguous(), gate.contiguous(), up.contiguous()
    dg, du = torch.empty_like(g), torch.empty_like(u)
    n = g.numel()
    _glu_bwd[(triton.cdiv(n, block),)](dy, g, u, dg, du, n, BLOCK=block, GELU=gelu, num_warps=num_warps)
    return dg, du


def swiglu_bwd(dy, gate, up, *, block: int = 1024, num_warps: int = 4):
    return _glu_backward(dy, gate, up, False, block, num_warps)


def geglu_bwd(dy, gate, up, *, block: int = 1024, num_warps: int = 4):
    return _glu_backward(dy, gate, up, True, block, num_warps)


def _backward_reference(act64):
    return lambda dy, gate, up: vjp_reference(lambda g, u: act64(g) * u, dy, gate, up, wrt=(0, 1))


def _backward_eager(eager_forward):
    def run(dy, gate, up):
        g, u = gate.detach().requires_grad_(), up.detach().requires_grad_()
        return torch.autograd.grad(eager_forward(g, u), (g, u), dy)
    return run


def make_backward_inputs(shape: Sequence[int], dtype: torch.dtype, seed: int, device: str = "cpu") -> tuple:
    gen = torch.Generator(device="cpu").manual_seed(seed + 1)
    return (torch.randn(*shape, generator=gen).to(device=device, dtype=dtype), *make_inputs(shape, dtype, seed, device))


def _glu(gate: torch.Tensor, up: torch.Tensor, gelu: bool, block: int, num_warps: int) -> torch.Tensor:
    if gate.shape != up.shape:
        raise ValueError(f"gate {tuple(gate.shape)} and up {tuple(up.shape)} differ")
    g, u = gate.contiguous(), up.contiguous()
    y = torch.empty_like(g)
    n = g.numel()
    _glu_fwd[(triton.cdiv(n, block),)](g, u, y, n, BLOCK=block, GELU=gelu, num_warps=num_warps)
    return y


def swiglu(gate: torch.Tensor, up: torch.Tensor, *, block: int = 1024, num_warps: int = 4) -> torch.Tensor:
    return _glu(gate, up, False, block, num_warps)


def geglu(gate: torch.Tensor, up: torch.Tensor, *, block: int = 1024, num_warps: int = 4) -> torch.Tensor:
    return _glu(gate, up, True, block, num_warps)


def swiglu_reference(gate, up):
    return (F.silu(gate.double()) * up.double()).to(gate.dtype)


def geglu_reference(gate, up):
    return (F.gelu(gate.double(), approximate="tanh") * up.double()).to(gate.dtype)


def swiglu_eager(gate, up):
    return F.silu(gate) * up


def geglu_eager(gate, up):
    return F.gelu(gate, approximate="tanh") * up


def make_inputs(shape: Sequence[int], dtype: torch.dtype, seed: int, device: str = "cpu") -> tuple:
    gen = torch.Generator(device="cpu").manual_seed(seed)
    gate = torch.randn(*shape, generator=gen) * 3  # wide enough to reach both tails of the activation
    up = torch.randn(*shape, generator=gen)
    return gate.to(device=device, dtype=dtype), up.to(device=device, dtype=dtype)


def bytes_moved(shape: Sequence[int], dtype: torch.dtype) -> int:
    elements = 1
    for d in shape:
        elements *= d
    return 3 * elements * (torch.finfo(dtype).bits // 8)


def _spec(name, launch, reference, eager, flops_per_element, inputs=make_inputs, streams=3):
    return OpSpec(
        name=name, module=__import__(__name__, fromlist=["_"]), launch=launch, reference=reference, baseline=eager,
        make_inputs=inputs,
        tolerances={
            torch.float32: Tolerance(1e-5, 1e-5, "exp in fp32 vs the fp64 reference"),
            torch.float16: Tolerance(1e-3, 1e-3, "one fp16 rounding of the output"),
            torch.bfloat16: Tolerance(1e-2, 1.6e-2, "bf16 output rounding; the interpreter truncates: 2 ulp"),
        },
        bytes_moved=lambda shape, dtype: bytes_moved(shape, dtype) * streams // 3,
        flops=lambda shape: flops_per_element * int(torch.tensor(shape).prod()),
        search_space={"block": (256, 512, 1024, 2048, 4096), "num_warps": (1, 2, 4, 8)},
        default_config={"block": 1024, "num_warps": 4},
        test_shapes=((1,), (7, 33), (3, 1000)),
        bench_shapes=((4096, 14336), (16384, 14336), (1024, 28672)),
    )


SWIGLU = _spec("swiglu", swiglu, swiglu_reference, swiglu_eager, 5)
GEGLU = _spec("geglu", geglu, geglu_reference, geglu_eager, 12)
SWIGLU_BACKWARD = _spec("swiglu_bwd", swiglu_bwd, _backward_reference(F.silu), _backward_eager(swiglu_eager), 12,
                        make_backward_inputs, streams=5)
GEGLU_BACKWARD = _spec("geglu_bwd", geglu_bwd, _backward_reference(lambda g: F.gelu(g, approximate="tanh")),
                       _backward_eager(geglu_eager), 24, make_backward_inputs, streams=5)
