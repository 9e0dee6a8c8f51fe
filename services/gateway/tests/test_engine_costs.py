import gc
import math
import random

import pytest

from tmx_gateway.domain.engine_costs import REFERENCE, CostFit, CostPool, EngineCosts, comparable, comparable_costs
from tmx_gateway.domain.fleet import Attempt, Backend, FleetView
from tmx_gateway.domain.metering import Usage
from tmx_gateway.domain.routing import RouteRequest, build_policy

SLOW = REFERENCE.scaled(4.0)  # a part 4x slower than the reference


def observations(truth: EngineCosts, n: int, seed: int = 3, noise: float = 0.0):
    rng = random.Random(seed)
    for _ in range(n):
        tokens, seqs = rng.uniform(0, 4000), rng.randrange(0, 40)
        yield tokens, seqs, truth.ttft_ms(tokens, seqs) * (1 + rng.uniform(-noise, noise))


def test_without_a_prior_the_factor_is_the_least_squares_fit_exactly():
    fit = CostFit(prior_weight=0.0)
    for tokens, seqs, ttft in observations(SLOW, 3):
        fit.observe(tokens, seqs, ttft)
    assert fit.factor == pytest.approx(4.0, rel=1e-12)
    assert fit.costs == REFERENCE.scaled(fit.factor)
    assert fit.samples == 3


def test_the_prior_is_worth_prior_weight_observations_and_fades_as_they_come():
    fit = CostFit(prior_weight=2.0, forget=1.0)
    fit.observe(1000, 0, SLOW.ttft_ms(1000, 0))
    assert fit.factor == pytest.approx((4.0 + 2.0) / 3.0)  # one observation of 4 against two of 1
    for tokens, seqs, ttft in observations(SLOW, 200):
        fit.observe(tokens, seqs, ttft)
    # 200 forgotten at 0.95 leave ~20 remembered: the pull of 2 keeps 2/22 of the way to 1
    remembered = CostFit()
    for tokens, seqs, ttft in observations(SLOW, 200):
        remembered.observe(tokens, seqs, ttft)
    w = sum(0.95 ** k for k in range(200))
    assert remembered.factor == pytest.approx((4.0 * w + 2.0) / (w + 2.0), rel=1e-9)


def test_it_finds_the_factor_through_noisy_ttfts():
    noisy, clean = CostFit(), CostFit()  # the same prompts and loads, with and without noise on the TTFTs
    for (tokens, seqs, ttft), (_, _, exact) in zip(observations(SLOW, 200, noise=0.2), observations(SLOW, 200)):
        noisy.observe(tokens, seqs, ttft)
        clean.observe(tokens, seqs, exact)
    # +-20% uniform noise is an 11.5% sd per TTFT; averaged over the ~20 remembered, ~3% (the pull toward 1 is the
    # same on both sides, and checked exactly above)
    assert noisy.factor == pytest.approx(clean.factor, rel=0.03)


def test_a_single_stall_moves_the_factor_no_further_than_the_clip():
    stalled, clipped = CostFit(), CostFit()
    for fit in (stalled, clipped):
        for tokens, seqs, ttft in observations(REFERENCE, 60):
            fit.observe(tokens, seqs, ttft)
    assert stalled.factor == pytest.approx(1.0)
    stalled.observe(1000, 4, 30_000.0)  # a 30 s stall: a fault, not the replica's speed
    clipped.observe(1000, 4, 4 * REFERENCE.ttft_ms(1000, 4))  # the same observation at the clip
    assert stalled.factor == clipped.factor < 1.15
    for tokens, seqs, ttft in observations(SLOW, 20, seed=5):  # a lasting slowdown is learned
        stalled.observe(tokens, seqs, ttft)
    never = CostFit()  # the same history without the stall
    for tokens, seqs, ttft in [*observations(REFERENCE, 60), *observations(SLOW, 20, seed=5)]:
        never.observe(tokens, seqs, ttft)
    assert never.factor > 2.7  # 20 of ~20 remembered observations at 4x, against the older ones at 1x
    assert stalled.factor == pytest.approx(never.factor, rel=0.02)  # the stall is all but forgotten


