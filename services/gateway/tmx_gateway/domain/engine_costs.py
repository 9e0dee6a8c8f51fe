"""The gateway's cost model of one engine replica, for the estimates it makes where the engine tells it nothing
(routing's TTFT estimate; when a non-streamed prompt is presumed prefilled):

    TTFT ~ prefill_ms_per_token x (prompt tokens to prefill there: those queued ahead and its own uncached ones)
           + step_ms + step_ms_per_seq x (sequences running or waiting there)

Every backend starts from `REFERENCE`, the figures of a vLLM replica on one GPU as llm-d-inference-sim and SMG's mock
worker use them (prefill ~8000 prompt tokens/s; a decode step of ~6 ms that grows ~0.35 ms with each running
sequence). `CostFit` then learns how much slower or faster each backend is than that (one factor on all three
terms) from the TTFTs its streamed answers show (or, for a backend that has shown none lately, from how long its
non-streamed answers took: a TTFT and a decode step per further output token), so a replica on older hardware is
priced as it is, plus the fixed time every request takes there whatever its size (its overhead: HTTP, scheduling,
tokenising); and `comparable` keeps replicas that differ by no more than their fits' noise priced alike.
"""

from __future__ import annotations

import math
import weakref
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
    """Decayed sums for the least-squares fits of y = factor x z (+ an overhead): of z y, z^2, z, y and weights."""

    __slots__ = ("forget", "zy", "zz", "z", "y", "w")

    def __init__(self, forget: float) -> None:
        self.forget, self.zy, self.zz, self.z, self.y, self.w = forget, 0.0, 0.0, 0.0, 0.0, 0.0

    def add(self, z: float, y: float) -> None:
        f = self.forget
        self.zy, self.zz, self.w = f * self.zy + z * y, f * self.zz + z * z, f * self.w + 1.0
        self.z, self.y = f * self.z + z, f * self.y + y

    def fade(self) -> None:
        """An observation of another kind came: these are one older."""
        f = self.forget
        self.zy, self.zz, self.z, self.y, self.w = f * self.zy, f * self.zz, f * self.z, f * self.y, f * self.w

    def fit(self, prior: float, prior_weight: float, overhead: float = 0.0) -> float:
        """The factor of y - `overhead` = factor x z, pulled toward `prior` by `prior_weight` observations' worth;
        `prior` with none."""
        if not self.w:
            return prior
        pull = prior_weight / self.w * self.zz
        return (self.zy - overhead * self.z + pull * prior) / (self.zz + pull)

    def within(self) -> tuple[float, float]:
        """What these show of an intercept, (sum of y less the line's slope part, the spread of z in weights): the
        intercept is their quotient; for lines with slopes of their own and one intercept, the quotient of sums
        (`_overhead`)."""
        if not self.zz:
            return 0.0, 0.0
        return self.y - self.z * self.zy / self.zz, self.w - self.z * self.z / self.zz

    def line(self) -> tuple[float, float, float, float]:
        """What `_overhead` sums of these: (`within()`'s two, y, w)."""
        return (*self.within(), self.y, self.w)


def _overhead(lines, ridge: float) -> float:
    """The intercept the `lines` share (each its own slope; each a `_Sums.line()`), pulled toward 0 by `ridge`
    observations' worth (a ridge on the intercept alone: where the z seen vary little, a line through the origin
    explains them as well as any other, and it stays near 0; only a spread of z, cache hits beside cold prompts,
    shows a constant apart from the slope), held within [0, half their mean y]."""
    shown, spread, y, w = 0.0, 0.0, 0.0, 0.0
    for line_shown, line_spread, line_y, line_w in lines:
        shown, spread, y, w = shown + line_shown, spread + line_spread, y + line_y, w + line_w
    if not w or spread + ridge <= 0:
        return 0.0
    return min(max(shown / (spread + ridge), 0.0), 0.5 * y / w)


def _geomean(values: list[float]) -> float:
    return math.exp(math.fsum(math.log(v) for v in values) / len(values))


