from __future__ import annotations

from collections.abc import Sequence

from tmx_gateway.domain.engine_costs import comparable_costs
from tmx_gateway.domain.fleet import Backend
from tmx_gateway.domain.routing.policy import Decision, RouteRequest, TieBreaker
from tmx_gateway.domain.routing.prefix_index import BLOCK_CHARS, CHARS_PER_TOKEN, PrefixIndex, block_hashes

MIN_OBSERVED_TOKENS = 2 * BLOCK_CHARS // CHARS_PER_TOKEN


class PrefixAware:
    """Route to the backend that already holds the longest prefix of this prompt — sticky until saturated.

    Each candidate gets an estimated TTFT (llm-d's approach): its uncached prompt tokens to prefill, plus the
    prefill work already queued on it (prompts sent there with no first token yet; a prompt that is decoding
    costs a new one only its share of the decode step), plus a decode step that grows with its running batch,
    priced at that backend's own engine costs (`Backend.costs`, learned from the TTFTs it shows; replicas whose
    learned speeds differ by no more than noise are priced alike, `engine_costs.comparable_costs`).
    The cheapest wins, so a warm cache is kept until its backend's queue costs more than the cache saves; cold prompts
    land where they would be answered soonest (the least loaded, among alike replicas). SGLang's guard overrides it
    when the fleet is badly imbalanced (max load - min load > `abs_threshold` and max > `rel_threshold` x min): then
    least loaded wins."""

    name = "prefix_aware"
    needs_prompt = True

    def __init__(self, index: PrefixIndex | None = None, abs_threshold: int = 32, rel_threshold: float = 1.5) -> None:
        self.index = index or PrefixIndex()
        self.abs_threshold, self.rel_threshold = abs_threshold, rel_threshold
        self._ties = TieBreaker()

    def prefix_indexes(self) -> list[PrefixIndex]:
        return [self.index]

    @staticmethod
    def _estimates(request: RouteRequest, candidates: Sequence[Backend], matched: dict[str, int]) -> dict[str, float]:
        tokens = request.prompt_tokens or len(request.prompt_text) // CHARS_PER_TOKEN
        priced = comparable_costs({b.id: b.costs for b in candidates}, tokens)
        return {b.id: b.ttft_ms(tokens - min(matched[b.id] * BLOCK_CHARS // CHARS_PER_TOKEN, tokens), priced[b.id])
                for b in candidates}

    def scores(self, request: RouteRequest, candidates: Sequence[Backend]) -> dict[str, float]:
        hashes = block_hashes(request.prompt_text)
        return self._estimates(request, candidates, {b.id: self.index.matched_blocks(b.id, hashes) for b in candidates})

    def choose(self, request: RouteRequest, candidates: Sequence[Backend]) -> Decision:
        hashes = block_hashes(request.prompt_text)
        matched = {b.id: self.index.matched_blocks(b.id, hashes) for b in candidates}
        loads = {b.id: b.busy_seqs() for b in candidates}
        lo, hi = min(loads.values()), max(loads.values())
        if hi - lo > self.abs_threshold and hi > self.rel_threshold * max(lo, 1e-9):
            chosen = self._ties.pick(candidates, loads)
            reason = f"imbalanced fleet (loads {lo:.0f}..{hi:.0f}): least loaded"
            kind, scores = "imbalanced", loads
        else:
            scores = self._estimates(request, candidates, matched)
            chosen = self._ties.pick(candidates, scores)
            best_match = max(matched.values())
            if matched[chosen.id]:
                kind = "cached"
                reason = f"{matched[chosen.id]}/{len(hashes)} prefix blocks cached, est. TTFT {scores[chosen.id]:.1f} ms"
            elif best_match:
                kind = "saturated"
                reason = f"cache elsewhere but saturated: est. TTFT {scores[chosen.id]:.1f} ms here"
            else:
                kind = "cold"
                reason = f"cold prompt: lowest est. TTFT, {scores[chosen.id]:.1f} ms"
        indexed = self.index.matched_blocks(chosen.id, hashes, within_capacity=False)
        age = self.index.age(chosen.id, hashes, indexed)
        self.index.record(chosen.id, hashes)
        tokens = request.prompt_tokens or len(request.prompt_text) // CHARS_PER_TOKEN
        return Decision(chosen.id, self.name, reason, scores,
                        predicted_cached_tokens=min(matched[chosen.id] * BLOCK_CHARS // CHARS_PER_TOKEN, tokens),
                        indexed_tokens=min(indexed * BLOCK_CHARS // CHARS_PER_TOKEN, tokens), prefix_age=age,
                        prefix_blocks=hashes, kind=kind)

    def observe(self, decision: Decision, prompt_tokens: int, cached_share: float) -> None:
        """The backend it chose answered `decision`'s prompt (`prompt_tokens` as the gateway estimated them) with
        `cached_share` of its prompt tokens served from its cache (the backend's own count; shares, so the gateway's
        estimate and the engine's tokenizer need not agree): the index learns whether the prefix it held there, if
        any, was kept (at least half of it there) or evicted (`PrefixIndex.observe`). Prefixes of less than two
        blocks tell too little."""
        if decision.indexed_tokens >= MIN_OBSERVED_TOKENS and prompt_tokens > 0:
            self.index.observe(decision.backend_id, decision.prefix_age,
                               2 * cached_share * prompt_tokens >= decision.indexed_tokens)
