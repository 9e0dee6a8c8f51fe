"""The verifier: trusts nothing a candidate says.

For one candidate it
1. checks the source statically (untrusted candidates only);
2. starts the candidate in its own process (tmx_forge.sandbox) with CPU, memory and wall limits, no network,
   no processes and no writes outside a scratch directory;
3. checks correctness on inputs it generates itself from a seed the candidate never sees - the job's shapes
   plus odd shapes of the harness's choosing, two seeds each - with the harness's tolerances: outputs
   compared to the fp64 reference computed here, memory poisoned before each run, the inputs checked
   unmodified, two runs required to agree, non-finite outputs rejected where the reference is finite;
4. times it against the better of eager and torch.compile, each in a clean process of its own, interleaved
   batch by batch on this process's clock, with the candidate's process stopped (SIGSTOP) while a baseline runs; every timed call gets an input set never
   presented before, so no output cache can hit, and one randomly chosen timed call per batch is re-checked
   against the reference (a skipped computation fails here); on a GPU each timed call starts with L2 flushed
   (the flushes' own time, measured in a trusted process, is subtracted);
5. rejects a time below half that of a plain copy of the same bytes (faster than the hardware allows).

Every rejection has a named reason (`Verdict.reason_code`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import secrets
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tmx_forge.domain.candidates import Candidate
from tmx_forge.domain.static_check import check

SANDBOX = [sys.executable, "-m", "tmx_forge.sandbox"]
DTYPES = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class Limits:
    wall_s: float = 300.0
    cpu_s: int = 600
    memory_bytes: int = 0  # 0: no address-space cap (CUDA reserves large virtual ranges)
    repeats: int = 7
    min_batch_s: float = 0.02  # a timed batch runs enough calls for the fastest side to last this long
    max_batch_s: float = 1.0  # ... unless the slowest side would take longer than this
    timing_bytes: int = 256 * 2**20  # fresh input sets per batch are capped at this much memory
    compile_baseline: bool = True
    # torch threads in every process of a CPU verification (0: torch's default, one per core). On a shared
    # 2-core machine an identical candidate's speedup ranged 0.45-2.11x on two threads (sd of log 0.41) and
    # 0.88-1.03x on one (0.041; bench/verifier_aa.py). A candidate may not change it.
    cpu_threads: int = 1


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason_code: str  # "passed" or why not: static, load_failed, crashed, incorrect, ...
    reason: str
    shapes: dict = field(default_factory=dict)  # shape key -> {candidate_s, baseline_s, baseline, speedup}
    benchmarked: bool = False

    @property
    def speedups(self) -> dict[str, float]:
        return {k: v["speedup"] for k, v in self.shapes.items()}

    @property
    def wins(self) -> dict[str, tuple[int, int]]:
        """Per shape: in how many interleaved pairs the candidate beat the chosen baseline, of how many."""
        return {k: (v["pairs_won"], v["pairs"]) for k, v in self.shapes.items()}

    def to_dict(self) -> dict:
        return {"ok": self.ok, "reason_code": self.reason_code, "reason": self.reason, "shapes": self.shapes,
                "benchmarked": self.benchmarked}


class Rejected(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


# glibc adjusts its mmap and trim thresholds as a process runs, so whether a MiB-sized tensor comes back from the
# heap or is mapped (and page-faulted) afresh on every call depends on the process's history: the same eager op
# (256x1024 float32) timed 0.22 ms in most fresh processes and 1.35 ms in another (bench/verifier_aa.py). Fixed
# thresholds give every timed process the same steady state, so a speedup is the code's, not the allocator's.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2**30)}


class _Child:
    """One sandboxed process and its private command channel."""

    def __init__(self, role: str, op: str, device: str, scratch: str, limits: Limits, source: str = "",
                 config: dict | None = None, trusted: bool = False, reference_source: str = "") -> None:
        spec = {"role": role, "op": op, "device": device, "scratch": scratch, "source": source,
                "config": config or {}, "cpu_s": limits.cpu_s, "memory_bytes": limits.memory_bytes,
                "trusted": trusted, "reference_source": reference_source,
                "threads": limits.cpu_threads if device == "cpu" else 0}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TMX_", "NATS", "PG", "DATABASE"))}
        env.update(TMPDIR=scratch, TRITON_CACHE_DIR=os.path.join(scratch, "triton"),
                   TORCHINDUCTOR_CACHE_DIR=os.path.join(scratch, "inductor"), HOME=scratch, **MALLOC_ENV)
        self.role = role
        self.limits = limits
        self.proc = subprocess.Popen(SANDBOX + [json.dumps(spec)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, cwd=scratch, env=env, text=True,
                                     start_new_session=True)
        self.violations: list[str] = []
        self.ready = self._expect(self.limits.wall_s)

    def _expect(self, timeout: float) -> dict:
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                self.kill()
                raise Rejected("timed_out", f"{self.role} did not answer within {timeout:g}s")
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            raise Rejected("crashed", f"{self.role} process exited with {code} "
                                      f"({'CPU limit' if code == -signal.SIGXCPU else 'killed' if code < 0 else 'exit'})")
        reply = json.loads(line)
        self.violations = reply.get("violations", [])
        if self.violations:
            raise Rejected("sandbox_violation", "; ".join(dict.fromkeys(self.violations)))
        if not reply.get("ok"):
            raise Rejected("load_failed" if reply.get("error", "").startswith("failed to load") else "crashed",
                           f"{self.role} raised {reply.get('error')}")
        return reply

    def call(self, timeout: float | None = None, **command) -> dict:
        try:
            self.proc.stdin.write(json.dumps(command) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise Rejected("crashed", f"{self.role} process is gone") from None
        return self._expect(timeout or self.limits.wall_s)

    def elapsed(self, calls: int, keep: tuple[int, ...] = (), flush: bool = False) -> float:
        """Seconds one `time` command of `calls` calls takes, round trip included, on this process's clock.
        With `flush` the process zeroes a buffer twice the L2 before each call (GPU timing); the caller
        subtracts what the flushes alone cost (`flushes`)."""
        start = time.perf_counter()
        self.call(cmd="time", calls=calls, keep=list(keep), flush=flush)
        return time.perf_counter() - start

    def timed(self, calls: int, keep: tuple[int, ...] = (), flush: bool = False) -> float:
        """Seconds per call of `calls` calls. The command's round trip is included on every side alike;
        batches last min_batch_s so it stays small, and it can only pull ratios toward 1."""
        return self.elapsed(calls, keep, flush) / calls

    def flushes(self, calls: int) -> float:
        """Seconds per flush, `calls` flushes in a row on this process's clock."""
        start = time.perf_counter()
        self.call(cmd="flush", calls=calls)
        return (time.perf_counter() - start) / calls

    def stop(self) -> None:
        """SIGSTOP, then wait (bounded) until every thread of the process is seen stopped: a signal is
        delivered asynchronously, and a thread still running would steal from what is timed next."""
        self.proc.send_signal(signal.SIGSTOP)
        tasks = Path(f"/proc/{self.proc.pid}/task")
        deadline = time.monotonic() + 1.0
        while tasks.is_dir() and time.monotonic() < deadline:
            try:
                states = [(t / "stat").read_text().rsplit(")", 1)[1].split()[0] for t in tasks.iterdir()]
            except (OSError, IndexError):
                return  # the process is gone: nothing of it runs
            if all(state in "Tt" for state in states):
                return
            time.sleep(0.001)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()