class CostPool:
    """What a fleet's backends have shown together.

    The factor a backend with few observations of its own is presumed to have (a new replica is presumed like the
    others, not like the reference GPU), from every backend's unqueued TTFTs and whole answers. Not pulled toward
    the reference (`prior_weight` 0): the fleet's first observation is a better guess for its other replicas than
    the reference is. Pulled toward 1, a fleet faster than the reference made every replica it had not yet seen look
    slower than the one it had, and a lightly loaded fleet sent every cold prompt to that one.

    And the fixed overhead of a request, one for the whole fleet: the intercept of one line per backend (each its
    own slope) through their unqueued TTFTs, fitted together, pulled toward 0 by `overhead_ridge` observations'
    worth and held within [0, half their mean TTFT]. A backend whose recent prompts were all about one size (all
    cache hits, say) cannot tell its overhead from its factor; fitted alone, such a twin put it in the factor, read
    ~1.4x the factor of a twin that had just taken a cold prompt, and the twin took the next cold prompt too, and
    every new conversation. Each backend adds to the shared intercept as much as the spread of its own prompts'
    sizes shows of it, so replicas of unlike speeds do not confound it (one line through all of them would have
    read a slow replica's cache hits as overhead)."""

    def __init__(self, forget: float = 0.99, prior_weight: float = 0.0, overhead_ridge: float = 2.0) -> None:
        self._sums, self.prior_weight, self.overhead_ridge = _Sums(forget), prior_weight, overhead_ridge
        # each member's unqueued TTFTs as `_overhead` reads them, kept as of its last observation (they change only
        # with its own): a refit sums these instead of walking the members (a refit follows every observation)
        self._lines: dict[int, tuple[float, float, float, float]] = {}
        self._joined = 0
        self.version = 0  # observations so far, here or by a member: a fit that reads the pool is stale once it changes
        self._factor, self._overhead, self._as_of = 1.0, 0.0, 0

    def join(self, fit: CostFit) -> int:
        """Its key in the pool; its line leaves the pool when it is collected."""
        self._joined += 1
        self._lines[self._joined] = fit.unqueued.line()
        weakref.finalize(fit, self._left, self._joined)
        return self._joined

    def _left(self, key: int) -> None:
        self._lines.pop(key, None)
        self.version += 1

    def observed(self, member: int, unqueued: _Sums, z: float, y: float, pooled: bool) -> None:
        """The member joined as `member` observed `y` against the reference's `z` (its `unqueued` TTFTs as they are
        now); `pooled`: an observation the fleet's factor is fitted from (unqueued TTFTs and whole answers)."""
        if pooled:
            self._sums.add(z, y)
        self._lines[member] = unqueued.line()
        self.version += 1

    @property
    def factor(self) -> float:
        self._refit()
        return self._factor

    @property
    def overhead_ms(self) -> float:
        self._refit()
        return self._overhead

    def _refit(self) -> None:
        if self._as_of == self.version:
            return
        self._overhead = _overhead(self._lines.values(), self.overhead_ridge)
        self._factor = self._sums.fit(1.0, self.prior_weight, self._overhead)
        self._as_of = self.version