def test_the_factor_stays_within_the_bound_and_learning_can_be_off():
    fit = CostFit(bound=10.0, clip=1e9)
    for tokens, seqs, _ in observations(REFERENCE, 50):
        fit.observe(tokens, seqs, 1e7)  # absurdly slow: held at 10x
    assert fit.costs == REFERENCE.scaled(10.0)
    frozen = CostFit(learn=False)
    frozen.observe(1000, 4, 5000.0)
    frozen.observe(1000, 4, 0.0)
    assert (frozen.costs, frozen.samples) == (REFERENCE, 0)


def test_a_shared_fit_hands_its_observations_over_once_and_a_peer_learns_them_as_its_own():
    rng = random.Random(11)
    mine = CostFit(share=True)
    both = CostFit()  # one process that saw every observation
    peer = CostFit(share=True)
    for i in range(30):
        tokens, seqs = rng.uniform(0, 4000), rng.randrange(0, 40)
        if i % 3:
            ttft = SLOW.ttft_ms(tokens, seqs) * rng.uniform(0.8, 1.2) + 20.0
            mine.observe(tokens, seqs, ttft, unqueued=i % 2 == 0)
            both.observe(tokens, seqs, ttft, unqueued=i % 2 == 0)
        else:
            out = rng.randrange(1, 300)
            latency = SLOW.answer_ms(tokens, seqs, out) * (40.0 if i == 9 else 1.0)  # one stall: clipped alike
            mine.observe_answer(tokens, seqs, out, latency)
            both.observe_answer(tokens, seqs, out, latency)
    shared = mine.take_outbox()
    assert len(shared) == 30 and mine.take_outbox() == [] and mine.outbox == []
    for kind, reference_ms, observed_ms in shared:
        peer.learn_shared(kind, reference_ms, observed_ms)
    assert (peer.factor, peer.samples) == (both.factor, both.samples) == (mine.factor, 30)
    assert peer.overhead_ms == both.overhead_ms == mine.overhead_ms > 0  # the unqueued ones were shared as such
    assert peer.outbox == []  # a peer's observation is not shared again (no echo between workers)
    for bad in ((3, 10.0, 20.0), (0, 0.0, 20.0), (0, math.inf, 20.0), (1, 10.0, -1.0), (0, 10.0, math.nan)):
        peer.learn_shared(*bad)
    assert (peer.factor, peer.samples) == (both.factor, 30)
    unshared = CostFit()
    unshared.observe(100, 1, 50.0)
    assert unshared.outbox is None and unshared.take_outbox() == []
    for _ in range(CostFit.OUTBOX + 5):  # no peer takes them: the outbox stops growing
        mine.observe(100, 1, 50.0)
    assert len(mine.outbox) == CostFit.OUTBOX and mine.samples == 30 + CostFit.OUTBOX + 5


FAST = REFERENCE.scaled(0.5)
OVERHEAD_MS = 8.0  # what every request takes on FAST beside its engine's work


def fast_ttft(tokens: float, seqs: float) -> float:
    return FAST.ttft_ms(tokens, seqs) + OVERHEAD_MS


