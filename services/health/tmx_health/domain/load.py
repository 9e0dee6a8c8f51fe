"""An engine's load from its Prometheus metrics, under vLLM's or SGLang's names."""

from __future__ import annotations

import math
from dataclasses import dataclass

# name -> what it measures, per engine (first match wins; older vLLM called the KV gauge gpu_cache_usage_perc)
VLLM = {
    "running": ("vllm:num_requests_running",),
    "waiting": ("vllm:num_requests_waiting",),
    "kv": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
    "queries": ("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"),
    "hits": ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"),
}
SGLANG = {
    "running": ("sglang:num_running_reqs",),
    "waiting": ("sglang:num_queue_reqs",),
    "kv": ("sglang:token_usage",),
    "hit_rate": ("sglang:cache_hit_rate",),
}


@dataclass(frozen=True)
class EngineLoad:
    engine: str
    running: float
    waiting: float
    kv_cache_usage: float
    prefix_cache_hit_rate: float  # -1 when unknown
    prefix_queries: float = 0.0  # cumulative counters, kept to compute the next rate
    prefix_hits: float = 0.0


def _first(samples: dict[str, float], names: tuple[str, ...]) -> float | None:
    """The first of `names` the engine reports, if its value is a count or a share: finite and not negative (a NaN
    or an infinity would reach every gateway's routing scores as one)."""
    for name in names:
        if name in samples:
            value = samples[name]
            return value if math.isfinite(value) and value >= 0 else None
    return None


def engine_load(samples: dict[str, float], previous: EngineLoad | None = None) -> EngineLoad | None:
    """`samples` maps metric names to values (summed over label sets). None when neither engine's names
    are present, so callers fall back to gateway-side counts."""
    if _first(samples, VLLM["running"]) is not None:
        queries, hits = _first(samples, VLLM["queries"]) or 0.0, _first(samples, VLLM["hits"]) or 0.0
        rate = -1.0
        if previous is not None and queries > previous.prefix_queries:
            rate = (hits - previous.prefix_hits) / (queries - previous.prefix_queries)
        elif previous is None and queries > 0:
            rate = hits / queries
        return EngineLoad("vllm", _first(samples, VLLM["running"]) or 0.0, _first(samples, VLLM["waiting"]) or 0.0,
                          _first(samples, VLLM["kv"]) or 0.0, rate, queries, hits)
    if _first(samples, SGLANG["running"]) is not None:
        hit_rate = _first(samples, SGLANG["hit_rate"])
        return EngineLoad("sglang", _first(samples, SGLANG["running"]) or 0.0,
                          _first(samples, SGLANG["waiting"]) or 0.0, _first(samples, SGLANG["kv"]) or 0.0,
                          -1.0 if hit_rate is None else hit_rate)
    return None
