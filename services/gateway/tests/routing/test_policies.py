"""Each routing policy on crafted backend stats."""

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from tmx_gateway.domain.engine_costs import REFERENCE, comparable
from tmx_gateway.domain.fleet import Attempt, Backend, EngineLoad
from tmx_gateway.domain.routing import RouteRequest, Router, UnknownStrategy, build_policy
from tmx_gateway.domain.routing.multi import Multi
from tmx_gateway.domain.routing.prefix_aware import PrefixAware
from tmx_gateway.domain.routing.prefix_index import BLOCK_CHARS, PrefixIndex, block_hashes
from tmx_gateway.domain.routing.random_choice import RandomChoice
from tmx_gateway.domain.routing.session_affinity import SessionAffinity

REQ = RouteRequest(model="m", endpoint="/v1/chat/completions", prompt_tokens=100, max_tokens=50)


def backends(n, **stats):
    return [Backend(f"b{i}", f"http://b{i}", ("m",), **{k: v[i] for k, v in stats.items()}) for i in range(n)]


def test_ewma_latency_prefers_fast_backends_and_explores_unmeasured_ones():
    policy = build_policy("ewma_latency")
    fast, slow = backends(2, ewma_latency_ms=[20.0, 80.0])
    assert policy.choose(REQ, [fast, slow]).backend_id == "b0"
    fast.inflight = 4  # 20 ms x 5 queued > 80 ms x 1
    assert policy.choose(REQ, [fast, slow]).backend_id == "b1"
    fresh = Backend("new", "http://n", ("m",))
    assert policy.choose(REQ, [fast, slow, fresh]).backend_id == "new"
    b = Backend("x", "u", ("m",))
    b.observe_latency(100, 10)
    b.observe_latency(200, 0)
    assert b.ewma_latency_ms == pytest.approx(0.2 * 200 + 0.8 * 100) and b.ewma_ttft_ms == 10


def test_token_aware_counts_token_work_not_requests():
    policy = build_policy("token_aware")
    many_short, one_long = backends(2, inflight=[5, 1], inflight_prompt_tokens=[500, 8000],
                                    prefilling_prompt_tokens=[500, 8000], inflight_output_tokens=[5 * 64, 2048])
    decision = policy.choose(REQ, [many_short, one_long])
    assert decision.backend_id == "b0" and decision.scores["b1"] > decision.scores["b0"]
    assert decision.scores == {"b0": pytest.approx(500 * 0.05 + 320), "b1": pytest.approx(8000 * 0.05 + 2048)}
    assert build_policy("least_inflight").choose(REQ, [many_short, one_long]).backend_id == "b1"


def test_token_aware_weighs_a_prefilled_prompt_by_its_output_only():
    """Two backends with the same requests in flight: on one, a 12k-token prompt is still queued for prefill;
    on the other it is prefilled and decoding. Only the first still owes the prefill."""
    policy = build_policy("token_aware")
    queued, decoding = backends(2, inflight=[1, 1], inflight_prompt_tokens=[12_000, 12_000],
                                prefilling_prompt_tokens=[12_000, 0], inflight_output_tokens=[64, 64])
    decision = policy.choose(REQ, [queued, decoding])
    assert decision.backend_id == "b1" and decision.scores == {"b0": pytest.approx(664), "b1": pytest.approx(64)}


def test_token_aware_times_token_work_at_each_backends_learned_speed():
    """Of two backends with the same work in flight, one that has shown TTFTs 3x the reference's takes longer to
    work it off (its fit ~2.8x, ~2.3x compared less the noise margin); with a quarter of the other's work, it is
    the sooner free (~0.58 against 1)."""
    policy = build_policy("token_aware")
    fast, slow = backends(2, inflight_output_tokens=[400, 400])
    for _ in range(40):
        slow.costs.observe(1000, 4, 3 * REFERENCE.ttft_ms(1000, 4))
    assert slow.costs.factor > 2.5
    decision = policy.choose(REQ, [fast, slow])
    priced = comparable({"b0": 1.0, "b1": slow.costs.factor})
    assert decision.backend_id == "b0"
    assert decision.scores == {"b0": pytest.approx(400 * priced["b0"], rel=1e-12),
                               "b1": pytest.approx(400 * priced["b1"], rel=1e-12)}
    slow.inflight_output_tokens = 100
    assert policy.choose(REQ, [fast, slow]).backend_id == "b1"
    noisy, fresh = backends(2, inflight_output_tokens=[400, 400])
    noisy.costs.observe(1000, 4, 1.05 * REFERENCE.ttft_ms(1000, 4))  # within noise of the reference: alike
    assert noisy.costs.factor > 1.0
    scores = policy.scores(REQ, [noisy, fresh])
    assert scores["b0"] == scores["b1"]