def test_the_overhead_is_the_intercept_of_unqueued_ttfts():
    exact = CostFit(prior_weight=0.0, overhead_ridge=0.0, forget=1.0)
    for tokens, seqs in ((50, 0), (1000, 2), (80, 1), (2000, 0)):  # cache hits beside cold prompts
        exact.observe(tokens, seqs, fast_ttft(tokens, seqs), unqueued=True)
    assert (exact.factor, exact.overhead_ms) == (pytest.approx(0.5, rel=1e-9), pytest.approx(OVERHEAD_MS, rel=1e-9))
    assert exact.ttft_ms(500, 3) == pytest.approx(fast_ttft(500, 3), rel=1e-9)
    # the ridge pulls it toward 0 by overhead_ridge observations' worth: with four of them against four seen, the
    # overhead is part of the way there and the factor takes up the rest
    ridged = CostFit(prior_weight=0.0, forget=1.0)
    for tokens, seqs in ((50, 0), (1000, 2), (80, 1), (2000, 0)):
        ridged.observe(tokens, seqs, fast_ttft(tokens, seqs), unqueued=True)
    assert 0.3 * OVERHEAD_MS < ridged.overhead_ms < OVERHEAD_MS and ridged.factor > 0.5
    # TTFTs queued behind other prompts teach the factor, never the overhead
    queued = CostFit(prior_weight=0.0, overhead_ridge=0.0)
    for tokens, seqs in ((50, 0), (1000, 2), (80, 1), (2000, 0)):
        queued.observe(tokens, seqs, fast_ttft(tokens, seqs))
    assert queued.overhead_ms == 0.0 and queued.factor > 0.5


def test_no_overhead_is_learned_from_prompts_of_one_size_nor_more_than_half_their_ttft():
    """Prompts of about one size (uniform traffic): a line through the origin explains their TTFTs as well as any,
    and the ridge keeps the overhead at ~0 where unregularised least squares would read it from the noise."""
    ridged_most, free_most = 0.0, 0.0
    for seed in range(10):
        rng = random.Random(seed)
        ridged, free = CostFit(), CostFit(overhead_ridge=0.0)
        for _ in range(60):
            tokens, seqs = rng.uniform(950, 1050), rng.randrange(0, 4)
            ttft = FAST.ttft_ms(tokens, seqs) * rng.uniform(0.8, 1.2)
            ridged.observe(tokens, seqs, ttft, unqueued=True)
            free.observe(tokens, seqs, ttft, unqueued=True)
        ridged_most = max(ridged_most, ridged.overhead_ms / ridged.ttft_ms(1000, 2))
        free_most = max(free_most, free.overhead_ms / free.ttft_ms(1000, 2))
    assert ridged_most < 0.01
    assert free_most > 0.3  # what the noise alone made of it, in one of the ten
    # a constant TTFT whatever the prompt (no engine work shows at all): held at half of it
    flat = CostFit(prior_weight=0.0, overhead_ridge=0.0)
    for tokens in (100, 1000, 3000):
        flat.observe(tokens, 0, 40.0, unqueued=True)
    assert flat.overhead_ms == pytest.approx(20.0, rel=1e-12) and flat.factor > 0


def test_twins_priced_alike_whether_they_serve_cache_hits_or_cold_prompts():
    """Two alike replicas (FAST, 8 ms overhead): one took a few cold prompts and since then only cache hits, the
    other only cold prompts. Fitted through the origin, the hits' TTFTs (mostly the overhead) read the first as
    ever slower, so the second took every cold prompt and the first only hits; with the overhead, both price the
    next cold prompt about alike, and the hits near as they are."""
    rng = random.Random(4)
    hot, cold, hot_origin = CostFit(), CostFit(), CostFit(overhead_ridge=1e12)  # the last: no overhead, as before
    for i in range(60):
        seqs = rng.randrange(0, 4)
        tokens = rng.uniform(900, 1100) if i < 10 and i % 2 == 0 else rng.uniform(30, 120)
        for fit in (hot, hot_origin):
            fit.observe(tokens, seqs, fast_ttft(tokens, seqs), unqueued=True)
        tokens = rng.uniform(900, 1100)
        cold.observe(tokens, seqs, fast_ttft(tokens, seqs), unqueued=True)
    assert hot_origin.ttft_ms(1000, 1) > 1.3 * cold.ttft_ms(1000, 1)
    assert hot.ttft_ms(1000, 1) == pytest.approx(cold.ttft_ms(1000, 1), rel=0.08)
    assert cold.ttft_ms(1000, 1) == pytest.approx(fast_ttft(1000, 1), rel=0.08)  # the pull toward 1 (2 of ~20)
    assert hot.ttft_ms(60, 1) == pytest.approx(fast_ttft(60, 1), rel=0.03)
    assert hot_origin.ttft_ms(60, 1) < 0.75 * fast_ttft(60, 1)


