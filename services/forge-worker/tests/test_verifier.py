"""The verifier against honest candidates and a suite of cheats: none of the cheats may pass, and each is
rejected with a named reason. Every candidate runs for real in the sandbox (CPU target)."""

import os
import time
from pathlib import Path

import pytest
import torch

from tmx_forge.domain.candidates import Candidate, template_candidates
from tmx_forge.domain.promotion import decide
from tmx_forge.verifier import MALLOC_ENV, Limits, Verifier

HERE = Path(__file__).parent / "candidates"
FAST = Limits(wall_s=120, repeats=3, min_batch_s=0.005, compile_baseline=False)


def candidate(name: str, trusted: bool = False) -> Candidate:
    return Candidate((HERE / f"{name}.py").read_text(), trusted=trusted, label=name)


def verifier(limits=FAST, shapes=([16, 64], [8, 64])) -> Verifier:
    return Verifier("rmsnorm", "float32", "cpu", [list(s) for s in shapes], limits)


def test_an_honest_candidate_passes_and_is_timed_against_the_baseline():
    verdict = verifier().verify(candidate("honest_rmsnorm"))
    assert verdict.ok and verdict.reason_code == "passed" and verdict.benchmarked, verdict.reason
    assert set(verdict.shapes) == {"16x64", "8x64"}
    for timing in verdict.shapes.values():
        assert timing["baseline"] == "eager" and timing["candidate_s"] > 0
        assert timing["speedup"] == timing["baseline_s"] / timing["candidate_s"]
        assert timing["candidate_s"] >= 0.5 * timing["copy_floor_s"]
        assert timing["pairs"] == FAST.repeats and 0 <= timing["pairs_won"] <= FAST.repeats
    assert verdict.wins == {k: (v["pairs_won"], FAST.repeats) for k, v in verdict.shapes.items()}


def test_the_copy_floor_is_timed_in_batches_no_shorter_than_the_candidates(monkeypatch):
    """However slow the copy process's single call looks (a stall once sized its floor batches at one call),
    the floor is timed in batches at least as long as the candidate's."""
    from tmx_forge import verifier as module

    single, elapsed = Verifier._single, module._Child.elapsed
    batches: list[tuple[str, int]] = []

    def stalled(child):
        return 1.0 if child.role == "copy" else single(child)

    def recorded(self, calls, *args, **kwargs):
        batches.append((self.role, calls))
        return elapsed(self, calls, *args, **kwargs)

    monkeypatch.setattr(Verifier, "_single", staticmethod(stalled))
    monkeypatch.setattr(module._Child, "elapsed", recorded)
    verdict = verifier(shapes=([16, 64],)).verify(candidate("honest_rmsnorm"))
    assert verdict.ok, verdict.reason
    count = verdict.shapes["16x64"]["calls_per_sample"]
    floor = [calls for role, calls in batches if role == "copy" and calls > 1]
    assert count > 1 and len(floor) == 5 and all(calls >= count for calls in floor), (count, floor)


def test_the_copy_floor_takes_out_the_round_trip_of_its_commands(monkeypatch):
    """Other processes once slowed the copy process's round trips while its floor was timed, and the floor
    (39 us a call) rejected an honest 15 us kernel as faster than a copy. Every round trip of the copy process
    here is stalled by 20 ms, longer than a whole batch of the candidate's: the floor must not move."""
    from tmx_forge import verifier as module

    call = module._Child.call

    def slowed(self, timeout=None, **command):
        if self.role == "copy" and command.get("cmd") == "time":
            time.sleep(0.02)
        return call(self, timeout, **command)

    monkeypatch.setattr(module._Child, "call", slowed)
    verdict = verifier(shapes=([16, 64],)).verify(candidate("honest_rmsnorm"))
    assert verdict.ok, verdict.reason
    timing = verdict.shapes["16x64"]
    assert timing["calls_per_sample"] * timing["candidate_s"] < 0.02  # the stall would dwarf a batch's time
    assert 0 < timing["copy_floor_s"] < timing["candidate_s"]


