"""Memory per GPU: weights by precision, KV cache per token, engine overhead; how many sequences fit."""

from __future__ import annotations

from dataclasses import dataclass

from tmx_errors import InvalidArgument
from tmx_planner.domain.catalogue import Gpu, Model

GB = 1e9

# Bytes per weight, including the per-group scales of quantized formats (group 128, fp16 scales ~ +3%).
WEIGHT_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4-awq": 0.5 * 1.03}
KV_BYTES = 2.0  # KV cache kept in bf16 whatever the weight precision (engines' default)
GPU_MEMORY_UTILIZATION = 0.90  # vLLM's default share of VRAM the engine may use
ENGINE_OVERHEAD_GB = 2.0  # CUDA context, activations, graphs, fragmentation (per GPU)


@dataclass(frozen=True)
class MemoryPlan:
    weights_gb: float
    kv_budget_gb: float
    kv_bytes_per_token: float  # per GPU
    max_sequences: int
    fits: bool

    @property
    def total_gb(self) -> float:
        return self.weights_gb + max(self.kv_budget_gb, 0) + ENGINE_OVERHEAD_GB


def kv_bytes_per_token(model: Model, tp: int) -> float:
    """K and V for every layer; KV heads shard across tensor-parallel ranks (replicated when tp > heads)."""
    kv_heads_per_gpu = max(1, model.kv_heads // tp) if model.kv_heads >= tp else 1
    return 2 * model.layers * kv_heads_per_gpu * model.head_dim * KV_BYTES


def plan_memory(model: Model, gpu: Gpu, tp: int, precision: str, seq_len: int) -> MemoryPlan:
    if precision not in WEIGHT_BYTES:
        raise InvalidArgument("precision", f"unknown precision {precision!r}; known: {', '.join(WEIGHT_BYTES)}")
    if tp < 1 or model.heads % tp:
        raise InvalidArgument("tp", f"tensor parallel {tp} must divide the model's {model.heads} attention heads")
    weights = model.params_b * 1e9 * WEIGHT_BYTES[precision] / tp / GB
    budget = gpu.memory_gb * GPU_MEMORY_UTILIZATION - weights - ENGINE_OVERHEAD_GB
    per_token = kv_bytes_per_token(model, tp)
    max_seqs = int(budget * GB // (per_token * max(seq_len, 1))) if budget > 0 else 0
    return MemoryPlan(weights, budget, per_token, max_seqs, fits=max_seqs >= 1)