@pytest.mark.parametrize("ridge, shared", [(2.0, True), (1e12, False)])  # with the overhead; through the origin
def test_prefix_aware_shares_cold_prompts_between_twins_whatever_they_served_before(ridge, shared):
    """The twins of `test_twins_priced_alike...`, idle, get cold prompts one at a time: priced alike, they take
    turns (each new conversation's later turns then follow it to either); fitted through the origin, the one that
    served cache hits looked 1.3x dearer and the other took them all."""
    rng = random.Random(4)
    hot, cold = (Backend(i, "u", ("m",), costs=CostFit(overhead_ridge=ridge)) for i in ("hot", "cold"))
    for i in range(60):
        seqs = rng.randrange(0, 4)
        tokens = rng.uniform(900, 1100) if i < 10 and i % 2 == 0 else rng.uniform(30, 120)
        hot.costs.observe(tokens, seqs, fast_ttft(tokens, seqs), unqueued=True)
        tokens = rng.uniform(900, 1100)
        cold.costs.observe(tokens, seqs, fast_ttft(tokens, seqs), unqueued=True)
    policy = build_policy("prefix_aware")
    chosen = []
    for i in range(6):
        request = RouteRequest(model="m", endpoint="/v1/chat/completions", prompt_text=str(i) * 4000,
                               prompt_tokens=1000)
        chosen.append(policy.choose(request, [hot, cold]).backend_id)
        Attempt(hot if chosen[-1] == "hot" else cold, 1000, 16).ended()  # answered before the next comes
    assert (chosen.count("hot"), chosen.count("cold")) == ((3, 3) if shared else (0, 6))


def test_a_stream_sent_with_nothing_queued_ahead_is_learned_as_unqueued():
    b = Backend("b", "u", ("m",), costs=CostFit(share=True))
    first = Attempt(b, 1000, 16, now=0.0)  # nothing queued: only its own prefill
    second = Attempt(b, 1000, 16, now=0.0)  # behind the first's
    for attempt in (second, first):
        attempt.first_token(0.1)
        attempt.learn()
    third = Attempt(b, 1000, 16, now=1.0)  # both prefilled: nothing queued, though two still decode
    third.first_token(1.05)
    third.ended()
    assert [kind for kind, _, _ in b.costs.take_outbox()] == [CostFit.TTFT, CostFit.TTFT_UNQUEUED,
                                                              CostFit.TTFT_UNQUEUED]


def test_a_streams_first_token_is_an_observation_of_the_ttft_under_the_load_it_was_sent_into():
    b = Backend("b", "u", ("m",))
    Attempt(b, 600, 16, now=0.0)  # 600 tokens queued ahead, one sequence
    attempt = Attempt(b, 1000, 16, cached_tokens=200, now=10.0)
    attempt.first_token(10.25)
    attempt.first_token(10.5)  # later chunks observe nothing more
    assert b.prefilling_prompt_tokens == 600 and b.costs.samples == 0  # prefilled; learned at the stream's end
    attempt.learn(Usage(prompt_tokens=1100, completion_tokens=16, estimated=True))  # no cached tokens reported
    fit = CostFit()
    fit.observe(600 + 800, 1, 250.0)  # at the prefill routing predicted
    assert (b.costs.costs, b.costs.samples) == (fit.costs, 1)
    attempt.ended()
    assert b.costs.samples == 1  # learned once
    presumed = Attempt(b, 100, 16, now=11.0)
    presumed.prefilled()  # a non-streamed answer's presumption is no observation
    presumed.first_token(12.0)
    presumed.ended()
    assert b.costs.samples == 1


