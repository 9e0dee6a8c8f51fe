"""The timing model, replayed on a virtual clock through the engine core."""

import pytest

from tmx_engine_sim.domain.engine import EngineCore, Sequence, SequenceTooLong
from tmx_engine_sim.domain.kvcache import PrefixCache
from tmx_engine_sim.domain.timing import TimingModel

TIMING = TimingModel(prefill_tok_s=8000, base_step_s=0.006, per_seq_step_s=0.00035)


def run(core, seqs, arrivals=None):
    """Advance the engine to completion; returns per-sequence (ttft, finish) in simulated seconds."""
    arrivals = arrivals or {id(s): 0.0 for s in seqs}
    pending = sorted(seqs, key=lambda s: arrivals[id(s)])
    clock, first, done = 0.0, {}, {}
    while pending or not core.idle:
        while pending and arrivals[id(pending[0])] <= clock:
            core.add(pending.pop(0))
        if core.idle:
            clock = arrivals[id(pending[0])]
            continue
        result = core.step()
        clock += result.duration_s
        for s in result.emitted:
            first.setdefault(id(s), clock - arrivals[id(s)])
        for s in result.finished:
            done[id(s)] = clock
    return {id(s): (first[id(s)], done[id(s)]) for s in seqs}


def prompt(n, start=0):
    return list(range(start, start + n))


def test_step_time_formula():
    assert TIMING.step_seconds(0, 0) == 0
    assert TIMING.step_seconds(10, 800) == pytest.approx(0.006 + 0.0035 + 0.1)


def test_repeated_prompt_gets_its_first_token_faster_than_a_cold_one():
    core = EngineCore(PrefixCache(1000, 16), TIMING)
    cold = Sequence("cold", prompt(1024), 4)
    cold_ttft = run(core, [cold])[id(cold)][0]
    warm = Sequence("warm", prompt(1024), 4)
    warm_ttft = run(core, [warm])[id(warm)][0]
    assert warm.cached_tokens == 1023
    assert cold_ttft == pytest.approx(0.006 + 0.00035 + 1024 / 8000)
    assert warm_ttft == pytest.approx(0.006 + 0.00035 + 1 / 8000)
    assert warm_ttft < cold_ttft / 15


def test_a_full_batch_slows_decode():
    def tpot(batch):
        core = EngineCore(PrefixCache(100_000, 16), TIMING)
        seqs = [Sequence(f"s{i}", prompt(16, i * 1000), 50) for i in range(batch)]
        times = run(core, seqs)
        ttft, finish = times[id(seqs[0])]
        return (finish - ttft) / 49

    assert tpot(1) == pytest.approx(0.006 + 0.00035)
    assert tpot(64) == pytest.approx(0.006 + 64 * 0.00035)
    assert tpot(64) > 4 * tpot(1)


def test_requests_queue_when_the_batch_is_full():
    core = EngineCore(PrefixCache(100_000, 16), TIMING, max_num_seqs=2)
    seqs = [Sequence(f"s{i}", prompt(16, i * 100), 10) for i in range(3)]
    for seq in seqs:
        core.add(seq)
    core.step()
    assert [s.id for s in core.running] == ["s0", "s1"] and [s.id for s in core.waiting] == ["s2"]
    steps = 1
    while not core.idle:
        result = core.step()
        steps += 1
        if seqs[2] in result.admitted:
            assert seqs[0].finished and seqs[1].finished  # admitted only once a slot freed
    assert seqs[2].generated == 10 and steps == 20


def test_requests_queue_when_the_kv_cache_is_full():
    core = EngineCore(PrefixCache(4, 16), TIMING)  # room for one 48-token sequence at a time
    a, b = Sequence("a", prompt(40), 8), Sequence("b", prompt(40, 500), 8)
    core.add(a), core.add(b)
    core.step()
    assert core.running == [a] and list(core.waiting) == [b]
    while a in core.running:
        core.step()
    core.step()
    assert core.running == [b]


def test_a_sequence_larger_than_the_cache_is_refused():
    core = EngineCore(PrefixCache(2, 16), TIMING)
    with pytest.raises(SequenceTooLong):
        core.add(Sequence("big", prompt(40), 8))


def test_abort_frees_blocks():
    core = EngineCore(PrefixCache(10, 16), TIMING)
    seq = Sequence("a", prompt(40), 100)
    core.add(seq)
    core.step()
    assert core.cache.usage > 0
    core.abort(seq)
    core.step()
    assert core.idle and core.cache.usage == 0
