"""Roofline performance model: prefill and decode step times, mixed batches, tensor-parallel communication
and queueing, giving throughput, TTFT p50/p95 and TPOT for one deployment at a load.

- Decode reads the weights every token of the batch touches (for MoE: the dense part plus the experts the
  batch's tokens route to) and each sequence's KV cache once per step; it does 2 x active params FLOPs per
  token. The step takes the longer of the two at the engine's efficiencies, plus all-reduce time and the
  engine's fixed per-step overhead.
- Prefill is compute-bound: 2 x active params per token plus causal attention.
- Mixed batches (chunked prefill): in steady state each step decodes B sequences and prefills the B/osl
  prompts that arrive meanwhile in the same pass, so prefill compute overlaps the decode's weight reads.
- TTFT: a prompt waits for the step in flight, then is prefilled in a step that also decodes the running
  batch (`max_batched_tokens` prompt tokens per step, longer prompts in several chunks); prompts that arrive
  while the prefill path is busy queue for it (M/D/1, bounded in closed loop by the bottleneck law
  R >= N x D - Z). Load generators in closed loop with fixed lengths keep the arrival waves of their
  initial burst: a calibrated share (`cohort_share`) of requests arrives in cohorts of max_batched_tokens /
  isl prompts that prefill together in one heavier step, the rest arrive spread out. Open-loop (request
  rate) arrivals are Poisson and form no cohorts. p50 blends the two; p95 comes from the cohort tail once
  cohorts are more than 5% of requests. Beyond the batch limit requests queue until a sequence finishes.
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
    prefill_eff: float = 0.5  # share of peak a step carrying new prompts' prefill achieves (large GEMMs)
    max_num_seqs: int = 512
    max_batched_tokens: int = 8192  # prompt tokens one step may prefill (chunked prefill budget)


@dataclass(frozen=True)
class Calibration:
    engines: dict[str, EngineProfile]
    cohort_share: float  # share of closed-loop requests that arrive in cohorts (see the module docstring)

    def engine(self, name: str) -> EngineProfile:
        try:
            return self.engines[name]
        except KeyError:
            raise InvalidArgument("engine", f"unknown engine {name!r}; known: {', '.join(self.engines)}") from None


@cache
def default_calibration() -> Calibration:
    raw = yaml.safe_load(resources.files("tmx_planner.data").joinpath("calibration.yaml").read_text())
    engines = {name: EngineProfile(p["bw_eff"], p["flop_eff"], p["step_overhead_ms"] / 1000,
                                   p.get("prefill_eff", 0.5), int(p.get("max_num_seqs", 512)),
                                   int(p.get("max_batched_tokens", 8192)))
               for name, p in raw["engines"].items()}
    return Calibration(engines, float(raw["cohort_share"]))


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


def _tpot(d: Deployment, batch: float, isl: int, osl: int, cal: Calibration) -> float:
    """TPOT in seconds with `batch` sequences running: in steady state every step also prefills the prompts
    that arrive meanwhile, batch / osl of them."""
    return step_s(d, batch, batch / osl * isl, isl, isl + osl / 2, cal)


def _mdl_wait(load: float, service: float) -> float:
    """Mean wait in an M/D/1 queue, the load capped below 1 (the closed-loop bound takes over there)."""
    load = min(load, 0.95)
    return load / (2 * (1 - load)) * service


def _prefill_response(d: Deployment, batch: float, isl: int, osl: int, cohort: float, arrivals: float | None,
                      think: float, step: float, cal: Calibration) -> tuple[float, float]:
    """(mean, p95) seconds from a prompt's arrival to its first token when prompts arrive `cohort` at a time
    while `batch` sequences decode: half the step in flight, the prefill steps (chunks of the step budget),
    and the queue for the prefill path. `arrivals` is the open-loop rate per replica, None in closed loop
    (rate from the cycle; the wait is at least what N customers at one server with think time Z impose)."""
    e = cal.engine(d.engine)
    chunk = min(cohort * isl, e.max_batched_tokens)
    chunks = math.ceil(cohort * isl / chunk)
    service = chunks * step_s(d, batch, chunk, isl, isl + osl / 2, cal, e.prefill_eff)
    rate = (arrivals if arrivals is not None else batch / (service + think)) / cohort
    wait = _mdl_wait(rate * service, service)
    if arrivals is None:
        wait = max(wait, batch / cohort * service - think - service)
    return step / 2 + service + wait, step + service + 3 * wait


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
    waiting, saturated = 0.0, False
    if request_rate is not None:
        if not 0 < request_rate < math.inf:  # NaN is neither
            raise InvalidArgument("request_rate", f"must be a finite number > 0, got {request_rate}")
        per_replica = request_rate / d.replicas
        capacity = max_batch / (osl * _tpot(d, max_batch, isl, osl, cal))
        if per_replica >= capacity:
            raise InvalidArgument("request_rate", f"{request_rate:g} req/s exceeds this deployment's capacity of "
                                  f"{capacity * d.replicas:.3g} req/s")
        lo, hi = 0.0, float(max_batch)
        for _ in range(60):  # the batch at which completions keep pace with arrivals
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if mid / (osl * _tpot(d, mid, isl, osl, cal)) < per_replica else (lo, mid)
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
    tpot = _tpot(d, batch, isl, osl, cal)
    think = (osl - 1) * tpot  # a closed-loop slot's time between its first token and its next request
    spread = _prefill_response(d, batch, isl, osl, 1.0, arrivals, think, tpot, cal)
    cohort = min(batch, cal.engine(d.engine).max_batched_tokens // isl)
    share = cal.cohort_share if arrivals is None and cohort > 1 else 0.0
    waves = _prefill_response(d, batch, isl, osl, cohort, arrivals, think, tpot, cal) if share else spread
    ttft = (1 - share) * spread[0] + share * waves[0]
    cycle = ttft + think
    completions = arrivals if arrivals is not None else batch / cycle
    queue_s = waiting / completions if waiting > 0 else 0.0
    p50 = ttft + queue_s
    p95 = (waves[1] if share > 0.05 else spread[1]) + queue_s
    if request_rate is not None:
        throughput = arrivals * osl  # steady state: everything that arrives is served
    elif concurrency is None:
        throughput = batch / tpot  # offline: prefill is already folded into the mixed steps
    else:
        throughput = batch * osl / cycle  # closed loop: each slot completes a request every cycle
    return Prediction(memory, throughput * d.replicas, p50 * 1000, p95 * 1000, tpot * 1000, batch, saturated)
