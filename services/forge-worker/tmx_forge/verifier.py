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
   run by run on this process's clock, with the candidate's process stopped (SIGSTOP) while a baseline runs;
   the calls rotate over three distinct input sets, and the outputs of the timed calls are re-checked
   (an output cache or a skipped computation fails here);
5. rejects a time below half that of a plain copy of the same bytes (faster than the hardware allows).

Every rejection has a named reason (`Verdict.reason_code`).
"""

from __future__ import annotations

import json
import math
import os
import secrets
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
    min_batch_s: float = 0.02  # each timed command runs enough calls to last about this long
    compile_baseline: bool = True


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

    def to_dict(self) -> dict:
        return {"ok": self.ok, "reason_code": self.reason_code, "reason": self.reason, "shapes": self.shapes,
                "benchmarked": self.benchmarked}


class Rejected(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class _Child:
    """One sandboxed process and its private command channel."""

    def __init__(self, role: str, op: str, device: str, scratch: str, limits: Limits, source: str = "",
                 config: dict | None = None, trusted: bool = False) -> None:
        spec = {"role": role, "op": op, "device": device, "scratch": scratch, "source": source,
                "config": config or {}, "cpu_s": limits.cpu_s, "memory_bytes": limits.memory_bytes,
                "trusted": trusted}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TMX_", "NATS", "PG", "DATABASE"))}
        env.update(TMPDIR=scratch, TRITON_CACHE_DIR=os.path.join(scratch, "triton"),
                   TORCHINDUCTOR_CACHE_DIR=os.path.join(scratch, "inductor"), HOME=scratch)
        self.role = role
        self.limits = limits
        self.proc = subprocess.Popen(SANDBOX + [json.dumps(spec)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, cwd=scratch, env=env, text=True,
                                     start_new_session=True)
        self.violations: list[str] = []
        self._expect(self.limits.wall_s)

    def _expect(self, timeout: float) -> dict:
        import selectors

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

    def timed(self, calls: int, keep: bool = False) -> float:
        start = time.perf_counter()
        self.call(cmd="time", calls=calls, keep=keep)
        return time.perf_counter() - start

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()


def _outputs(result) -> list:
    return list(result) if isinstance(result, (tuple, list)) else [result]


def _clone(inputs) -> tuple:
    import torch

    return tuple(t.clone() if isinstance(t, torch.Tensor) else t for t in inputs)


def _compare(op, dtype, got: list, expected: list, what: str) -> None:
    import torch

    tol = op.tolerances[dtype]
    if len(got) != len(expected):
        raise Rejected("incorrect", f"{what}: {len(got)} outputs, the reference has {len(expected)}")
    for n, (g, e) in enumerate(zip(got, expected)):
        if not isinstance(g, torch.Tensor) or g.shape != e.shape or g.dtype != e.dtype:
            raise Rejected("incorrect", f"{what}: output {n} is {getattr(g, 'shape', type(g))}/"
                                        f"{getattr(g, 'dtype', '')}, the reference {tuple(e.shape)}/{e.dtype}")
        gf, ef = g.float(), e.float()
        if bool((~torch.isfinite(gf) & torch.isfinite(ef)).any()):
            raise Rejected("incorrect", f"{what}: output {n} has NaN/inf where the reference is finite "
                                        f"(an unwritten or poisoned output)")
        if not torch.allclose(gf, ef, atol=tol.atol, rtol=tol.rtol, equal_nan=True):
            err = (gf - ef).abs().nan_to_num(nan=float("inf")).max().item()
            raise Rejected("incorrect", f"{what}: output {n} max abs error {err:.3g} exceeds atol {tol.atol} "
                                        f"rtol {tol.rtol}")


def _key(shape) -> str:
    return "x".join(map(str, shape))


class Verifier:
    def __init__(self, op_name: str, dtype: str, target: str, shapes: list[list[int]], limits: Limits | None = None,
                 seed: int | None = None) -> None:
        import torch

        from tmx_kernels import get_op

        if dtype not in DTYPES:
            raise ValueError(f"unsupported dtype {dtype}; one of {', '.join(DTYPES)}")
        self.op = get_op(op_name)
        self.dtype = getattr(torch, dtype)
        if self.dtype not in self.op.tolerances:
            raise ValueError(f"{op_name} does not support {dtype}")
        self.target = target
        self.device = "cpu" if target == "cpu" else "cuda"
        self.shapes = [list(s) for s in shapes]
        self.limits = limits or Limits()
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

    def _spawn(self, children: list, scratch: str, role: str, **kw) -> _Child:
        child = _Child(role, self.op.name, self.device, scratch, self.limits, **kw)
        children.append(child)
        return child

    def _verify(self, candidate: Candidate, scratch: str, children: list) -> Verdict:
        import torch

        source = Path(scratch, "candidate.py")
        source.write_text(candidate.source)
        deadline = time.monotonic() + self.limits.wall_s
        cand = self._spawn(children, scratch, "candidate", source=str(source), config=candidate.config,
                           trusted=candidate.trusted)
        for i, shape in enumerate(self.check_shapes):
            for seed in (self.seed + 2 * i, self.seed + 2 * i + 1):
                inputs = self.op.make_inputs(shape, self.dtype, seed, self.device)
                expected = _outputs(self.op.reference(*_clone(inputs)))
                path_in, path_out = Path(scratch, "in.pt"), Path(scratch, "out.pt")
                torch.save(list(inputs), path_in)
                cand.call(cmd="run", inputs=str(path_in), out=str(path_out), timeout=self._left(deadline))
                result = torch.load(path_out, weights_only=True)
                what = f"shape {_key(shape)}"
                _compare(self.op, self.dtype, result["first"], expected, what)
                _compare(self.op, self.dtype, result["second"], result["first"], f"{what} (second run)")
                for n, (before, after) in enumerate(zip(inputs, result["inputs_after"])):
                    if n not in self.op.mutates and isinstance(before, torch.Tensor) and not torch.equal(before, after):
                        raise Rejected("modified_inputs", f"{what}: the candidate modified input {n}")
        if self.device == "cpu" and candidate.is_triton:
            return Verdict(True, "passed", "correct under the Triton interpreter; a GPU worker benchmarks it")
        shapes = {}
        for i, shape in enumerate(self.shapes):
            shapes[_key(shape)] = self._time(cand, children, scratch, shape, 10_000 + i, deadline)
        return Verdict(True, "passed", "correct on every shape and seed; timed against the baseline", shapes,
                       benchmarked=True)

    def _left(self, deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Rejected("timed_out", f"verification exceeded its {self.limits.wall_s:g}s wall limit")
        return left

    def _time(self, cand: _Child, children: list, scratch: str, shape, salt: int, deadline: float) -> dict:
        import torch

        sets = [self.op.make_inputs(shape, self.dtype, self.seed + salt + k, self.device) for k in range(3)]
        path = Path(scratch, f"timing-{_key(shape)}.pt")
        torch.save([list(s) for s in sets], path)
        baselines = {"eager": self._spawn(children, scratch, "eager")}
        if self.limits.compile_baseline:
            baselines["torch.compile"] = self._spawn(children, scratch, "compile")
        for child in [cand, *baselines.values()]:
            child.call(cmd="load", inputs=str(path), timeout=self._left(deadline))
        # warm-up (compilation, caches) and the batch size, both on this process's clock
        single = max(cand.timed(1), 1e-6)
        for child in baselines.values():
            child.timed(1)
        calls = max(1, min(1000, math.ceil(self.limits.min_batch_s / single)))
        samples: dict[str, list[float]] = {"candidate": [], **{name: [] for name in baselines}}
        for _ in range(self.limits.repeats):
            self._left(deadline)
            samples["candidate"].append(cand.timed(calls) / calls)
            cand.stop()  # nothing of the candidate runs while a baseline is timed
            try:
                for name, child in baselines.items():
                    samples[name].append(child.timed(calls) / calls)
            finally:
                cand.resume()
        # the timed calls must still be correct: rotate once more over the sets and re-check every output
        cand.call(cmd="time", calls=len(sets), keep=True, timeout=self._left(deadline))
        out = Path(scratch, "last.pt")
        cand.call(cmd="save_last", out=str(out), timeout=self._left(deadline))
        kept = torch.load(out, weights_only=True)
        for k, inputs in enumerate(sets):
            # mutating ops ran many times on the same set: the reference replays them on an untouched copy
            fresh = self.op.make_inputs(shape, self.dtype, self.seed + salt + k, self.device)
            _compare(self.op, self.dtype, kept[str(k)], _outputs(self.op.reference(*fresh)),
                     f"shape {_key(shape)} (timed call)")
        candidate_s = statistics.median(samples["candidate"])
        best = min(baselines, key=lambda name: statistics.median(samples[name]))
        baseline_s = statistics.median(samples[best])
        floor_s = self._copy_floor(children, scratch, shape, calls)
        if candidate_s < 0.5 * floor_s:
            raise Rejected("faster_than_hardware", f"shape {_key(shape)}: {candidate_s * 1e6:.1f} us per call is "
                                                   f"under half of a plain copy of its bytes ({floor_s * 1e6:.1f} us)")
        return {"candidate_s": candidate_s, "baseline_s": baseline_s, "baseline": best,
                "speedup": baseline_s / candidate_s, "copy_floor_s": floor_s, "calls_per_sample": calls}

    def _copy_floor(self, children: list, scratch: str, shape, calls: int) -> float:
        import torch

        half = max(self.op.bytes_moved(shape, self.dtype) // 2, 1)  # copying n bytes moves 2n
        path = Path(scratch, "copy.pt")
        torch.save([[torch.zeros(half, dtype=torch.uint8, device=self.device),
                     torch.empty(half, dtype=torch.uint8, device=self.device)]], path)
        child = self._spawn(children, scratch, "copy")
        child.call(cmd="load", inputs=str(path))
        child.timed(1)
        return statistics.median(child.timed(calls) / calls for _ in range(3))
