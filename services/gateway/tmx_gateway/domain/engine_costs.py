"""The gateway's cost model of one engine replica, for the estimates it makes where the engine tells it nothing
(routing's TTFT estimate; when a non-streamed prompt is presumed prefilled):

    TTFT ~ prefill_ms_per_token x (prompt tokens to prefill there: those queued ahead and its own uncached ones)
           + step_ms + step_ms_per_seq x (sequences running or waiting there)

Every backend starts from `REFERENCE`, the figures of a vLLM replica on one GPU as llm-d-inference-sim and SMG's mock
worker use them (prefill ~8000 prompt tokens/s; a decode step of ~6 ms that grows ~0.35 ms with each running
sequence). `CostFit` then learns how much slower or faster each backend is than that (one factor on all three
terms) from the TTFTs its streamed answers show, so a replica on older hardware is priced as it is.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineCosts:
    prefill_ms_per_token: float = 1 / 8.0
    step_ms: float = 6.0
    step_ms_per_seq: float = 0.35

    def ttft_ms(self, prefill_tokens: float, seqs: float) -> float:
        """When a prompt sent now should have its first token: `prefill_tokens` to prefill (queued ahead of it
        and its own), then a step among `seqs` sequences."""
        return prefill_tokens * self.prefill_ms_per_token + self.step_ms + self.step_ms_per_seq * seqs

    def scaled(self, factor: float) -> EngineCosts:
        return EngineCosts(self.prefill_ms_per_token * factor, self.step_ms * factor, self.step_ms_per_seq * factor)


REFERENCE = EngineCosts()


class CostFit:
    """One backend's `EngineCosts`: the prior's, times a speed factor learned from the TTFTs it shows.

    The factor is the weighted least-squares fit of observed TTFT = factor x the prior's estimate, each observation's
    weight decaying by `forget` with every later one (so the fit follows a replica that slows down or speeds up),
    pulled toward 1 by `prior_weight` observations' worth of the prior's own predictions; it stays within
    [1/`bound`, `bound`]. An observation is clipped to `clip` x the current estimate first, so one stall (a fault,
    not the replica's speed) moves the factor only as far as a slow answer would. At the default `forget` the fit
    remembers ~20 observations: a lasting change is mostly learned within that many. `learn=False`: the prior, always.

    One factor, not one per term: the three terms are not separately identifiable from TTFTs that vary by tens of
    percent from one request to the next (the prefill term dominates; a fit of each drove the step terms to their
    bounds), and a part that prefills slower also decodes slower.
    """

    __slots__ = ("prior", "learn", "forget", "prior_weight", "bound", "clip", "costs", "factor", "samples", "_zy",
                 "_zz", "_w")

    def __init__(self, prior: EngineCosts = REFERENCE, *, learn: bool = True, forget: float = 0.95,
                 prior_weight: float = 2.0, bound: float = 100.0, clip: float = 4.0) -> None:
        self.prior, self.learn = prior, learn
        self.forget, self.prior_weight, self.bound, self.clip = forget, prior_weight, bound, clip
        self.costs, self.factor, self.samples = prior, 1.0, 0
        self._zy = self._zz = self._w = 0.0  # decayed sums of z y, z^2 and weights; z: the prior's estimate

    def ttft_ms(self, prefill_tokens: float, seqs: float) -> float:
        return self.costs.ttft_ms(prefill_tokens, seqs)

    def observe(self, prefill_tokens: float, seqs: float, ttft_ms: float) -> None:
        """A prompt sent with `prefill_tokens` to prefill among `seqs` sequences showed its first token after
        `ttft_ms`."""
        if not self.learn or not ttft_ms > 0:
            return
        z = self.prior.ttft_ms(prefill_tokens, seqs)
        y = min(ttft_ms, self.clip * self.factor * z)
        f = self.forget
        self._zy, self._zz, self._w = f * self._zy + z * y, f * self._zz + z * z, f * self._w + 1.0
        self.samples += 1
        pull = self.prior_weight / self._w * self._zz  # prior_weight observations' worth of factor 1
        factor = (self._zy + pull) / (self._zz + pull)
        self.factor = min(max(factor, 1 / self.bound), self.bound)
        self.costs = self.prior.scaled(self.factor)