class CostFit:
    """One backend's `EngineCosts`: the reference's, times a speed factor learned from the TTFTs it shows, plus the
    fixed overhead every request takes there.

    The factor is the weighted least-squares fit of observed TTFT - overhead = factor x the reference's estimate,
    each observation's weight decaying by `forget` with every later one (so the fit follows a replica that slows
    down or speeds up), pulled by `prior_weight` observations' worth toward the fleet's factor (its `pool`; 1
    without one); it stays within [1/`bound`, `bound`]. An observation is clipped to `clip` x the current estimate
    first, so one stall (a fault, not the replica's speed) moves the factor only as far as a slow answer would. At
    the default `forget` the fit remembers ~20 observations: a lasting change is mostly learned within that many.

    The TTFTs fitted are those of prompts sent with nothing queued ahead of them (`observe(..., unqueued=True)`),
    while they have at least `min_ttft_weight` observations' worth left (each queued one ages them), else all of
    them: a queued prompt's TTFT is priced at the gateway's belief of the prefill queued ahead, which counts every
    prompt another strategy sent as uncached; behind a session-affinity's cache hits, a replica read half its
    factor and then took every cold prompt. And behind a queue, engines (batching prefills) answer sooner than the
    queue's whole prefill: a line through queued TTFTs read a small factor and most of a TTFT as overhead.
    The overhead is the intercept of the same line through the unqueued TTFTs: the fleet's (`CostPool`, one for
    all its backends, so a replica that saw only prompts of one size still prices a cold one as its twins do), or,
    without a pool, its own, pulled toward 0 by `overhead_ridge` observations' worth and held within [0, half their
    mean TTFT]. Without it a replica serving mostly cache hits (whose TTFTs are mostly that overhead) fitted about
    twice the factor of its twin taking cold prompts, so the twin was priced at half the cost for the next cold
    prompt and took them all. Where the prompts seen vary little in size, no overhead is learned (the ridge).

    Non-streamed answers show no TTFT. Their whole time, against the reference's `answer_ms`, is fitted apart
    (through the origin), and that fit is the factor, with no overhead, only while the TTFTs have less than
    `min_ttft_weight` observations' worth left (a fleet serving no streams, or none lately; each observation of one
    kind ages the other). An answer's time is mostly decode, so for an engine whose decode is relatively cheaper
    or dearer than the reference's it would bias the TTFT estimates: where both are seen, the TTFTs decide.
    `learn=False`: the reference, always.
    `share=True` (a gateway with peers: its workers, or replicas in one peer group): each observation is also kept
    in `outbox` (at most `OUTBOX` of them) for the peers, which learn it by `learn_shared`, so every worker fits
    the backend from the whole gateway's observations, not from its own share of the traffic.

    One factor, not one per term: the three terms are not separately identifiable from TTFTs that vary by tens of
    percent from one request to the next (the prefill term dominates; a fit of each drove the step terms to their
    bounds), and a part that prefills slower also decodes slower.
    """

    __slots__ = ("prior", "learn", "pool", "prior_weight", "bound", "clip", "min_ttft_weight", "overhead_ridge",
                 "samples", "_own", "unqueued", "_answers", "_factor", "_overhead", "_as_of", "outbox", "_pool_key",
                 "__weakref__")

    TTFT, ANSWER, TTFT_UNQUEUED = 0, 1, 2  # the kinds of observation, as `outbox` and `learn_shared` name them
    OUTBOX = 512  # observations kept for the peers at most: while none can be sent, the rest are not shared

    def __init__(self, prior: EngineCosts = REFERENCE, *, learn: bool = True, pool: CostPool | None = None,
                 forget: float = 0.95, prior_weight: float = 2.0, bound: float = 100.0, clip: float = 4.0,
                 min_ttft_weight: float = 1.0, overhead_ridge: float = 2.0, share: bool = False) -> None:
        self.prior, self.learn, self.pool = prior, learn, pool
        self.prior_weight, self.bound, self.clip, self.min_ttft_weight = prior_weight, bound, clip, min_ttft_weight
        self.overhead_ridge = overhead_ridge
        self.samples = 0  # observations of all kinds
        # TTFTs; those of them sent with nothing queued ahead (the pool reads them); whole non-streamed answers
        self._own, self.unqueued, self._answers = _Sums(forget), _Sums(forget), _Sums(forget)
        self._factor, self._overhead, self._as_of = 1.0, 0.0, (0, 0)  # as of (own observations, the pool's version)
        self.outbox: list[tuple[int, float, float]] | None = [] if share else None  # (kind, reference ms, observed)
        self._pool_key = pool.join(self) if pool is not None else 0

    @property
    def factor(self) -> float:
        return self._fitted()[0]

    @property
    def overhead_ms(self) -> float:
        """The fixed time of every request there, beyond what the reference's costs at `factor` account for."""
        return self._fitted()[1]

    def _fitted(self) -> tuple[float, float]:
        """(factor, overhead), refitted only after an observation here or anywhere in the pool."""
        if not self.learn:
            return 1.0, 0.0
        as_of = (self.samples, self.pool.version if self.pool else 0)
        if as_of != self._as_of:
            self._refit(as_of)
        return self._factor, self._overhead

    def _refit(self, as_of: tuple[int, int]) -> None:
        prior = self.pool.factor if self.pool else 1.0
        if self._own.w >= self.min_ttft_weight or not self._answers.w:
            u = self.unqueued
            overhead = self.pool.overhead_ms if self.pool is not None else _overhead([u.line()], self.overhead_ridge)
            factor = (u if u.w >= self.min_ttft_weight else self._own).fit(prior, self.prior_weight, overhead)
        else:
            overhead, factor = 0.0, self._answers.fit(prior, self.prior_weight)
        self._factor, self._overhead, self._as_of = min(max(factor, 1 / self.bound), self.bound), overhead, as_of

    @property
    def costs(self) -> EngineCosts:
        return self.prior.scaled(self.factor)

    def ttft_ms(self, prefill_tokens: float, seqs: float, priced: tuple[float, float] | None = None) -> float:
        """Its estimate; at `priced` (factor, overhead) instead of its own where given (see `comparable_costs`)."""
        factor, overhead = self._fitted() if priced is None else priced
        return factor * self.prior.ttft_ms(prefill_tokens, seqs) + overhead

    def observe(self, prefill_tokens: float, seqs: float, ttft_ms: float, unqueued: bool = False) -> None:
        """A prompt sent with `prefill_tokens` to prefill among `seqs` sequences showed its first token after
        `ttft_ms`; `unqueued`: no other prompt's prefill was queued ahead of it (only its own)."""
        if not self.learn or not ttft_ms > 0:
            return
        self._learn(self.TTFT_UNQUEUED if unqueued else self.TTFT, self.prior.ttft_ms(prefill_tokens, seqs), ttft_ms)

    def observe_answer(self, prefill_tokens: float, seqs: float, output_tokens: int, latency_ms: float) -> None:
        """A non-streamed answer of `output_tokens`, sent as in `observe`, was whole after `latency_ms`."""
        if not self.learn or not latency_ms > 0:
            return
        self._learn(self.ANSWER, self.prior.answer_ms(prefill_tokens, seqs, output_tokens), latency_ms)

    def learn_shared(self, kind: int, reference_ms: float, observed_ms: float) -> None:
        """A peer's observation (an entry of its `outbox`): learned as this fit's own, but not shared again."""
        if self.learn and kind in (self.TTFT, self.ANSWER, self.TTFT_UNQUEUED) and 0 < reference_ms < math.inf \
                and 0 < observed_ms:
            self._learn(kind, reference_ms, observed_ms, shared=True)

    def take_outbox(self) -> list[tuple[int, float, float]]:
        """The observations not yet given to the peers, handed over once."""
        out = self.outbox
        if not out:
            return []
        self.outbox = []
        return out

    def _learn(self, kind: int, z: float, observed_ms: float, shared: bool = False) -> None:
        factor, overhead = self._fitted()
        y = min(observed_ms, self.clip * (factor * z + overhead))
        if kind == self.ANSWER:
            self._answers.add(z, y)
            self._own.fade()
            self.unqueued.fade()
        else:
            self._own.add(z, y)
            self._answers.fade()
            if kind == self.TTFT_UNQUEUED:
                self.unqueued.add(z, y)
            else:
                self.unqueued.fade()
        if self.pool is not None:
            self.pool.observed(self._pool_key, self.unqueued, z, y, pooled=kind != self.TTFT)
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
    out: dict[str, float] = {}
    for group in _groups(factors, margin):  # one float per group: its ties are broken evenly
        price = factors[group[0]] if len(group) == 1 else _geomean([factors[key] for key in group])
        out.update((key, price) for key in group)
    return {key: out[key] for key in factors}


