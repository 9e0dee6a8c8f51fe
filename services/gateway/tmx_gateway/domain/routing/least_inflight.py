from __future__ import annotations

from collections.abc import Sequence

from tmx_gateway.domain.fleet import Backend
from tmx_gateway.domain.routing.policy import Decision, RouteRequest


class LeastInflight:
    """Fewest requests in flight from this gateway, weighted by capacity; ties go round-robin so an idle
    fleet still spreads load."""

    name = "least_inflight"

    def __init__(self) -> None:
        self._turn = 0

    def choose(self, request: RouteRequest, candidates: Sequence[Backend]) -> Decision:
        scores = {b.id: b.inflight / max(b.weight, 1e-9) for b in candidates}
        best = min(scores.values())
        tied = [b for b in candidates if scores[b.id] == best]
        self._turn += 1
        chosen = tied[self._turn % len(tied)]
        return Decision(chosen.id, self.name, f"least in flight ({chosen.inflight}) of {len(candidates)}", scores)