def _check(op, dtype, got, expected, what: str) -> None:
    reason = op.mismatch(got, expected, dtype)
    if reason:
        raise Rejected("incorrect", f"{what}: {reason}")


def _key(shape) -> str:
    return "x".join(map(str, shape))


class ReferenceFailed(RuntimeError):
    """A custom op's own reference failed: the job fails; no candidate is blamed."""


class SandboxedReference:
    """A custom op's reference, run in a sandboxed process of its own (the same limits and guard as a
    candidate): the worker asks it for inputs and expected outputs and never executes the job's code itself.
    `spec` is an OpSpec whose make_inputs, reference and bytes_moved are calls into that process."""

    def __init__(self, name: str, source: str, device: str, limits: Limits) -> None:
        import torch

        from tmx_kernels.registry import OpSpec, Tolerance

        self.scratch = tempfile.mkdtemp(prefix="tmx-reference-")
        self.calls = 0
        try:
            self.child = _Child("oracle", name, device, self.scratch, limits, reference_source=source)
        except Rejected as exc:
            shutil.rmtree(self.scratch, ignore_errors=True)
            raise ReferenceFailed(f"the job's reference was refused ({exc.code}): {exc}") from None
        meta = self.child.ready
        tolerances = {getattr(torch, d): Tolerance(a, r, "the job's own tolerance")
                      for d, (a, r) in meta["tolerances"].items()}
        self.spec = OpSpec(
            name=name, module=None, launch=None, reference=self._reference, baseline=None,
            make_inputs=self._make_inputs, tolerances=tolerances, bytes_moved=self._bytes_moved,
            flops=lambda shape: 0, test_shapes=tuple(tuple(s) for s in meta["test_shapes"]),
            mutates=tuple(meta["mutates"]))

    def _path(self, what: str) -> str:
        self.calls += 1
        return str(Path(self.scratch, f"{what}-{self.calls}.pt"))

    def _call(self, **command) -> dict:
        try:
            return self.child.call(**command)
        except Rejected as exc:
            raise ReferenceFailed(f"the job's reference failed on {command['cmd']} ({exc.code}): {exc}") from None

    def _make_inputs(self, shape, dtype, seed: int, device: str = "cpu") -> tuple:
        import torch

        out = self._path("inputs")
        self._call(cmd="make", shape=list(shape), dtype=str(dtype).removeprefix("torch."), seed=int(seed),
                        out=out)
        return tuple(torch.load(out, weights_only=True))

    def _reference(self, *inputs) -> tuple:
        import torch

        path, out = self._path("ref-in"), self._path("ref-out")
        torch.save(list(inputs), path)
        self._call(cmd="reference", inputs=path, out=out)
        return tuple(torch.load(out, weights_only=True))

    def _bytes_moved(self, shape, dtype) -> int:
        return int(self._call(cmd="bytes", shape=list(shape), dtype=str(dtype).removeprefix("torch."))["bytes"])

    def close(self) -> None:
        self.child.kill()
        shutil.rmtree(self.scratch, ignore_errors=True)


