from __future__ import annotations

from collections.abc import Sequence

from tmx_gateway.domain.fleet import Backend
from tmx_gateway.domain.routing.policy import Decision, RouteRequest


class WeightedRoundRobin:
    """Smooth weighted round robin (as nginx): over any window, each backend gets its weight's share, evenly
    interleaved rather than in bursts."""

    name = "weighted_round_robin"
    needs_prompt = False

    def __init__(self) -> None:
        self._current: dict[str, float] = {}

    def choose(self, request: RouteRequest, candidates: Sequence[Backend]) -> Decision:
        total = sum(b.weight for b in candidates)
        for b in candidates:
            self._current[b.id] = self._current.get(b.id, 0.0) + b.weight
        chosen = max(candidates, key=lambda b: self._current[b.id])
        self._current[chosen.id] -= total
        return Decision(chosen.id, self.name, f"weight {chosen.weight:g} of {total:g}",
                        {b.id: -self._current[b.id] for b in candidates})
