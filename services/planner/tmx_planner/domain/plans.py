"""Enumerate deployments (GPU x count x tensor parallel x replicas x engine x precision), drop what does
not fit or misses the SLA or budget, score the rest on five dimensions under a workload profile's weights
(or the user's), mark the cost-vs-latency Pareto frontier, and attach launch snippets."""

from __future__ import annotations

import collections
import itertools
import math
from dataclasses import dataclass, field, replace

from tmx_errors import InvalidArgument, TmxError
from tmx_planner.domain.catalogue import Model, find_gpu, find_model, gpus
from tmx_planner.domain.memory import PRECISIONS, precision
from tmx_planner.domain.performance import ENGINES, Deployment, Prediction, default_calibration, predict
from tmx_planner.domain.snippets import kubernetes_manifest, launch_command

SIMPLICITY = {"vllm": 1.0, "sglang": 0.9, "trtllm": 0.7}
DIMENSIONS = ("latency", "throughput", "cost", "quality", "simplicity")


@dataclass(frozen=True)
class Profile:
    name: str
    isl: int
    osl: int
    weights: dict[str, float]
    description: str


PROFILES = {p.name: p for p in (
    Profile("chat", 1024, 256, {"latency": 0.35, "throughput": 0.15, "cost": 0.3, "quality": 0.1, "simplicity": 0.1},
            "interactive chat: short prompts, streaming answers, latency first"),
    Profile("rag", 4096, 256, {"latency": 0.35, "throughput": 0.15, "cost": 0.25, "quality": 0.15, "simplicity": 0.1},
            "retrieval-augmented: long prompts, short answers, TTFT dominates"),
    Profile("batch", 1024, 512, {"latency": 0.0, "throughput": 0.35, "cost": 0.45, "quality": 0.1, "simplicity": 0.1},
            "offline batch: throughput and cost, latency irrelevant"),
    Profile("agentic", 8192, 512, {"latency": 0.4, "throughput": 0.1, "cost": 0.2, "quality": 0.2, "simplicity": 0.1},
            "agents: long growing contexts, many sequential calls, end-to-end latency first"),
)}


@dataclass(frozen=True)
class Sla:
    ttft_p95_ms: float | None = None
    tpot_ms: float | None = None
    min_output_tok_s: float | None = None


@dataclass(frozen=True)
class PlanQuery:
    model: str
    isl: int = 0  # 0: the profile's
    osl: int = 0
    concurrency: int | None = None
    request_rate: float | None = None
    sla: Sla = field(default_factory=Sla)
    budget_per_hour: float | None = None
    gpus: tuple[str, ...] = ()
    engines: tuple[str, ...] = ()
    precisions: tuple[str, ...] = ()
    max_gpus: int = 8
    limit: int = 10
    profile: str = "chat"
    weights: dict[str, float] = field(default_factory=dict)
    custom_model: Model | None = None  # from a Hugging Face config.json


@dataclass
class RankedPlan:
    deployment: Deployment
    prediction: Prediction
    cost_per_hour: float
    cost_per_million_output_tokens: float
    score: float = 0.0
    dimension_scores: dict[str, float] = field(default_factory=dict)
    explanation: str = ""
    pareto: bool = False
    launch_command: str = ""
    kubernetes_manifest: str = ""


@dataclass
class PlanResult:
    model: str
    profile: str
    weights: dict[str, float]
    plans: list[RankedPlan]
    considered: int
    dropped: int
    # why the dropped candidates were dropped (reason -> count), and, among those that fit in memory, the best
    # each hard constraint could get: what a user who got no plan needs to see to relax the right one
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    best_fitting: dict[str, float] = field(default_factory=dict)