class Verifier:
    def __init__(self, op_name: str, dtype: str, target: str, shapes: list[list[int]], limits: Limits | None = None,
                 seed: int | None = None, reference_source: str = "") -> None:
        """`reference_source`: a custom op's own reference module (see tmx_kernels.custom); it runs only in a
        sandboxed process of its own, and the baseline is its eager `baseline` (no torch.compile of user code,
        which would need subprocesses in the sandbox). Call `close()` when done."""
        import torch

        from tmx_kernels import get_op

        if dtype not in DTYPES:
            raise ValueError(f"unsupported dtype {dtype}; one of {', '.join(DTYPES)}")
        self.device = "cpu" if target == "cpu" else "cuda"
        self.limits = limits or Limits()
        self.reference_source = reference_source
        self._oracle: SandboxedReference | None = None
        if reference_source:
            self.limits = dataclasses.replace(self.limits, compile_baseline=False)
            self._oracle = SandboxedReference(op_name, reference_source, self.device, self.limits)
            self.op = self._oracle.spec
        else:
            self.op = get_op(op_name)
        self.dtype = getattr(torch, dtype)
        if self.dtype not in self.op.tolerances:
            raise ValueError(f"{op_name} does not support {dtype}")
        self.target = target
        self.shapes = [list(s) for s in shapes]
        self.seed = secrets.randbelow(2**31) if seed is None else seed
        # the job's shapes and odd ones the candidate cannot have tuned for
        extra = [list(s) for s in self.op.test_shapes[-2:] if list(s) not in self.shapes]
        self.check_shapes = self.shapes + extra

    def verify(self, candidate: Candidate) -> Verdict:
        if not candidate.trusted:
            violations = check(candidate.source)
            if violations:
                return Verdict(False, "static", "; ".join(map(str, violations)))
        with tempfile.TemporaryDirectory(prefix="tmx-verify-") as scratch:
            children: list[_Child] = []
            try:
                return self._verify(candidate, scratch, children)
            except Rejected as exc:
                return Verdict(False, exc.code, str(exc))
            finally:
                for child in children:
                    child.kill()

    def close(self) -> None:
        if self._oracle is not None:
            self._oracle.close()

    def _spawn(self, children: list, scratch: str, role: str, **kw) -> _Child:
        if role == "eager" and self.reference_source:
            kw["reference_source"] = self.reference_source  # the job's own eager baseline
        child = _Child(role, self.op.name, self.device, scratch, self.limits, **kw)
        children.append(child)
        return child

    def _verify(self, candidate: Candidate, scratch: str, children: list) -> Verdict:
        import torch

        from tmx_kernels import as_outputs, clone_inputs

        source = Path(scratch, "candidate.py")
        source.write_text(candidate.source)
        deadline = time.monotonic() + self.limits.wall_s
        cand = self._spawn(children, scratch, "candidate", source=str(source), config=candidate.config,
                           trusted=candidate.trusted)
        path_in, path_out = Path(scratch, "in.pt"), Path(scratch, "out.pt")
        for i, shape in enumerate(self.check_shapes):
            for seed in (self.seed + 2 * i, self.seed + 2 * i + 1):
                inputs = self.op.make_inputs(shape, self.dtype, seed, self.device)
                expected = as_outputs(self.op.reference(*clone_inputs(inputs)))
                torch.save(list(inputs), path_in)
                cand.call(cmd="run", inputs=str(path_in), out=str(path_out), timeout=self._left(deadline))
                result = torch.load(path_out, weights_only=True)
                what = f"shape {_key(shape)}"
                _check(self.op, self.dtype, result["first"], expected, what)
                _check(self.op, self.dtype, result["second"], result["first"], f"{what} (second run)")
                for n, (before, after) in enumerate(zip(inputs, result["inputs_after"])):
                    if n not in self.op.mutates and isinstance(before, torch.Tensor) and not torch.equal(before, after):
                        raise Rejected("modified_inputs", f"{what}: the candidate modified input {n}")
        if self.device == "cpu" and candidate.is_triton:
            return Verdict(True, "passed", "correct under the Triton interpreter; a GPU worker benchmarks it")
        baselines = {"eager": self._spawn(children, scratch, "eager")}
        if self.limits.compile_baseline:
            baselines["torch.compile"] = self._spawn(children, scratch, "compile")
        copy = self._spawn(children, scratch, "copy")
        shapes = {}
        for i, shape in enumerate(self.shapes):
            shapes[_key(shape)] = self._time(cand, baselines, copy, scratch, shape, 10_000 * (i + 1), deadline)
        return Verdict(True, "passed", "correct on every shape and seed; timed against the baseline", shapes,
                       benchmarked=True)

    def _left(self, deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Rejected("timed_out", f"verification exceeded its {self.limits.wall_s:g}s wall limit")
        return left

    def _save(self, scratch: str, sets: list) -> str:
        import torch

        path = Path(scratch, "timing.pt")
        torch.save([list(s) for s in sets], path)
        return str(path)

    def _time(self, cand: _Child, baselines: dict[str, _Child], copy: _Child, scratch: str, shape, salt: int,
              deadline: float) -> dict:
        import torch

        from tmx_kernels import as_outputs

        def fresh(index: int) -> tuple:
            return self.op.make_inputs(shape, self.dtype, self.seed + salt + index, self.device)

        everyone = (cand, *baselines.values())
        processes = (*everyone, copy)  # each timed alone: `_alone` stops the rest
        # warm-up (compilation, caches) on one set that is never timed
        first = fresh(0)
        path = self._save(scratch, [first])
        for child in everyone:
            child.call(cmd="load", inputs=path, timeout=self._left(deadline))
            child.timed(1)
        set_bytes = sum(t.numel() * t.element_size() for t in first if isinstance(t, torch.Tensor))
        most = max(1, min(1000, self.limits.timing_bytes // max(set_bytes, 1)))
        # one batch size for every side, so each walks the same number of fresh sets through the caches:
        # enough calls for the fastest side to last min_batch_s, but the slowest side's batch under max_batch_s
        singles = [self._single(child) for child in everyone]
        count = max(1, min(most, math.ceil(self.limits.min_batch_s / min(singles)),
                           math.floor(self.limits.max_batch_s / max(singles)) or 1))
        # on a GPU every timed call starts with L2 flushed; the flushes' own time is measured in the trusted
        # copy process (a candidate could make its own flushes look slow) and subtracted from every side
        flush = self.device == "cuda"
        flush_s = 0.0
        if flush:
            with self._alone(copy, processes):
                flush_s = statistics.median(copy.flushes(count) for _ in range(3))
        samples: dict[str, list[float]] = {child.role: [] for child in everyone}
        # which side goes first in the even repeats: a coin, not always the candidate. The first batch of a repeat
        # follows the parent's own work (the next input sets made, the last check's reference computed) and runs
        # slower; with an odd number of repeats, a side first in the even ones is first once more than the other,
        # and its median takes that slowdown: the candidate, always, made an identical candidate read ~0.967x of
        # its baseline (scratch A/A, 16 verdicts), 0.996x with the order flipped
        candidate_first = secrets.randbelow(2) == 0
        next_index = 1
        for repeat in range(self.limits.repeats):
            # every timed call gets a set no process has seen: an output cache cannot hit
            indices = list(range(next_index, next_index + count))
            next_index += count
            path = self._save(scratch, [fresh(k) for k in indices])
            checked = secrets.randbelow(count)

            def candidate_batch() -> None:
                cand.call(cmd="load", inputs=path, timeout=self._left(deadline))
                with self._alone(cand, processes):
                    samples["candidate"].append(max(cand.timed(count, keep=(checked,), flush=flush) - flush_s, 1e-9))

            def baseline_batches() -> None:
                for child in baselines.values():
                    child.call(cmd="load", inputs=path, timeout=self._left(deadline))
                    # it keeps the checked call's output too, unused: a kept output holds its memory through the
                    # rest of the batch, so the next call allocates afresh; kept on the candidate's side only, that
                    # slowed an identical candidate ~2%
                    with self._alone(child, processes):
                        samples[child.role].append(max(child.timed(count, keep=(checked,), flush=flush) - flush_s,
                                                       1e-9))

            # each side loads its sets right before its own batch, so none finds them warmer in a shared cache;
            # the order alternates so that whatever the previous step leaves running (thread pools spinning
            # down, the reference just computed here) falls on both sides alike
            for batch in ((candidate_batch, baseline_batches) if (repeat % 2 == 0) == candidate_first else
                          (baseline_batches, candidate_batch)):
                batch()
            out = Path(scratch, "last.pt")
            cand.call(cmd="save_last", out=str(out), timeout=self._left(deadline))
            kept = torch.load(out, weights_only=True)
            _check(self.op, self.dtype, kept.get(str(checked), []),
                   as_outputs(self.op.reference(*fresh(indices[checked]))), f"shape {_key(shape)} (timed call)")
        candidate_s = statistics.median(samples["candidate"])
        best = min(baselines, key=lambda name: statistics.median(samples[baselines[name].role]))
        baseline_s = statistics.median(samples[baselines[best].role])
        won = sum(c < b for c, b in zip(samples["candidate"], samples[baselines[best].role]))
        moved = self.op.bytes_moved(shape, self.dtype)  # for a job's own op, a call into its sandbox
        floor_s = self._copy_floor(copy, processes, scratch, moved, deadline, count)
        if candidate_s < 0.5 * floor_s:  # a cheat, or an op whose `bytes_moved` overstates what it moves
            raise Rejected("faster_than_hardware", f"shape {_key(shape)}: {candidate_s * 1e6:.1f} us per call is "
                                                   f"under half of a plain copy of the {moved} bytes the op moves "
                                                   f"({floor_s * 1e6:.1f} us)")
        return {"candidate_s": candidate_s, "baseline_s": baseline_s, "baseline": best,
                "speedup": baseline_s / candidate_s, "pairs_won": won, "pairs": len(samples["candidate"]),
                "copy_floor_s": floor_s, "calls_per_sample": count, "l2_flush_s": flush_s}

    @staticmethod
    def _single(child: _Child) -> float:
        return max(statistics.median(child.timed(1) for _ in range(3)), 1e-7)

    def _copy_floor(self, copy: _Child, processes: tuple[_Child, ...], scratch: str, moved: int, deadline: float,
                    at_least: int) -> float:
        """The fastest a plain copy of `moved` bytes (what the op moves at one shape) runs here, per call, with the
        command's round trip taken out: each batch is paired with an empty command, and the floor is the best batch
        less the best empty one, over the batch's calls. The candidate's own time keeps its share of a round trip, so an
        honest kernel can only look slower than this floor, never faster. A floor that kept its round trip was
        a round trip whenever the copy is small: once, sized from one stalled call, a single call (536 us
        against an honest 30 us kernel); once, in batches as long as the candidate's but timed while other
        processes slowed every round trip, 39 us against an honest 15 us kernel. Both rejected it."""
        import torch

        half = max(moved // 2, 1)  # copying n bytes moves 2n
        buffers = (torch.zeros(half, dtype=torch.uint8, device=self.device),
                   torch.empty(half, dtype=torch.uint8, device=self.device))
        copy.call(cmd="load", inputs=self._save(scratch, [buffers]), timeout=self._left(deadline))
        copy.timed(1)
        with self._alone(copy, processes):
            empty = min(copy.elapsed(0) for _ in range(3))
            per_call = max(self._single(copy) - empty, 1e-7)
            calls = max(at_least, min(1000, math.ceil(self.limits.min_batch_s / per_call)))
            # noise (other processes) only slows a command down, so the minima, not medians, estimate both
            batches, empties = [], []
            for _ in range(5):
                empties.append(copy.elapsed(0))
                batches.append(copy.elapsed(calls))
        return max(min(batches) - min(empties), 0.0) / calls

    @contextlib.contextmanager
    def _alone(self, timed: _Child, processes: tuple[_Child, ...]):
        """Every other process of this verification (and a custom op's reference) stopped while `timed` is
        timed. Stopping only the candidate while a baseline ran made the timing lopsided: a baseline's thread
        pool, spinning down after its batch, took a core from the candidate's next batch, never the other way
        round: an identical candidate measured 0.79x of its own baseline on two threads, 0.94x on one (alone: 0.96x,
        0.97x; bench/verifier_aa.py)."""
        others = [p for p in processes if p is not timed]
        if self._oracle is not None:
            others.append(self._oracle.child)
        stopped = []
        try:
            for process in others:
                process.stop()
                stopped.append(process)
            yield
        finally:
            for process in stopped:
                process.resume()