def test_a_ttft_is_learned_at_the_prefill_the_backend_reports_not_the_one_routing_predicted():
    """Routing predicted 800 of 1000 prompt tokens cached; the engine had evicted them and reports 0 of its 1100
    cached (its own count): the 250 ms TTFT is a full prefill behind 600 queued tokens, not a slow backend."""
    evicted, as_predicted, unreported = (Backend(i, "u", ("m",)) for i in ("evicted", "as_predicted", "unreported"))
    for b, usage in ((evicted, Usage(1100, 16, cached_tokens=0, cached_reported=True)),
                     (as_predicted, Usage(1100, 16, cached_tokens=880, cached_reported=True)), (unreported, None)):
        Attempt(b, 600, 16, now=0.0)
        attempt = Attempt(b, 1000, 16, cached_tokens=800, now=10.0)
        attempt.first_token(10.25)
        if usage is None:
            attempt.ended()  # a stream that ends without usage: learned as predicted
        else:
            attempt.learn(usage)
    fits = {}
    for name, tokens in (("evicted", 600 + 1000), ("as_predicted", 600 + 200), ("unreported", 600 + 200)):
        fits[name] = CostFit()
        fits[name].observe(tokens, 1, 250.0)
    assert evicted.costs.factor == pytest.approx(fits["evicted"].factor, rel=1e-12)
    assert as_predicted.costs.factor == pytest.approx(fits["as_predicted"].factor, rel=1e-12)
    assert unreported.costs.factor == pytest.approx(fits["unreported"].factor, rel=1e-12)
    assert evicted.costs.factor < as_predicted.costs.factor  # the full prefill explains more of the 250 ms
    # a non-streamed answer likewise
    answered = Backend("answered", "u", ("m",))
    Attempt(answered, 1000, 64, cached_tokens=800, now=0.0).answered(
        0.9, Usage(1000, 40, cached_tokens=0, cached_reported=True))
    full = CostFit()
    full.observe_answer(1000, 0, 40, 900.0)
    assert answered.costs.factor == pytest.approx(full.factor, rel=1e-12)


def test_non_streamed_answers_teach_the_factor_where_no_ttft_is_seen():
    rng = random.Random(5)
    answers = [(rng.uniform(0, 4000), rng.randrange(0, 40), rng.randrange(1, 300)) for _ in range(30)]
    fit = CostFit(prior_weight=0.0)
    for tokens, seqs, out in answers[:3]:
        fit.observe_answer(tokens, seqs, out, SLOW.answer_ms(tokens, seqs, out))
    assert fit.factor == pytest.approx(4.0, rel=1e-12) and fit.samples == 3  # exactly, as with TTFTs
    one = REFERENCE.answer_ms(1000, 4, 1)
    assert one == REFERENCE.ttft_ms(1000, 4)  # a one-token answer is its first token
    assert REFERENCE.answer_ms(1000, 4, 11) == pytest.approx(one + 10 * (6.0 + 0.35 * 4))
    # once the backend streams, its TTFTs decide: its decode may be relatively cheaper than the reference's
    # (here answers say 4x, TTFTs 2x), and it is the TTFT that routing estimates
    mixed = CostFit(prior_weight=0.0)
    for (tokens, seqs, out), (t_tokens, t_seqs, ttft) in zip(answers, observations(REFERENCE.scaled(2.0), 30)):
        mixed.observe_answer(tokens, seqs, out, SLOW.answer_ms(tokens, seqs, out))
        mixed.observe(t_tokens, t_seqs, ttft)
    assert mixed.factor == pytest.approx(2.0, rel=1e-9) and mixed.samples == 60
    # streams stop: each answer ages the TTFTs by 0.95 (in the mixed phase each pair aged them twice), and once
    # less than one observation's worth of them is left, the answers decide
    remembered = sum(0.95 ** (2 * j) for j in range(30))  # ~9.9
    switched = next(k for k in range(1, 200) if remembered * 0.95 ** k < 1.0)  # 45
    for k in range(1, switched + 5):
        tokens, seqs, out = answers[k % len(answers)]
        mixed.observe_answer(tokens, seqs, out, SLOW.answer_ms(tokens, seqs, out))
        assert mixed.factor == pytest.approx(2.0 if k < switched else 4.0, rel=1e-9), k


