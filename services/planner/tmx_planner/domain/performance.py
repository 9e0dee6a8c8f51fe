"""Roofline performance model: prefill and decode step times, mixed batches, tensor-parallel communication,
and queueing, giving throughput, TTFT p50/p95 and TPOT for one deployment at a load.

Decode reads all weights and each sequence's KV once per step (memory-bound at small batches) and does
2*params FLOPs per token (compute-bound at large ones). Prefill is compute-bound. With continuous batching
every running sequence pays, per output token, its share of the prefills that arrive meanwhile:
B/osl prefills per step. Arrivals during a prefill are Poisson, which gives TTFT's spread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tmx_errors import InvalidArgument
from tmx_planner.domain.catalogue import Gpu, Model
from tmx_planner.domain.memory import GB, WEIGHT_BYTES, MemoryPlan, kv_bytes_per_token, plan_memory

# (HBM bandwidth efficiency in decode, tensor-core efficiency in prefill, scheduler overhead per step in s)
ENGINES = {
    "vllm": (0.70, 0.45, 0.0015),
    "sglang": (0.72, 0.47, 0.0012),
    "trtllm": (0.78, 0.55, 0.0008),
}
MAX_NUM_SEQS = 512
ALLREDUCE_LATENCY_S = 8e-6


@dataclass(frozen=True)
class Deployment:
    model: Model
    gpu: Gpu
    gpu_count: int
    tp: int
    engine: str
    precision: str

    @property
    def replicas(self) -> int:
        return self.gpu_count // self.tp

    def validate(self) -> None:
        if self.engine not in ENGINES:
            raise InvalidArgument("engine", f"unknown engine {self.engine!r}; known: {', '.join(ENGINES)}")
        if self.precision not in WEIGHT_BYTES:
            raise InvalidArgument("precision", f"unknown precision {self.precision!r}")
        if self.tp < 1 or self.gpu_count < 1 or self.gpu_count % self.tp:
            raise InvalidArgument("tp", f"tp {self.tp} must be >= 1 and divide gpu_count {self.gpu_count}")
        if self.precision == "fp8" and self.gpu.fp8_tflops == 0:
            raise InvalidArgument("precision", f"{self.gpu.name} has no FP8 tensor cores")


@dataclass(frozen=True)
class Prediction:
    memory: MemoryPlan
    output_tok_s_total: float
    ttft_p50_ms: float
    ttft_p95_ms: float
    tpot_ms: float
    batch_per_replica: float
    saturated: bool


def _tflops(d: Deployment) -> float:
    return d.gpu.fp8_tflops if d.precision == "fp8" and d.gpu.fp8_tflops else d.gpu.bf16_tflops


def _allreduce_s(d: Deployment, tokens: float) -> float:
    if d.tp == 1:
        return 0.0
    payload = tokens * d.model.hidden * 2.0
    per_op = ALLREDUCE_LATENCY_S + 2 * (d.tp - 1) / d.tp * payload / (d.gpu.interconnect_gbs * GB)
    return 2 * d.model.layers * per_op


def decode_step_s(d: Deployment, batch: float, context_len: float) -> float:
    bw_eff, _, overhead = ENGINES[d.engine]
    weights = d.model.params_b * 1e9 * WEIGHT_BYTES[d.precision] / d.tp
    kv = batch * context_len * kv_bytes_per_token(d.model, d.tp)
    memory_s = (weights + kv) / (d.gpu.hbm_gbs * GB * bw_eff)
    compute_s = 2 * d.model.params_b * 1e9 * batch / d.tp / (_tflops(d) * 1e12 * 0.6)
    return max(memory_s, compute_s) + _allreduce_s(d, batch) + overhead


def prefill_s(d: Deployment, tokens: int) -> float:
    _, flop_eff, overhead = ENGINES[d.engine]
    m = d.model
    linear = 2 * m.params_b * 1e9 * tokens
    attention = 2 * m.layers * tokens * tokens * m.heads * m.head_dim  # causal: QK^T and PV, halved
    compute_s = (linear + attention) / d.tp / (_tflops(d) * 1e12 * flop_eff)
    weights_s = m.params_b * 1e9 * WEIGHT_BYTES[d.precision] / d.tp / (d.gpu.hbm_gbs * GB)
    return max(compute_s, weights_s) + _allreduce_s(d, tokens) + overhead


def _at_batch(d: Deployment, batch: float, isl: int, osl: int) -> tuple[float, float]:
    """(TPOT s, per-replica request completion rate /s) with `batch` sequences running."""
    step = decode_step_s(d, batch, isl + osl / 2)
    tpot = step + batch / osl * prefill_s(d, isl)
    return tpot, batch / (osl * tpot)


def predict(d: Deployment, isl: int, osl: int, concurrency: int | None = None,
            request_rate: float | None = None) -> Prediction:
    d.validate()
    if isl < 1 or osl < 1:
        raise InvalidArgument("isl" if isl < 1 else "osl", "must be >= 1")
    memory = plan_memory(d.model, d.gpu, d.tp, d.precision, isl + osl)
    if not memory.fits:
        return Prediction(memory, 0.0, 0.0, 0.0, 0.0, 0.0, False)
    max_batch = min(memory.max_sequences, MAX_NUM_SEQS)
    saturated = False
    if request_rate is not None:
        if request_rate <= 0:
            raise InvalidArgument("request_rate", "must be > 0")
        per_replica = request_rate / d.replicas
        capacity = _at_batch(d, max_batch, isl, osl)[1]
        if per_replica >= capacity:
            raise InvalidArgument("request_rate", f"{request_rate:g} req/s exceeds this deployment's capacity of "
                                  f"{capacity * d.replicas:.3g} req/s")
        lo, hi = 0.0, float(max_batch)
        for _ in range(60):  # the batch at which completions keep pace with arrivals
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if _at_batch(d, mid, isl, osl)[1] < per_replica else (lo, mid)
        batch, waiting = max(hi, 1e-6), 0.0
    else:
        if concurrency is not None and concurrency < 1:
            raise InvalidArgument("concurrency", "must be >= 1 (or null for offline maximum throughput)")
        per_replica = max_batch if concurrency is None else concurrency / d.replicas
        batch = min(per_replica, max_batch)
        waiting = per_replica - batch
        saturated = waiting > 0 or concurrency is None
    tpot, completions = _at_batch(d, batch, isl, osl)
    pre = prefill_s(d, isl)
    arrivals_in_prefill = completions * pre
    queue_s = waiting / completions if waiting > 0 else 0.0
    step = decode_step_s(d, batch, isl + osl / 2)
    p50 = pre * (1 + arrivals_in_prefill) + step / 2 + queue_s
    n95 = arrivals_in_prefill + 1.645 * math.sqrt(arrivals_in_prefill)
    p95 = pre * (1 + n95) + step + queue_s
    return Prediction(memory, batch / tpot * d.replicas, p50 * 1000, p95 * 1000, tpot * 1000, batch, saturated)
