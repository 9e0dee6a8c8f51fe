"""Calibration against published measurements: parse the rows, measure the model's error on them, and fit
the engine efficiencies (coordinate descent on squared log error; pure Python, no solver needed)."""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, replace

from tmx_errors import TmxError
from tmx_planner.domain.catalogue import find_gpu, find_model
from tmx_planner.domain.performance import Calibration, Deployment, EngineProfile, predict

# Datasheet-efficiency prior: the starting point of every fit, and what leave-one-out fits start from (the
# shipped calibration has seen every row, so starting from it would leak the held-out row).
PRIOR = Calibration({"vllm": EngineProfile(0.70, 0.45, 0.0015, 0.45), "sglang": EngineProfile(0.72, 0.47, 0.0012, 0.47),
                     "trtllm": EngineProfile(0.78, 0.55, 0.0008, 0.55)}, 0.5)

_ENGINES = {"vllm": "vllm", "tensorrt-llm": "trtllm", "nvidia nim": "trtllm", "sglang": "sglang"}


@dataclass(frozen=True)
class Row:
    id: str
    deployment: Deployment
    isl: int
    osl: int
    concurrency: int | None
    throughput: float | None
    ttft_ms: float | None
    ttft_is_p95: bool
    tpot_ms: float | None


def _number(text: str) -> float | None:
    text = (text or "").strip()
    if not text:
        return None
    span = re.fullmatch(r"([\d.]+)\s*-\s*([\d.]+)", text)
    if span:  # a published range: its midpoint
        return (float(span.group(1)) + float(span.group(2))) / 2
    match = re.match(r"[\d.]+", text)
    return float(match.group()) if match else None


def _engine(text: str) -> str:
    lowered = text.lower()
    for key, engine in _ENGINES.items():
        if lowered.startswith(key):
            return engine
    raise ValueError(f"unknown engine {text!r}")


def _precision(text: str) -> str:
    lowered = text.lower()
    return "fp8" if lowered.startswith("fp8") else "bf16"  # blanks in the sources are BF16 ("likely BF16")


def parse_rows(records: list[dict]) -> list[Row]:
    rows = []
    for r in records:
        concurrency = None if "unbounded" in r["concurrency"] else int(_number(r["concurrency"]))
        deployment = Deployment(find_model(r["model"]), find_gpu(r["gpu"]), int(r["gpu_count"]), int(r["tp"]),
                                _engine(r["engine"]), _precision(r["precision"]))
        p95 = _number(r["ttft_p95_ms"])
        rows.append(Row(r["id"], deployment, int(r["isl"]), int(r["osl"]), concurrency,
                        _number(r["output_tok_s_total"]), p95 if p95 is not None else _number(r["ttft_mean_ms"]),
                        p95 is not None, _number(r["tpot_or_itl_mean_ms"])))
    return rows


@dataclass(frozen=True)
class Error:
    row: str
    metric: str
    predicted: float
    measured: float

    @property
    def ape(self) -> float:
        return abs(self.predicted - self.measured) / self.measured


def errors(rows: list[Row], cal: Calibration) -> list[Error]:
    out = []
    for row in rows:
        try:
            p = predict(row.deployment, row.isl, row.osl, row.concurrency, cal=cal)
        except TmxError:
            continue
        if row.throughput:
            out.append(Error(row.id, "throughput", p.output_tok_s_total, row.throughput))
        if row.ttft_ms:
            out.append(Error(row.id, "ttft", p.ttft_p95_ms if row.ttft_is_p95 else p.ttft_p50_ms, row.ttft_ms))
        if row.tpot_ms:
            out.append(Error(row.id, "tpot", p.tpot_ms, row.tpot_ms))
    return out


def summary(errs: list[Error]) -> dict[str, dict[str, float]]:
    result = {}
    for metric in ("throughput", "ttft", "tpot"):
        apes = sorted(e.ape for e in errs if e.metric == metric)
        if apes:
            p90 = apes[min(len(apes) - 1, math.ceil(0.9 * len(apes)) - 1)]
            result[metric] = {"n": len(apes), "median_ape": statistics.median(apes), "p90_ape": p90}
    return result


def loss(rows: list[Row], cal: Calibration) -> float:
    errs = errors(rows, cal)
    return sum(math.log(e.predicted / e.measured) ** 2 for e in errs if e.predicted > 0) + \
        10.0 * sum(1 for e in errs if e.predicted <= 0)


_BOUNDS = {"bw_eff": (0.3, 0.95), "flop_eff": (0.15, 0.9), "prefill_eff": (0.15, 0.9),
           "step_overhead_s": (0.0002, 0.02)}


def fit(rows: list[Row], start: Calibration, rounds: int = 6) -> Calibration:
    """Coordinate descent over each engine's (bw_eff, flop_eff, prefill_eff, step_overhead) seen in `rows`,
    and the shared cohort_share, shrinking the step each round."""
    cal = start
    engines = sorted({r.deployment.engine for r in rows})
    best = loss(rows, cal)
    scale = 0.5
    for _ in range(rounds):
        for engine in engines:
            for field, (lo, hi) in _BOUNDS.items():
                for factor in (1 + scale, 1 / (1 + scale), 1 + scale / 3, 1 / (1 + scale / 3)):
                    profile = cal.engines[engine]
                    value = min(hi, max(lo, getattr(profile, field) * factor))
                    trial = replace(cal, engines={**cal.engines, engine: replace(profile, **{field: value})})
                    trial_loss = loss(rows, trial)
                    if trial_loss < best:
                        cal, best = trial, trial_loss
        for factor in (1 + scale, 1 / (1 + scale), 1 + scale / 3, 1 / (1 + scale / 3)):
            trial = replace(cal, cohort_share=min(1.0, max(0.0, cal.cohort_share * factor + 0.01)))
            trial_loss = loss(rows, trial)
            if trial_loss < best:
                cal, best = trial, trial_loss
        scale /= 2
    return cal


def leave_one_out(rows: list[Row], start: Calibration) -> list[Error]:
    """Each row predicted by a calibration fitted on all the other rows: errors on unseen measurements."""
    out = []
    for held in rows:
        fitted = fit([r for r in rows if r.id != held.id], start)
        out.extend(errors([held], fitted))
    return out


def with_engine(cal: Calibration, name: str, profile: EngineProfile) -> Calibration:
    return replace(cal, engines={**cal.engines, name: profile})
