from __future__ import annotations

from collections.abc import Sequence

from tmx_gateway.domain.fleet import Backend
from tmx_gateway.domain.routing.policy import Decision, RouteRequest, TieBreaker


class LeastInflight:
    """Fewest requests in flight from this gateway, weighted by capacity."""

    name = "least_inflight"
    needs_prompt = False

    def __init__(self) -> None:
        self._ties = TieBreaker()

    def scores(self, request: RouteRequest, candidates: Sequence[Backend]) -> dict[str, float]:
        return {b.id: b.inflight / max(b.weight, 1e-9) for b in candidates}

    def choose(self, request: RouteRequest, candidates: Sequence[Backend]) -> Decision:
        scores = self.scores(request, candidates)
        chosen = self._ties.pick(candidates, scores)
        return Decision(chosen.id, self.name, f"least in flight ({chosen.inflight}) of {len(candidates)}", scores)
