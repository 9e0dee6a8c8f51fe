"""Roofline performance model: prefill and decode step times, mixed batches, tensor-parallel communication
and queueing, giving throughput, TTFT p50/p95 and TPOT for one deployment at a load.

- Decode reads the weights every token of the batch touches (for MoE: the dense part plus the experts the
  batch's tokens route to) and each sequence's KV cache once per step; it does 2 x active params FLOPs per
  token. The step takes the longer of the two at the engine's efficiencies, plus all-reduce time and the
  engine's fixed per-step overhead.
- Prefill is compute-bound: 2 x active params per token plus causal attention.
- Mixed batches (chunked prefill): in steady state each step decodes B sequences and prefills the B/osl
  prompts that arrive meanwhile in the same pass, so prefill compute overlaps the decode's weight reads.
- TTFT: the new request waits `ttft_queue_steps` scheduler steps (calibrated), then prefills inside a
  step; arrivals during a prefill are Poisson, which gives the p95 spread. Beyond the batch limit requests
  queue until a sequence finishes.
- Closed-loop concurrency C per replica completes C requests every TTFT + (osl - 1) x TPOT.

Efficiencies and overheads per engine come from `data/calibration.yaml`, fitted against published
measurements (see `tmx_planner.calibrate`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

from tmx_errors import InvalidArgument
from tmx_planner.domain.catalogue import Gpu, Model
from tmx_planner.domain.memory import GB, MemoryPlan, kv_bytes_per_sequence, kv_dtype_bytes, plan_memory, precision

ALLREDUCE_LATENCY_S = 8e-6
ENGINES = ("vllm", "sglang", "trtllm")


@dataclass(frozen=True)
class EngineProfile:
    bw_eff: float  # share of HBM bandwidth decode achieves
    flop_eff: float  # share of dense tensor-core peak a mixed decode+prefill step achieves
    step_overhead_s: float  # scheduler + launch overhead per step
    prefill_eff: float = 0.5  # share of peak a new prompt's own prefill achieves (large GEMMs)
    max_num_seqs: int = 512


@dataclass(frozen=True)
class Calibration:
    engines: dict[str, EngineProfile]
    ttft_queue_steps: float

    def engine(self, name: str) -> EngineProfile:
        try:
            return self.engines[name]
        except KeyError:
            raise InvalidArgument("engine", f"unknown engine {name!r}; known: {', '.join(self.engines)}") from None


@cache
def default_calibration() -> Calibration:
    raw = yaml.safe_load(resources.files("tmx_planner.data").joinpath("calibration.yaml").read_text())
    engines = {name: EngineProfile(p["bw_eff"], p["flop_eff"], p["step_overhead_ms"] / 1000,
                                   p.get("prefill_eff", 0.5), int(p.get("max_num_seqs", 512)))
               for name, p in raw["engines"].items()}
    return Calibration(engines, float(raw["ttft_queue_steps"]))


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
        p = precision(self.precision)
        if self.tp < 1 or self.gpu_count < 1 or self.gpu_count % self.tp:
            raise InvalidArgument("tp", f"tp {self.tp} must be >= 1 and divide gpu_count {self.gpu_count}")
        if p.compute == "fp8" and self.gpu.fp8_tflops == 0:
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
    compute = precision(d.precision).compute
    if compute == "fp4" and d.gpu.fp4_tflops:
        return d.gpu.fp4_tflops
    if compute in ("fp4", "fp8") and d.gpu.fp8_tflops:
        return d.gpu.fp8_tflops  # FP4 weights on an FP8 GPU run as FP8 (weight dequant in the kernel)
    return d.gpu.bf16_tflops


def _allreduce_s(d: Deployment, tokens: float) -> float:
    if d.tp == 1:
        return 0.0
    payload = tokens * d.model.hidden * 2.0
    per_op = ALLREDUCE_LATENCY_S + 2 * (d.tp - 1) / d.tp * payload / (d.gpu.interconnect_gbs * GB)
    return 2 * d.model.layers * per_op


def _weight_bytes_touched(d: Deployment, tokens: float) -> float:
    """Bytes of weights one step reads on one GPU: MoE steps read only the experts their tokens route to."""
    m, bytes_per = d.model, precision(d.precision).weight_bytes
    if not m.moe:
        return m.params_b * 1e9 * bytes_per / d.tp
    touched = 1.0 - (1.0 - m.experts_per_token / m.experts) ** max(tokens, 1.0)
    expert_params = m.params_b - m.dense_params_b
    return (m.dense_params_b + expert_params * touched) * 1e9 * bytes_per / d.tp


def _attention_flops(m: Model, query_tokens: float, context: float) -> float:
    """QK^T and PV for `query_tokens` attending over `context` tokens (sliding layers over their window)."""
    windowed = min(context, m.sliding_window) if m.sliding_window else context
    full_layers = m.layers - m.sliding_layers
    return 4 * query_tokens * m.heads * m.head_dim * (full_layers * context + m.sliding_layers * windowed)


def step_s(d: Deployment, decode: float, prefill_tokens: float, isl: int, context_len: float,
           cal: Calibration, flop_eff: float | None = None) -> float:
    """One engine step that decodes `decode` sequences and prefills `prefill_tokens` prompt tokens together
    (chunked prefill): one pass over the weights, the decode sequences' KV reads, and the FLOPs of all
    tokens; the longer of memory and compute time, plus all-reduces and the step overhead."""
    e = cal.engine(d.engine)
    m = d.model
    tokens = decode + prefill_tokens
    kv = decode * kv_bytes_per_sequence(m, d.tp, context_len, kv_dtype_bytes(d.engine, d.precision))
    memory_s = (_weight_bytes_touched(d, tokens) + kv) / (d.gpu.hbm_gbs * GB * e.bw_eff)
    flops = 2 * m.active_b * 1e9 * tokens + _attention_flops(m, decode, context_len) + \
        _attention_flops(m, prefill_tokens, isl / 2)  # a prompt's tokens attend to half of it on average
    compute_s = flops / d.tp / (_tflops(d) * 1e12 * (flop_eff or e.flop_eff))
    return max(memory_s, compute_s) + _allreduce_s(d, tokens) + e.step_overhead_s


def decode_step_s(d: Deployment, batch: float, context_len: float, cal: Calibration) -> float:
    return step_s(d, batch, 0.0, 1, context_len, cal)


def prefill_s(d: Deployment, tokens: int, cal: Calibration) -> float:
    """A prompt prefilled alone."""
    return step_s(d, 0.0, tokens, tokens, 0.0, cal, cal.engine(d.engine).prefill_eff)


def _tpot(d: Deployment, batch: float, isl: int, osl: int, cal: Calibration) -> tuple[float, float]:
    """(TPOT, mixed step) in seconds with `batch` sequences running: in steady state every step also
    prefills the prompts that arrive meanwhile, batch / osl of them."""
    step = step_s(d, batch, batch / osl * isl, isl, isl + osl / 2, cal)
    return step, step


def predict(d: Deployment, isl: int, osl: int, concurrency: int | None = None, request_rate: float | None = None,
            cal: Calibration | None = None) -> Prediction:
    cal = cal or default_calibration()
    d.validate()
    if isl < 1 or osl < 1:
        raise InvalidArgument("isl" if isl < 1 else "osl", "must be >= 1")
    memory = plan_memory(d.model, d.gpu, d.tp, d.precision, isl, osl, d.engine)
    if not memory.fits:
        return Prediction(memory, 0.0, 0.0, 0.0, 0.0, 0.0, False)
    max_batch = min(memory.max_sequences, cal.engine(d.engine).max_num_seqs)
    pre = prefill_s(d, isl, cal)
    waiting, saturated = 0.0, False
    if request_rate is not None:
        if request_rate <= 0:
            raise InvalidArgument("request_rate", "must be > 0")
        per_replica = request_rate / d.replicas
        capacity = max_batch / (osl * _tpot(d, max_batch, isl, osl, cal)[0])
        if per_replica >= capacity:
            raise InvalidArgument("request_rate", f"{request_rate:g} req/s exceeds this deployment's capacity of "
                                  f"{capacity * d.replicas:.3g} req/s")
        lo, hi = 0.0, float(max_batch)
        for _ in range(60):  # the batch at which completions keep pace with arrivals
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if mid / (osl * _tpot(d, mid, isl, osl, cal)[0]) < per_replica else (lo, mid)
        batch = max(hi, 1e-6)
        arrivals = per_replica
    else:
        if concurrency is not None and concurrency < 1:
            raise InvalidArgument("concurrency", "must be >= 1 (or null for offline maximum throughput)")
        per_replica = float(max_batch) if concurrency is None else concurrency / d.replicas
        batch = min(per_replica, max_batch)
        waiting = per_replica - batch
        saturated = waiting > 0 or concurrency is None
        arrivals = None
    tpot, step = _tpot(d, batch, isl, osl, cal)
    # the step that carries this prompt's prefill also decodes the running batch
    carrying = step_s(d, batch, isl, isl, isl + osl / 2, cal, cal.engine(d.engine).prefill_eff)
    ttft_base = cal.ttft_queue_steps * step + carrying
    cycle = ttft_base + (osl - 1) * tpot
    completions = arrivals if arrivals is not None else batch / cycle
    queue_s = waiting / completions if waiting > 0 else 0.0
    in_prefill = completions * pre
    p50 = ttft_base + pre * in_prefill + queue_s
    p95 = ttft_base + step / 2 + pre * (in_prefill + 1.645 * math.sqrt(in_prefill)) + queue_s
    if request_rate is not None:
        throughput = arrivals * osl  # steady state: everything that arrives is served
    elif concurrency is None:
        throughput = batch / tpot  # offline: prefill is already folded into the mixed steps
    else:
        throughput = batch * osl / cycle  # closed loop: each slot completes a request every cycle
    return Prediction(memory, throughput * d.replicas, p50 * 1000, p95 * 1000, tpot * 1000, batch, saturated)
