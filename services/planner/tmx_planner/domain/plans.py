"""Enumerate deployments, drop what does not fit or misses the SLA or budget, and rank the rest."""

from __future__ import annotations

from dataclasses import dataclass, field

from tmx_errors import InvalidArgument
from tmx_planner.domain.catalogue import GPUS, find_gpu, find_model
from tmx_planner.domain.memory import WEIGHT_BYTES
from tmx_planner.domain.performance import ENGINES, Deployment, Prediction, predict

QUALITY = {"bf16": 1.0, "fp16": 1.0, "fp8": 0.99, "int8": 0.98, "int4-awq": 0.95}
SIMPLICITY = {"vllm": 1.0, "sglang": 0.9, "trtllm": 0.7}
DEFAULT_WEIGHTS = {"latency": 0.3, "throughput": 0.2, "cost": 0.3, "quality": 0.1, "simplicity": 0.1}


@dataclass(frozen=True)
class Sla:
    ttft_p95_ms: float | None = None
    tpot_ms: float | None = None
    min_output_tok_s: float | None = None


@dataclass(frozen=True)
class PlanQuery:
    model: str
    isl: int
    osl: int
    concurrency: int | None = None
    request_rate: float | None = None
    sla: Sla = field(default_factory=Sla)
    budget_per_hour: float | None = None
    gpus: tuple[str, ...] = ()
    engines: tuple[str, ...] = ()
    precisions: tuple[str, ...] = ()
    max_gpus: int = 8
    limit: int = 10


@dataclass
class RankedPlan:
    deployment: Deployment
    prediction: Prediction
    cost_per_hour: float
    cost_per_million_output_tokens: float
    score: float = 0.0
    explanation: str = ""


@dataclass
class PlanResult:
    model: str
    plans: list[RankedPlan]
    considered: int
    dropped: int


def _candidates(q: PlanQuery):
    model = find_model(q.model)
    gpus = [find_gpu(g) for g in q.gpus] if q.gpus else list(GPUS.values())
    engines = list(q.engines) or list(ENGINES)
    precisions = list(q.precisions) or ["bf16", "fp8", "int4-awq"]
    for engine in engines:
        if engine not in ENGINES:
            raise InvalidArgument("engines", f"unknown engine {engine!r}")
    for precision in precisions:
        if precision not in WEIGHT_BYTES:
            raise InvalidArgument("precisions", f"unknown precision {precision!r}")
    counts = [c for c in (1, 2, 4, 8) if c <= q.max_gpus]
    for gpu in gpus:
        for count in counts:
            for tp in (t for t in (1, 2, 4, 8) if t <= count and count % t == 0 and model.heads % t == 0):
                for engine in engines:
                    for precision in precisions:
                        if precision == "fp8" and gpu.fp8_tflops == 0:
                            continue
                        yield Deployment(model, gpu, count, tp, engine, precision)


def _meets(q: PlanQuery, p: Prediction) -> str:
    if not p.memory.fits:
        return "does not fit in VRAM"
    if q.sla.ttft_p95_ms is not None and p.ttft_p95_ms > q.sla.ttft_p95_ms:
        return "misses TTFT p95"
    if q.sla.tpot_ms is not None and p.tpot_ms > q.sla.tpot_ms:
        return "misses TPOT"
    if q.sla.min_output_tok_s is not None and p.output_tok_s_total < q.sla.min_output_tok_s:
        return "misses throughput"
    return ""


def _normalise(values: list[float], lower_is_better: bool) -> list[float]:
    lo, hi = min(values), max(values)
    if hi == lo:
        return [1.0] * len(values)
    return [((hi - v) if lower_is_better else (v - lo)) / (hi - lo) for v in values]


def plan(q: PlanQuery, weights: dict[str, float] = DEFAULT_WEIGHTS) -> PlanResult:
    if q.isl < 1 or q.osl < 1:
        raise InvalidArgument("workload", "isl and osl must be >= 1")
    if q.concurrency is None and q.request_rate is None:
        q = PlanQuery(**{**q.__dict__, "concurrency": 32})
    kept: list[RankedPlan] = []
    considered = 0
    model_name = find_model(q.model).name
    for d in _candidates(q):
        considered += 1
        try:
            p = predict(d, q.isl, q.osl, q.concurrency, q.request_rate)
        except InvalidArgument:
            continue  # e.g. the request rate exceeds this deployment's capacity
        if _meets(q, p):
            continue
        cost = d.gpu.price_per_hour * d.gpu_count
        if q.budget_per_hour is not None and cost > q.budget_per_hour:
            continue
        per_million = cost / (p.output_tok_s_total * 3600) * 1e6 if p.output_tok_s_total else float("inf")
        kept.append(RankedPlan(d, p, cost, per_million))
    if kept:
        dims = {
            "latency": _normalise([k.prediction.ttft_p95_ms + k.prediction.tpot_ms * q.osl for k in kept], True),
            "throughput": _normalise([k.prediction.output_tok_s_total for k in kept], False),
            "cost": _normalise([k.cost_per_million_output_tokens for k in kept], True),
            "quality": [QUALITY[k.deployment.precision] for k in kept],
            "simplicity": [SIMPLICITY[k.deployment.engine] / (1 + 0.1 * (k.deployment.tp - 1)) for k in kept],
        }
        for i, k in enumerate(kept):
            parts = {name: weights[name] * dims[name][i] for name in dims}
            k.score = sum(parts.values())
            k.explanation = ", ".join(f"{name} {dims[name][i]:.2f}x{weights[name]:g}" for name in dims) + (
                f"; {k.prediction.output_tok_s_total:.0f} tok/s, TTFT p95 {k.prediction.ttft_p95_ms:.0f} ms, "
                f"TPOT {k.prediction.tpot_ms:.1f} ms, ${k.cost_per_million_output_tokens:.2f}/M output tokens"
            )
    kept.sort(key=lambda k: k.score, reverse=True)
    return PlanResult(model_name, kept[: q.limit or 10], considered, considered - len(kept))