def resolve_weights(profile: str, overrides: dict[str, float]) -> dict[str, float]:
    if profile not in PROFILES:
        raise InvalidArgument("profile", f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    unknown = set(overrides) - set(DIMENSIONS)
    if unknown:
        raise InvalidArgument("weights", f"unknown dimension(s) {', '.join(sorted(unknown))}; known: "
                                         f"{', '.join(DIMENSIONS)}")
    if not all(0 <= v < math.inf for v in overrides.values()):  # NaN is neither
        raise InvalidArgument("weights", "weights must be finite numbers >= 0")
    weights = {**PROFILES[profile].weights, **overrides}
    total = sum(weights.values())
    if total <= 0:
        raise InvalidArgument("weights", "at least one weight must be positive")
    return {k: v / total for k, v in weights.items()}


def _precisions_for(q: PlanQuery, model: Model, gpu) -> list[str]:
    if q.precisions:
        return [p for p in q.precisions if precision(p).compute != "fp8" or gpu.fp8_tflops]
    options = ["bf16", "int4-awq"]
    if gpu.fp8_tflops:
        options.append("fp8")
    if gpu.fp4_tflops:
        options.append("nvfp4")
    if model.native_precision == "mxfp4":
        options.append("mxfp4")
    return options


def _candidates(q: PlanQuery, model: Model):
    chosen = [find_gpu(g) for g in q.gpus] if q.gpus else list(gpus().values())
    engines = list(q.engines) or list(ENGINES)
    for engine in engines:
        if engine not in ENGINES:
            raise InvalidArgument("engines", f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    for name in q.precisions:
        if name not in PRECISIONS:
            raise InvalidArgument("precisions", f"unknown precision {name!r}; known: {', '.join(PRECISIONS)}")
    counts = [c for c in (1, 2, 4, 8) if c <= q.max_gpus]
    for gpu in chosen:
        for count in counts:
            for tp in (t for t in (1, 2, 4, 8) if t <= count and count % t == 0 and model.heads % t == 0):
                for engine in engines:
                    for name in _precisions_for(q, model, gpu):
                        yield Deployment(model, gpu, count, tp, engine, name)


def _violation(q: PlanQuery, p: Prediction) -> str:
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


def _mark_pareto(plans: list[RankedPlan]) -> None:
    """A plan is on the frontier when no other plan is at least as cheap per token and as fast, and better
    in one of the two. One sweep in cost order: a plan is dominated by a cheaper plan at least as fast, or
    by an equally cheap plan that is faster."""
    def latency(p: RankedPlan) -> float:
        return p.dimension_scores["_latency_ms"]

    ordered = sorted(plans, key=lambda p: (p.cost_per_million_output_tokens, latency(p)))
    fastest_cheaper = math.inf
    for _, group in itertools.groupby(ordered, key=lambda p: p.cost_per_million_output_tokens):
        group = list(group)
        fastest_here = latency(group[0])
        for p in group:
            p.pareto = fastest_cheaper > latency(p) and not fastest_here < latency(p)
        fastest_cheaper = min(fastest_cheaper, fastest_here)


def _checked(q: PlanQuery) -> None:
    """The constraints are positive numbers where given (NaN is none), the request rate a finite one, the
    concurrency at least 1: checked once here, as every candidate's prediction would refuse them alike."""
    for name, value in (("sla.ttft_p95_ms", q.sla.ttft_p95_ms), ("sla.tpot_ms", q.sla.tpot_ms),
                        ("sla.min_output_tok_s", q.sla.min_output_tok_s), ("budget_per_hour", q.budget_per_hour)):
        if value is not None and not value > 0:
            raise InvalidArgument(name, f"must be > 0 when given, got {value}")
    if q.request_rate is not None and not 0 < q.request_rate < math.inf:
        raise InvalidArgument("workload.request_rate", f"must be a finite number > 0, got {q.request_rate}")
    if q.concurrency is not None and q.concurrency < 1:
        raise InvalidArgument("workload.concurrency", "must be >= 1 when given")


def plan(q: PlanQuery) -> PlanResult:
    _checked(q)
    weights = resolve_weights(q.profile or "chat", q.weights)
    profile = PROFILES[q.profile or "chat"]
    q = replace(q, isl=q.isl or profile.isl, osl=q.osl or profile.osl)
    if q.isl < 1 or q.osl < 1:
        raise InvalidArgument("workload", "isl and osl must be >= 1")
    if q.concurrency is None and q.request_rate is None:
        q = replace(q, concurrency=32)
    model = q.custom_model or find_model(q.model)
    cal = default_calibration()
    kept: list[RankedPlan] = []
    considered = 0
    dropped: collections.Counter[str] = collections.Counter()
    best = {"ttft_p95_ms": math.inf, "tpot_ms": math.inf, "output_tok_s": 0.0, "cost_per_hour": math.inf}
    for d in _candidates(q, model):
        considered += 1
        try:
            p = predict(d, q.isl, q.osl, q.concurrency, q.request_rate, cal)
        except TmxError as exc:  # e.g. the request rate exceeds this deployment's capacity
            dropped["cannot serve the request rate" if getattr(exc, "field", "") == "request_rate"
                    else "cannot be predicted"] += 1
            continue
        cost = d.gpu.price_per_hour * d.gpu_count
        if p.memory.fits:
            best = {"ttft_p95_ms": min(best["ttft_p95_ms"], p.ttft_p95_ms), "tpot_ms": min(best["tpot_ms"], p.tpot_ms),
                    "output_tok_s": max(best["output_tok_s"], p.output_tok_s_total),
                    "cost_per_hour": min(best["cost_per_hour"], cost)}
        if violation := _violation(q, p):
            dropped[violation] += 1
            continue
        if q.budget_per_hour is not None and cost > q.budget_per_hour:
            dropped["over budget"] += 1
            continue
        per_million = cost / (p.output_tok_s_total * 3600) * 1e6 if p.output_tok_s_total else float("inf")
        kept.append(RankedPlan(d, p, cost, per_million))
    if kept:
        latency_ms = [k.prediction.ttft_p95_ms + k.prediction.tpot_ms * q.osl for k in kept]
        dims = {
            "latency": _normalise(latency_ms, True),
            "throughput": _normalise([k.prediction.output_tok_s_total for k in kept], False),
            "cost": _normalise([k.cost_per_million_output_tokens for k in kept], True),
            "quality": [precision(k.deployment.precision).quality for k in kept],
            "simplicity": [SIMPLICITY[k.deployment.engine] / (1 + 0.1 * (k.deployment.tp - 1))
                           / (1 + 0.05 * (k.deployment.replicas - 1)) for k in kept],
        }
        for i, k in enumerate(kept):
            k.dimension_scores = {name: dims[name][i] for name in DIMENSIONS} | {"_latency_ms": latency_ms[i]}
            k.score = sum(weights[name] * dims[name][i] for name in DIMENSIONS)
            p = k.prediction
            k.explanation = (", ".join(f"{name} {dims[name][i]:.2f} x {weights[name]:.2f}" for name in DIMENSIONS)
                             + f" = {k.score:.3f}; {p.output_tok_s_total:.0f} tok/s, TTFT p95 {p.ttft_p95_ms:.0f} ms,"
                             f" TPOT {p.tpot_ms:.1f} ms, ${k.cost_per_million_output_tokens:.2f}/M output tokens, "
                             f"{p.memory.weights_gb:.1f} GB weights + up to {p.memory.max_sequences} sequences "
                             f"per replica")
        _mark_pareto(kept)
    kept.sort(key=lambda k: k.score, reverse=True)
    top = kept[: q.limit or 10]
    for k in top:
        engine = cal.engine(k.deployment.engine)  # the engine settings the prediction assumed
        k.launch_command = launch_command(k.deployment, q.isl + q.osl,
                                          max(1, min(k.prediction.memory.max_sequences, engine.max_num_seqs)),
                                          engine.max_batched_tokens)
        k.kubernetes_manifest = kubernetes_manifest(k.deployment, k.launch_command)
    return PlanResult(model.name, profile.name, weights, top, considered, considered - len(kept), dict(dropped),
                      {k: v for k, v in best.items() if math.isfinite(v) and v > 0})
