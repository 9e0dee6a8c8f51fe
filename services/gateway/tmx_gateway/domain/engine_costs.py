"""The gateway's cost model of one engine replica, for the estimates it makes where the engine tells it nothing
(routing's TTFT estimate; when a non-streamed prompt is presumed prefilled):

    TTFT ~ prefill_ms_per_token x (prompt tokens to prefill there: those queued ahead and its own uncached ones)
           + step_ms + step_ms_per_seq x (sequences running or waiting there)

Every backend starts from `REFERENCE`, the figures of a vLLM replica on one GPU as llm-d-inference-sim and SMG's mock
worker use them (prefill ~8000 prompt tokens/s; a decode step of ~6 ms that grows ~0.35 ms with each running
sequence). `CostFit` then learns how much slower or faster each backend is than that (one factor on all three
terms) from the TTFTs its streamed answers show (or, for a backend that has shown none lately, from how long its
non-streamed answers took: a TTFT and a decode step per further output token), so a replica on older hardware is
priced as it is; and `comparable` keeps replicas that differ by no more than their fits' noise priced alike.
"""

from __future__ import annotations

import math
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

    def answer_ms(self, prefill_tokens: float, seqs: float, output_tokens: int) -> float:
        """When the whole answer of `output_tokens` should be out: its TTFT, then a step per further token (among
        the same `seqs`: the batch it was sent into stands for the batches it decodes in)."""
        step = self.step_ms + self.step_ms_per_seq * seqs
        return self.ttft_ms(prefill_tokens, seqs) + max(output_tokens - 1, 0) * step

    def scaled(self, factor: float) -> EngineCosts:
        return EngineCosts(self.prefill_ms_per_token * factor, self.step_ms * factor, self.step_ms_per_seq * factor)


REFERENCE = EngineCosts()


class _Sums:
    """Decayed sums for the least-squares fit of y = factor x z: of z y, z^2 and weights."""

    __slots__ = ("forget", "zy", "zz", "w")

    def __init__(self, forget: float) -> None:
        self.forget, self.zy, self.zz, self.w = forget, 0.0, 0.0, 0.0

    def add(self, z: float, y: float) -> None:
        f = self.forget
        self.zy, self.zz, self.w = f * self.zy + z * y, f * self.zz + z * z, f * self.w + 1.0

    def fade(self) -> None:
        """An observation of another kind came: these are one older."""
        f = self.forget
        self.zy, self.zz, self.w = f * self.zy, f * self.zz, f * self.w

    def fit(self, prior: float, prior_weight: float) -> float:
        """The factor, pulled toward `prior` by `prior_weight` observations' worth; `prior` with none."""
        if not self.w:
            return prior
        pull = prior_weight / self.w * self.zz
        return (self.zy + pull * prior) / (self.zz + pull)


class CostPool:
    """What a fleet's backends have shown together: the factor a backend with few observations of its own is
    presumed to have (a new replica is presumed like the others, not like the reference GPU). Not pulled toward
    the reference (`prior_weight` 0): the fleet's first observation is a better guess for its other replicas than
    the reference is. Pulled toward 1, a fleet faster than the reference made every replica it had not yet seen look
    slower than the one it had, and a lightly loaded fleet sent every cold prompt to that one."""

    def __init__(self, forget: float = 0.99, prior_weight: float = 0.0) -> None:
        self._sums, self.prior_weight = _Sums(forget), prior_weight
        self.factor = 1.0
        self.version = 0  # observations so far: a fit pulled toward `factor` is stale once it changes

    def add(self, z: float, y: float) -> None:
        self._sums.add(z, y)
        self.factor = self._sums.fit(1.0, self.prior_weight)
        self.version += 1


