from __future__ import annotations

from collections.abc import Sequence

from tmx_gateway.domain.fleet import Backend
from tmx_gateway.domain.routing.policy import Decision, RouteRequest, TieBreaker


class EwmaLatency:
    """Lowest expected wait: the backend's EWMA latency scaled by the requests already queued on it
    (a backend never measured scores 0, so it gets tried)."""

    name = "ewma_latency"
    needs_prompt = False

    def __init__(self) -> None:
        self._ties = TieBreaker()

    def scores(self, request: RouteRequest, candidates: Sequence[Backend]) -> dict[str, float]:
        return {b.id: b.ewma_latency_ms * (b.inflight + 1) / max(b.weight, 1e-9) for b in candidates}

    def choose(self, request: RouteRequest, candidates: Sequence[Backend]) -> Decision:
        scores = self.scores(request, candidates)
        chosen = self._ties.pick(candidates, scores)
        return Decision(chosen.id, self.name, f"EWMA latency {chosen.ewma_latency_ms:.1f} ms x "
                                              f"{chosen.inflight + 1} queued", scores)
