from __future__ import annotations

import random
from collections.abc import Sequence

from tmx_gateway.domain.fleet import Backend
from tmx_gateway.domain.routing.policy import Decision, RouteRequest


class RandomChoice:
    """Uniform at random (weighted by capacity): the baseline every other policy must beat."""

    name = "random"
    needs_prompt = False

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def choose(self, request: RouteRequest, candidates: Sequence[Backend]) -> Decision:
        chosen = self._rng.choices(list(candidates), weights=[max(b.weight, 0.0) or 1e-9 for b in candidates])[0]
        return Decision(chosen.id, self.name, "random", {})