def test_a_non_streamed_answer_is_an_observation_of_the_whole_answer_under_the_load_it_was_sent_into():
    b = Backend("b", "u", ("m",))
    Attempt(b, 600, 16, now=0.0)
    attempt = Attempt(b, 1000, 64, cached_tokens=200, now=10.0)
    attempt.prefilled()  # presumed prefilled (the timer): not an observation
    assert b.costs.samples == 0
    attempt.answered(10.9, Usage(completion_tokens=40))
    fit = CostFit()
    fit.observe_answer(600 + 800, 1, 40, 900.0)
    assert b.costs.factor == pytest.approx(fit.factor, rel=1e-12) and b.costs.samples == 1 and fit.factor > 1.0
    attempt.ended()
    attempt.answered(11.0, Usage(completion_tokens=40))  # an ended attempt, or an answer without usage, observes nothing
    Attempt(b, 100, 16, now=12.0).answered(12.5, Usage())
    assert b.costs.samples == 1


def test_prefix_aware_sends_a_cold_prompt_to_the_replica_it_learned_is_faster():
    fleet = FleetView()
    fast, slow = Backend("fast", "u", ("m",)), Backend("slow", "u", ("m",))
    fleet.backends = {"slow": slow, "fast": fast}
    for tokens, seqs, ttft in observations(SLOW, 40):
        slow.costs.observe(tokens, seqs, ttft)
    for tokens, seqs, ttft in observations(REFERENCE, 40):
        fast.costs.observe(tokens, seqs, ttft)
    policy = build_policy("prefix_aware")
    def cold(i: int) -> RouteRequest:  # a prompt no backend has seen
        return RouteRequest(model="m", endpoint="/v1/chat/completions", prompt_text=str(i) * 4000, prompt_tokens=1000)

    assert slow.costs.factor == pytest.approx(3.7, abs=0.05)  # 40 observations of 4x against the pull
    # compared, less the noise margin: ~1.10x and ~3.35x the reference; a cold prompt costs ~440 ms on the slower
    for queued in range(3):  # and ~144, ~282, ~420 ms on the faster behind 0, 1, 2 such prompts
        decision = policy.choose(cold(queued), [slow, fast])
        assert decision.backend_id == "fast", queued
        Attempt(fast, 1000, 16, cached_tokens=decision.predicted_cached_tokens)
    assert policy.choose(cold(3), [slow, fast]).backend_id == "slow"  # behind 3: ~558 ms, no longer
    unlearned = build_policy("prefix_aware")
    alike = [Backend("slow", "u", ("m",), costs=CostFit(learn=False)), Backend("fast", "u", ("m",))]
    alike[0].costs.observe(1000, 0, 500.0)
    assert unlearned.scores(cold(4), alike)["slow"] == unlearned.scores(cold(4), alike)["fast"]


def test_replicas_within_the_noise_margin_of_each_other_are_priced_alike():
    alike = comparable({"a": 0.46, "b": 0.47, "c": 0.50, "d": 0.53})  # fits of four alike replicas
    assert list(alike.values()) == pytest.approx([(0.46 * 0.47 * 0.50 * 0.53) ** 0.25] * 4)  # at their geomean
    assert len(set(alike.values())) == 1  # exactly one price: their ties are broken evenly, not by rounding
    apart = comparable({"fast": 1.0, "slow": 4.0})
    assert apart == {"fast": 1.0, "slow": 4.0}  # unlike replicas are priced as they are
    three = comparable({"a": 1.0, "b": 1.05, "c": 3.0})
    assert three["a"] == three["b"] == pytest.approx(math.sqrt(1.05)) and three["c"] == 3.0
    # two kinds, two of each (the fast pair's fits 8% apart): one price per kind, the kinds as far apart as they are
    kinds = comparable({"f1": 0.50, "s1": 2.0, "f2": 0.54, "s2": 2.1})
    assert list(kinds) == ["f1", "s1", "f2", "s2"]
    assert kinds["f1"] == kinds["f2"] == pytest.approx(math.sqrt(0.50 * 0.54))
    assert kinds["s1"] == kinds["s2"] == pytest.approx(math.sqrt(2.0 * 2.1))
    # a group breaks at a gap over the margin, or once it would span over the margin twice over
    assert len(set(comparable({"a": 1.0, "b": 1.11}).values())) == 2
    drift = comparable({"a": 1.0, "b": 1.09, "c": 1.18, "d": 1.28})  # each 9% above the last
    assert drift["a"] == drift["b"] == drift["c"] != drift["d"] == 1.28
    assert comparable({"only": 2.5}) == {"only": 2.5}