def test_weighted_round_robin_is_smooth_and_proportional():
    policy = build_policy("weighted_round_robin")
    pool = backends(3, weight=[5.0, 1.0, 1.0])
    picks = [policy.choose(REQ, pool).backend_id for _ in range(70)]
    assert Counter(picks) == {"b0": 50, "b1": 10, "b2": 10}
    assert picks[:7].count("b0") == 5 and picks[:7] != ["b0"] * 5 + ["b1", "b2"]  # interleaved, not a burst


def test_random_is_seedable_and_respects_weights():
    pool = backends(2, weight=[9.0, 1.0])
    first, second = RandomChoice(seed=1), RandomChoice(seed=1)
    assert [first.choose(REQ, pool).backend_id for _ in range(20)] == \
        [second.choose(REQ, pool).backend_id for _ in range(20)]
    policy = RandomChoice(seed=7)
    counts = Counter(policy.choose(REQ, pool).backend_id for _ in range(2000))
    assert 0.86 < counts["b0"] / 2000 < 0.94  # 0.9 expected; binomial sd ~0.0067, so +-6 sd


def test_session_affinity_sticks_moves_little_and_bounds_load():
    policy = SessionAffinity(load_factor=1.25)
    pool = backends(4)
    homes = {f"user-{i}": policy.choose(RouteRequest("m", "/", session_key=f"user-{i}"), pool).backend_id
             for i in range(200)}
    assert len(set(homes.values())) == 4
    again = {k: policy.choose(RouteRequest("m", "/", session_key=k), pool).backend_id for k in homes}
    assert again == homes
    without_b3 = {k: policy.choose(RouteRequest("m", "/", session_key=k), pool[:3]).backend_id for k in homes}
    moved = [k for k in homes if homes[k] != without_b3[k]]
    assert moved and all(homes[k] == "b3" for k in moved)  # only b3's sessions moved
    key = next(k for k, v in homes.items() if v == "b0")
    pool[0].inflight = 10  # far over 1.25 x average
    decision = policy.choose(RouteRequest("m", "/", session_key=key), pool)
    assert decision.backend_id != "b0" and "over its bound" in decision.reason
    assert "no session key" in policy.choose(RouteRequest("m", "/"), pool).reason


def test_block_hashes_are_the_same_in_every_process():
    """Gateways share block hashes over NATS: a process with another hash secret must compute the same ones."""
    text = "Système: réponds brièvement. " * 20  # non-ASCII: blocks are bytes of the UTF-8 text
    code = "import json, sys; from tmx_gateway.domain.routing.prefix_index import block_hashes; " \
           "print(json.dumps(block_hashes(sys.argv[1])))"
    seen = [json.loads(subprocess.run([sys.executable, "-c", code, text], capture_output=True, text=True, check=True,
                                      env={**os.environ, "PYTHONHASHSEED": seed}).stdout) for seed in ("1", "2")]
    assert seen[0] == seen[1] == block_hashes(text)
    assert len(seen[0]) == len(text.encode()) // BLOCK_CHARS == 5  # 640 bytes, 580 characters


def test_prefix_index_matches_chained_prefixes_and_evicts_lru():
    text = "".join(chr(65 + i % 26) * BLOCK_CHARS for i in range(4))
    hashes = block_hashes(text)
    assert len(hashes) == 4 and block_hashes(text[:-1]) == hashes[:3]
    assert block_hashes("Z" * BLOCK_CHARS + text[BLOCK_CHARS:])[1] != hashes[1]  # same block, other prefix
    index = PrefixIndex(max_blocks_per_backend=4)
    index.record("b0", hashes)
    assert index.matched_blocks("b0", hashes) == 4 and index.matched_blocks("b1", hashes) == 0
    index.record("b0", block_hashes("q" * 2 * BLOCK_CHARS))
    assert index.size("b0") == 4 and index.matched_blocks("b0", hashes) == 0  # oldest blocks evicted first