class CostFit:
    """One backend's `EngineCosts`: the reference's, times a speed factor learned from the TTFTs it shows.

    The factor is the weighted least-squares fit of observed TTFT = factor x the reference's estimate, each
    observation's weight decaying by `forget` with every later one (so the fit follows a replica that slows down or
    speeds up), pulled by `prior_weight` observations' worth toward the fleet's factor (its `pool`; 1 without one);
    it stays within [1/`bound`, `bound`]. An observation is clipped to `clip` x the current estimate first, so one
    stall (a fault, not the replica's speed) moves the factor only as far as a slow answer would. At the default
    `forget` the fit remembers ~20 observations: a lasting change is mostly learned within that many.
    Non-streamed answers show no TTFT. Their whole time, against the reference's `answer_ms`, is fitted apart, and
    that fit is the factor only while the TTFTs have less than `min_ttft_weight` observations' worth left (a fleet
    serving no streams, or none lately; each observation of one kind ages the other). An answer's time is mostly
    decode, so for an engine whose decode is relatively cheaper or dearer than the reference's it would bias the
    TTFT estimates: where both are seen, the TTFTs decide.
    `learn=False`: the reference, always.
    `share=True` (a gateway with peers: its workers, or replicas in one peer group): each observation is also kept
    in `outbox` (at most `OUTBOX` of them) for the peers, which learn it by `learn_shared`, so every worker fits
    the backend from the whole gateway's observations, not from its own share of the traffic.

    One factor, not one per term: the three terms are not separately identifiable from TTFTs that vary by tens of
    percent from one request to the next (the prefill term dominates; a fit of each drove the step terms to their
    bounds), and a part that prefills slower also decodes slower.
    """

    __slots__ = ("prior", "learn", "pool", "prior_weight", "bound", "clip", "min_ttft_weight", "samples", "_own",
                 "_answers", "_factor", "_as_of", "outbox")

    TTFT, ANSWER = 0, 1  # the kinds of observation, as `outbox` and `learn_shared` name them
    OUTBOX = 512  # observations kept for the peers at most: while none can be sent, the rest are not shared

    def __init__(self, prior: EngineCosts = REFERENCE, *, learn: bool = True, pool: CostPool | None = None,
                 forget: float = 0.95, prior_weight: float = 2.0, bound: float = 100.0, clip: float = 4.0,
                 min_ttft_weight: float = 1.0, share: bool = False) -> None:
        self.prior, self.learn, self.pool = prior, learn, pool
        self.prior_weight, self.bound, self.clip, self.min_ttft_weight = prior_weight, bound, clip, min_ttft_weight
        self.samples = 0  # observations of both kinds
        self._own, self._answers = _Sums(forget), _Sums(forget)  # TTFTs; whole non-streamed answers
        self._factor, self._as_of = 1.0, (0, 0)  # the factor, as of (own observations, the pool's version)
        self.outbox: list[tuple[int, float, float]] | None = [] if share else None  # (kind, reference ms, observed)

    @property
    def factor(self) -> float:
        if not self.learn:
            return 1.0
        as_of = (self.samples, self.pool.version if self.pool else 0)
        if as_of != self._as_of:  # refitted only after an observation here or anywhere in the pool
            sums = self._own if self._own.w >= self.min_ttft_weight or not self._answers.w else self._answers
            factor = sums.fit(self.pool.factor if self.pool else 1.0, self.prior_weight)
            self._factor, self._as_of = min(max(factor, 1 / self.bound), self.bound), as_of
        return self._factor

    @property
    def costs(self) -> EngineCosts:
        return self.prior.scaled(self.factor)

    def ttft_ms(self, prefill_tokens: float, seqs: float, factor: float | None = None) -> float:
        """Its estimate; at `factor` instead of its own where given (see `comparable`)."""
        return (self.factor if factor is None else factor) * self.prior.ttft_ms(prefill_tokens, seqs)

    def observe(self, prefill_tokens: float, seqs: float, ttft_ms: float) -> None:
        """A prompt sent with `prefill_tokens` to prefill among `seqs` sequences showed its first token after
        `ttft_ms`."""
        if not self.learn or not ttft_ms > 0:
            return
        self._learn(self.TTFT, self.prior.ttft_ms(prefill_tokens, seqs), ttft_ms)

    def observe_answer(self, prefill_tokens: float, seqs: float, output_tokens: int, latency_ms: float) -> None:
        """A non-streamed answer of `output_tokens`, sent as in `observe`, was whole after `latency_ms`."""
        if not self.learn or not latency_ms > 0:
            return
        self._learn(self.ANSWER, self.prior.answer_ms(prefill_tokens, seqs, output_tokens), latency_ms)

    def learn_shared(self, kind: int, reference_ms: float, observed_ms: float) -> None:
        """A peer's observation (an entry of its `outbox`): learned as this fit's own, but not shared again."""
        if self.learn and kind in (self.TTFT, self.ANSWER) and 0 < reference_ms < math.inf and 0 < observed_ms:
            self._learn(kind, reference_ms, observed_ms, shared=True)

    def take_outbox(self) -> list[tuple[int, float, float]]:
        """The observations not yet given to the peers, handed over once."""
        out = self.outbox
        if not out:
            return []
        self.outbox = []
        return out

    def _learn(self, kind: int, z: float, observed_ms: float, shared: bool = False) -> None:
        into, other = (self._own, self._answers) if kind == self.TTFT else (self._answers, self._own)
        y = min(observed_ms, self.clip * self.factor * z)
        into.add(z, y)
        other.fade()
        if self.pool is not None:
            self.pool.add(z, y)
        self.samples += 1
        if not shared and self.outbox is not None and len(self.outbox) < self.OUTBOX:
            self.outbox.append((kind, z, observed_ms))


NOISE_MARGIN = 0.10  # factors learned from ~20 TTFTs of alike replicas differ by a few percent, up to ~15% early on


def comparable(factors: dict[str, float], margin: float = NOISE_MARGIN) -> dict[str, float]:
    """The factors to compare replicas at: replicas whose fits lie within `margin` of each other are priced alike,
    each such group at the geometric mean of its fits, so noise in their fits does not decide where cold prompts
    go (alike replicas then share them, as with fixed costs); unlike groups keep their own prices. Sorted by
    factor, a group ends where the next factor is more than `margin` above the previous one, or more than
    `margin` twice over above the group's first (so a slow drift of factors does not chain into one group).
    A fleet of two kinds (2 fast replicas, 2 four times slower) comes out as two prices 4x apart, each shared
    by its kind: compared with one median instead, the fast pair kept their noise and one took every cold prompt."""
    if len(factors) < 2:
        return factors
    ordered = sorted(factors.items(), key=lambda item: item[1])
    out: dict[str, float] = {}

    def priced(group: list[tuple[str, float]]) -> None:  # one float per group: its ties are broken evenly
        price = group[0][1] if len(group) == 1 else math.exp(math.fsum(math.log(f) for _, f in group) / len(group))
        out.update((key, price) for key, _ in group)

    group = [ordered[0]]
    for key, factor in ordered[1:]:
        if factor > group[-1][1] * (1 + margin) or factor > group[0][1] * (1 + margin) ** 2:
            priced(group)
            group = []
        group.append((key, factor))
    priced(group)
    return {key: out[key] for key in factors}