def test_replicas_that_agree_on_a_prompts_cost_are_priced_alike_however_their_fits_split_it():
    fits = {key: CostFit(prior_weight=0.0, overhead_ridge=0.0) for key in ("hits", "cold", "slow")}
    for tokens in (40, 1000, 80, 2000):  # 0.5x + 8 ms, seen over prompts of all sizes
        fits["hits"].observe(tokens, 0, fast_ttft(tokens, 0), unqueued=True)
    for tokens in (1000, 1000):  # the same replica seen over one size only: no overhead, a factor that holds it
        fits["cold"].observe(tokens, 0, fast_ttft(tokens, 0), unqueued=True)
    for tokens in (1000, 40):
        fits["slow"].observe(tokens, 0, 2 * REFERENCE.ttft_ms(tokens, 0) + 10.0, unqueued=True)
    cold_factor = fast_ttft(1000, 0) / REFERENCE.ttft_ms(1000, 0)  # ~0.56: 12% above 0.5, apart by factor alone
    assert fits["cold"].overhead_ms == 0.0 and fits["cold"].factor == pytest.approx(cold_factor, rel=1e-12)
    assert len(set(comparable({key: fit.factor for key, fit in fits.items()}).values())) == 3
    priced = comparable_costs(fits, 1000)  # both say a 1000-token prompt costs fast_ttft(1000, 0): one group
    alike = (pytest.approx(math.sqrt(0.5 * cold_factor), rel=1e-9), pytest.approx(4.0, rel=1e-9))
    assert priced == {"hits": alike, "cold": alike, "slow": (pytest.approx(2.0, rel=1e-9), pytest.approx(10.0))}
    assert priced["hits"] == priced["cold"]  # exactly: their ties are broken evenly
    assert comparable_costs(fits, 1000)["hits"][0] * REFERENCE.ttft_ms(1000, 0) + 4.0 == \
        pytest.approx(fast_ttft(1000, 0), rel=0.002)  # and near what each says
    # for a 40-token prompt they disagree (8 + 0.5 x 11 ms against 0.56 x 11): each is priced as it is
    apart = comparable_costs(fits, 40)
    assert apart["hits"] == (fits["hits"].factor, fits["hits"].overhead_ms)
    assert apart["cold"] == (fits["cold"].factor, 0.0)
    assert comparable_costs({}, 10) == {} and comparable_costs({"one": fits["slow"]}, 10) == {
        "one": (fits["slow"].factor, fits["slow"].overhead_ms)}