def test_a_blocks_age_is_the_blocks_recorded_on_its_backend_since_its_last_use():
    index = PrefixIndex()
    first, second = block_hashes("a" * 4 * BLOCK_CHARS), block_hashes("b" * 2 * BLOCK_CHARS)
    index.record("b0", first)
    assert [index.age("b0", first, n) for n in (0, 1, 4)] == [0, 0, 0]
    index.record("b0", second)  # two blocks
    index.record("b1", block_hashes("c" * 8 * BLOCK_CHARS))  # another backend's count its own
    assert index.age("b0", first, 4) == 2 and index.age("b0", second, 2) == 0
    index.record("b0", first[:2])  # a shorter prefix used again: those blocks are young, the deeper ones older
    assert (index.age("b0", first, 2), index.age("b0", first, 4), index.age("b0", second, 2)) == (0, 4, 2)


def engine_lru(capacity: int):
    """An engine's prefix cache in the index's blocks: kept least recently used first; `serve` answers how many of
    a prompt's leading blocks it had cached, then holds them all."""
    from collections import OrderedDict
    kept: OrderedDict[int, None] = OrderedDict()

    def serve(hashes: list[int]) -> int:
        cached = 0
        for h in hashes:
            if h not in kept:
                break
            cached += 1
        for h in hashes:
            kept[h] = None
            kept.move_to_end(h)
        while len(kept) > capacity:
            kept.popitem(last=False)
        return cached
    return serve


@pytest.mark.parametrize("learn", [True, False])
def test_the_index_learns_how_old_a_block_the_engine_still_keeps(learn):
    """60 prompts of 4 blocks each, drawn at random, on an engine that keeps 120 blocks: an index that trusts its
    budget predicts a hit for every prompt seen before, and half of those are gone; one that learns from the
    engine's answers predicts hits that are there. (Its capacity counts blocks sent, a prompt sent twice twice,
    where the engine keeps distinct ones: so over 120, and a sawtooth, each miss a drop, hits growing it back.)"""
    import random as _random
    rng = _random.Random(3)
    prompts = [block_hashes(f"prompt {i} " + "x" * 4 * BLOCK_CHARS)[:4] for i in range(60)]
    index, serve = PrefixIndex(max_blocks_per_backend=10_000), engine_lru(120)
    outcomes = Counter()
    for n in range(2000):
        hashes = prompts[rng.randrange(len(prompts))]
        matched = index.matched_blocks("b0", hashes)
        cached = serve(hashes)
        indexed = index.matched_blocks("b0", hashes, within_capacity=False)
        if indexed and learn:
            index.observe("b0", index.age("b0", hashes, indexed), kept=2 * cached >= indexed)
        index.record("b0", hashes)
        if n >= 1000:
            outcomes["hit" if matched else "miss", "hit" if cached else "miss"] += 1
    hits_predicted = outcomes["hit", "hit"] + outcomes["hit", "miss"]
    if learn:
        assert 120 <= index.capacity("b0") <= 240 and index.learned("b0")
        assert outcomes["hit", "miss"] < 0.1 * hits_predicted  # hits predicted are there
        assert outcomes["miss", "hit"] < 0.1 * (outcomes["hit", "hit"] + outcomes["miss", "hit"])  # and few missed
    else:
        assert not index.learned("b0") and index.capacity("b0") == 10_000
        assert outcomes["hit", "miss"] > 0.4 * hits_predicted
    assert index.size("b0") == 240  # what is presumed evicted is kept within the budget, to learn from


def test_one_eviction_with_another_cause_costs_the_index_at_most_half_its_capacity_and_hits_win_it_back():
    index = PrefixIndex(max_blocks_per_backend=1000)
    hashes = block_hashes("p" * 8 * BLOCK_CHARS)
    index.record("b0", hashes)
    index.observe("b0", 0, kept=False)  # the engine restarted: even the newest prefix was gone
    assert index.capacity("b0") == 500
    index.observe("b0", 10, kept=False)
    assert index.capacity("b0") == 250
    index.observe("b0", 240, kept=False)  # blocks 240 old are gone: presumed so from then on
    assert index.capacity("b0") == 239
    index.observe("b0", 100, kept=True)  # well within: nothing learned
    index.observe("b0", 300, kept=False)  # evicted beyond it: as presumed
    assert index.capacity("b0") == 239
    index.observe("b0", 230, kept=True)  # kept near the edge: the edge moves out
    assert index.capacity("b0") == pytest.approx(230 * PrefixIndex.GROW)
    index.observe("b0", 400, kept=True)  # kept beyond it (the index holds it still): out past that
    assert index.capacity("b0") == 500
    index.observe("b0", 2000, kept=True)
    assert index.capacity("b0") == 1000  # never past the budget
    index.observe("b9", 5, kept=False)  # a backend never recorded: nothing to learn
    assert not index.learned("b9")
    index.forget("b0")
    assert not index.learned("b0") and index.capacity("b0") == 1000