def comparable_costs(fits: dict[str, CostFit], prompt_tokens: float,
                     margin: float = NOISE_MARGIN) -> dict[str, tuple[float, float]]:
    """(factor, overhead ms) to compare replicas at for a prompt of `prompt_tokens`: grouped as `comparable` groups
    factors, by each one's estimate for that prompt sent to it idle (over the reference's), and each group at the
    geometric mean of its factors and the mean of its overheads. Two fits of alike replicas can split one TTFT
    differently between factor and overhead (one that saw only prompts of one size learns no overhead, and its
    factor holds it), and still agree on what the prompts they saw cost: so they are priced alike."""
    fitted = {key: (fit.factor, fit.overhead_ms) for key, fit in fits.items()}
    if len(fits) < 2:
        return fitted
    idle = {key: factor + overhead / fits[key].prior.ttft_ms(prompt_tokens, 0.0)
            for key, (factor, overhead) in fitted.items()}
    out: dict[str, tuple[float, float]] = {}
    for group in _groups(idle, margin):
        if len(group) == 1:
            out[group[0]] = fitted[group[0]]
            continue
        priced = (_geomean([fitted[key][0] for key in group]), math.fsum(fitted[key][1] for key in group) / len(group))
        out.update((key, priced) for key in group)
    return {key: out[key] for key in fits}


def _groups(factors: dict[str, float], margin: float) -> list[list[str]]:
    """The keys of `factors` in `comparable`'s groups, in order of factor."""
    ordered = sorted(factors, key=factors.__getitem__)
    groups: list[list[str]] = []
    for key in ordered:
        if groups:
            first, last = factors[groups[-1][0]], factors[groups[-1][-1]]
            if factors[key] <= last * (1 + margin) and factors[key] <= first * (1 + margin) ** 2:
                groups[-1].append(key)
                continue
        groups.append([key])
    return groups