def test_a_fleet_shares_one_overhead_so_a_replica_serving_only_cache_hits_prices_cold_prompts_as_its_twins():
    rng = random.Random(6)
    pool = CostPool()
    hot, cold, slow = (CostFit(pool=pool) for _ in range(3))  # twins at 0.5x + 8 ms, a replica at 2x + 8 ms
    alone = CostFit()  # `hot`'s observations fitted without a pool
    slow_ttft = lambda tokens, seqs: REFERENCE.scaled(2.0).ttft_ms(tokens, seqs) + OVERHEAD_MS  # noqa: E731
    for i in range(60):
        seqs = rng.randrange(0, 4)
        tokens = rng.uniform(900, 1100) if i < 4 else rng.uniform(30, 120)  # a few cold prompts, then only hits
        for fit in (hot, alone):
            fit.observe(tokens, seqs, fast_ttft(tokens, seqs), unqueued=True)
        tokens = rng.uniform(900, 1100) if i % 2 else rng.uniform(30, 120)
        cold.observe(tokens, seqs, fast_ttft(tokens, seqs), unqueued=True)
        tokens = rng.uniform(30, 120)  # only hits: its own TTFTs cannot split factor from overhead
        slow.observe(tokens, seqs, slow_ttft(tokens, seqs), unqueued=True)
    # the shared intercept: what the spread of each one's own prompts shows (`cold`'s above all), less the ridge's
    # pull toward 0 (two observations' worth against ~15 of spread), not one line through all three (which would
    # read the slow replica's hits as overhead)
    assert 0.85 * OVERHEAD_MS < pool.overhead_ms < OVERHEAD_MS
    assert hot.overhead_ms == cold.overhead_ms == slow.overhead_ms == pool.overhead_ms
    truth = fast_ttft(1000, 1)
    assert hot.ttft_ms(1000, 1) == pytest.approx(cold.ttft_ms(1000, 1), rel=0.05)  # within the noise margin
    assert cold.ttft_ms(1000, 1) == pytest.approx(truth, rel=0.05)  # the pull toward the fleet's factor the rest
    assert alone.ttft_ms(1000, 1) > 1.1 * hot.ttft_ms(1000, 1)  # fitted alone, its hits inflated its factor
    assert slow.factor == pytest.approx(2.0, rel=0.1) and slow.ttft_ms(1000, 1) > 3 * cold.ttft_ms(1000, 1)
    assert comparable_costs({"hot": hot, "cold": cold}, 1000)["hot"] == comparable_costs(
        {"hot": hot, "cold": cold}, 1000)["cold"]  # priced alike


def test_a_backend_that_leaves_the_fleet_takes_its_part_of_the_shared_overhead_with_it():
    pool = CostPool(overhead_ridge=0.0)
    spread, flat = CostFit(pool=pool), CostFit(pool=pool)
    for tokens, seqs in ((50, 0), (1000, 2), (80, 1), (2000, 0)):  # shows the 8 ms intercept exactly
        spread.observe(tokens, seqs, fast_ttft(tokens, seqs), unqueued=True)
    for _ in range(4):  # one size, no spread: adds nothing to the intercept, only to the mean TTFT it is held under
        flat.observe(1000, 0, 5.0, unqueued=True)
    assert pool.overhead_ms == pytest.approx(OVERHEAD_MS, rel=1e-9)
    del spread  # its backend left the fleet file: the fit is dropped
    gc.collect()
    assert pool.overhead_ms == 0.0 and flat.overhead_ms == 0.0  # nothing left shows an intercept


def test_a_backend_with_few_observations_is_presumed_like_the_rest_of_its_fleet():
    pool = CostPool()
    seen, new = CostFit(pool=pool), CostFit(pool=pool)
    assert new.factor == pool.factor == 1.0  # nothing seen anywhere: the reference
    seen.observe(1000, 4, 0.5 * REFERENCE.ttft_ms(1000, 4), unqueued=True)  # this fleet runs at half the reference
    assert pool.factor == pytest.approx(0.5, rel=1e-12)  # its first observation, not pulled toward the reference
    assert seen.factor == new.factor == pytest.approx(0.5, rel=1e-12)  # so an unseen replica looks alike
    seen.observe(1000, 4, 5 * REFERENCE.ttft_ms(1000, 4))  # a queued one is not the fleet's
    assert pool.factor == pytest.approx(0.5, rel=1e-12)
    for tokens, seqs, ttft in observations(REFERENCE.scaled(0.5), 100):
        seen.observe(tokens, seqs, ttft, unqueued=True)
    assert pool.factor == pytest.approx(0.5, rel=1e-12) and seen.factor == pytest.approx(0.5, rel=1e-12)
    assert new.factor == pool.factor  # nothing of its own yet: the fleet's, not the reference GPU's 1.0
    new.observe(1000, 0, REFERENCE.ttft_ms(1000, 0))  # one observation at 1x against a pull of two at the pool's
    assert new.factor == pytest.approx((1.0 + 2 * pool.factor) / 3)
    assert CostFit().factor == 1.0  # without a pool: the reference