def test_prefix_aware_treats_a_prefix_older_than_its_backends_capacity_as_cold():
    router = Router("prefix_aware")
    pool = backends(2)
    old = RouteRequest("m", "/", prompt_text=system_prompt(0) + "\n<user>q", prompt_tokens=400)
    home = router.choose(old, pool).backend_id
    index = router.policy("m").index

    def newer_prompts(groups):  # sent to the same backend, they push the old prompt's blocks back
        for group in groups:
            index.record(home, block_hashes(system_prompt(group)))

    newer_prompts(range(1, 5))
    again = router.choose(old, pool)
    assert again.backend_id == home and again.kind == "cached" and again.prefix_age == 4 * len(
        block_hashes(system_prompt(1)))  # the four newer prompts' blocks
    for _ in range(20):  # each such prefix evicted, as the engine's usage tells (nothing cached)
        router.observe("m", again, prompt_tokens=400, cached_share=0.0)
    other = "b1" if home == "b0" else "b0"
    assert router.prefix_capacity(home) == again.prefix_age - 1 and router.prefix_capacity(other) is None
    newer_prompts(range(1, 5))  # the old prompt (just sent again, so young) grows as old once more
    decision = router.choose(RouteRequest("m", "/", prompt_text=system_prompt(0) + "\n<user>r", prompt_tokens=400),
                             pool)
    assert decision.kind == "cold" and decision.predicted_cached_tokens == 0  # no longer presumed cached there
    assert decision.indexed_tokens == again.indexed_tokens > 0 and decision.prefix_age == again.prefix_age
    router.observe("m", decision, 400, 0.9)  # but the engine still had it: older blocks are kept than presumed
    assert router.prefix_capacity(home) == PrefixIndex.GROW * again.prefix_age
    short = Router("prefix_aware")
    tiny = RouteRequest("m", "/", prompt_text="t" * BLOCK_CHARS, prompt_tokens=32)
    short.choose(tiny, pool)
    one_block = short.choose(tiny, pool)
    assert one_block.kind == "cached" and one_block.predicted_cached_tokens == 32
    short.observe("m", one_block, 32, 0.0)  # a one-block prefix tells too little
    assert short.prefix_capacity(one_block.backend_id) is None


def system_prompt(group):
    return f"<system>You are assistant number {group}. " + "Rules and context. " * 60


def test_prefix_aware_keeps_a_prefix_on_one_backend_and_spreads_cold_ones():
    policy = PrefixAware()
    pool = backends(4)
    first = {}
    for group in range(4):
        request = RouteRequest("m", "/", prompt_text=system_prompt(group) + "\n<user>question 0")
        decision = policy.choose(request, pool)
        assert "cold prompt" in decision.reason and decision.predicted_cached_tokens == 0 and decision.kind == "cold"
        first[group] = decision.backend_id
        next(b for b in pool if b.id == decision.backend_id).inflight += 1
    assert len(set(first.values())) == 4  # cold prompts spread over the least loaded
    for group in range(4):
        request = RouteRequest("m", "/", prompt_text=system_prompt(group) + f"\n<user>question {group + 1}")
        decision = policy.choose(request, pool)
        assert decision.backend_id == first[group] and decision.predicted_cached_tokens > 200
        assert "prefix blocks cached" in decision.reason and decision.kind == "cached"


def test_prefix_aware_leaves_a_warm_backend_once_it_saturates():
    policy = PrefixAware()
    pool = backends(2)
    request = RouteRequest("m", "/", prompt_text=system_prompt(1) + "\n<user>q")
    home = policy.choose(request, pool).backend_id
    hot = next(b for b in pool if b.id == home)
    hot.inflight, hot.inflight_prompt_tokens = 12, 12 * 2000  # busy decoding: their prompts are prefilled
    assert policy.choose(request, pool).backend_id == home  # a new prompt waits only a longer decode step
    hot.prefilling_prompt_tokens = 12 * 2000  # the same requests still waiting for their first token
    decision = policy.choose(request, pool)  # a deep queue of prefills
    assert decision.backend_id != home and "saturated" in decision.reason and decision.kind == "saturated"
    hot.prefilling_prompt_tokens = 0
    hot.inflight, hot.inflight_prompt_tokens = 40, 0  # SGLang's imbalance guard: 40 vs 0 in flight
    hot.load = EngineLoad(running=40, waiting=0, kv_cache_usage=0.9, prefix_cache_hit_rate=0.5, at=0)
    decision = policy.choose(request, pool)
    assert "imbalanced" in decision.reason and decision.kind == "imbalanced"


