from __future__ import annotations

from collections.abc import Sequence

from tmx_gateway.domain.engine_costs import comparable
from tmx_gateway.domain.fleet import Backend
from tmx_gateway.domain.routing.policy import Decision, RouteRequest, TieBreaker

# An output token costs a decode step; a prompt token is prefilled in bulk. Relative cost of one prompt token
# against one output token (prefill ~8000 tok/s vs a decode step of ~6-30 ms shared by the batch).
PROMPT_TOKEN_COST = 0.05


class TokenAware:
    """Least token work in flight (prompt tokens still to prefill and output tokens to decode), not request
    counts: one 8k-token RAG request weighs more than ten short chats. A prompt already prefilled is no longer
    prefill work; its request weighs by the output it may still decode. The work is timed at each backend's speed:
    its learned engine-cost factor (a replica twice as slow takes twice as long to work off the same tokens;
    replicas whose fits differ by no more than noise count alike, `engine_costs.comparable`), over its weight."""

    name = "token_aware"
    needs_prompt = False

    def __init__(self) -> None:
        self._ties = TieBreaker()

    def scores(self, request: RouteRequest, candidates: Sequence[Backend]) -> dict[str, float]:
        factors = comparable({b.id: b.costs.factor for b in candidates})
        return {b.id: (b.prefilling_prompt_tokens * PROMPT_TOKEN_COST + b.inflight_output_tokens) * factors[b.id]
                / max(b.weight, 1e-9) for b in candidates}

    def choose(self, request: RouteRequest, candidates: Sequence[Backend]) -> Decision:
        scores = self.scores(request, candidates)
        chosen = self._ties.pick(candidates, scores)
        return Decision(chosen.id, self.name, f"least token work in flight ({scores[chosen.id]:.0f})", scores)
