"""Hardware and model catalogues (first cut). Figures are vendor datasheet values (dense, no sparsity) and
model config.json values; prices are typical on-demand cloud rates per GPU-hour in 2026."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tmx_errors import InvalidArgument


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_gb: float
    hbm_gbs: float
    bf16_tflops: float
    fp8_tflops: float  # 0 where the GPU has no FP8 tensor cores
    interconnect_gbs: float  # per-GPU NVLink/Infinity Fabric bandwidth, one direction
    price_per_hour: float


@dataclass(frozen=True)
class Model:
    name: str
    params_b: float
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    context_length: int


GPUS: dict[str, Gpu] = {g.name: g for g in (
    Gpu("H100", 80, 3350, 989, 1979, 450, 3.00),  # H100 SXM5 datasheet
    Gpu("H200", 141, 4800, 989, 1979, 450, 3.80),  # H200 SXM datasheet
    Gpu("A100-80GB", 80, 2039, 312, 0, 300, 1.80),  # A100 SXM4 80GB datasheet
    Gpu("L40S", 48, 864, 362, 733, 32, 1.00),  # L40S datasheet (PCIe Gen4 x16 between cards)
    Gpu("L4", 24, 300, 121, 242, 32, 0.70),  # L4 datasheet
)}

MODELS: dict[str, Model] = {m.name: m for m in (
    Model("Llama-3.1-8B", 8.03, 32, 4096, 32, 8, 128, 131072),
    Model("Llama-3.1-70B", 70.6, 80, 8192, 64, 8, 128, 131072),
    Model("Mistral-7B", 7.24, 32, 4096, 32, 8, 128, 32768),
    Model("Qwen2.5-7B", 7.62, 28, 3584, 28, 4, 128, 32768),
    Model("Qwen2.5-72B", 72.7, 80, 8192, 64, 8, 128, 32768),
)}

_SUFFIXES = re.compile(r"(-instruct|-chat|-it)$")


def _key(name: str) -> str:
    return _SUFFIXES.sub("", name.split("/")[-1].strip().lower())


_MODEL_KEYS = {_key(name): model for name, model in MODELS.items()}
_GPU_KEYS = {_key(name): gpu for name, gpu in GPUS.items()} | {"h100-sxm": GPUS["H100"], "a100": GPUS["A100-80GB"]}


def find_model(name: str) -> Model:
    """Match loosely: case, an org prefix (`meta-llama/`) and an `-Instruct` suffix are ignored."""
    model = _MODEL_KEYS.get(_key(name))
    if model is None:
        raise InvalidArgument("model", f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return model


def find_gpu(name: str) -> Gpu:
    gpu = _GPU_KEYS.get(_key(name))
    if gpu is None:
        raise InvalidArgument("gpu", f"unknown GPU {name!r}; known: {', '.join(GPUS)}")
    return gpu
