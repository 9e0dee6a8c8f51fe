"""Memory per GPU: weights by precision, the KV cache a sequence needs for its attention type, engine
overhead, and how many sequences fit."""

from __future__ import annotations

from dataclasses import dataclass

from tmx_errors import InvalidArgument
from tmx_planner.domain.catalogue import Gpu, Model

GB = 1e9


@dataclass(frozen=True)
class Precision:
    name: str
    weight_bytes: float  # per parameter, scales included
    compute: str  # which tensor-core rate the matmuls run at: bf16, fp8 or fp4
    quality: float  # 1.0 = the published weights; lower = typical quantization loss
    note: str


PRECISIONS: dict[str, Precision] = {p.name: p for p in (
    Precision("bf16", 2.0, "bf16", 1.00, "16-bit weights"),
    Precision("fp16", 2.0, "bf16", 1.00, "16-bit weights"),
    Precision("fp8", 1.0 + 4 / 4096, "fp8", 0.99, "e4m3 weights and activations, per-channel fp32 scales"),
    Precision("int8", 1.0 + 2 / 128, "bf16", 0.98, "W8A16: int8 weights, fp16 scale per group of 128"),
    Precision("int4-awq", 0.5 + 4 / 128, "bf16", 0.95, "W4A16 AWQ: fp16 scale and zero per group of 128"),
    Precision("int4-gptq", 0.5 + 4 / 128, "bf16", 0.95, "W4A16 GPTQ: fp16 scale and zero per group of 128"),
    Precision("nvfp4", 0.5 + 1 / 16, "fp4", 0.97, "NVFP4: e2m1 with an fp8 scale per 16 values"),
    Precision("mxfp4", 0.5 + 1 / 32, "fp4", 0.97, "MXFP4: e2m1 with an e8m0 scale per 32 values"),
)}
KV_BYTES = 2.0  # KV cache in bf16 (the engines' default) ...
FP8_KV_ENGINES = ("trtllm",)  # ... except TensorRT-LLM's FP8 profiles, which keep the KV cache in FP8 too
GPU_MEMORY_UTILIZATION = {"vllm": 0.90, "sglang": 0.88, "trtllm": 0.95}  # share of VRAM each engine takes
ENGINE_OVERHEAD_GB = 2.0  # CUDA context, activations, CUDA graphs, fragmentation (per GPU)


def precision(name: str) -> Precision:
    try:
        return PRECISIONS[name.lower()]
    except KeyError:
        raise InvalidArgument("precision", f"unknown precision {name!r}; known: {', '.join(PRECISIONS)}") from None


@dataclass(frozen=True)
class MemoryPlan:
    weights_gb: float
    kv_budget_gb: float
    kv_bytes_per_sequence: float  # per GPU, at the planned sequence length
    max_sequences: int
    fits: bool

    @property
    def total_gb(self) -> float:
        return self.weights_gb + max(self.kv_budget_gb, 0) + ENGINE_OVERHEAD_GB


def kv_dtype_bytes(engine: str = "vllm", precision_name: str = "bf16") -> float:
    return 1.0 if engine in FP8_KV_ENGINES and precision(precision_name).compute in ("fp8", "fp4") else KV_BYTES


def kv_bytes_per_token_layer(model: Model, tp: int, kv_bytes: float = KV_BYTES) -> float:
    """One token's KV in one layer, on one GPU."""
    if model.mla_kv_lora_rank:  # the compressed latent is not split across tensor-parallel ranks
        return (model.mla_kv_lora_rank + model.mla_rope_dim) * kv_bytes
    kv_heads_per_gpu = max(1, model.kv_heads // tp)  # replicated once tp exceeds the KV heads
    return 2 * kv_heads_per_gpu * model.head_dim * kv_bytes


def kv_bytes_per_sequence(model: Model, tp: int, seq_len: float, kv_bytes: float = KV_BYTES) -> float:
    """Full-attention layers keep every token; sliding-window layers keep only the last `window`."""
    per = kv_bytes_per_token_layer(model, tp, kv_bytes)
    full = model.layers - model.sliding_layers
    windowed = model.sliding_layers * min(seq_len, model.sliding_window or seq_len)
    return per * (full * seq_len + windowed)


def kv_bytes_per_token(model: Model, tp: int) -> float:
    """KV bytes per token of a long sequence for full-attention models (the classic formula)."""
    return kv_bytes_per_token_layer(model, tp) * model.layers


def weights_gb_per_gpu(model: Model, tp: int, precision_name: str) -> float:
    """Weights shard across the tensor- (and expert-) parallel GPUs of one replica."""
    return model.params_b * 1e9 * precision(precision_name).weight_bytes / tp / GB


def plan_memory(model: Model, gpu: Gpu, tp: int, precision_name: str, isl: int, osl: int = 0,
                engine: str = "vllm") -> MemoryPlan:
    """Paged KV caches grow with each sequence, so the number that run together is set by the average
    length over a request's life (isl + osl/2); a plan fits when one full-length sequence fits."""
    if tp < 1 or model.heads % tp:
        raise InvalidArgument("tp", f"tensor parallel {tp} must divide the model's {model.heads} attention heads")
    weights = weights_gb_per_gpu(model, tp, precision_name)
    budget = gpu.memory_gb * GPU_MEMORY_UTILIZATION.get(engine, 0.90) - weights - ENGINE_OVERHEAD_GB
    kv_bytes = kv_dtype_bytes(engine, precision_name)
    average = kv_bytes_per_sequence(model, tp, max(isl + osl / 2, 1), kv_bytes)
    longest = kv_bytes_per_sequence(model, tp, max(isl + osl, 1), kv_bytes)
    max_seqs = int(budget * GB // average) if budget * GB >= longest else 0
    return MemoryPlan(weights, budget, average, max_seqs, fits=max_seqs >= 1)
