from __future__ import annotations

from collections.abc import Sequence

from tmx_gateway.domain.fleet import Backend
from tmx_gateway.domain.routing.policy import Decision, RouteRequest, ScoringPolicy, TieBreaker, prefix_indexes
from tmx_gateway.domain.routing.prefix_index import PrefixIndex, block_hashes


def _normalised(scores: dict[str, float]) -> dict[str, float]:
    lo, hi = min(scores.values()), max(scores.values())
    return {k: 0.0 if hi == lo else (v - lo) / (hi - lo) for k, v in scores.items()}


class Multi:
    """A weighted blend of scoring policies, each normalised to [0, 1] over the candidates."""

    name = "multi"

    def __init__(self, parts: list[tuple[ScoringPolicy, float]]) -> None:
        if not parts or any(w < 0 for _, w in parts) or sum(w for _, w in parts) <= 0:
            raise ValueError("multi needs at least one policy with a positive weight")
        self.parts = parts
        self.needs_prompt = any(p.needs_prompt for p, _ in parts)
        self._ties = TieBreaker()

    def scores(self, request: RouteRequest, candidates: Sequence[Backend]) -> dict[str, float]:
        blended = {b.id: 0.0 for b in candidates}
        for policy, weight in self.parts:
            for backend_id, value in _normalised(policy.scores(request, candidates)).items():
                blended[backend_id] += weight * value
        return blended

    def choose(self, request: RouteRequest, candidates: Sequence[Backend]) -> Decision:
        scores = self.scores(request, candidates)
        chosen = self._ties.pick(candidates, scores)
        parts = " + ".join(f"{w:g} x {p.name}" for p, w in self.parts)
        indexes = self.prefix_indexes()
        hashes = block_hashes(request.prompt_text) if indexes else []
        for index in indexes:  # the blend routed this prompt: its prefix will be cached there
            index.record(chosen.id, hashes)
        return Decision(chosen.id, self.name, f"blend of {parts}: {scores[chosen.id]:.2f}", scores,
                        prefix_blocks=hashes)

    def prefix_indexes(self) -> list[PrefixIndex]:
        return [index for policy, _ in self.parts for index in prefix_indexes(policy)]
