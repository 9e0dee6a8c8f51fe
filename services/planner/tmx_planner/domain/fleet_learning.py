"""Learning from the fleet: what the gateways saw each declared backend do, against what the model predicts
for the same deployment and the workload it actually received."""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

from tmx_errors import TmxError
from tmx_planner.domain.catalogue import find_gpu, find_model
from tmx_planner.domain.performance import Calibration, Deployment, predict


@dataclass(frozen=True)
class Outcome:
    at_ms: int
    latency_ms: float
    ttft_ms: float  # 0 for non-streamed requests
    prompt_tokens: int
    completion_tokens: int
    ok: bool


@dataclass(frozen=True)
class DeclaredBackend:
    backend_id: str
    model: str
    gpu: str
    gpu_count: int
    tp: int
    engine: str
    precision: str

    def deployment(self) -> Deployment:
        return Deployment(find_model(self.model), find_gpu(self.gpu), self.gpu_count, self.tp, self.engine,
                          self.precision)

    def describe(self) -> str:
        return f"{self.gpu_count}x {self.gpu} tp{self.tp} {self.engine} {self.precision}"


@dataclass(frozen=True)
class Report:
    backend: DeclaredBackend
    requests: int
    mean_prompt: float = 0.0
    mean_completion: float = 0.0
    concurrency: float = 0.0
    observed_ttft_p50_ms: float = 0.0
    observed_tpot_ms: float = 0.0
    predicted_ttft_p50_ms: float = 0.0
    predicted_tpot_ms: float = 0.0
    note: str = ""

    @staticmethod
    def _error(predicted: float, observed: float) -> float:
        return (predicted - observed) / observed if observed and predicted else 0.0

    @property
    def ttft_error(self) -> float:
        return self._error(self.predicted_ttft_p50_ms, self.observed_ttft_p50_ms)

    @property
    def tpot_error(self) -> float:
        return self._error(self.predicted_tpot_ms, self.observed_tpot_ms)


class FleetLearner:
    def __init__(self, declared: list[DeclaredBackend], window: int = 2000) -> None:
        self.declared = {b.backend_id: b for b in declared}
        self._outcomes: dict[str, deque[Outcome]] = {b: deque(maxlen=window) for b in self.declared}

    def observe(self, backend_id: str, outcome: Outcome) -> bool:
        """Record one gateway outcome; outcomes of undeclared backends are ignored."""
        window = self._outcomes.get(backend_id)
        if window is None:
            return False
        window.append(outcome)
        return True

    def report(self, cal: Calibration | None = None) -> list[Report]:
        return [self._report(b, cal) for b in self.declared.values()]

    def _report(self, backend: DeclaredBackend, cal: Calibration | None) -> Report:
        ok = [o for o in self._outcomes[backend.backend_id] if o.ok and o.completion_tokens > 0]
        if not ok:
            return Report(backend, 0, note="no successful requests observed yet")
        span_s = max((ok[-1].at_ms - ok[0].at_ms + ok[0].latency_ms) / 1000, 1e-3)
        concurrency = sum(o.latency_ms for o in ok) / 1000 / span_s  # Little's law: busy time / wall time
        isl = statistics.fmean(o.prompt_tokens for o in ok)
        osl = statistics.fmean(o.completion_tokens for o in ok)
        streamed = [o for o in ok if o.ttft_ms > 0 and o.completion_tokens > 1]
        observed_ttft = statistics.median(o.ttft_ms for o in streamed) if streamed else 0.0
        observed_tpot = statistics.median((o.latency_ms - o.ttft_ms) / (o.completion_tokens - 1)
                                          for o in streamed) if streamed else 0.0
        base = Report(backend, len(ok), isl, osl, concurrency, observed_ttft, observed_tpot,
                      note="" if streamed else "no streamed requests: TTFT and TPOT are not observable")
        try:
            # live traffic is open-loop: predicted at the observed arrival rate (no load-generator cohorts)
            p = predict(backend.deployment(), max(1, round(isl)), max(1, round(osl)),
                        request_rate=len(ok) / span_s, cal=cal)
        except TmxError as exc:
            return Report(**{**base.__dict__, "note": f"cannot predict: {exc.message}"})
        return Report(**{**base.__dict__, "predicted_ttft_p50_ms": p.ttft_p50_ms, "predicted_tpot_ms": p.tpot_ms})