def test_prefix_aware_counts_prompts_queued_on_their_warm_backend_by_their_uncached_rest():
    """Prompts of one group queued on the backend that holds their prefix add only their uncached rest to its
    prefill queue: a group's next prompt stays there instead of copying the prefix to a colder backend."""
    policy = PrefixAware()
    pool = backends(2)
    text = system_prompt(1)
    prompt_tokens = (len(text) + 40) // 4
    request = RouteRequest("m", "/", prompt_text=text + "\n<user>question 0", prompt_tokens=prompt_tokens)
    home = pool[0] if policy.choose(request, pool).backend_id == "b0" else pool[1]
    other = pool[1] if home is pool[0] else pool[0]
    for i in (1, 2):  # two more of the group, sent there and still waiting for their first token
        decision = policy.choose(RouteRequest("m", "/", prompt_text=text + f"\n<user>question {i}",
                                              prompt_tokens=prompt_tokens), pool)
        assert decision.backend_id == home.id and decision.predicted_cached_tokens > prompt_tokens * 0.9
        Attempt(home, prompt_tokens, 16, decision.predicted_cached_tokens)
    Attempt(other, 2 * prompt_tokens, 16)  # a cold prompt twice as long queued on the other
    assert home.prefilling_prompt_tokens < 0.1 * 2 * prompt_tokens < other.prefilling_prompt_tokens
    decision = policy.choose(RouteRequest("m", "/", prompt_text=text + "\n<user>question 3",
                                          prompt_tokens=prompt_tokens), pool)
    assert decision.backend_id == home.id and "prefix blocks cached" in decision.reason


def test_multi_blends_normalised_scores():
    pool = backends(2, inflight=[0, 3], ewma_latency_ms=[100.0, 10.0])
    latency_only = build_policy("multi", {"ewma_latency": 1.0})
    assert latency_only.choose(REQ, pool).backend_id == "b1"  # 10 x 4 < 100 x 1
    inflight_heavy = build_policy("multi", {"ewma_latency": 1.0, "least_inflight": 3.0})
    decision = inflight_heavy.choose(REQ, pool)
    assert decision.backend_id == "b0" and decision.scores == {"b0": 1.0, "b1": 3.0}
    with pytest.raises(ValueError, match="multi can blend"):
        build_policy("multi", {"weighted_round_robin": 1.0})
    with pytest.raises(ValueError):
        Multi([])


def test_router_picks_per_request_then_per_pool_then_default():
    router = Router("least_inflight", per_model={"big": "prefix_aware"})
    assert router.strategy_for("small") == "least_inflight" and router.strategy_for("big") == "prefix_aware"
    assert router.strategy_for("big", "random") == "random"
    assert router.policy("big") is router.policy("big") and router.policy("big") is not router.policy("other")
    with pytest.raises(UnknownStrategy):
        router.strategy_for("m", "magic")
    with pytest.raises(ValueError):
        Router("magic")


def test_a_prefix_another_worker_routed_is_learned_by_this_pools_policy():
    from tmx_gateway.domain.routing import Router
    from tmx_gateway.domain.routing.prefix_index import block_hashes

    router = Router("least_inflight", multi_weights={"prefix_aware": 1.0, "least_inflight": 1.0})
    prompt = "shared system prompt " * 40
    router.learn_prefix("m", "prefix_aware", "b1", block_hashes(prompt))
    router.learn_prefix("m", "multi", "b2", block_hashes(prompt))
    router.learn_prefix("m", "least_inflight", "b1", block_hashes(prompt))  # keeps no index: nothing to do
    router.learn_prefix("m", "no-such-strategy", "b1", block_hashes(prompt))
    assert router.policy("m", "prefix_aware").index.matched_blocks("b1", block_hashes(prompt)) == len(block_hashes(prompt))
    assert router.policy("m", "prefix_aware").index.size("b2") == 0
    assert [i.size("b2") for i in router.policy("m", "multi").prefix_indexes()] == [len(block_hashes(prompt))]
    assert router.policy("other-model", "prefix_aware").index.size("b1") == 0