def test_every_other_process_is_stopped_while_one_is_timed(monkeypatch):
    """Only the candidate used to be stopped while a baseline ran: a baseline's spinning thread pool then took a
    core from the candidate's next batch, and an identical candidate measured 0.79x of its baseline."""
    from tmx_forge import verifier as module

    init, elapsed = module._Child.__init__, module._Child.elapsed
    processes: list = []
    seen: dict[str, set[str]] = {}

    def registered(self, *args, **kwargs):
        init(self, *args, **kwargs)
        processes.append(self)

    def observed(self, calls, *args, **kwargs):
        if calls > 1:  # a timed batch, not a sizing call
            for other in processes:
                if other is not self and other.proc.poll() is None:
                    state = Path(f"/proc/{other.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                    seen.setdefault(f"{other.role} while {self.role}", set()).add(state)
        return elapsed(self, calls, *args, **kwargs)

    monkeypatch.setattr(module._Child, "__init__", registered)
    monkeypatch.setattr(module._Child, "elapsed", observed)
    verdict = verifier(shapes=([16, 64],)).verify(candidate("honest_rmsnorm"))
    assert verdict.ok, verdict.reason
    assert set(seen) == {f"{a} while {b}" for a in ("candidate", "eager", "copy") for b in ("candidate", "eager", "copy")
                         if a != b}, seen
    assert all(states == {"T"} for states in seen.values()), seen


@pytest.fixture
def timed_batches(monkeypatch) -> list[tuple[str, int, tuple]]:
    """(role, calls, kept call indices) of every timed batch of a side, in order: not the sizing calls (one call)
    nor the copy floor's."""
    from tmx_forge import verifier as module

    elapsed = module._Child.elapsed
    batches: list[tuple[str, int, tuple]] = []

    def observed(self, calls, keep=(), flush=False):
        if self.role != "copy" and calls > 1:
            batches.append((self.role, calls, tuple(keep)))
        return elapsed(self, calls, keep, flush)

    monkeypatch.setattr(module._Child, "elapsed", observed)
    return batches


def test_every_side_keeps_the_same_output_of_its_timed_batch(timed_batches):
    """The candidate keeps one timed call's output for the re-check. A kept output holds its memory through the rest
    of the batch, so the next call allocates afresh: kept on the candidate's side only, that slowed an identical
    candidate ~2% (scratch A/A, 20 verdicts a side: 0.962 against 0.980). Every baseline keeps the same one."""
    verdict = verifier(shapes=([16, 64],)).verify(candidate("honest_rmsnorm"))
    assert verdict.ok, verdict.reason
    assert len(timed_batches) == 2 * FAST.repeats and {role for role, _, _ in timed_batches} == {"candidate", "eager"}
    for first, second in zip(timed_batches[::2], timed_batches[1::2]):  # each repeat: one batch per side, in either order
        assert {first[0], second[0]} == {"candidate", "eager"} and first[1:] == second[1:] and len(first[2]) == 1


@pytest.mark.parametrize("coin, first", [(0, "candidate"), (1, "eager")])
def test_which_side_goes_first_is_a_coin_then_alternates(monkeypatch, timed_batches, coin, first):
    """The first batch of a repeat runs slower (it follows the parent's own work); with an odd number of repeats
    the side that starts is first once more than the other. It was always the candidate: an identical candidate
    read ~0.967x of its baseline (scratch A/A), ~0.996x with the order flipped. Now a coin picks the side."""
    from tmx_forge import verifier as module

    randbelow = module.secrets.randbelow
    monkeypatch.setattr(module.secrets, "randbelow", lambda n: min(coin, n - 1) if n == 2 else randbelow(n))
    verdict = verifier(shapes=([16, 64],)).verify(candidate("honest_rmsnorm"))
    assert verdict.ok, verdict.reason
    other = {"candidate": "eager", "eager": "candidate"}[first]
    expected = [first, other, other, first] * (FAST.repeats // 2) + [first, other] * (FAST.repeats % 2)
    assert [role for role, _, _ in timed_batches] == expected


def test_cpu_timing_does_not_flush_and_records_no_flush_cost():
    verdict = verifier(shapes=([8, 64],)).verify(candidate("honest_rmsnorm"))
    assert verdict.ok and verdict.shapes["8x64"]["l2_flush_s"] == 0.0


def test_a_flush_really_writes_a_buffer_larger_than_the_caches(tmp_path):
    from tmx_forge.verifier import _Child

    child = _Child("copy", "rmsnorm", "cpu", str(tmp_path), FAST)
    try:
        child.flushes(1)  # the buffer is allocated on the first flush
        # a flush zeroes 64 MiB (about a millisecond): 40 of them take far longer than one, while flushes that
        # wrote nothing would all cost about the command's round trip
        one, forty = child.flushes(1), 40 * child.flushes(40)
        assert forty > 4 * one and child.violations == []
    finally:
        child.kill()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_a_gpu_triton_candidates_are_timed_with_l2_flushed():
    major, minor = torch.cuda.get_device_capability()
    limits = Limits(wall_s=300, repeats=5, compile_baseline=True)
    verdict = Verifier("rmsnorm", "bfloat16", f"cuda-sm{major}{minor}", [[4096, 4096]], limits).verify(
        candidate("honest_triton_rmsnorm"))
    assert verdict.ok and verdict.benchmarked, verdict.reason
    timing = verdict.shapes["4096x4096"]
    assert timing["l2_flush_s"] > 0 and timing["candidate_s"] >= 0.5 * timing["copy_floor_s"]


def test_an_honest_triton_candidate_is_verified_under_the_interpreter_but_not_benchmarked():
    verdict = verifier().verify(candidate("honest_triton_rmsnorm"))
    assert verdict.ok and not verdict.benchmarked and "GPU worker" in verdict.reason


def test_library_templates_are_trusted_candidates_that_pass():
    op_candidates = template_candidates("fused_add_rmsnorm", {"num_warps": (1, 2)}, {"num_warps": 2}, 1)
    verdict = Verifier("fused_add_rmsnorm", "float16", "cpu", [[3, 40]], FAST).verify(op_candidates[0])
    assert verdict.ok, verdict.reason  # both outputs verified
    assert not verdict.benchmarked  # a Triton template: the interpreter's speed says nothing on the cpu target


@pytest.mark.parametrize("name, code, detail", [
    ("cheat_imports_the_reference", "static", "forbidden import from tmx_kernels"),
    ("cheat_walks_the_heap", "static", "forbidden attribute __class__"),
    ("cheat_starts_a_thread", "static", "forbidden import threading"),
    ("cheat_opens_a_socket", "static", "forbidden import socket"),
    ("cheat_writes_outside_scratch", "static", "forbidden name open"),
    ("cheat_takes_more_threads", "static", "forbidden attribute set_num_threads"),
    ("cheat_caches_by_shape", "incorrect", "shape 16x64"),
    ("cheat_reads_leftover_memory", "incorrect", "shape 16x64"),  # poisoned (NaN) or stale memory
    ("cheat_mutates_inputs", "modified_inputs", "modified input 0"),
    ("cheat_only_seen_shapes", "incorrect", "shape 3x5x129"),  # one of the harness's own shapes
])
def test_cheats_are_rejected_with_a_named_reason(name, code, detail):
    verdict = verifier().verify(candidate(name))
    assert not verdict.ok and verdict.reason_code == code, verdict.reason
    assert detail in verdict.reason


def test_an_output_cache_keyed_by_a_fingerprint_never_hits_a_timed_call():
    # correct on every check (it computes on a miss). With inputs re-used across timed calls its cache would
    # hit and it would measure several times faster than eager at this small, overhead-bound size, where the
    # copy floor cannot catch it; every timed call gets a never-seen input set, so it pays full price
    limits = Limits(wall_s=120, repeats=5, min_batch_s=0.02, compile_baseline=False)
    verdict = verifier(limits, shapes=([64, 256],)).verify(candidate("cheat_caches_by_content"))
    assert verdict.ok, verdict.reason
    assert verdict.speedups["64x256"] < 1.10 and not decide(verdict.speedups).promote, verdict.shapes


def test_a_skipped_computation_in_timed_calls_is_caught():
    # a launch that returns a correct result only for the first few calls it ever sees (the checks), then stops
    # computing: every batch re-checks one random timed call against the reference
    lazy = Candidate(
        "import torch\n"
        "SEEN = []\n\n\n"
        "def launch(x, w, eps=1e-6):\n"
        "    SEEN.append(1)\n"
        "    if len(SEEN) > 16:\n"
        "        return torch.zeros_like(x)\n"
        "    xf = x.float()\n"
        "    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * w.float()).to(x.dtype)\n")
    verdict = verifier().verify(lazy)
    assert not verdict.ok and verdict.reason_code == "incorrect" and "(timed call)" in verdict.reason


@pytest.mark.parametrize("name, detail", [("cheat_opens_a_socket", "socket"),
                                          ("cheat_writes_outside_scratch", "write outside the scratch"),
                                          ("cheat_takes_more_threads", "changed torch's thread count from 1 to")])
def test_the_runtime_guard_holds_even_when_the_static_check_is_bypassed(name, detail):
    verdict = verifier().verify(candidate(name, trusted=True))
    assert not verdict.ok and verdict.reason_code == "sandbox_violation" and detail in verdict.reason
    assert not os.path.exists("/tmp/tmx-forge-cheat-marker")


def test_every_timed_process_runs_on_the_limits_thread_count():
    # two threads on a shared 2-core machine made an identical candidate's speedup range 0.45-2.11x
    pinned = Candidate(
        "import torch\n\n\n"
        "def launch(x, w, eps=1e-6):\n"
        "    if torch.get_num_threads() != 1:\n"
        "        return torch.zeros_like(x)\n"
        "    xf = x.float()\n"
        "    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * w.float()).to(x.dtype)\n")
    assert FAST.cpu_threads == 1
    verdict = verifier(shapes=([16, 64],)).verify(pinned)
    assert verdict.ok and verdict.benchmarked, verdict.reason


def test_a_background_thread_cannot_slow_the_baseline_into_a_promotion():
    # let it run (trusted bypasses the static check): the candidate's process is stopped while the baseline
    # is timed, so its burner thread steals nothing from the baseline
    limits = Limits(wall_s=120, repeats=5, min_batch_s=0.05, compile_baseline=False)
    verdict = verifier(limits, shapes=([512, 1024],)).verify(candidate("cheat_starts_a_thread", trusted=True))
    assert verdict.ok, verdict.reason
    assert not decide(verdict.speedups).promote, verdict.shapes


def test_every_timed_process_starts_with_the_same_fixed_allocator_thresholds(tmp_path):
    # glibc adapts its thresholds to a process's history; left to adapt, one process timed the same eager op
    # 5x slower than the next (bench/verifier_aa.py), enough to promote a kernel identical to its baseline
    children: list = []
    v = verifier()
    try:
        for role, kw in (("candidate", {"source": str(HERE / "honest_rmsnorm.py")}), ("eager", {}), ("copy", {})):
            child = v._spawn(children, str(tmp_path), role, **kw)
            raw = Path(f"/proc/{child.proc.pid}/environ").read_bytes().split(b"\0")
            environ = dict(entry.decode().split("=", 1) for entry in raw if b"=" in entry)
            assert {k: environ.get(k) for k in MALLOC_ENV} == MALLOC_ENV, role
    finally:
        for child in children:
            child.kill()
    assert int(MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"]) <= 32 * 2**20  # glibc ignores a larger one on 64-bit


def test_a_candidate_that_never_returns_is_killed_at_the_wall_limit():
    limits = Limits(wall_s=15, repeats=1, compile_baseline=False)
    verdict = verifier(limits).verify(candidate("cheat_never_terminates"))
    assert not verdict.ok and verdict.reason_code == "timed_out"


def test_a_candidate_that_fails_to_load_or_returns_garbage_is_rejected():
    broken = Candidate("import torch\nraise RuntimeError('boom')\ndef launch(x, w):\n    return x\n")
    verdict = verifier().verify(broken)
    assert not verdict.ok and verdict.reason_code == "load_failed" and "boom" in verdict.reason
    garbage = Candidate("def launch(x, w):\n    return 42\n")
    verdict = verifier().verify(garbage)
    assert not verdict.ok and verdict.reason_code == "crashed" and "tensor" in verdict.reason
